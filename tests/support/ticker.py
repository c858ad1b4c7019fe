"""Run one probe on a fixed, drift-free schedule outside the runner, for probe-level ground-truth tests.

Each tick is its own task (a stuck tick never delays the next one, as in the real scheduler)
and runs through the probe-author kit (drill.testing.run_probe) under the context's deadline;
every observation is kept with the monotonic instant its tick started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drill.clock import monotonic_ns
from drill.probes.base import Observation, ProbeKind
from drill.testing import FakeContext, run_probe


@dataclass(frozen=True, slots=True)
class Tick:
    started_ns: int
    obs: Observation
    scheduled_ns: int = 0  # the instant the schedule gave it (started_ns - scheduled_ns: lateness)

    @property
    def lateness_ns(self) -> int:
        return max(0, self.started_ns - self.scheduled_ns)


@dataclass
class Ticker:
    """Runs the kind with `params` in `ctx` every interval_s (deadline ctx.timeout_s) until stop()."""

    kind: ProbeKind[Any]
    params: Mapping[str, object]
    ctx: FakeContext
    interval_s: float
    ticks: list[Tick] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, scheduled_ns: int, started_ns: int) -> None:
        deadline_ms = round(self.ctx.timeout_s * 1000)
        obs = await run_probe(self.kind, self.params, ctx=self.ctx, timeout_ms=deadline_ms)
        self.ticks.append(Tick(started_ns, obs, scheduled_ns))

    async def run(self) -> list[Tick]:
        start = monotonic_ns()
        step = int(self.interval_s * 1e9)
        n = 0
        async with asyncio.TaskGroup() as group:
            while not self._stop.is_set():
                at = start + n * step
                delay = (at - monotonic_ns()) / 1e9
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                group.create_task(self._one(at, monotonic_ns()))
                n += 1
        self.ticks.sort(key=lambda t: t.started_ns)
        return self.ticks

    def stop(self) -> None:
        self._stop.set()

    def detects_at_first_chance(self, after_ns: int) -> Tick:
        """The first tick started after `after_ns` (a failure injected then), asserted failed and
        scheduled within one interval of it: its start is then at most one interval plus its own
        recorded lateness after the injection, a bound from what this run recorded, not a slack."""
        first = next(t for t in sorted(self.ticks, key=lambda t: t.started_ns) if t.started_ns >= after_ns)
        assert not first.obs.ok, first
        assert first.scheduled_ns - after_ns <= self.interval_s * 1e9, (first, after_ns)
        assert first.started_ns - after_ns <= self.interval_s * 1e9 + first.lateness_ns
        return first

    def first(self, ok: bool, after_ns: int) -> Tick | None:
        """The first tick started after after_ns whose observation has this ok value."""
        for tick in sorted(self.ticks, key=lambda t: t.started_ns):
            if tick.started_ns >= after_ns and tick.obs.ok is ok:
                return tick
        return None

    async def wait_for(self, ok: bool, after_ns: int, count: int = 1, timeout_s: float = 30.0) -> int:
        """Wait until `count` consecutive completed ticks after after_ns have this ok value; return the
        start instant of the first of them."""
        async with asyncio.timeout(timeout_s):
            while True:
                run: list[Tick] = []
                for tick in sorted(self.ticks, key=lambda t: t.started_ns):
                    if tick.started_ns < after_ns:
                        continue
                    run = [*run, tick] if tick.obs.ok is ok else []
                    if len(run) >= count:
                        return run[0].started_ns
                await asyncio.sleep(self.interval_s / 4)
