"""The installed drill version, read once: what run.started and the report record."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("drill")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
