"""Scenario actions: steps that change the world (HTTP calls, commands)."""
