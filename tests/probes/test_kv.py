"""The kv probe against the demo lab: the canary measures exactly the writes the lab dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from drill.evidence.events import EventDraft, RpoMeasured, RpoUnmeasured
from drill.lab import Lab, LabConfig
from drill.probes import kv
from drill.probes.base import Observation
from drill.testing import FakeContext, finish_probe, run_probe


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    async with Lab.start(LabConfig(kv_lag_ms=10_000)) as running:  # nothing replicates during the test
        yield running


def _canary(lab: Lab) -> dict[str, object]:
    return {"url": lab.urls["kv"], "canary": True}


async def _tick(lab: Lab, ctx: FakeContext) -> Observation:
    return await run_probe(kv.KIND, _canary(lab), ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_canary_counts_the_writes_lost_on_failover(
    lab: Lab, probe_ctx: FakeContext, events: list[EventDraft]
) -> None:
    for _ in range(3):
        assert (await _tick(lab, probe_ctx)).ok
    async with httpx.AsyncClient(trust_env=False) as client:
        await client.post(f"{lab.urls['control']}/control/kv/crash")
        down = await _tick(lab, probe_ctx)
        assert (down.ok, down.reason) == (False, "HTTP 503: kv master a is down")
        await client.post(f"{lab.urls['control']}/control/kv/failover")
    assert (await _tick(lab, probe_ctx)).ok
    await finish_probe(kv.KIND, _canary(lab), probe_ctx)
    rpo = next(e.payload for e in events if isinstance(e.payload, RpoMeasured))
    assert rpo.lost_writes == lab.kv.lost_on_failover == 3
    assert rpo.last_acked_seq == 3 and rpo.last_surviving_seq == 0


async def test_unreadable_survivors_leave_rpo_unmeasured_with_the_reason(
    lab: Lab, probe_ctx: FakeContext, events: list[EventDraft]
) -> None:
    assert (await _tick(lab, probe_ctx)).ok
    await lab.kv.server.stop()
    await finish_probe(kv.KIND, _canary(lab), probe_ctx)
    assert not any(isinstance(e.payload, RpoMeasured) for e in events)
    unmeasured = next(e.payload for e in events if isinstance(e.payload, RpoUnmeasured))
    assert unmeasured.reason.startswith("cannot read surviving canary writes")
    assert unmeasured.last_acked_seq == 1
