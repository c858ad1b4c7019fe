"""The `redis` probe: liveness (PING) and an RPO canary, optionally following Sentinel.

With `sentinels` and `master_name`, every tick asks the sentinels for the current master, so the
probe measures when Sentinel's promotion really lets writes through. Client retries are
disabled (NOTES: redis-py's default retries hide a failover for a second or more); a failed
command is a failed probe, with the reason.

With `wait_replicas`, each canary write is followed by `WAIT <wait_replicas> <wait_timeout>`:
the write counts as acknowledged only when that many replicas confirmed it. A write the master
accepted but too few replicas confirmed is "at risk": a failed observation (durable writes are
not available), never an acknowledged write, and counted in rpo.measured's at_risk_writes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from drill.durations import parse_duration_ms
from drill.errors import UsageError
from drill.probes import canary
from drill.probes.base import Observation, ProbeContext, ProbeKind, check_port, check_text, fail, ok
from drill.units import human_ms

_CANARY_TTL_S = 86_400  # the canary set is evidence for a day after its last write, then Redis forgets it
# Renewed hourly while writing: set once, the whole set would vanish a day into a long drill or a
# watch, and every acknowledged write would then read as lost.
_CANARY_RENEW_NS = 3_600 * 1_000_000_000
_DEFAULT_WAIT_TIMEOUT = "100ms"


@dataclass(frozen=True, slots=True)
class SentinelAddr:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class RedisSpec:
    """Where the Redis server (or its Sentinel-managed master) is, and whether to write canaries."""

    host: str = "127.0.0.1"
    port: int = 6379
    password: str | None = None
    db: int = 0
    sentinels: tuple[SentinelAddr, ...] = ()
    master_name: str = ""
    canary: bool = False
    canary_key: str = "drill:canary"
    wait_replicas: int = 0  # 0: a write counts as acknowledged when the master accepts it
    wait_timeout_ms: int = 100


def duration_ms(text: object, what: str) -> int:
    """Exact milliseconds of a duration string such as `100ms`, `2s`, `1m30s` (`0` too)."""
    try:
        return parse_duration_ms(text if isinstance(text, str) else repr(text))
    except ValueError:
        raise UsageError(
            f"redis probe: {what} {text!r} is not a duration",
            hint="digits with a unit (ms, s, m, h, d), largest unit first, e.g. 100ms, 2s, 1m30s",
        ) from None


def parse_redis(params: Mapping[str, Any]) -> RedisSpec:
    """Build a RedisSpec from schema-valid parameters; an unusable wait_* setting is a usage error."""
    wait_replicas = int(params.get("wait_replicas", 0))
    wait_timeout_ms = duration_ms(params.get("wait_timeout", _DEFAULT_WAIT_TIMEOUT), "wait_timeout")
    if "wait_replicas" in params and wait_replicas < 1:
        raise UsageError(f"redis probe: wait_replicas must be at least 1, not {wait_replicas}")
    if wait_replicas and not params.get("canary", False):
        raise UsageError("redis probe: wait_replicas needs canary: true", hint="WAIT confirms canary writes")
    if wait_timeout_ms < 1:
        # WAIT with timeout 0 blocks until enough replicas confirm: forever, if none ever does.
        raise UsageError("redis probe: wait_timeout must be at least 1ms", hint="e.g. 100ms")
    return RedisSpec(
        host=check_text("redis", "host", params.get("host", "127.0.0.1")),
        port=check_port("redis", "port", params.get("port", 6379)),
        password=str(params["password"]) if params.get("password") else None,
        db=int(params.get("db", 0)),
        sentinels=tuple(
            SentinelAddr(
                check_text("redis", "sentinels[].host", s.get("host", "127.0.0.1")),
                check_port("redis", "sentinels[].port", s.get("port")),
            )
            for s in params.get("sentinels", ())
        ),
        master_name=str(params.get("master_name", "")),
        canary=bool(params.get("canary", False)),
        canary_key=str(params.get("canary_key", "drill:canary")),
        wait_replicas=wait_replicas,
        wait_timeout_ms=wait_timeout_ms,
    )


def _client(host: str, port: int, timeout_s: float, *, password: str | None = None, db: int = 0) -> Redis:
    # retry=Retry(NoBackoff(), 0): measure the server, not the client's patience.
    return Redis(
        host=host,
        port=port,
        password=password,
        db=db,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


async def _close(client: Redis | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        await client.aclose()


async def _master_address(spec: RedisSpec, ctx: ProbeContext) -> tuple[str, int]:
    """The current master: asked of the sentinels in turn, or the configured address."""
    if not spec.sentinels:
        return spec.host, spec.port
    clients: dict[SentinelAddr, Redis] = ctx.memory.setdefault("redis_sentinels", {})
    problems: list[str] = []
    for addr in spec.sentinels:
        client = clients.get(addr)
        if client is None:
            client = clients[addr] = _client(addr.host, addr.port, ctx.timeout_s)
        try:
            ask: Any = client.execute_command  # untyped in redis-py
            answer = await ask("SENTINEL", "get-master-addr-by-name", spec.master_name)
        except (RedisError, OSError) as exc:
            problems.append(f"sentinel {addr.host}:{addr.port}: {_describe(exc)}")
            continue
        if answer:
            return str(answer[0]), int(answer[1])
        problems.append(f"sentinel {addr.host}:{addr.port} does not know master {spec.master_name!r}")
    raise _NoMaster("; ".join(problems))


class _NoMaster(Exception):
    """No sentinel named a master (a probe failure, not a bug)."""


async def _master_client(spec: RedisSpec, ctx: ProbeContext) -> tuple[Redis, str]:
    host, port = await _master_address(spec, ctx)
    where = f"{host}:{port}"
    client: Redis | None = ctx.memory.get("redis_client")
    if client is None or ctx.memory.get("redis_where") != where:
        if client is not None:
            await _close(client)
        client = _client(host, port, ctx.timeout_s, password=spec.password, db=spec.db)
        ctx.memory["redis_client"] = client
        ctx.memory["redis_where"] = where
    return client, where


async def _drop_client(ctx: ProbeContext) -> None:
    """Forget the master connection after an error, so the next tick reconnects from scratch."""
    client = ctx.memory.pop("redis_client", None)
    ctx.memory.pop("redis_where", None)
    if client is not None:
        await _close(client)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


async def probe_redis(spec: RedisSpec, ctx: ProbeContext) -> Observation:
    """PING the master, or with canary=true write the next canary (sequence + UTC) to it."""
    where = f"{spec.host}:{spec.port}"
    # Answer with our own reason just before the runner's deadline.
    budget = max(ctx.timeout_s - min(0.05, ctx.timeout_s * 0.05), 0.01)
    unconfirmed: list[int] = []  # a write the master accepted, while its WAIT is outstanding
    try:
        async with asyncio.timeout(budget):
            client, where = await _master_client(spec, ctx)
            if not spec.canary:
                await client.ping()
                return ok(master=where)
            return await _write_canary(spec, ctx, client, where, unconfirmed)
    except _NoMaster as exc:
        return _failed(ctx, spec, f"no master from Sentinel: {exc}")
    except TimeoutError:
        await _drop_client(ctx)
        within = human_ms(round(ctx.timeout_s * 1000))
        if unconfirmed:
            reason = f"write {unconfirmed[0]} accepted by {where}, no replica confirmation within {within}"
            return _at_risk(ctx, reason, transient=True, seq=unconfirmed[0])
        what = "write not acknowledged" if spec.canary else "no answer"
        return _failed(ctx, spec, f"{what} by {where} within {within}", transient=True)
    except (RedisError, OSError) as exc:
        await _drop_client(ctx)
        if unconfirmed:
            reason = f"write {unconfirmed[0]} accepted by {where}, then unconfirmed: {_describe(exc)}"
            return _at_risk(ctx, reason, transient=True, seq=unconfirmed[0])
        return _failed(ctx, spec, f"{where}: {_describe(exc)}", transient=True)


def _failed(ctx: ProbeContext, spec: RedisSpec, reason: str, *, transient: bool = False) -> Observation:
    if spec.canary:
        canary.record_failure(ctx)
    return fail(reason, transient=transient)


def _at_risk(ctx: ProbeContext, reason: str, *, transient: bool, **detail: int | str) -> Observation:
    """The master accepted the write, too few replicas confirmed it: counted, not acknowledged."""
    canary.record_at_risk(ctx)
    return fail(reason, transient=transient, at_risk=True, **detail)


def _expiry_due(ctx: ProbeContext, where: str) -> bool:
    """The canary set's expiry is (re)set on a new master and at least hourly on the same one."""
    last = ctx.memory.get("redis_expiry_at")
    if not isinstance(last, tuple) or last[0] != where:
        return True
    return bool(ctx.monotonic_ns() - last[1] >= _CANARY_RENEW_NS)


