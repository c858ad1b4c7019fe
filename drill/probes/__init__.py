"""Probes: one module per kind, one registry (registry.py), one schema fragment each."""
