"""The redis probe against real Redis + Sentinel: liveness, failover timing and RPO vs ground truth."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from drill.clock import monotonic_ns
from drill.evidence.events import CanaryWritten, RpoMeasured
from drill.probes import canary
from drill.probes import redis as redis_probe
from drill.probes.base import Observation
from drill.testing import FakeContext, finish_probe, run_probe
from tests.support.servers import RedisSentinelCluster, free_port, redis_command
from tests.support.ticker import Tick, Ticker

INTERVAL_S = 0.1
SLACK_NS = 60_000_000  # scheduling and loopback latency on a busy 2-core machine


@pytest.fixture
async def ctx() -> AsyncIterator[FakeContext]:
    async with FakeContext("cache", "canary", timeout_s=0.5) as context:
        yield context


def _params(cluster: RedisSentinelCluster, **extra: object) -> dict[str, object]:
    return {"sentinels": cluster.sentinels(), "master_name": cluster.name, **extra}


async def _once(params: dict[str, object], ctx: FakeContext) -> Observation:
    return await run_probe(redis_probe.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_ping_ok_then_refused_with_reason(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    live: dict[str, object] = {"port": redis_cluster.master_port}
    assert (await _once(live, ctx)).ok
    dead: dict[str, object] = {"port": free_port()}
    async with FakeContext("cache", "dead", timeout_s=0.5) as other:
        obs = await _once(dead, other)
        await finish_probe(redis_probe.KIND, dead, other)
    assert not obs.ok
    assert "refused" in obs.reason.lower() or "connect" in obs.reason.lower(), obs.reason
    await finish_probe(redis_probe.KIND, live, ctx)


async def test_unknown_master_name_is_a_clear_failure(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    params: dict[str, object] = {"sentinels": redis_cluster.sentinels(), "master_name": "nope"}
    obs = await _once(params, ctx)
    assert not obs.ok
    assert "does not know master 'nope'" in obs.reason
    await finish_probe(redis_probe.KIND, params, ctx)


async def _canary_ticking(
    cluster: RedisSentinelCluster, ctx: FakeContext
) -> tuple[dict[str, object], Ticker, asyncio.Task[list[Tick]]]:
    """A canary-writing redis probe ticking every interval, after three acknowledged writes."""
    params = _params(cluster, canary=True)
    ticker = Ticker(redis_probe.KIND, params, ctx, INTERVAL_S)
    loop = asyncio.create_task(ticker.run())
    await ticker.wait_for(True, 0, count=3)
    return params, ticker, loop


async def _await_new_master(cluster: RedisSentinelCluster, old: tuple[str, int]) -> int:
    """Ground truth: the first instant sentinel 0 names another master (polled every 10 ms)."""
    while True:
        addr = await asyncio.to_thread(cluster.master_addr)
        if addr is not None and addr != old:
            return monotonic_ns()
        await asyncio.sleep(0.01)


async def _surviving(port: int, run: str) -> set[int]:
    client = Redis(port=port, decode_responses=True)
    try:
        members = await client.zrangebyscore("drill:canary", "-inf", "+inf")
    finally:
        await client.aclose()
    return {int(str(m).split(":")[1]) for m in members if str(m).startswith(f"{run}:")}


async def test_sentinel_failover_detection_switchover_match_ground_truth(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    params, ticker, loop = await _canary_ticking(redis_cluster, ctx)
    old = redis_cluster.master_addr()
    assert old == ("127.0.0.1", redis_cluster.master_port)

    redis_cluster.procs["master"].kill(signal.SIGKILL)
    t_kill = monotonic_ns()
    t_new_master = await _await_new_master(redis_cluster, old)
    t_ok = await ticker.wait_for(True, t_new_master - SLACK_NS, count=3)
    ticker.stop()
    await loop
    t_fail = ticker.first(False, t_kill)
    assert t_fail is not None
    await finish_probe(redis_probe.KIND, params, ctx)

    detection_ns = t_fail.started_ns - t_kill
    assert 0 <= detection_ns <= INTERVAL_S * 1e9 + SLACK_NS
    # Writes succeed again within one interval of Sentinel naming the new master.
    assert -SLACK_NS <= t_ok - t_new_master <= INTERVAL_S * 1e9 + SLACK_NS
    assert "127.0.0.1:" in t_fail.obs.reason
    # RPO against ground truth read here, independently of the probe.
    acked = {t.obs.detail["seq"] for t in ticker.ticks if t.obs.ok}
    run = canary.state(ctx).run
    lost_truth = acked - await _surviving(redis_cluster.replica_port, run)
    rpo = [e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured)]
    assert len(rpo) == 1
    assert rpo[0].lost_writes == len(lost_truth)
    assert any(isinstance(e.payload, CanaryWritten) for e in ctx.events)
    print(
        f"redis sentinel: detection {detection_ns / 1e6:.0f} ms, failover (kill->sentinel) "
        f"{(t_new_master - t_kill) / 1e6:.0f} ms, writes ok {(t_ok - t_kill) / 1e6:.0f} ms after kill, "
        f"lost {len(lost_truth)}"
    )


async def test_cut_replication_then_kill_loses_acknowledged_writes(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    """Replication cut for ~500 ms before the kill: every write acknowledged in between is lost."""
    params, ticker, loop = await _canary_ticking(redis_cluster, ctx)
    old = redis_cluster.master_addr()
    assert old is not None

    replica = redis_cluster.procs["replica"]
    replica.kill(signal.SIGSTOP)  # the replica cannot reconnect while we write
    redis_command(redis_cluster.master_port, "CLIENT", "KILL", "TYPE", "replica")
    t_cut = monotonic_ns()
    await asyncio.sleep(0.5)  # the window of writes that only the doomed master holds
    redis_cluster.procs["master"].kill(signal.SIGKILL)
    t_kill = monotonic_ns()
    replica.kill(signal.SIGCONT)
    t_new_master = await _await_new_master(redis_cluster, old)
    await ticker.wait_for(True, t_new_master - SLACK_NS, count=3)
    ticker.stop()
    await loop
    await finish_probe(redis_probe.KIND, params, ctx)

    acked_in_window = {
        t.obs.detail["seq"] for t in ticker.ticks if t.obs.ok and t_cut < t.started_ns < t_kill
    }
    rpo = next(e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured))
    assert len(acked_in_window) >= 3
    assert rpo.lost_writes >= len(acked_in_window)
    assert rpo.lost_writes <= len(acked_in_window) + 1  # a write in flight at the cut may be lost too
    truth_ms = (t_kill - t_cut) / 1e6
    assert abs(rpo.rpo_ms - truth_ms) <= INTERVAL_S * 1000 + SLACK_NS / 1e6
    assert rpo.last_surviving_seq < rpo.last_acked_seq
    print(f"redis cut: lost {rpo.lost_writes} writes, rpo {rpo.rpo_ms} ms (truth {truth_ms:.0f} ms)")
