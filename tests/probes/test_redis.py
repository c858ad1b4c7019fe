"""The redis probe against real Redis + Sentinel: liveness, failover timing and RPO vs ground truth."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
from jsonschema import Draft202012Validator
from redis.asyncio import Redis

from drill.clock import FakeClock, monotonic_ns
from drill.errors import UsageError
from drill.evidence.events import CanaryWritten, RpoMeasured
from drill.probes import canary
from drill.probes import redis as redis_probe
from drill.probes.base import Observation
from drill.resources import load_schema
from drill.testing import FakeContext, finish_probe, run_probe
from tests.support.servers import Proc, RedisSentinelCluster, free_port, redis_command, wait_until
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
    t_fail = ticker.detects_at_first_chance(t_kill)
    await finish_probe(redis_probe.KIND, params, ctx)

    detection_ns = t_fail.started_ns - t_kill
    # Writes succeed again within one interval of Sentinel naming the new master.
    ok_tick = next(t for t in ticker.ticks if t.started_ns == t_ok)
    assert -SLACK_NS <= t_ok - t_new_master <= INTERVAL_S * 1e9 + SLACK_NS + ok_tick.lateness_ns
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

    acked = {int(str(t.obs.detail["seq"])): t.started_ns for t in ticker.ticks if t.obs.ok}
    acked_in_window = {seq for seq, at in acked.items() if t_cut < at < t_kill}
    # Ground truth read here from the promoted replica, independently of the probe. Usually exactly
    # the window is lost; on a loaded machine the replica may also miss writes from just before the
    # cut (still in its socket buffer when the link was killed): drill must report what happened.
    lost_truth = set(acked) - await _surviving(redis_cluster.replica_port, canary.state(ctx).run)
    rpo = next(e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured))
    assert len(acked_in_window) >= 3
    assert acked_in_window <= lost_truth
    assert rpo.lost_writes == len(lost_truth)
    assert rpo.last_acked_seq == max(lost_truth)
    truth_ms = _rpo_truth_ms(acked, lost_truth)
    assert abs(rpo.rpo_ms - truth_ms) <= SLACK_NS / 1e6
    assert rpo.last_surviving_seq < rpo.last_acked_seq
    print(f"redis cut: lost {rpo.lost_writes} writes, rpo {rpo.rpo_ms} ms (truth {truth_ms:.0f} ms)")


def _rpo_truth_ms(acked: dict[int, int], lost: set[int]) -> float:
    """The widest gap between a lost write and the surviving one before it, from the test's ticks."""
    order = sorted(acked)
    widest, base = 0, acked[order[0]]
    for seq in order:
        if seq in lost:
            widest = max(widest, acked[seq] - base)
        else:
            base = acked[seq]
    return widest / 1e6


