"""The scheduler: absolute ticks, overruns instead of pile-ups, deadlines, jitter, independence."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from drill.clock import Clock, FakeClock, SystemClock
from drill.playbook.model import Probe
from drill.probes import http, tcp
from drill.probes.base import Observation, ProbeContext, ProbeKind, ok
from drill.probes.pool import HTTP_POOL
from drill.run.scheduler import (
    LiveProbeContext,
    Resources,
    ScheduledProbe,
    run_probe_loop,
    run_probe_loops,
    run_probe_once,
    spread_phases,
)

MS = 1_000_000
SET_UP_NS = 500 * MS  # lead-in before an explicit start_ns (see the hanging-server test)


Spec = dict[str, object]  # the fake kinds' spec: their parameters as given
S = TypeVar("S")


def _parse(params: Mapping[str, object]) -> Spec:
    return dict(params)


def _kind(run: Callable[[Spec, ProbeContext], Awaitable[Observation]], name: str = "fake") -> ProbeKind[Spec]:
    return ProbeKind(name=name, parse=_parse, run=run, summary="test probe")


def _scheduled(
    kind: ProbeKind[S],
    params: Mapping[str, object] | None = None,
    *,
    name: str = "p",
    interval_ms: int = 100,
    timeout_ms: int = 1000,
) -> ScheduledProbe:
    params = params or {}
    probe = Probe(name, kind.name, params, interval_ms=interval_ms, timeout_ms=timeout_ms, fall=2, rise=2)
    return ScheduledProbe(asset="asset-a", probe=probe, kind=kind, spec=kind.parse(params))


@dataclass
class Record:
    """What the callbacks received."""

    observed: list[tuple[str, Observation, int, int, int]] = field(default_factory=list)
    overruns: list[tuple[str, int, int]] = field(default_factory=list)

    def on_observation(
        self, probe: ScheduledProbe, obs: Observation, scheduled: int, started: int, tick: int
    ) -> None:
        self.observed.append((probe.probe.name, obs, scheduled, started, tick))

    def on_overrun(self, probe: ScheduledProbe, missed: int, at_ns: int) -> None:
        self.overruns.append((probe.probe.name, missed, at_ns))

    def of(self, name: str) -> list[tuple[Observation, int, int, int]]:
        return [(o, s, st, t) for n, o, s, st, t in self.observed if n == name]


@contextlib.asynccontextmanager
async def _resources(*probes: ScheduledProbe) -> AsyncIterator[Resources]:
    """The shared resources the probes' kinds declare, opened as the runner opens them."""
    resources = Resources(probes)
    try:
        yield resources
    finally:
        await resources.aclose()


def _ctx(probe: ScheduledProbe, resources: Resources, clock: Clock) -> LiveProbeContext:
    return LiveProbeContext.for_probe(probe, resources, clock, lambda _: None)


def _bare_ctx(probe: ScheduledProbe, clock: Clock) -> LiveProbeContext:
    """The context of a probe whose kind declares no shared resource (nothing to open or close)."""
    assert not probe.kind.resources
    return _ctx(probe, Resources((probe,)), clock)


def _taking(clock: FakeClock, ns: int) -> ProbeKind[Spec]:
    async def run(spec: Spec, ctx: ProbeContext) -> Observation:
        clock.advance(ns)
        return ok()

    return _kind(run)


async def test_ticks_are_absolute_and_never_drift() -> None:
    clock = FakeClock()
    start = clock.now_ns
    probe = _scheduled(_taking(clock, 37 * MS), interval_ms=100)
    rec = Record()
    await run_probe_loop(
        probe, _bare_ctx(probe, clock), clock, rec.on_observation, rec.on_overrun, start_ns=start, ticks=50
    )
    assert [s for _, s, _, _ in rec.of("p")] == [start + k * 100 * MS for k in range(50)]
    assert all(started == scheduled for _, scheduled, started, _ in rec.of("p"))  # jitter 0 on a fake clock
    assert {obs.latency_us for obs, *_ in rec.of("p")} == {37_000}
    assert rec.overruns == []


async def test_a_probe_slower_than_its_interval_skips_ticks_and_records_overruns() -> None:
    clock = FakeClock()
    start = clock.now_ns
    probe = _scheduled(_taking(clock, 250 * MS), interval_ms=100)
    rec = Record()
    await run_probe_loop(
        probe, _bare_ctx(probe, clock), clock, rec.on_observation, rec.on_overrun, start_ns=start, ticks=10
    )
    assert [t for *_, t in rec.of("p")] == [0, 3, 6, 9]
    assert rec.overruns == [("p", 2, start + k * 100 * MS) for k in (1, 4, 7)]


async def test_a_probe_taking_exactly_its_interval_misses_nothing() -> None:
    clock = FakeClock()
    probe = _scheduled(_taking(clock, 100 * MS), interval_ms=100)
    rec = Record()
    await run_probe_loop(
        probe,
        _bare_ctx(probe, clock),
        clock,
        rec.on_observation,
        rec.on_overrun,
        start_ns=clock.now_ns,
        ticks=5,
    )
    assert [t for *_, t in rec.of("p")] == [0, 1, 2, 3, 4] and rec.overruns == []


async def test_escaped_exceptions_are_bugs_with_a_reason() -> None:
    async def boom(spec: Spec, ctx: ProbeContext) -> Observation:
        raise RuntimeError("kaput")

    async def own_timeout(spec: Spec, ctx: ProbeContext) -> Observation:
        raise TimeoutError("library deadline")

    clock = SystemClock()
    for run, kind_name in ((boom, "RuntimeError: kaput"), (own_timeout, "TimeoutError: library deadline")):
        probe = _scheduled(_kind(run))
        obs = await run_probe_once(probe, _bare_ctx(probe, clock), clock)
        assert not obs.ok
        assert obs.reason.startswith(f"bug: probe kind 'fake' raised {kind_name} (please report it")


