"""Fixtures for probe tests: a live probe context with its own HTTP pool, closed by the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from drill.clock import SystemClock
from drill.events import EventDraft
from drill.playbook.model import Probe
from drill.probes.base import ProbeKind
from drill.probes.pool import HttpPool
from drill.run.scheduler import LiveProbeContext, ScheduledProbe


@pytest.fixture
async def pool() -> AsyncIterator[HttpPool]:
    pool = HttpPool()
    yield pool
    await pool.aclose()


@pytest.fixture
def events() -> list[EventDraft]:
    return []


@pytest.fixture
def probe_ctx(pool: HttpPool, events: list[EventDraft]) -> LiveProbeContext:
    return LiveProbeContext("asset-a", "probe-a", 2.0, SystemClock(), pool, events.append)


MakeScheduled = Callable[..., ScheduledProbe]


@pytest.fixture
def make_scheduled() -> MakeScheduled:
    """Build a ScheduledProbe as the runner does (kind.parse on resolved params)."""

    def build(
        kind: ProbeKind[Any], params: dict[str, Any], *, interval_ms: int = 1000, timeout_ms: int = 1000
    ) -> ScheduledProbe:
        probe = Probe("p", kind.name, params, interval_ms=interval_ms, timeout_ms=timeout_ms, fall=2, rise=2)
        return ScheduledProbe(asset="asset-a", probe=probe, kind=kind, spec=kind.parse(params))

    return build
