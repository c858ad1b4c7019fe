"""The `kv` probe: the demo lab's replicated key-value service over HTTP, with an RPO canary.

Liveness is GET /health. With canary=true every tick PUTs /kv/<canary_key>:<run>:<seq> (body:
the UTC time) to whatever is master now; `finish` lists the surviving canary keys and emits
rpo.measured, exactly as the redis and postgres canaries do.

Every answer is streamed and at most a bounded prefix of its body is read: ERROR_LIMIT bytes of
an error answer (for its "error" text), LIST_LIMIT bytes of the canary listing. A server that
answers with an endless body costs a bounded amount of memory, never the process.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from drill.probes import canary
from drill.probes.base import Observation, ProbeContext, ProbeKind, check_http_url, fail, ok, redact_then_cut
from drill.probes.http import read_bounded
from drill.probes.pool import HTTP_POOL

ERROR_LIMIT = 64 * 1024  # bytes of an error answer read for its "error" text
LIST_LIMIT = 16 * 1024 * 1024  # bytes of the surviving-canary listing (read once, by finish)


@dataclass(frozen=True, slots=True)
class KvSpec:
    """Base URL of the key-value service and whether to write canaries."""

    url: str
    canary: bool = False
    canary_key: str = "drill:canary"


def parse_kv(params: Mapping[str, Any]) -> KvSpec:
    """Build a KvSpec from schema-valid parameters."""
    url = check_http_url("kv", "url", str(params["url"]))
    return KvSpec(
        url=url.rstrip("/"),
        canary=bool(params.get("canary", False)),
        canary_key=str(params.get("canary_key", "drill:canary")),
    )


def _reason(ctx: ProbeContext, exc: httpx.HTTPError) -> str:
    return redact_then_cut(ctx, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 300)


def _answer_reason(ctx: ProbeContext, status: int, body: bytes) -> str:
    try:
        document = json.loads(body)
        detail = str(document.get("error", "")) if isinstance(document, dict) else ""
    except ValueError:
        detail = ""
    return f"HTTP {status}" + (f": {redact_then_cut(ctx, detail, 200)}" if detail else "")


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    limit: int,
    *,
    read_ok: bool = False,
    content: bytes | None = None,
) -> tuple[int, bytes, bool]:
    """Status, the first `limit` bytes of the body (read only for an error answer, or with
    `read_ok`), and whether the body was longer than that (the rest is never read)."""
    request = client.build_request(method, url, content=content)
    response = await client.send(request, stream=True)
    try:
        if response.status_code == 200 and not read_ok:
            return response.status_code, b"", False
        body, truncated = await read_bounded(response, limit)
        return response.status_code, body, truncated
    finally:
        await response.aclose()


async def probe_kv(spec: KvSpec, ctx: ProbeContext) -> Observation:
    """GET /health, or with canary=true write the next canary to the master."""
    try:
        with ctx.resource(HTTP_POOL).lease() as client:
            if not spec.canary:
                status, body, _ = await _send(client, "GET", f"{spec.url}/health", ERROR_LIMIT)
                return ok() if status == 200 else fail(_answer_reason(ctx, status, body))
            st = canary.state(ctx)
            seq, utc = st.claim()
            key = urllib.parse.quote(f"{spec.canary_key}:{st.run}:{seq}", safe="")
            status, body, _ = await _send(
                client, "PUT", f"{spec.url}/kv/{key}", ERROR_LIMIT, content=utc.encode()
            )
    except httpx.HTTPError as exc:
        if spec.canary:
            canary.record_failure(ctx)
        return fail(_reason(ctx, exc), transient=True)
    if status != 200:
        canary.record_failure(ctx)
        return fail(_answer_reason(ctx, status, body))
    canary.record_ack(ctx, seq, utc)
    return ok(seq=seq)


async def finish_kv(spec: KvSpec, ctx: ProbeContext) -> None:
    """List the canary keys that survived on the current master and emit rpo.measured."""
    if not spec.canary or not canary.state(ctx).acked:
        return
    prefix = f"{spec.canary_key}:{canary.state(ctx).run}:"
    try:
        with ctx.resource(HTTP_POOL).lease() as client:
            url = str(httpx.URL(f"{spec.url}/kv", params={"prefix": prefix}))
            status, body, truncated = await _send(client, "GET", url, LIST_LIMIT, read_ok=True)
        if truncated:
            raise ValueError(f"the listing is longer than {LIST_LIMIT // (1024 * 1024)} MiB")
        items = json.loads(body)["items"] if status == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        canary.emit_unmeasured(
            ctx, f"cannot read surviving canary writes: {redact_then_cut(ctx, str(exc), 300)}"
        )
        return
    if items is None:
        canary.emit_unmeasured(
            ctx, f"cannot read surviving canary writes: {_answer_reason(ctx, status, body)}"
        )
        return
    canary.emit_rpo(ctx, [int(key[len(prefix) :]) for key in items])


KIND: ProbeKind[KvSpec] = ProbeKind(
    name="kv",
    parse=parse_kv,
    run=probe_kv,
    summary="the demo lab's key-value service: liveness, or canary writes for RPO",
    finish=finish_kv,
    resources=(HTTP_POOL,),
)
