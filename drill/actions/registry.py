"""The only list of action kinds: one line per kind."""

from __future__ import annotations

from typing import Any

from drill.actions import command, http
from drill.actions.base import ActionKind

# Keyed by each kind's own name, so a kind cannot be registered under another one.
ACTION_KINDS: dict[str, ActionKind[Any]] = {kind.name: kind for kind in (http.KIND, command.KIND)}
