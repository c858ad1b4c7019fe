"""The only list of action kinds: one line per kind."""

from __future__ import annotations

from typing import Any

from drill.actions import command, http
from drill.actions.base import ActionKind

ACTION_KINDS: dict[str, ActionKind[Any]] = {
    "http": http.KIND,
    "command": command.KIND,
}
