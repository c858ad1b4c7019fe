"""The action contract: one spec dataclass and one async function per kind, registered by name.

Like probes, actions never raise into the runner: every failure is an ActionResult with a
reason, and `transient` says whether a declared retry may help.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

OUTPUT_LIMIT = 64 * 1024  # bytes of an action's output kept for capture (the rest is cut off, said so)


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    reason: str = ""
    transient: bool = False
    detail: str = ""  # e.g. the HTTP status or exit code, for the journal
    stdout: str = ""  # a command's standard output, an http action's body (at most OUTPUT_LIMIT)
    stderr: str = ""  # a command's standard error


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What the runner gives an action: a bounded HTTP client and the playbook's folder."""

    http: httpx.AsyncClient
    cwd: str
    redact: Callable[[str], str] = str  # the run's Secrets.redact_text: applied before any cut


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class ActionKind(Generic[S]):
    name: str
    parse: Callable[[Mapping[str, Any]], S]
    run: Callable[[S, ActionContext], Awaitable[ActionResult]]
    summary: str

    @property
    def schema_file(self) -> str:
        return f"actions/{self.name}.schema.json"


def status_matches(status: int, expected: int | list[int] | None) -> bool:
    """Default: any 2xx. An int or a list of ints names the accepted codes."""
    if expected is None:
        return 200 <= status < 300
    return status in (expected if isinstance(expected, list) else [expected])
