"""The `postgres` probe: liveness (connect + SELECT 1) and an RPO canary table (psycopg 3, async).

A multi-host dsn with `target_session_attrs=read-write` makes libpq find the promoted server by
itself. A write that the server does not acknowledge in time (the classic case: a promoted
standby that still waits for a synchronous standby which no longer exists) ends at the probe's
deadline with "write not acknowledged within 2 s"; it never hangs the probe. Work that missed
its deadline is left to finish in the background and its connection is closed when it does,
because cancelling a query inside psycopg may itself wait seconds for the server.

Against a server that accepts connections and never answers (a frozen host), that late work
would pile up one socket per tick until the process runs out of file descriptors and healthy
probes fail too. So every connection attempt has a connect timeout (libpq's `connect_timeout`,
at least 2 s, which libpq enforces as its minimum), and at most MAX_ABANDONED pieces of late work
per probe are kept: once that many are still open, a tick fails at once with "N connections
still open to a target that does not answer" instead of opening another.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from drill.errors import UsageError
from drill.probes import canary
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok, redact_then_cut
from drill.units import human_ms

MAX_ABANDONED = 8  # late work (each holding one connection) kept per probe; beyond it, fail fast
_MIN_CONNECT_TIMEOUT_S = 2  # libpq's own minimum: a smaller connect_timeout counts as 2 s
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostgresSpec:
    """A libpq connection string (may name several hosts) and whether to write canaries."""

    dsn: str
    canary: bool = False
    canary_table: str = "drill_canary"


def parse_postgres(params: Mapping[str, Any]) -> PostgresSpec:
    """Build a PostgresSpec from schema-valid parameters; a dsn libpq cannot read (or a bad port
    or connect_timeout in it) is a usage error that names the field, never its value."""
    dsn = str(params["dsn"])
    _check_dsn(dsn)
    return PostgresSpec(
        dsn=dsn,
        canary=bool(params.get("canary", False)),
        canary_table=str(params.get("canary_table", "drill_canary")),
    )


def _check_dsn(dsn: str) -> None:
    # psycopg's messages quote the connection string, password and all: never pass them on.
    try:
        conninfo = conninfo_to_dict(dsn)
    except psycopg.Error:
        raise UsageError(
            "postgres probe: dsn is not a valid libpq connection string",
            hint="e.g. postgresql://user@db1:5432,db2:5432/app?target_session_attrs=read-write",
        ) from None
    for port in str(conninfo.get("port") or "").split(","):
        if port.strip() and not (port.strip().isdecimal() and 1 <= int(port.strip()) <= 65535):
            raise UsageError("postgres probe: dsn has a port that is not an integer from 1 to 65535")
    timeout = conninfo.get("connect_timeout")
    if timeout is not None:
        try:
            float(str(timeout))
        except ValueError:
            raise UsageError("postgres probe: dsn has a connect_timeout that is not a number") from None


def _connect_timeout(dsn: str, timeout_s: float) -> str:
    """The connect timeout (whole seconds) for one attempt: the dsn's own when it sets a shorter
    one, else the probe's deadline rounded up, at least libpq's minimum of 2 s."""
    ours = max(_MIN_CONNECT_TIMEOUT_S, math.ceil(timeout_s))
    given = conninfo_to_dict(dsn).get("connect_timeout")
    if given is not None and 0 < float(str(given)) < ours:
        return str(given)
    return str(ours)


def _table(spec: PostgresSpec) -> sql.Identifier:
    return sql.Identifier(*spec.canary_table.split("."))


def _describe(ctx: ProbeContext, exc: BaseException) -> str:
    # Redacted before it is cut: a cut secret would no longer be recognised (and would leak).
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Is the server running")]
    text = "; ".join(lines) or type(exc).__name__
    return redact_then_cut(ctx, text, 300)


def _budget(ctx: ProbeContext) -> float:
    # Give up a little before the runner's deadline so the reason is ours.
    return max(ctx.timeout_s - min(0.05, ctx.timeout_s * 0.05), 0.01)


def _orphans(ctx: ProbeContext) -> set[asyncio.Task[Any]]:
    found: set[asyncio.Task[Any]] = ctx.memory.setdefault("pg_orphans", set())
    return found


async def _close_quietly(conn: psycopg.AsyncConnection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()


def _release(exc: BaseException | None) -> None:
    """Drop the tracebacks of a failed connection attempt. psycopg does not close the socket of
    an attempt that timed out: the frames in the traceback hold it open until the cyclic garbage
    collector runs, which a probe ticking 10 times a second outpaces by far (measured: one
    socket per tick against a frozen server). Without the frames the socket closes at once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def _abandon(ctx: ProbeContext, task: asyncio.Task[Any], conn: psycopg.AsyncConnection[Any] | None) -> None:
    """Let late work finish on its own and close whatever connection it holds when it does."""
    orphans = _orphans(ctx)
    orphans.add(task)

    def closer(done: asyncio.Task[Any]) -> None:
        late = conn
        if not done.cancelled() and done.exception() is None:
            result = done.result()
            late = result[0] if isinstance(result, tuple) else late
        elif not done.cancelled():
            _release(done.exception())
        if late is not None:
            cleanup = asyncio.ensure_future(_close_quietly(late))
            orphans.add(cleanup)
            cleanup.add_done_callback(orphans.discard)
        orphans.discard(done)

    task.add_done_callback(closer)


