"""The http probe: one request; healthy when status, headers and body match what is expected,
and (with max_latency) when the whole answer arrived within the team's own latency threshold.

At most BODY_LIMIT bytes of a body are read (streamed; the rest is never read, and a failing
reason says so). `body_regex` is matched with RE2 (google-re2), whose time is linear in the
body's length: a pattern such as `^(a+)+$` cannot stall the event loop and every other probe
with it, as Python's backtracking `re` did (1 s for 25 characters; in a worker thread it would
not help, since `re` keeps the GIL while it matches). RE2 has no backreferences or lookaround:
`parse` refuses such a pattern with a usage error.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import re2  # type: ignore[import-untyped]

from drill.durations import parse_duration_ms
from drill.errors import UsageError
from drill.jsontypes import MISSING, dig
from drill.probes.base import (
    Observation,
    ProbeContext,
    ProbeKind,
    check_headers,
    check_http_url,
    fail,
    ok,
    redact_then_cut,
)
from drill.probes.pool import HTTP_POOL
from drill.probes.tcp import connect_failure_reason
from drill.units import human_ms

BODY_LIMIT = 1024 * 1024  # body bytes examined by body checks; the rest is not read


@dataclass(frozen=True, slots=True)
class HttpSpec:
    """One HTTP request and what its answer must look like. Empty expect_status means any 2xx."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    expect_status: frozenset[int] = frozenset()
    body_contains: str | None = None
    body_regex: Any = None  # a compiled RE2 pattern (re2 ships no type information)
    json_equals: tuple[tuple[str, Any], ...] = ()
    expect_headers: tuple[tuple[str, str], ...] = ()
    verify_tls: bool = True
    follow_redirects: bool = False
    max_latency_ms: int | None = None  # the answer (headers and body) must arrive within this

    @property
    def reads_body(self) -> bool:
        """Whether the body is read: for a body check, or to time the whole answer."""
        checks_body = self.body_contains is not None or self.body_regex or self.json_equals
        return bool(checks_body or self.max_latency_ms is not None)


def parse(params: Mapping[str, Any]) -> HttpSpec:
    """Build the spec from resolved, schema-valid params; a bad body_regex is a usage error."""
    status = params.get("expect_status")
    statuses = frozenset() if status is None else frozenset(_as_list(status))
    pattern = compile_body_regex("http", params.get("body_regex"))
    url = check_http_url("http", "url", str(params["url"]), whole=False)
    headers = _pairs(params.get("headers"))
    check_headers("http", "headers", headers)
    expect_headers = _pairs(params.get("expect_headers"))
    check_headers("http", "expect_headers", expect_headers)
    return HttpSpec(
        url=url,
        method=str(params.get("method", "GET")).upper(),
        headers=headers,
        body=None if params.get("body") is None else str(params["body"]),
        expect_status=statuses,
        body_contains=None if params.get("body_contains") is None else str(params["body_contains"]),
        body_regex=pattern,
        json_equals=tuple((str(k), v) for k, v in (params.get("json_equals") or {}).items()),
        expect_headers=expect_headers,
        verify_tls=bool(params.get("verify_tls", True)),
        follow_redirects=bool(params.get("follow_redirects", False)),
        max_latency_ms=_max_latency_ms(params.get("max_latency")),
    )


def compile_body_regex(kind: str, regex: object) -> Any:
    """The RE2 pattern of a body_regex, or None; a pattern RE2 cannot run is a usage error that
    names the field and RE2's complaint, not the pattern (a pattern may quote a secret)."""
    if regex is None:
        return None
    options = re2.Options()
    options.log_errors = False  # RE2 would print its complaint to stderr besides raising it
    try:
        return re2.compile(str(regex), options)
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        why = why.decode(errors="replace") if isinstance(why, bytes) else str(why)
        raise UsageError(
            f"{kind} probe: body_regex is not a regular expression RE2 can run: {why}",
            hint="check the pattern's escaping (YAML single quotes keep backslashes as written);"
            " backreferences and lookaround are not supported (matching is linear-time RE2)",
        ) from None


def _max_latency_ms(value: object) -> int | None:
    if value is None:
        return None
    try:
        ms = parse_duration_ms(str(value))
    except ValueError as exc:
        raise UsageError(f"http probe: max_latency: {exc}", hint="write e.g. 500ms, 2s or 1m30s") from exc
    if ms <= 0:
        raise UsageError(
            f"http probe: max_latency {value!r} is zero: no answer can arrive within it",
            hint="give the slowest answer you accept, e.g. 500ms, or leave max_latency out",
        )
    return ms


def _as_list(value: object) -> list[int]:
    items = value if isinstance(value, list | tuple) else [value]
    return [int(str(v)) for v in items]  # the schema admits integers only


def _pairs(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (mapping or {}).items())


