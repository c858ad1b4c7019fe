"""`http` action: call an endpoint (trigger a failover, flip a switch) and check the status."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from drill.actions.base import OUTPUT_LIMIT, ActionContext, ActionKind, ActionResult, status_matches

# drill.playbook.model.OUTPUT_REFERENCE (actions sit below the playbook layer): a URL that still
# holds one is checked when the step runs, once the output is known
_OUTPUT_REFERENCE = re.compile(r"\$\{steps\.([^}.]+)\.output\}")
_ENCODE_HINT = "a user name or password with special characters must be percent-encoded, e.g. @ as %40"


@dataclass(frozen=True, slots=True)
class HttpActionSpec:
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None
    expect_status: int | list[int] | None = None
    # Why the URL cannot be requested ('' when it can), found by parse: the runner refuses to
    # start with one (naming the step), and a URL made at run time fails its step with it.
    problem: str = ""


def parse(params: Mapping[str, Any]) -> HttpActionSpec:
    """The spec; never raises for a bad URL (see HttpActionSpec.problem), so a URL built from a
    step's output at run time fails that step instead of the drill."""
    url = params["url"]
    return HttpActionSpec(
        url=url,
        method=str(params.get("method", "POST")).upper(),
        headers=dict(params.get("headers") or {}),
        json=params.get("json"),
        body=params.get("body"),
        expect_status=params.get("expect_status"),
        problem="" if isinstance(url, str) and _OUTPUT_REFERENCE.search(url) else url_problem(url),
    )


def url_problem(url: object) -> str:
    """Why url cannot be requested, naming the field and never quoting the value (it may hold a
    secret); '' when it can."""
    if not isinstance(url, str):
        return "url: expected a text URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "url: holds a space or a control character (percent-encode it)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "url: not a valid URL (an IPv6 address goes in brackets, e.g. http://[::1]:8080/)"
    if parts.scheme not in ("http", "https"):
        return "url: the scheme must be http:// or https://"
    try:
        port = parts.port
    except ValueError:
        return f"url: the port is not a number from 1 to 65535; {_ENCODE_HINT}"
    if port == 0:
        return "url: the port is not a number from 1 to 65535"
    if not parts.hostname:
        return "url: no host"
    if "@" in parts.fragment or "@" in parts.query:
        return f"url: '@' after '#' or '?'; {_ENCODE_HINT}"
    try:
        httpx.URL(url)
        httpx.Request("GET", url)  # the host as IDNA, as the request will encode it
    except (httpx.InvalidURL, UnicodeError, ValueError):
        return "url: not a valid URL (the host is not a valid name, or a character is not allowed)"
    return ""


def shown_url(url: str) -> str:
    """The URL for a reason: without its user name and password (a secret not in the secrets,
    say one captured from a step's output, is never quoted)."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return "the url"


async def act_http(spec: HttpActionSpec, ctx: ActionContext) -> ActionResult:
    """Send the request; a transport error is transient, an unexpected status is not, a URL
    that cannot be requested fails the attempt (not transient) with a reason that quotes no part of it."""
    problem = spec.problem or url_problem(spec.url)
    if problem:
        return ActionResult(ok=False, reason=f"{spec.method} {problem}")
    shown = shown_url(spec.url)
    try:
        resp = await ctx.http.request(
            spec.method, spec.url, headers=dict(spec.headers), json=spec.json, content=spec.body
        )
    except httpx.TimeoutException:
        return ActionResult(ok=False, reason=f"{spec.method} {shown}: timed out", transient=True)
    except httpx.InvalidURL:
        return ActionResult(ok=False, reason=f"{spec.method} url: not a valid URL")
    except httpx.HTTPError as exc:
        return ActionResult(
            ok=False, reason=f"{spec.method} {shown}: {type(exc).__name__}: {exc}", transient=True
        )
    except (UnicodeError, ValueError, OverflowError) as exc:  # what httpx lets through for a bad URL
        return ActionResult(ok=False, reason=f"{spec.method} url: cannot be requested ({type(exc).__name__})")
    if not status_matches(resp.status_code, spec.expect_status):
        expected = spec.expect_status if spec.expect_status is not None else "2xx"
        return ActionResult(
            ok=False,
            reason=f"{spec.method} {shown}: expected status {expected}, got {resp.status_code}",
            transient=resp.status_code >= 500,
            detail=str(resp.status_code),
        )
    return ActionResult(
        ok=True, detail=str(resp.status_code), stdout=resp.content[:OUTPUT_LIMIT].decode("utf-8", "replace")
    )


KIND = ActionKind(name="http", parse=parse, run=act_http, summary="HTTP request; checks the status code")
