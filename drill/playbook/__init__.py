"""Playbooks: loading with positions, validation (schema + semantic rules), the typed model."""
