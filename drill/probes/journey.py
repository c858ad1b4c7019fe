"""The journey probe: an HTTP user journey in one probe run (log in, then use what logging in gave).

A port that answers does not prove the DR site serves users: the identity provider, the session
store and the permission data must have failed over too. A journey is 1 to 10 requests sent in
order within one probe execution; a step can capture values from its response (`extract:
{TOKEN: access_token}` from the JSON body by dotted path, `{CSRF: "header:X-CSRF-Token"}` from a
header) that later steps use as `{{TOKEN}}` in their url, header values or body (in `json`, inside
string values). `parse` refuses a placeholder no earlier step extracts.

Cookies set by earlier steps are carried to later ones within one run only: each run gets a fresh
jar and sends it as an explicit Cookie header (the shared pool's clients refuse cookies by design),
so nothing carries over between runs, or to any other probe using the same client.

Every response body read is bounded (BODY_LIMIT, as the http probe), and only a step that extracts
from the JSON body reads its body at all. A reason names the step and what was expected, never a
captured value, a request body or a header: those carry passwords and tokens the secrets layer does
not know about.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

from drill.errors import UsageError
from drill.jsontypes import MISSING, JsonValue, dig
from drill.probes.base import Observation, ProbeContext, ProbeKind, check_headers, check_http_url, fail, ok
from drill.probes.http import BODY_LIMIT, read_bounded
from drill.probes.pool import HTTP_POOL
from drill.probes.tcp import connect_failure_reason
from drill.units import human_ms

MAX_STEPS = 10
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")  # inside {{ }}: spaces allowed
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_PREFIX = "header:"
_LIMIT_TEXT = (
    f"{BODY_LIMIT // (1024 * 1024)} MiB" if BODY_LIMIT % (1024 * 1024) == 0 else f"{BODY_LIMIT} bytes"
)


@dataclass(frozen=True, slots=True)
class Extract:
    """Where one variable comes from: a response header, or a dotted path into the JSON body."""

    var: str
    source: Literal["header", "json"]
    where: str  # the header name, or the dotted path (integer parts index lists: items.0.id)


@dataclass(frozen=True, slots=True)
class JourneyStep:
    """One request of the journey; url, header values and body may hold {{VAR}} placeholders."""

    name: str
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    json: JsonValue = None
    has_json: bool = False
    expect_status: frozenset[int] = frozenset()  # empty: any 2xx
    extract: tuple[Extract, ...] = ()

    @property
    def reads_body(self) -> bool:
        return any(e.source == "json" for e in self.extract)


@dataclass(frozen=True, slots=True)
class JourneySpec:
    steps: tuple[JourneyStep, ...]
    verify_tls: bool = True
    cookies: bool = True


def parse(params: Mapping[str, object]) -> JourneySpec:
    """Build the spec from resolved, schema-valid params. A placeholder that no earlier step
    extracts, a malformed placeholder, two steps of one name, or body and json together are
    usage errors."""
    raw_steps = params.get("steps")
    if not isinstance(raw_steps, list | tuple) or not 1 <= len(raw_steps) <= MAX_STEPS:
        raise UsageError(f"journey probe: steps must be a list of 1 to {MAX_STEPS} requests")
    steps: list[JourneyStep] = []
    extracted: list[str] = []  # in the order earlier steps define them
    for raw in raw_steps:
        if not isinstance(raw, Mapping):
            raise UsageError("journey probe: each step must be a mapping with at least name and url")
        step = _parse_step(raw, [s.name for s in steps])
        for where, text in _templates(step):
            _check_placeholders(step.name, where, text, extracted)
        extracted += [e.var for e in step.extract if e.var not in extracted]
        steps.append(step)
    return JourneySpec(
        steps=tuple(steps),
        verify_tls=bool(params.get("verify_tls", True)),
        cookies=bool(params.get("cookies", True)),
    )


def _parse_step(raw: Mapping[str, object], earlier: list[str]) -> JourneyStep:
    name = str(raw.get("name") or "")
    if not name:
        raise UsageError("journey probe: every step needs a name (failure reasons name the step)")
    if name in earlier:
        raise UsageError(
            f"journey probe: two steps are named {name!r}",
            hint="give every step its own name: a failure reason names the step that failed",
        )
    if "url" not in raw:
        raise UsageError(f"journey probe: step {name!r} has no url")
    if raw.get("body") is not None and "json" in raw:
        raise UsageError(
            f"journey probe: step {name!r} has both body and json",
            hint="send one of them: body (text as written) or json (an object, sent as JSON)",
        )
    has_json = "json" in raw
    body_json = raw.get("json")
    if has_json and not isinstance(body_json, Mapping):
        raise UsageError(f"journey probe: step {name!r}: json must be a mapping (a JSON object)")
    status = raw.get("expect_status")
    url = check_http_url("journey", f"step {name!r}: url", str(raw["url"]), templated=True)
    headers = tuple((str(k), str(v)) for k, v in _mapping(raw.get("headers")).items())
    check_headers("journey", f"step {name!r}: headers", headers)
    return JourneyStep(
        name=name,
        url=url,
        method=str(raw.get("method") or "GET").upper(),
        headers=headers,
        body=None if raw.get("body") is None else str(raw["body"]),
        json=_as_json(body_json) if has_json else None,
        has_json=has_json,
        expect_status=frozenset() if status is None else frozenset(_statuses(status)),
        extract=tuple(
            _parse_extract(name, var, where) for var, where in _mapping(raw.get("extract")).items()
        ),
    )


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _statuses(value: object) -> list[int]:
    items = value if isinstance(value, list | tuple) else [value]
    return [int(str(v)) for v in items]  # the schema admits integers only


def _as_json(value: object) -> JsonValue:
    """The json body as plain JSON data (mappings with string keys, lists, scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise UsageError(f"journey probe: json bodies hold JSON values only, not {type(value).__name__}")


def _parse_extract(step: str, var: object, where: object) -> Extract:
    name = str(var)
    if not _VAR.fullmatch(name):
        raise UsageError(
            f"journey probe: step {step!r}: {name!r} is not a variable name",
            hint="use letters, digits and _, not starting with a digit, e.g. TOKEN",
        )
    text = str(where).strip()
    if text.lower().startswith(_HEADER_PREFIX):
        header = text[len(_HEADER_PREFIX) :].strip()
        if not header:
            raise UsageError(f"journey probe: step {step!r}: extract {name}: 'header:' needs a header name")
        return Extract(name, "header", header)
    if not text or any(part == "" for part in text.split(".")):
        raise UsageError(
            f"journey probe: step {step!r}: extract {name}: {text!r} is not a dotted JSON path",
            hint="e.g. access_token, data.session.id, items.0.id, or header:X-CSRF-Token",
        )
    return Extract(name, "json", text)


def _templates(step: JourneyStep) -> list[tuple[str, str]]:
    """(where, text) of every string of a step that may hold placeholders."""
    found = [("url", step.url)]
    found += [(f"header {name!r}", value) for name, value in step.headers]
    if step.body is not None:
        found.append(("body", step.body))
    found += [("json", text) for text in _json_strings(step.json)]
    return found


def _json_strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _json_strings(v)]
    return []