async def _bounded(
    ctx: ProbeContext,
    work: Callable[[], Awaitable[T]],
    conn: psycopg.AsyncConnection[Any] | None,
) -> T:
    """Run work with the probe's budget; on timeout abandon it (TimeoutError) instead of cancelling."""
    task = asyncio.ensure_future(work())
    try:
        done, _ = await asyncio.wait({task}, timeout=_budget(ctx))
    except asyncio.CancelledError:
        _abandon(ctx, task, conn)
        raise
    if not done:
        _abandon(ctx, task, conn)
        raise TimeoutError
    return task.result()


async def _connect(spec: PostgresSpec, timeout_s: float) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(
        spec.dsn, autocommit=True, connect_timeout=_connect_timeout(spec.dsn, timeout_s)
    )
    if spec.canary:
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (run text NOT NULL, seq bigint NOT NULL, utc text NOT NULL,"
                " PRIMARY KEY (run, seq))"
            ).format(_table(spec))
        )
    return conn


def _where(conn: psycopg.AsyncConnection[Any]) -> str:
    return f"{conn.info.host}:{conn.info.port}"


async def probe_postgres(spec: PostgresSpec, ctx: ProbeContext) -> Observation:
    """Connect (reusing the last good connection) and SELECT 1, or with canary=true insert a canary row."""
    stuck = sum(not t.done() for t in _orphans(ctx))
    if stuck >= MAX_ABANDONED:
        # Every one holds a socket: opening more would end with the process out of descriptors.
        return _failed(ctx, spec, f"{stuck} connections still open to a target that does not answer")
    conn: psycopg.AsyncConnection[Any] | None = ctx.memory.pop("pg_conn", None)
    seq_utc = canary.state(ctx).claim() if spec.canary else None
    run = canary.state(ctx).run

    async def work() -> tuple[psycopg.AsyncConnection[Any], str]:
        current = conn if conn is not None and not conn.closed else await _connect(spec, ctx.timeout_s)
        if seq_utc is None:
            await current.execute("SELECT 1")
        else:
            insert = sql.SQL("INSERT INTO {} (run, seq, utc) VALUES (%s, %s, %s)").format(_table(spec))
            await current.execute(insert, (run, seq_utc[0], seq_utc[1]))
        return current, _where(current)

    try:
        conn, where = await _bounded(ctx, work, conn)
    except TimeoutError:
        what = "write not acknowledged" if spec.canary else "no answer"
        return _failed(ctx, spec, f"{what} within {human_ms(round(ctx.timeout_s * 1000))}")
    except (psycopg.Error, OSError) as exc:
        await _close_quietly(conn)
        reason = _describe(ctx, exc)
        _release(exc)
        return _failed(ctx, spec, reason)
    ctx.memory["pg_conn"] = conn
    if seq_utc is None:
        return ok(server=where)
    canary.record_ack(ctx, seq_utc[0], seq_utc[1])
    return ok(server=where, seq=seq_utc[0])


def _failed(ctx: ProbeContext, spec: PostgresSpec, reason: str) -> Observation:
    if spec.canary:
        canary.record_failure(ctx)
    return fail(reason, transient=True)


async def finish_postgres(spec: PostgresSpec, ctx: ProbeContext) -> None:
    """Read the surviving canary rows on the (promoted) primary, emit rpo.measured, close connections."""
    try:
        if spec.canary and canary.state(ctx).acked:
            await _read_survivors(spec, ctx)
    finally:
        await _close_quietly(ctx.memory.pop("pg_conn", None))
        await _settle_orphans(ctx)


async def _read_survivors(spec: PostgresSpec, ctx: ProbeContext) -> None:
    run = canary.state(ctx).run

    async def work() -> list[int]:
        conn = await psycopg.AsyncConnection.connect(
            spec.dsn, autocommit=True, connect_timeout=_connect_timeout(spec.dsn, ctx.timeout_s)
        )
        try:
            query = sql.SQL("SELECT seq FROM {} WHERE run = %s").format(_table(spec))
            cur = await conn.execute(query, (run,))
            return [int(row[0]) for row in await cur.fetchall()]
        finally:
            await conn.close()

    try:
        surviving = await _bounded(ctx, work, None)
    except TimeoutError:
        canary.emit_unmeasured(
            ctx, f"cannot read surviving canary rows within {human_ms(round(ctx.timeout_s * 1000))}"
        )
        return
    except (psycopg.Error, OSError) as exc:
        canary.emit_unmeasured(ctx, f"cannot read surviving canary rows: {_describe(ctx, exc)}")
        return
    canary.emit_rpo(ctx, surviving)


async def _settle_orphans(ctx: ProbeContext) -> None:
    """Cancel work still stuck from earlier ticks, waiting at most a second for it to let go."""
    pending = [t for t in _orphans(ctx) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


KIND: ProbeKind[PostgresSpec] = ProbeKind(
    name="postgres",
    parse=parse_postgres,
    run=probe_postgres,
    summary="PostgreSQL liveness (connect + SELECT 1) or canary rows for RPO (multi-host dsn follows promotion)",
    finish=finish_postgres,
)
