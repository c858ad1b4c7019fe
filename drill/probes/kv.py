"""The `kv` probe: the demo lab's replicated key-value service over HTTP, with an RPO canary.

Liveness is GET /health. With canary=true every tick PUTs /kv/<canary_key>:<run>:<seq> (body:
the UTC time) to whatever is master now; `finish` lists the surviving canary keys and emits
rpo.measured, exactly as the redis and postgres canaries do.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from drill.probes import canary
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok
from drill.probes.pool import HTTP_POOL


@dataclass(frozen=True, slots=True)
class KvSpec:
    """Base URL of the key-value service and whether to write canaries."""

    url: str
    canary: bool = False
    canary_key: str = "drill:canary"


def parse_kv(params: Mapping[str, Any]) -> KvSpec:
    """Build a KvSpec from schema-valid parameters."""
    return KvSpec(
        url=str(params["url"]).rstrip("/"),
        canary=bool(params.get("canary", False)),
        canary_key=str(params.get("canary_key", "drill:canary")),
    )


def _reason(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _answer_reason(resp: httpx.Response) -> str:
    try:
        detail = str(resp.json().get("error", ""))
    except ValueError:
        detail = ""
    return f"HTTP {resp.status_code}" + (f": {detail}" if detail else "")


async def probe_kv(spec: KvSpec, ctx: ProbeContext) -> Observation:
    """GET /health, or with canary=true write the next canary to the master."""
    try:
        with ctx.resource(HTTP_POOL).lease() as client:
            if not spec.canary:
                resp = await client.get(f"{spec.url}/health")
                return ok() if resp.status_code == 200 else fail(_answer_reason(resp))
            st = canary.state(ctx)
            seq, utc = st.claim()
            key = urllib.parse.quote(f"{spec.canary_key}:{st.run}:{seq}", safe="")
            resp = await client.put(f"{spec.url}/kv/{key}", content=utc.encode())
    except httpx.HTTPError as exc:
        if spec.canary:
            canary.record_failure(ctx)
        return fail(_reason(exc), transient=True)
    if resp.status_code != 200:
        canary.record_failure(ctx)
        return fail(_answer_reason(resp))
    canary.record_ack(ctx, seq, utc)
    return ok(seq=seq)


async def finish_kv(spec: KvSpec, ctx: ProbeContext) -> None:
    """List the canary keys that survived on the current master and emit rpo.measured."""
    if not spec.canary or not canary.state(ctx).acked:
        return
    prefix = f"{spec.canary_key}:{canary.state(ctx).run}:"
    try:
        with ctx.resource(HTTP_POOL).lease() as client:
            resp = await client.get(f"{spec.url}/kv", params={"prefix": prefix})
        items = resp.json()["items"] if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        canary.emit_unmeasured(ctx, f"cannot read surviving canary writes: {exc}")
        return
    if items is None:
        canary.emit_unmeasured(ctx, f"cannot read surviving canary writes: {_answer_reason(resp)}")
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
