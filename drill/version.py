"""The drill version: what run.started and the report record, and what packaging reads
(pyproject's [tool.hatch.version]). A literal, so `drill --version` needs no importlib.metadata."""

from __future__ import annotations

__version__ = "0.1.0"