def test_first_ticks_are_spread_across_the_interval() -> None:
    kind = _kind(lambda spec, ctx: asyncio.sleep(0, ok()))
    probes = [_scheduled(kind, name=f"p{i}", interval_ms=100) for i in range(4)]
    probes.append(_scheduled(kind, name="slow", interval_ms=1000))
    assert spread_phases(probes) == [0, 25 * MS, 50 * MS, 75 * MS, 0]


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer (until the test closes the connection)."""
    await reader.read()  # returns at EOF, when the client gives up
    writer.close()


async def _accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def test_a_hanging_server_fails_at_its_timeout_while_another_probe_keeps_its_schedule() -> None:
    hanging = await asyncio.start_server(_hang, "127.0.0.1", 0)
    healthy = await asyncio.start_server(_accept_and_close, "127.0.0.1", 0)
    try:
        hang_url = f"http://127.0.0.1:{hanging.sockets[0].getsockname()[1]}/"
        stuck = _scheduled(http.KIND, {"url": hang_url}, name="stuck", interval_ms=200, timeout_ms=300)
        steady = _scheduled(
            tcp.KIND,
            {"host": "127.0.0.1", "port": healthy.sockets[0].getsockname()[1]},
            name="steady",
            interval_ms=100,
        )
        clock = SystemClock()
        rec = Record()
        stop = asyncio.Event()

        def on_observation(
            probe: ScheduledProbe, obs: Observation, scheduled: int, started: int, tick: int
        ) -> None:
            rec.on_observation(probe, obs, scheduled, started, tick)
            if probe.probe.name == "steady" and tick == 11:
                stop.set()

        async with _resources(stuck, steady) as resources:
            contexts = {(p.asset, p.probe.name): _ctx(p, resources, clock) for p in (stuck, steady)}
            # run_probe_loops runs a full gc.collect() before the first tick, and in a test process
            # holding the rest of the suite that takes ~100 ms: the first tick gets time to spare.
            start = clock.monotonic_ns() + SET_UP_NS
            await asyncio.wait_for(
                run_probe_loops(
                    [stuck, steady], contexts, clock, on_observation, rec.on_overrun, stop, start_ns=start
                ),
                timeout=5,
            )
            stopped = clock.monotonic_ns()
            # Every client the http probe leased from the run's pool was given back.
            pool = resources.get(HTTP_POOL)
            assert all(slot.load == 0 for slots in pool._slots.values() for slot in slots)
    finally:
        for server in (hanging, healthy):
            server.close()
            await server.wait_closed()

    # The steady probe: every tick, each on its absolute instant, each ok, jitter well under its interval.
    steady_runs = rec.of("steady")
    assert [t for *_, t in steady_runs] == list(range(12))
    assert [s for _, s, _, _ in steady_runs] == [start + k * 100 * MS for k in range(12)]
    assert all(obs.ok for obs, *_ in steady_runs)
    jitters = sorted(started - scheduled for _, scheduled, started, _ in steady_runs)
    # Tolerance tied to the interval: no tick lost (above), typical jitter under a tenth of it,
    # and none as late as a whole interval (a loaded CI machine may stall a few ms at times).
    assert jitters[0] >= 0 and jitters[len(jitters) // 2] < 10 * MS and jitters[-1] < 100 * MS, jitters
    # The stuck probe: fails at its deadline, every other tick skipped as an overrun.
    stuck_runs = rec.of("stuck")
    stuck_ticks = [t for *_, t in stuck_runs]
    assert len(stuck_runs) >= 2 and stuck_ticks[0] == 0
    for obs, *_ in stuck_runs:
        assert (obs.ok, obs.reason) == (False, "timed out after 300 ms")
        assert 300_000 <= obs.latency_us < 400_000  # the deadline, plus at most half its interval
    # 300 ms runs on 200 ms ticks: after each run the next tick (at least) was skipped, and said so.
    assert all(b - a >= 2 for a, b in itertools.pairwise(stuck_ticks))
    overruns = [(missed, at) for n, missed, at in rec.overruns if n == "stuck"]
    assert [at for _, at in overruns] == [start + (t + 1) * 200 * MS for t in stuck_ticks][: len(overruns)]
    assert len(overruns) >= len(stuck_runs) - 1 and all(missed >= 1 for missed, _ in overruns)
    # Stopping is prompt: within one steady interval of the last steady tick.
    assert stopped - steady_runs[-1][2] < 100 * MS


async def test_loops_with_a_tick_budget_end_by_themselves() -> None:
    clock = SystemClock()
    kind = _kind(lambda spec, ctx: asyncio.sleep(0, ok()))
    probes = [_scheduled(kind, name=f"p{i}", interval_ms=50) for i in range(3)]
    rec = Record()
    contexts = {(p.asset, p.probe.name): _bare_ctx(p, clock) for p in probes}
    await asyncio.wait_for(
        run_probe_loops(
            probes, contexts, clock, rec.on_observation, rec.on_overrun, asyncio.Event(), ticks=5
        ),
        5,
    )
    # Every tick is either observed or counted as missed (a loaded machine may skip one).
    for i in range(3):
        seen = [t for n, *_, t in rec.observed if n == f"p{i}"]
        missed = sum(m for n, m, _ in rec.overruns if n == f"p{i}")
        assert seen[0] == 0 and len(seen) + missed == 5
