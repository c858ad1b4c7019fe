"""`http` action: call an endpoint (trigger a failover, flip a switch) and check the status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from drill.actions.base import OUTPUT_LIMIT, ActionContext, ActionKind, ActionResult, status_matches


@dataclass(frozen=True, slots=True)
class HttpActionSpec:
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None
    expect_status: int | list[int] | None = None


def parse(params: Mapping[str, Any]) -> HttpActionSpec:
    return HttpActionSpec(
        url=params["url"],
        method=str(params.get("method", "POST")).upper(),
        headers=dict(params.get("headers") or {}),
        json=params.get("json"),
        body=params.get("body"),
        expect_status=params.get("expect_status"),
    )


async def act_http(spec: HttpActionSpec, ctx: ActionContext) -> ActionResult:
    """Send the request; a transport error is transient, an unexpected status is not."""
    try:
        resp = await ctx.http.request(
            spec.method, spec.url, headers=dict(spec.headers), json=spec.json, content=spec.body
        )
    except httpx.TimeoutException:
        return ActionResult(ok=False, reason=f"{spec.method} {spec.url}: timed out", transient=True)
    except httpx.HTTPError as exc:
        return ActionResult(
            ok=False, reason=f"{spec.method} {spec.url}: {type(exc).__name__}: {exc}", transient=True
        )
    if not status_matches(resp.status_code, spec.expect_status):
        expected = spec.expect_status if spec.expect_status is not None else "2xx"
        return ActionResult(
            ok=False,
            reason=f"{spec.method} {spec.url}: expected status {expected}, got {resp.status_code}",
            transient=resp.status_code >= 500,
            detail=str(resp.status_code),
        )
    return ActionResult(
        ok=True, detail=str(resp.status_code), stdout=resp.content[:OUTPUT_LIMIT].decode("utf-8", "replace")
    )


KIND = ActionKind(name="http", parse=parse, run=act_http, summary="HTTP request; checks the status code")
