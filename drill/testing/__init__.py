"""Helpers for testing drill and playbooks against real servers."""