def _check_placeholders(step: str, where: str, text: str, extracted: list[str]) -> None:
    for match in _PLACEHOLDER.finditer(text):
        name = _NAME.fullmatch(match.group(1))
        if name is None:
            raise UsageError(
                f"journey probe: step {step!r}: {match.group(0)!r} in its {where} is not a placeholder",
                hint="write {{NAME}}: letters, digits and _, not starting with a digit",
            )
        var = name.group(1)
        if var not in extracted:
            earlier = ", ".join(extracted) or "nothing"
            raise UsageError(
                f"journey probe: step {step!r} uses {{{{{var}}}}} in its {where}, "
                f"but no earlier step extracts {var} (earlier steps extract: {earlier})",
                hint=f"add `extract: {{{var}: json.path}}` (or header:Name) to an earlier step, or fix the name",
            )


def _fill(text: str, values: Mapping[str, str]) -> str:
    """text with each {{VAR}} replaced by its value, inserted as it is (parse checked every name)."""
    if "{{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], text)


def _fill_json(value: JsonValue, values: Mapping[str, str]) -> JsonValue:
    if isinstance(value, str):
        return _fill(value, values)
    if isinstance(value, Mapping):
        return {k: _fill_json(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill_json(v, values) for v in value]
    return value


async def probe_journey(spec: JourneySpec, ctx: ProbeContext) -> Observation:
    """Run the steps in order on one leased client; the first failing step fails the journey.

    The journey gives up a little before the scheduler's deadline so that a stalled step is
    named in the reason (the scheduler's own timeout stays the backstop)."""
    jar = httpx.Cookies() if spec.cookies else None  # this run's cookies, and only this run's
    values: dict[str, str] = {}
    current = spec.steps[0]
    deadline = asyncio.timeout(_budget(ctx))
    try:
        async with deadline:
            with ctx.resource(HTTP_POOL).lease(spec.verify_tls) as client:
                status = 0
                for current in spec.steps:
                    result = await _run_step(client, current, values, jar)
                    if isinstance(result, Observation):
                        return result
                    status = result
    except TimeoutError:
        if not deadline.expired():
            raise
        within = human_ms(round(ctx.timeout_s * 1000))
        return fail(f"step {current.name!r}: no answer within {within}", transient=True, step=current.name)
    return ok(steps=len(spec.steps), status=status)


def _budget(ctx: ProbeContext) -> float:
    # As the postgres probe: give up a little before the runner's deadline so the reason is ours.
    return max(ctx.timeout_s - min(0.05, ctx.timeout_s * 0.05), 0.01)


async def _run_step(
    client: httpx.AsyncClient,
    step: JourneyStep,
    values: dict[str, str],
    jar: httpx.Cookies | None,
) -> Observation | int:
    """Send one step; its status code when it passed (values gain its extractions), else the failure."""
    here = f"step {step.name!r}"
    logged_in = bool(values) or bool(jar)  # earlier steps gave a token or a session: for the 403 wording
    try:
        request = client.build_request(
            step.method,
            _fill(step.url, values),
            headers=[(name, _fill(value, values)) for name, value in step.headers],
            content=None if step.body is None else _fill(step.body, values),
            json=_fill_json(step.json, values) if step.has_json else None,
        )
    except httpx.InvalidURL as exc:
        # the URL may hold a captured value once filled: say why only when it is as written
        why = f": {exc}" if "{{" not in step.url else " once its placeholders are filled"
        return fail(f"{here}: invalid URL{why}", step=step.name)
    except UnicodeEncodeError:
        return fail(f"{here}: a header value is not ASCII (once its placeholders are filled)", step=step.name)
    if jar is not None:
        jar.set_cookie_header(request)  # never replaces a Cookie header the step sets itself
    host = request.url.host
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if jar is not None:
                jar.extract_cookies(response)
            problem = _check_status(step, response.status_code, logged_in)
            body = await _read_limited(response) if not problem and step.reads_body else b""
        finally:
            await response.aclose()
    except httpx.UnsupportedProtocol:
        return fail(f"{here}: unsupported URL scheme (use http:// or https://)", step=step.name)
    except httpx.ConnectError as exc:
        return fail(f"{here}: {connect_failure_reason(exc, host, port)}", transient=True, step=step.name)
    except httpx.RemoteProtocolError as exc:
        return fail(f"{here}: {host}:{port} broke the HTTP exchange: {exc}", transient=True, step=step.name)
    except httpx.LocalProtocolError:
        # the message would quote the offending header or URL, which may hold a secret
        return fail(
            f"{here}: the request is not valid HTTP (check its headers and placeholders)", step=step.name
        )
    except (httpx.HTTPError, OSError) as exc:
        reason = connect_failure_reason(exc, host, port)
        return fail(f"{here}: {step.method} failed: {reason}", transient=True, step=step.name)
    code = response.status_code
    if problem:
        return fail(f"{here}: {problem}", step=step.name, status=code)
    problem = _extract(step, response, body, values)
    if problem:
        return fail(f"{here}: {problem}", step=step.name, status=code)
    return code


def _check_status(step: JourneyStep, code: int, logged_in: bool) -> str:
    if step.expect_status:
        if code in step.expect_status:
            return ""
        wanted = " or ".join(str(s) for s in sorted(step.expect_status))
    elif 200 <= code < 300:
        return ""
    else:
        wanted = "2xx"
    hint = ""
    if code == 401:
        hint = " (not authenticated)"
    elif code == 403:
        hint = " (logged in but not authorised)" if logged_in else " (not authorised)"
    return f"expected status {wanted}, got {code}{hint}"


async def _read_limited(response: httpx.Response) -> bytes | None:
    """The body, or None when it is longer than BODY_LIMIT (the rest is not read)."""
    body, truncated = await read_bounded(response, BODY_LIMIT)
    return None if truncated else body


def _extract(step: JourneyStep, response: httpx.Response, body: bytes | None, values: dict[str, str]) -> str:
    """Capture the step's variables into values; a problem (naming no value) when one is missing."""
    document: object = None
    if step.reads_body:
        first = next(e for e in step.extract if e.source == "json")
        if body is None:
            return f"response body is larger than {_LIMIT_TEXT}; cannot extract {first.var}"
        try:
            document = json.loads(body)
        except ValueError:
            return f"response is not JSON; cannot extract {first.var} from json path {first.where!r}"
    for item in step.extract:
        if item.source == "header":
            got = response.headers.get(item.where)
            if not got:
                return f"no {item.var} in response header {item.where!r}"
            values[item.var] = got
            continue
        found = dig(document, item.where)
        if found is MISSING or found is None or found == "":
            return f"no {item.var} at json path {item.where!r}"
        values[item.var] = found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))
    return ""


KIND: ProbeKind[JourneySpec] = ProbeKind(
    name="journey",
    parse=parse,
    run=probe_journey,
    summary="an HTTP user journey (log in, then use the session): up to 10 requests with captured values",
    resources=(HTTP_POOL,),
)
