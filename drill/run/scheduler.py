"""Drift-free probe scheduling: every probe fires on absolute ticks `start + phase + k*interval`.

Ticks are computed from the start instant, never from the previous run, so a probe never
drifts. Each probe has its own loop (its own task), so a slow or hanging probe delays nobody
else, including other probes of the same asset (see NOTES: probes of one asset must not queue
behind each other). Inside one loop a probe never overlaps itself: a tick that comes while the
previous run is still going is skipped and reported as an overrun, so nothing piles up.

The scheduler owns the deadline: each run is wrapped in asyncio.timeout(timeout), and a
timeout or an exception escaping the probe (a bug) becomes a failed Observation. The first
ticks of loops sharing an interval are spread evenly across it, so a thousand probes do not
all wake in the same millisecond and delay each other.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from drill.clock import Clock
from drill.evidence.events import EventDraft
from drill.playbook.model import Probe
from drill.probes.base import Observation, ProbeContext, ProbeKind, R, ResourceKind, SharedResource, fail
from drill.units import human_ms

NS_PER_MS = 1_000_000
LEAD_IN_NS = 10 * NS_PER_MS
LEAD_IN_PER_PROBE_NS = 50_000  # measured: creating and first-stepping a loop takes ~30 us here

# on_observation(probe, observation, scheduled_mono_ns, started_mono_ns, tick)
ObservationCallback = Callable[["ScheduledProbe", Observation, int, int, int], None]
# on_overrun(probe, missed_ticks, scheduled_mono_ns of the first missed tick)
OverrunCallback = Callable[["ScheduledProbe", int, int], None]
# on_abandoned(probe, reason): its loop did not end when stopped (see stop_loops)
AbandonedCallback = Callable[["ScheduledProbe", str], None]
EventSink = Callable[[EventDraft], object]


@dataclass(frozen=True, slots=True)
class ScheduledProbe:
    """One probe loop to run: the playbook probe (interval, timeout, ...) and its parsed spec."""

    asset: str
    probe: Probe
    kind: ProbeKind[Any]
    spec: object

    @property
    def interval_ns(self) -> int:
        return self.probe.interval_ms * NS_PER_MS

    @property
    def timeout_s(self) -> float:
        return self.probe.timeout_ms / 1000


class Resources:
    """The shared resources the run's probe kinds declared, each opened once for every probe using it."""

    def __init__(self, probes: Sequence[ScheduledProbe]) -> None:
        users: dict[str, tuple[ResourceKind[Any], list[object]]] = {}
        for probe in probes:
            for kind in probe.kind.resources:
                users.setdefault(kind.name, (kind, []))[1].append(probe.spec)
        # opened now, before the first tick: building clients inside a tick would delay it
        self._open: dict[str, SharedResource] = {
            name: kind.open(specs) for name, (kind, specs) in users.items()
        }

    def get(self, kind: ResourceKind[R]) -> R:
        resource = self._open.get(kind.name)
        if resource is None:
            raise LookupError(f"resource {kind.name!r} was not declared by this probe's kind")
        return cast(R, resource)

    async def aclose(self) -> None:
        opened, self._open = self._open, {}
        for resource in opened.values():
            await resource.aclose()


@dataclass(slots=True)
class LiveProbeContext:
    """The ProbeContext of a real run: the run's shared resources, events to `sink`.

    `memory` lives as long as the context (one per probe loop), so a probe can keep state
    between ticks and its kind's `finish` hook sees it after the scenario.
    """

    asset: str
    probe: str
    timeout_s: float
    clock: Clock
    resources: Resources
    sink: EventSink
    memory: dict[str, Any] = field(default_factory=dict)
    redactor: Callable[[str], str] = str  # the run's Secrets.redact_text (identity without secrets)

    @classmethod
    def for_probe(
        cls,
        probe: ScheduledProbe,
        resources: Resources,
        clock: Clock,
        sink: EventSink,
        redact: Callable[[str], str] = str,
    ) -> LiveProbeContext:
        """The context for one scheduled probe."""
        return cls(probe.asset, probe.probe.name, probe.timeout_s, clock, resources, sink, redactor=redact)

    def resource(self, kind: ResourceKind[R]) -> R:
        return self.resources.get(kind)

    def monotonic_ns(self) -> int:
        return self.clock.monotonic_ns()

    def emit(self, event: EventDraft) -> None:
        self.sink(event)

    def redact(self, text: str) -> str:
        return self.redactor(text)


