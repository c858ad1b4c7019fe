"""The kv probe against the demo lab: the canary measures exactly the writes the lab dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from drill.events import RPO_MEASURED, RPO_UNMEASURED, EventDraft
from drill.lab import Lab, LabConfig
from drill.probes import kv
from drill.run.scheduler import LiveProbeContext


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    async with Lab.start(LabConfig(kv_lag_ms=10_000)) as running:  # nothing replicates during the test
        yield running


async def test_canary_counts_the_writes_lost_on_failover(
    lab: Lab, probe_ctx: LiveProbeContext, events: list[EventDraft]
) -> None:
    spec = kv.parse_kv({"url": lab.urls["kv"], "canary": True})
    for _ in range(3):
        assert (await kv.probe_kv(spec, probe_ctx)).ok
    async with httpx.AsyncClient(trust_env=False) as client:
        await client.post(f"{lab.urls['control']}/control/kv/crash")
        down = await kv.probe_kv(spec, probe_ctx)
        assert (down.ok, down.reason) == (False, "HTTP 503: kv master a is down")
        await client.post(f"{lab.urls['control']}/control/kv/failover")
    assert (await kv.probe_kv(spec, probe_ctx)).ok
    await kv.finish_kv(spec, probe_ctx)
    rpo = next(e for e in events if e.type == RPO_MEASURED).data
    assert rpo["lost_writes"] == lab.kv.lost_on_failover == 3
    assert rpo["last_acked_seq"] == 3 and rpo["last_surviving_seq"] == 0


async def test_unreadable_survivors_leave_rpo_unmeasured_with_the_reason(
    lab: Lab, probe_ctx: LiveProbeContext, events: list[EventDraft]
) -> None:
    spec = kv.parse_kv({"url": lab.urls["kv"], "canary": True})
    assert (await kv.probe_kv(spec, probe_ctx)).ok
    await lab.kv.server.stop()
    await kv.finish_kv(spec, probe_ctx)
    assert not any(e.type == RPO_MEASURED for e in events)
    unmeasured = next(e for e in events if e.type == RPO_UNMEASURED).data
    assert unmeasured["reason"].startswith("cannot read surviving canary writes")
    assert unmeasured["last_acked_seq"] == 1