def _stopped(proc: Proc) -> bool:
    """Ground truth that a SIGSTOPped server really is stopped (state T in /proc), so it acks nothing."""
    with open(f"/proc/{proc.pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


async def test_wait_replicas_acknowledges_only_writes_the_replica_confirmed(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    params: dict[str, object] = {
        "port": redis_cluster.master_port,
        "canary": True,
        "wait_replicas": 1,
        "wait_timeout": "100ms",
    }
    st = canary.state(ctx)
    # Attached, the replica confirms; WAIT as long as the 500 ms deadline allows, since a replica
    # on a busy host can take longer than 100 ms (the paused phase below needs no margin).
    attached = [await _once({**params, "wait_timeout": "450ms"}, ctx) for _ in range(3)]
    assert [(o.ok, o.detail.get("replicas")) for o in attached] == [(True, 1)] * 3, attached
    assert (sorted(st.acked), st.at_risk) == ([1, 2, 3], 0)

    replica = redis_cluster.procs["replica"]
    replica.kill(signal.SIGSTOP)  # replication paused: the master still accepts, nobody confirms
    try:
        wait_until("replica stopped", lambda: _stopped(replica), timeout_s=5)
        at_risk = [await _once(params, ctx) for _ in range(2)]
        # WAIT longer than the probe's deadline: the deadline decides, the write is at risk all the same
        long_wait = await _once({**params, "wait_timeout": "2s"}, ctx)
    finally:
        replica.kill(signal.SIGCONT)
    assert [(o.ok, o.transient, o.reason) for o in at_risk] == [
        (False, False, "write 4 confirmed by 0 of 1 replicas within 100 ms"),
        (False, False, "write 5 confirmed by 0 of 1 replicas within 100 ms"),
    ]
    assert [(o.detail["seq"], o.detail["replicas"], o.detail["at_risk"]) for o in at_risk] == [
        (4, 0, True),
        (5, 0, True),
    ]
    where = f"127.0.0.1:{redis_cluster.master_port}"
    assert (long_wait.ok, long_wait.transient, long_wait.reason) == (
        False,
        True,
        f"write 6 accepted by {where}, no replica confirmation within 500 ms",
    )
    assert (sorted(st.acked), st.at_risk) == ([1, 2, 3], 3)  # at risk is never acknowledged
    assert {4, 5, 6} <= await _surviving(redis_cluster.master_port, st.run)  # accepted by the master

    # Replication resumed: writes are confirmed again (a write still catching up counts as at risk).
    async with asyncio.timeout(10):
        resumed = [await _once({**params, "wait_timeout": "450ms"}, ctx)]
        while not resumed[-1].ok:
            resumed.append(await _once({**params, "wait_timeout": "450ms"}, ctx))
    assert all("confirmed by 0 of 1 replicas" in o.reason for o in resumed[:-1]), resumed
    last_seq = resumed[-1].detail["seq"]
    assert sorted(st.acked) == [1, 2, 3, last_seq]
    assert st.at_risk == 3 + len(resumed) - 1
    await finish_probe(redis_probe.KIND, params, ctx)

    rpo = [e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured)]
    assert len(rpo) == 1
    assert (rpo[0].at_risk_writes, rpo[0].lost_writes, rpo[0].last_acked_seq) == (st.at_risk, 0, last_seq)
    # the at-risk streak is journalled like a failure streak: the last acknowledged write, once
    written = [e.payload.seq for e in ctx.events if isinstance(e.payload, CanaryWritten)]
    assert written == [1, 3, last_seq]


async def test_without_wait_replicas_a_write_is_acknowledged_with_no_replica(
    redis_cluster: RedisSentinelCluster, ctx: FakeContext
) -> None:
    params: dict[str, object] = {"port": redis_cluster.master_port, "canary": True}
    replica = redis_cluster.procs["replica"]
    replica.kill(signal.SIGSTOP)
    try:
        wait_until("replica stopped", lambda: _stopped(replica), timeout_s=5)
        obs = await _once(params, ctx)
    finally:
        replica.kill(signal.SIGCONT)
    assert obs.ok, obs.reason
    assert "replicas" not in obs.detail
    await finish_probe(redis_probe.KIND, params, ctx)
    rpo = next(e.payload for e in ctx.events if isinstance(e.payload, RpoMeasured))
    assert (rpo.at_risk_writes, rpo.last_acked_seq) == (0, 1)


def test_wait_timeout_follows_the_playbook_duration_grammar() -> None:
    def wait_ms(text: str) -> int:
        return redis_probe.parse_redis(
            {"canary": True, "wait_replicas": 1, "wait_timeout": text}
        ).wait_timeout_ms

    assert redis_probe.parse_redis({"canary": True, "wait_replicas": 2}).wait_timeout_ms == 100
    assert [wait_ms(t) for t in ("250ms", "2s", "1s500ms", "1m30s", " 3s ")] == [
        250,
        2000,
        1500,
        90_000,
        3000,
    ]
    for bad in ("100", "30s1m", "1s1s", "1.5s", "", "ms"):
        with pytest.raises(UsageError, match="is not a duration"):
            wait_ms(bad)
    for zero in ("0", "0ms"):
        with pytest.raises(UsageError, match="at least 1ms"):
            wait_ms(zero)
    with pytest.raises(UsageError, match="wait_replicas needs canary: true"):
        redis_probe.parse_redis({"wait_replicas": 1})
    with pytest.raises(UsageError, match="wait_replicas must be at least 1"):
        redis_probe.parse_redis({"canary": True, "wait_replicas": 0})
    assert redis_probe.parse_redis({"canary": True}).wait_replicas == 0


def test_schema_ties_wait_replicas_to_the_canary() -> None:
    validator = Draft202012Validator(load_schema("probes/redis.schema.json"))
    assert validator.is_valid({"canary": True, "wait_replicas": 1, "wait_timeout": "250ms"})
    assert validator.is_valid({"canary": True, "wait_replicas": 2})
    assert not validator.is_valid({"wait_replicas": 1})
    assert not validator.is_valid({"canary": False, "wait_replicas": 1})
    assert not validator.is_valid({"canary": True, "wait_replicas": 0})
    assert not validator.is_valid({"canary": True, "wait_timeout": "100ms"})
    for bad in ("0ms", "0", "100", 100):
        assert not validator.is_valid({"canary": True, "wait_replicas": 1, "wait_timeout": bad}), bad


async def test_the_canary_set_expiry_is_renewed_hourly_while_writing(
    redis_cluster: RedisSentinelCluster,
) -> None:
    """Real Redis, the probe's clock a FakeClock: a set whose expiry was set once would vanish a
    day into a long watch, and every acknowledged write would read as lost."""
    clock = FakeClock()
    params: dict[str, object] = {"port": redis_cluster.master_port, "canary": True}

    def ttl_s() -> int:
        return int(str(redis_command(redis_cluster.master_port, "TTL", "drill:canary")))

    async with FakeContext("cache", "canary", timeout_s=0.5, clock=clock) as context:
        assert (await _once(params, context)).ok
        assert 86_000 < ttl_s() <= 86_400
        redis_command(redis_cluster.master_port, "EXPIRE", "drill:canary", "100")  # as if a day went by
        clock.advance(3_599 * 1_000_000_000)
        assert (await _once(params, context)).ok
        assert ttl_s() <= 100  # within the hour: not renewed at every write
        clock.advance(1_000_000_000)
        assert (await _once(params, context)).ok
        assert 86_000 < ttl_s() <= 86_400  # an hour since the last renewal: renewed
        await finish_probe(redis_probe.KIND, params, context)
    rpo = next(e.payload for e in context.events if isinstance(e.payload, RpoMeasured))
    assert (rpo.lost_writes, rpo.last_acked_seq) == (0, 3)