async def run_probe_once(probe: ScheduledProbe, ctx: ProbeContext, clock: Clock) -> Observation:
    """Run the probe once under its deadline; never raises except for cancellation.

    latency_us is measured here, from just before the call to its end (or to the deadline).
    """
    return await run_kind_once(probe.kind, probe.spec, ctx, probe.probe.timeout_ms, clock)


async def run_kind_once(
    kind: ProbeKind[Any], spec: object, ctx: ProbeContext, timeout_ms: int, clock: Clock
) -> Observation:
    """One probe execution as the scheduler runs it: under timeout_ms, every failure an Observation."""
    started = clock.monotonic_ns()
    deadline = asyncio.timeout(timeout_ms / 1000)
    try:
        async with deadline:
            obs = await kind.run(spec, ctx)
    except TimeoutError as exc:
        if deadline.expired():
            obs = fail(f"timed out after {human_ms(timeout_ms)}", transient=True)
        else:
            obs = _bug(kind, exc)
    except Exception as exc:
        obs = _bug(kind, exc)
    if not isinstance(obs, Observation):
        obs = fail(f"bug: probe kind {kind.name!r} returned {type(obs).__name__}, not an Observation")
    # Built directly: dataclasses.replace costs more than the rest of a no-op tick.
    latency_us = (clock.monotonic_ns() - started) // 1000
    return Observation(obs.ok, obs.reason, obs.transient, latency_us, obs.detail)


def _bug(kind: ProbeKind[Any], exc: BaseException) -> Observation:
    return fail(
        f"bug: probe kind {kind.name!r} raised {type(exc).__name__}: {exc} "
        "(please report it; probes must turn every failure into a reason)"
    )


