"""The probe contract: one spec dataclass and one async function per kind, registered by name.

The scheduler, not the probe, owns timing and the deadline (it wraps each call in
asyncio.timeout); a probe only looks and says what it saw. A probe never raises: every failure
is an Observation with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx

from drill.events import EventDraft


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe execution saw. latency_us is filled in by the scheduler."""

    ok: bool
    reason: str = ""
    transient: bool = False
    latency_us: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)


def ok(**detail: Any) -> Observation:
    return Observation(ok=True, detail=detail)


def fail(reason: str, *, transient: bool = False, **detail: Any) -> Observation:
    return Observation(ok=False, reason=reason, transient=transient, detail=detail)


class ProbeContext(Protocol):
    """What the runner gives a probe: where it is, its deadline, shared clients, an event sink."""

    asset: str
    probe: str
    timeout_s: float
    memory: dict[str, Any]  # survives between ticks of this one probe (canary sequence numbers ...)

    def http(self, verify: bool = True) -> httpx.AsyncClient:
        """An HTTP client from the pool (never one shared client for everything); verify: check TLS."""
        ...

    def monotonic_ns(self) -> int: ...

    def emit(self, event: EventDraft) -> None:
        """Add an event to the journal (canary writes, RPO measurements)."""
        ...


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class ProbeKind(Generic[S]):
    """A registered probe kind. `finish` (optional) runs once after the scenario, e.g. to read
    which canary writes survived a failover and emit an rpo.measured event."""

    name: str
    parse: Callable[[Mapping[str, Any]], S]
    run: Callable[[S, ProbeContext], Awaitable[Observation]]
    summary: str
    finish: Callable[[S, ProbeContext], Awaitable[None]] | None = None

    @property
    def schema_file(self) -> str:
        return f"probes/{self.name}.schema.json"
