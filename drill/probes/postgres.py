"""The `postgres` probe: liveness (connect + SELECT 1) and an RPO canary table (psycopg 3, async).

A multi-host dsn with `target_session_attrs=read-write` makes libpq find the promoted server by
itself. A write that the server does not acknowledge in time (the classic case: a promoted
standby that still waits for a synchronous standby which no longer exists) ends at the probe's
deadline with "write not acknowledged within 2 s"; it never hangs the probe. Work that missed
its deadline is left to finish in the background and its connection is closed when it does,
because cancelling a query inside psycopg may itself wait seconds for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from drill.probes import canary
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok
from drill.units import human_ms

_MAX_ORPHANS = 8  # writes still stuck from earlier ticks; beyond this we stop opening connections
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostgresSpec:
    """A libpq connection string (may name several hosts) and whether to write canaries."""

    dsn: str
    canary: bool = False
    canary_table: str = "drill_canary"


def parse_postgres(params: Mapping[str, Any]) -> PostgresSpec:
    """Build a PostgresSpec from schema-valid parameters."""
    return PostgresSpec(
        dsn=str(params["dsn"]),
        canary=bool(params.get("canary", False)),
        canary_table=str(params.get("canary_table", "drill_canary")),
    )


def _table(spec: PostgresSpec) -> sql.Identifier:
    return sql.Identifier(*spec.canary_table.split("."))


def _describe(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Is the server running")]
    text = "; ".join(lines) or type(exc).__name__
    return text[:300]


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


def _abandon(ctx: ProbeContext, task: asyncio.Task[Any], conn: psycopg.AsyncConnection[Any] | None) -> None:
    """Let late work finish on its own and close whatever connection it holds when it does."""
    orphans = _orphans(ctx)
    orphans.add(task)

    def closer(done: asyncio.Task[Any]) -> None:
        late = conn
        if not done.cancelled() and done.exception() is None:
            result = done.result()
            late = result[0] if isinstance(result, tuple) else late
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


async def _connect(spec: PostgresSpec) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(spec.dsn, autocommit=True)
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
    orphans = [t for t in _orphans(ctx) if not t.done()]
    if spec.canary and len(orphans) >= _MAX_ORPHANS:
        canary.record_failure(ctx)
        return fail(f"{len(orphans)} earlier writes are still not acknowledged", transient=True)
    conn: psycopg.AsyncConnection[Any] | None = ctx.memory.pop("pg_conn", None)
    seq_utc = canary.state(ctx).claim() if spec.canary else None
    run = canary.state(ctx).run

    async def work() -> tuple[psycopg.AsyncConnection[Any], str]:
        current = conn if conn is not None and not conn.closed else await _connect(spec)
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
    except psycopg.Error as exc:
        await _close_quietly(conn)
        return _failed(ctx, spec, _describe(exc))
    except OSError as exc:
        await _close_quietly(conn)
        return _failed(ctx, spec, _describe(exc))
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
        conn = await psycopg.AsyncConnection.connect(spec.dsn, autocommit=True)
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
        canary.emit_unmeasured(ctx, f"cannot read surviving canary rows: {_describe(exc)}")
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