async def _write_canary(
    spec: RedisSpec, ctx: ProbeContext, client: Redis, where: str, unconfirmed: list[int]
) -> Observation:
    st = canary.state(ctx)
    seq, utc = st.claim()
    await client.zadd(spec.canary_key, {f"{st.run}:{seq}:{utc}": seq})
    if spec.wait_replicas:
        unconfirmed.append(seq)
    else:
        canary.record_ack(ctx, seq, utc)
    if _expiry_due(ctx, where):
        await client.expire(spec.canary_key, _CANARY_TTL_S)
        ctx.memory["redis_expiry_at"] = (where, ctx.monotonic_ns())
    if not spec.wait_replicas:
        return ok(master=where, seq=seq)
    # WAIT covers every write this connection made before it (the ZADD and the EXPIRE).
    ask: Any = client.execute_command  # untyped in redis-py
    confirmed = int(await ask("WAIT", spec.wait_replicas, spec.wait_timeout_ms))
    unconfirmed.clear()
    if confirmed < spec.wait_replicas:
        reason = (
            f"write {seq} confirmed by {confirmed} of {spec.wait_replicas} replicas "
            f"within {human_ms(spec.wait_timeout_ms)}"
        )
        return _at_risk(ctx, reason, transient=False, master=where, seq=seq, replicas=confirmed)
    canary.record_ack(ctx, seq, utc)
    return ok(master=where, seq=seq, replicas=confirmed)


