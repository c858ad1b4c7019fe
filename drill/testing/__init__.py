"""A small kit for probe authors: run a probe kind exactly as drill's scheduler does, without a drill.

    from drill.testing import FakeContext, run_probe

    async def test_my_probe_sees_the_banner(server_port: int) -> None:
        obs = await run_probe("smtp", {"host": "127.0.0.1", "port": server_port}, timeout_ms=500)
        assert obs.ok, obs.reason

`run_probe` parses the parameters with the kind's own `parse` (bad input raises the kind's
UsageError, as `drill validate`/`drill run` would report it), runs one execution under the
timeout with the scheduler's own wrapper (a timeout or an exception escaping the probe becomes
a failed Observation, with latency measured), and returns the Observation. `FakeContext` is a
ProbeContext that records emitted events, keeps `memory` between calls and opens the shared
resources a kind declares on first use; `FakeClock` is drill's deterministic clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from drill.clock import Clock, FakeClock, SystemClock
from drill.evidence.events import EventDraft
from drill.probes.base import Observation, ProbeKind, R, ResourceKind, SharedResource
from drill.probes.registry import PROBE_KINDS
from drill.run.scheduler import run_kind_once


@dataclass(slots=True)
class FakeContext:
    """A ProbeContext for tests: events go to `events`, resources open lazily; close with `aclose`."""

    asset: str = "asset-a"
    probe: str = "probe-a"
    timeout_s: float = 2.0
    clock: Clock = field(default_factory=SystemClock)
    memory: dict[str, Any] = field(default_factory=dict)
    events: list[EventDraft] = field(default_factory=list)
    _resources: dict[str, SharedResource] = field(default_factory=dict)

    def resource(self, kind: ResourceKind[R]) -> R:
        opened = self._resources.get(kind.name)
        if opened is None:
            opened = self._resources[kind.name] = kind.open(())
        return cast(R, opened)

    def monotonic_ns(self) -> int:
        return self.clock.monotonic_ns()

    def emit(self, event: EventDraft) -> None:
        self.events.append(event)

    def redact(self, text: str) -> str:
        """No secrets in a test context by default: override to check redaction before a cut."""
        return text

    async def aclose(self) -> None:
        opened, self._resources = self._resources, {}
        for resource in opened.values():
            await resource.aclose()

    async def __aenter__(self) -> FakeContext:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def probe_kind(kind: str | ProbeKind[Any]) -> ProbeKind[Any]:
    """A registered kind by name (KeyError names the known ones), or the kind itself."""
    if isinstance(kind, ProbeKind):
        return kind
    try:
        return PROBE_KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown probe kind {kind!r}; known: {', '.join(sorted(PROBE_KINDS))}") from None


async def run_probe(
    kind: str | ProbeKind[Any],
    params: Mapping[str, object],
    *,
    ctx: FakeContext | None = None,
    timeout_ms: int = 1000,
) -> Observation:
    """Parse params and run the kind once under timeout_ms, as the scheduler would; never raises
    for a failing target (bad params raise the kind's own error)."""
    probe = probe_kind(kind)
    spec = probe.parse(params)
    if ctx is not None:
        return await run_kind_once(probe, spec, ctx, timeout_ms, ctx.clock)
    async with FakeContext(timeout_s=timeout_ms / 1000) as own:
        return await run_kind_once(probe, spec, own, timeout_ms, own.clock)


async def finish_probe(kind: str | ProbeKind[Any], params: Mapping[str, object], ctx: FakeContext) -> None:
    """Run the kind's `finish` hook (canary kinds read back surviving writes) with ctx's memory."""
    probe = probe_kind(kind)
    if probe.finish is not None:
        await probe.finish(probe.parse(params), ctx)


__all__ = ["FakeClock", "FakeContext", "finish_probe", "probe_kind", "run_probe"]
