"""The probe contract: one spec dataclass and one async function per kind, registered by name.

The scheduler, not the probe, owns timing and the deadline (it wraps each call in
asyncio.timeout); a probe only looks and says what it saw. A probe never raises: every failure
is an Observation with a reason a person can act on.

A kind that needs something shared by all its probes for the whole run (a pool of HTTP
clients, say) declares it as a `ResourceKind` in `ProbeKind.resources`; the runner opens each
declared resource once before the first tick and closes it after the last, and a probe gets it
with `ctx.resource(KIND)`. So neither the runner nor the scheduler names any protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from drill.evidence.events import EventDraft
from drill.jsontypes import JsonValue

Params = Mapping[str, object]  # a kind's parameters as written in the playbook, secrets resolved


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe execution saw. latency_us is filled in by the scheduler."""

    ok: bool
    reason: str = ""
    transient: bool = False
    latency_us: int = 0
    detail: Mapping[str, JsonValue] = field(default_factory=dict)


def ok(**detail: JsonValue) -> Observation:
    return Observation(ok=True, detail=detail)


def fail(reason: str, *, transient: bool = False, **detail: JsonValue) -> Observation:
    return Observation(ok=False, reason=reason, transient=transient, detail=detail)


class SharedResource(Protocol):
    """Something the probes of one or more kinds share for a whole run."""

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=SharedResource)


@dataclass(frozen=True, slots=True)
class ResourceKind(Generic[R]):
    """A shared resource a probe kind declares: `open` builds it once per run, sized by the
    specs of every probe that uses it (so it can be warmed before the first tick)."""

    name: str
    open: Callable[[Sequence[object]], R]


class ProbeContext(Protocol):
    """What the runner gives a probe: where it is, its deadline, its shared resources, an event sink."""

    asset: str
    probe: str
    timeout_s: float
    memory: dict[str, Any]  # survives between ticks of this one probe (canary sequence numbers ...)

    def resource(self, kind: ResourceKind[R]) -> R:
        """The run's instance of a resource this probe's kind declared."""
        ...

    def monotonic_ns(self) -> int: ...

    def emit(self, event: EventDraft) -> None:
        """Add an event to the journal (canary writes, RPO measurements)."""
        ...


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class ProbeKind(Generic[S]):
    """A registered probe kind. `finish` (optional) runs once after the probe loops stopped, e.g.
    to read which canary writes survived a failover and emit an rpo.measured event."""

    name: str
    parse: Callable[[Params], S]
    run: Callable[[S, ProbeContext], Awaitable[Observation]]
    summary: str
    finish: Callable[[S, ProbeContext], Awaitable[None]] | None = None
    resources: tuple[ResourceKind[Any], ...] = ()

    @property
    def schema_file(self) -> str:
        return f"probes/{self.name}.schema.json"