async def run_probe_loop(
    probe: ScheduledProbe,
    ctx: LiveProbeContext,
    clock: Clock,
    on_observation: ObservationCallback,
    on_overrun: OverrunCallback | None = None,
    *,
    start_ns: int,
    phase_ns: int = 0,
    ticks: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one probe at start_ns + phase_ns + k*interval for k = 0, 1, ... (until cancelled or
    `stop` is set, or for tick indices below `ticks`). A tick that passes while the probe still
    runs is skipped and reported once per run of missed ticks through on_overrun.

    `stop` is checked at every tick, so the loop ends even when a driver swallowed the
    cancellation meant for it (redis-py's wait_for on Python 3.11 can, see NOTES)."""
    interval = probe.interval_ns
    if interval <= 0:
        raise ValueError(f"probe {probe.asset}/{probe.probe.name}: interval must be positive")
    base = start_ns + phase_ns
    tick = 0
    while ticks is None or tick < ticks:
        if stop is not None and stop.is_set():
            return
        scheduled = base + tick * interval
        await clock.sleep_until(scheduled)
        started = clock.monotonic_ns()
        obs = await run_probe_once(probe, ctx, clock)
        on_observation(probe, obs, scheduled, started, tick)
        # Every tick whose instant passed while the probe was running is skipped (no overlap).
        following = max(tick + 1, -((base - clock.monotonic_ns()) // interval))
        if ticks is not None:
            following = min(following, ticks)
        missed = following - tick - 1
        if missed > 0 and on_overrun is not None:
            on_overrun(probe, missed, base + (tick + 1) * interval)
        tick = following


def spread_phases(probes: Sequence[ScheduledProbe]) -> list[int]:
    """Offsets (ns) spreading the first ticks of probes with the same interval evenly across it."""
    by_interval: dict[int, int] = {}
    for p in probes:
        by_interval[p.interval_ns] = by_interval.get(p.interval_ns, 0) + 1
    seen: dict[int, int] = {}
    phases = []
    for p in probes:
        index = seen.get(p.interval_ns, 0)
        seen[p.interval_ns] = index + 1
        phases.append(index * p.interval_ns // by_interval[p.interval_ns])
    return phases


async def run_probe_loops(
    probes: Sequence[ScheduledProbe],
    contexts: Mapping[tuple[str, str], LiveProbeContext],
    clock: Clock,
    on_observation: ObservationCallback,
    on_overrun: OverrunCallback | None = None,
    stop: asyncio.Event | None = None,
    *,
    start_ns: int | None = None,
    ticks: int | None = None,
    spread: bool = True,
    on_abandoned: AbandonedCallback | None = None,
) -> None:
    """Run every probe's loop until `stop` is set (or every loop did `ticks`); return once every
    loop has ended or was abandoned (stop_loops), so stopping cannot be lost.

    contexts maps (asset, probe name) to that probe's context. start_ns defaults to now + 10 ms + 50 us per probe.
    spread=False fires every probe's first tick at start_ns (benchmarks); otherwise first ticks
    are spread across the interval.
    A callback that raises is a bug: it stops every loop and propagates.
    """
    # Without an explicit start, the first ticks come a little later than now: starting a
    # thousand loops takes tens of milliseconds, and ticks due meanwhile would all begin late.
    phases = spread_phases(probes) if spread else [0] * len(probes)
    # Move everything built so far out of the collector's sight while the loops run: a full
    # collection over the set-up objects stalled every tick for 15-35 ms (p99 jitter 5 ms -> 1.4 ms).
    gc.collect()
    gc.freeze()
    # Measured after the collection, which takes tens of ms on a big drill: otherwise the first
    # ticks of every probe would begin late or be skipped.
    lead_in = LEAD_IN_NS + LEAD_IN_PER_PROBE_NS * len(probes)
    start = clock.monotonic_ns() + lead_in if start_ns is None else start_ns
    try:
        await _run_loops(
            probes, phases, contexts, clock, on_observation, on_overrun, stop, start, ticks, on_abandoned
        )
    finally:
        gc.unfreeze()


async def _run_loops(
    probes: Sequence[ScheduledProbe],
    phases: list[int],
    contexts: Mapping[tuple[str, str], LiveProbeContext],
    clock: Clock,
    on_observation: ObservationCallback,
    on_overrun: OverrunCallback | None,
    stop: asyncio.Event | None,
    start: int,
    ticks: int | None,
    on_abandoned: AbandonedCallback | None,
) -> None:
    loops = {
        asyncio.create_task(
            run_probe_loop(
                p,
                contexts[(p.asset, p.probe.name)],
                clock,
                on_observation,
                on_overrun,
                start_ns=start,
                phase_ns=phase,
                ticks=ticks,
                stop=stop,
            ),
            name=f"probe {p.asset}/{p.probe.name}",
        ): p
        for p, phase in zip(probes, phases, strict=True)
    }
    waiter = asyncio.create_task(stop.wait()) if stop is not None else None
    try:
        pending = set(loops)
        while pending:
            watched: set[asyncio.Task[Any]] = {*pending, *([waiter] if waiter is not None else [])}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done & pending:
                pending.discard(task)
                failure = None if task.cancelled() else task.exception()
                if failure is not None:
                    raise failure  # a callback that raised: a bug; the finally stops the rest
            if waiter is not None and waiter in done:
                return
    finally:
        if waiter is not None:
            waiter.cancel()
        await stop_loops(loops, on_abandoned)


STOP_GRACE_S = 2.0  # how long stopped loops get to end before they are abandoned
RECANCEL_EVERY_S = 0.05


async def stop_loops(
    loops: Mapping[asyncio.Task[None], ScheduledProbe], on_abandoned: AbandonedCallback | None = None
) -> None:
    """Cancel every loop still running, again every RECANCEL_EVERY_S (a cancellation can be lost
    inside a driver), for at most STOP_GRACE_S; loops still alive then are abandoned and named."""
    running = asyncio.get_running_loop()
    deadline = running.time() + STOP_GRACE_S
    pending = {task for task in loops if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - running.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, left))
    for task in loops:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure was raised already, or there was none
    for task in pending:
        if on_abandoned is not None:
            on_abandoned(loops[task], f"still running {STOP_GRACE_S:g} s after it was told to stop")
