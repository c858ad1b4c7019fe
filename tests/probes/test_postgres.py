"""The postgres probe against a real primary + streaming standby: timing, RPO and the sync gotcha."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import psycopg
import pytest

from drill.clock import monotonic_ns
from drill.evidence.events import RpoMeasured
from drill.probes import canary
from drill.probes import postgres as pg_probe
from drill.probes.base import Observation
from drill.testing import FakeContext, finish_probe, run_probe
from tests.support.servers import PostgresPair, free_port
from tests.support.ticker import Ticker

INTERVAL_S = 0.1
SLACK_NS = 80_000_000


@pytest.fixture
async def ctx() -> AsyncIterator[FakeContext]:
    async with FakeContext("db", "canary", timeout_s=0.5) as context:
        yield context


async def _once(params: dict[str, object], ctx: FakeContext) -> Observation:
    return await run_probe(pg_probe.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_liveness_ok_then_refused_with_reason(pg_async: PostgresPair, ctx: FakeContext) -> None:
    live: dict[str, object] = {"dsn": pg_async.dsn(both=False)}
    obs = await _once(live, ctx)
    assert obs.ok, obs.reason
    assert obs.detail["server"] == f"127.0.0.1:{pg_async.primary_port}"
    await finish_probe(pg_probe.KIND, live, ctx)
    dead: dict[str, object] = {"dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"}
    async with FakeContext("db", "dead", timeout_s=0.5) as other:
        obs = await _once(dead, other)
        assert not obs.ok
        assert "refused" in obs.reason.lower(), obs.reason
        await finish_probe(pg_probe.KIND, dead, other)


async def _await_promoted(pair: PostgresPair) -> int:
    """Ground truth: the first instant the standby says it is out of recovery (polled every 10 ms)."""
    while True:
        answer = await asyncio.to_thread(pair.sql, pair.standby_port, "SELECT pg_is_in_recovery()")
        if answer == "f":
            return monotonic_ns()
        await asyncio.sleep(0.01)


def _cut_replication(pair: PostgresPair) -> tuple[int, int]:
    """Freeze the standby's WAL receiver and end the primary's WAL sender: replication stops here.

    Returns the instant of the cut and the frozen receiver's pid (to resume it)."""
    receiver = int(pair.sql(pair.standby_port, "SELECT pid FROM pg_stat_wal_receiver"))
    os.kill(receiver, signal.SIGSTOP)
    pair.sql(pair.primary_port, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
    return monotonic_ns(), receiver


async def _surviving(pair: PostgresPair, run: str) -> set[int]:
    dsn = f"postgresql://postgres@127.0.0.1:{pair.standby_port}/postgres"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute("SELECT seq FROM drill_canary WHERE run = %s", (run,))
        return {int(r[0]) for r in await cur.fetchall()}


async def _failover_with_cut(pair: PostgresPair, ticker: Ticker) -> tuple[int, int, int]:
    await ticker.wait_for(True, 0, count=3)
    t_cut, receiver = await asyncio.to_thread(_cut_replication, pair)
    await asyncio.sleep(0.5)  # the window of writes only the doomed primary holds
    pair.stop_primary_immediately()
    t_kill = monotonic_ns()
    os.kill(receiver, signal.SIGCONT)
    promoted = asyncio.create_task(_await_promoted(pair))
    await asyncio.to_thread(pair.promote_standby)
    return t_cut, t_kill, await promoted


async def test_async_promotion_measures_rto_and_lost_writes(pg_async: PostgresPair, ctx: FakeContext) -> None:
    params: dict[str, object] = {"dsn": pg_async.dsn(), "canary": True}
    ticker = Ticker(pg_probe.KIND, params, ctx, INTERVAL_S)
    loop = asyncio.create_task(ticker.run())
    t_cut, t_kill, t_promoted = await _failover_with_cut(pg_async, ticker)
    t_ok = await ticker.wait_for(True, t_promoted - SLACK_NS, count=3)
    ticker.stop()
    await loop
    await finish_probe(pg_probe.KIND, params, ctx)

    t_fail = ticker.detects_at_first_chance(t_kill)
    detection_ns = t_fail.started_ns - t_kill
    ok_tick = next(t for t in ticker.ticks if t.started_ns == t_ok)
    assert -SLACK_NS <= t_ok - t_promoted <= INTERVAL_S * 1e9 + SLACK_NS + ok_tick.lateness_ns
    ok_after = next(t for t in ticker.ticks if t.started_ns >= t_ok and t.obs.ok)
    assert ok_after.obs.detail["server"] == f"127.0.0.1:{pg_async.standby_port}"

    acked = {t.obs.detail["seq"] for t in ticker.ticks if t.obs.ok}
    run = canary.state(ctx).run
    lost_truth = acked - await _surviving(pg_async, run)
    rpo = next(e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured))
    assert rpo.lost_writes == len(lost_truth) >= 3
    truth_ms = (t_kill - t_cut) / 1e6
    assert abs(rpo.rpo_ms - truth_ms) <= INTERVAL_S * 1000 + SLACK_NS / 1e6
    print(
        f"postgres async: detection {detection_ns / 1e6:.0f} ms, writes ok {(t_ok - t_kill) / 1e6:.0f} ms after"
        f" stop (promotion done {(t_promoted - t_kill) / 1e6:.0f} ms), lost {rpo.lost_writes},"
        f" rpo {rpo.rpo_ms} ms (truth {truth_ms:.0f} ms)"
    )


async def test_sync_promotion_hangs_writes_until_fixed_and_loses_nothing(
    pg_sync: PostgresPair, ctx: FakeContext
) -> None:
    params: dict[str, object] = {"dsn": pg_sync.dsn(), "canary": True}
    ticker = Ticker(pg_probe.KIND, params, ctx, INTERVAL_S)
    loop = asyncio.create_task(ticker.run())
    t_cut, _, t_promoted = await _failover_with_cut(pg_sync, ticker)
    # The promoted standby inherited synchronous_standby_names: writes wait forever. The probe
    # must say so at its deadline, never hang.
    t_hung = await ticker.wait_for(False, t_promoted, count=3)
    hung = [t for t in ticker.ticks if t.started_ns >= t_hung and not t.obs.ok]
    assert any(t.obs.reason == "write not acknowledged within 500 ms" for t in hung), {
        t.obs.reason for t in hung
    }
    await asyncio.to_thread(pg_sync.sql, pg_sync.standby_port, "ALTER SYSTEM RESET synchronous_standby_names")
    await asyncio.to_thread(pg_sync.sql, pg_sync.standby_port, "SELECT pg_reload_conf()")
    t_fixed = monotonic_ns()
    await ticker.wait_for(True, t_fixed, count=3)
    ticker.stop()
    await loop
    await finish_probe(pg_probe.KIND, params, ctx)

    in_window = [t for t in ticker.ticks if t_cut < t.started_ns < t_promoted]
    assert not any(t.obs.ok for t in in_window)  # nothing is acknowledged without the sync standby
    acked = {t.obs.detail["seq"] for t in ticker.ticks if t.obs.ok}
    run = canary.state(ctx).run
    assert acked <= await _surviving(pg_sync, run)
    rpo = next(e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured))
    assert (rpo.lost_writes, rpo.rpo_ms) == (0, 0)
