"""The embedded lab: simulated services on 127.0.0.1 with failure injection, for `drill demo`
(in-process, free ports) and `drill lab up` (a background process on fixed ports: see daemon)."""

from drill.lab.lab import Lab, LabConfig

__all__ = ["Lab", "LabConfig"]