async def finish_redis(spec: RedisSpec, ctx: ProbeContext) -> None:
    """Read which canary writes survived on the current master, emit rpo.measured, close clients."""
    try:
        st = canary.state(ctx)
        if spec.canary and st.acked:
            await _read_survivors(spec, ctx)
        elif spec.canary and st.at_risk:  # RPO not measured, and why: never a silent gap
            replicas = f"{spec.wait_replicas} replica{'s' if spec.wait_replicas != 1 else ''}"
            canary.emit_unmeasured(ctx, f"no canary write was confirmed by {replicas} ({st.at_risk} at risk)")
    finally:
        await _drop_client(ctx)
        for client in ctx.memory.pop("redis_sentinels", {}).values():
            await _close(client)


async def _read_survivors(spec: RedisSpec, ctx: ProbeContext) -> None:
    run = canary.state(ctx).run
    client: Redis | None = None
    try:
        async with asyncio.timeout(max(ctx.timeout_s, 1.0) * 3):
            # the finisher's own connection to whoever is master now: never one a tick uses
            host, port = await _master_address(spec, ctx)
            client = _client(host, port, ctx.timeout_s, password=spec.password, db=spec.db)
            members = await client.zrangebyscore(spec.canary_key, "-inf", "+inf")
    except (_NoMaster, TimeoutError, RedisError, OSError) as exc:
        canary.emit_unmeasured(ctx, f"cannot read surviving canary writes: {_describe(exc) or 'timeout'}")
        return
    finally:
        await _close(client)
    texts = [m if isinstance(m, str) else str(m) for m in members]
    surviving = [int(m.split(":")[1]) for m in texts if m.startswith(f"{run}:")]
    canary.emit_rpo(ctx, surviving)


KIND: ProbeKind[RedisSpec] = ProbeKind(
    name="redis",
    parse=parse_redis,
    run=probe_redis,
    summary="Redis liveness (PING) or canary writes for RPO, following Sentinel when configured",
    finish=finish_redis,
)