async def probe_http(spec: HttpSpec, ctx: ProbeContext) -> Observation:
    """Send the request; check status, headers, then the body (first BODY_LIMIT bytes), then
    the time from sending the request to having read the answer against max_latency."""
    try:
        with ctx.resource(HTTP_POOL).lease(spec.verify_tls) as client:
            request = client.build_request(
                spec.method, _parsed(spec.url), headers=spec.headers, content=spec.body
            )
            started_ns = ctx.monotonic_ns()
            response = await client.send(request, stream=True, follow_redirects=spec.follow_redirects)
            try:
                problem = _check_head(spec, response)
                if problem or not spec.reads_body:
                    body, truncated = b"", False
                else:
                    body, truncated = await read_bounded(response)
                answered_ns = ctx.monotonic_ns()
            finally:
                await response.aclose()
    except httpx.InvalidURL as exc:
        return fail(f"invalid URL {spec.url!r}: {exc}")
    except httpx.UnsupportedProtocol:
        return fail(f"unsupported URL scheme in {spec.url!r} (use http:// or https://)")
    except httpx.TooManyRedirects:
        return fail(f"too many redirects from {spec.url}")
    except httpx.ConnectError as exc:
        return fail(connect_failure_reason(exc, *_endpoint(spec.url)), transient=True)
    except httpx.RemoteProtocolError as exc:
        host, port = _endpoint(spec.url)
        return fail(f"{host}:{port} broke the HTTP exchange: {exc}", transient=True)
    except (httpx.HTTPError, OSError) as exc:
        host, port = _endpoint(spec.url)
        return fail(
            f"{spec.method} {spec.url} failed: {connect_failure_reason(exc, host, port)}", transient=True
        )
    if problem:
        return fail(problem, status=response.status_code)
    problem = _check_body(spec, body, ctx)
    if problem:
        if truncated:
            problem += f" (only the first {limit_text()} of the body was read)"
        return fail(problem, status=response.status_code, truncated=truncated)
    if spec.max_latency_ms is not None:
        took_ms = -(-(answered_ns - started_ns) // 1_000_000)  # rounded up: 500.2 ms is over 500 ms
        if took_ms > spec.max_latency_ms:
            return fail(
                f"answered in {human_ms(took_ms)}, slower than max_latency {human_ms(spec.max_latency_ms)}",
                status=response.status_code,
            )
    return ok(status=response.status_code)


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """Parse each probe URL once, not at every tick (parsing is a tenth of a request's CPU)."""
    return httpx.URL(url)


def _endpoint(url: str) -> tuple[str, int | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url, None
    default = 443 if parsed.scheme == "https" else 80
    return parsed.host, parsed.port or default


async def read_bounded(response: httpx.Response, limit: int = BODY_LIMIT) -> tuple[bytes, bool]:
    """At most `limit` bytes of a streamed response body, and whether there was more (the rest is
    never read: the connection is closed instead). Shared by the http, kv and journey probes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def limit_text(limit: int = BODY_LIMIT) -> str:
    """A byte count as a person reads it: 1 MiB, 64 KiB, 1000 bytes."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def _check_head(spec: HttpSpec, response: httpx.Response) -> str:
    code = response.status_code
    if spec.expect_status and code not in spec.expect_status:
        wanted = " or ".join(str(s) for s in sorted(spec.expect_status))
        return f"expected status {wanted}, got {code}"
    if not spec.expect_status and not 200 <= code < 300:
        return f"expected status 2xx, got {code}"
    for name, value in spec.expect_headers:
        got = response.headers.get(name)
        if got is None:
            return f"expected header {name}: {value!r}, header missing"
        if got != value:
            return f"expected header {name}: {value!r}, got {got!r}"
    return ""


def _check_body(spec: HttpSpec, raw: bytes, ctx: ProbeContext) -> str:
    text = raw.decode("utf-8", errors="replace")
    if spec.body_contains is not None and spec.body_contains not in text:
        return f"body does not contain {spec.body_contains!r} (body starts {_start(ctx, text)!r})"
    if spec.body_regex is not None and not spec.body_regex.search(text):
        return f"body does not match /{spec.body_regex.pattern}/ (body starts {_start(ctx, text)!r})"
    if not spec.json_equals:
        return ""
    try:
        document = json.loads(text)
    except ValueError as exc:
        return f"body is not JSON ({exc.args[0] if exc.args else exc}); body starts {_start(ctx, text)!r}"
    for path, wanted in spec.json_equals:
        got = dig(document, path)
        if got is MISSING:
            return f"JSON field {path} missing"
        if got != wanted or isinstance(got, bool) != isinstance(wanted, bool):
            return f"JSON field {path}: expected {json.dumps(wanted)}, got {json.dumps(got)}"
    return ""


def _start(ctx: ProbeContext, text: str) -> str:
    # Redacted before it is cut: a secret cut in half is no longer recognised by any redaction.
    return redact_then_cut(ctx, text, 60)


KIND: ProbeKind[HttpSpec] = ProbeKind(
    name="http",
    parse=parse,
    run=probe_http,
    summary="one HTTP request; checks status, headers, body substring/regex, JSON fields",
    resources=(HTTP_POOL,),
)
