"""The embedded demo lab used by `drill demo`: simulated services on 127.0.0.1 with failure injection."""

from drill.lab.lab import Lab, LabConfig

__all__ = ["Lab", "LabConfig"]
