"""The probe contract: one spec dataclass and one async function per kind, registered by name.

The scheduler, not the probe, owns timing and the deadline (it wraps each call in
asyncio.timeout); a probe only looks and says what it saw. A probe never raises: every failure
is an Observation with a reason a person can act on.

A kind that needs something shared by all its probes for the whole run (a pool of HTTP
clients, say) declares it as a `ResourceKind` in `ProbeKind.resources`; the runner opens each
declared resource once before the first tick and closes it after the last, and a probe gets it
with `ctx.resource(KIND)`. So neither the runner nor the scheduler names any protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from drill.errors import UsageError
from drill.evidence.events import EventDraft
from drill.jsontypes import JsonValue

Params = Mapping[str, object]  # a kind's parameters as written in the playbook, secrets resolved


@dataclass(frozen=True, slots=True)
class Observation:
    """What one probe execution saw. latency_us is filled in by the scheduler."""

    ok: bool
    reason: str = ""
    transient: bool = False
    latency_us: int = 0
    detail: Mapping[str, JsonValue] = field(default_factory=dict)


def ok(**detail: JsonValue) -> Observation:
    return Observation(ok=True, detail=detail)


def fail(reason: str, *, transient: bool = False, **detail: JsonValue) -> Observation:
    return Observation(ok=False, reason=reason, transient=transient, detail=detail)


class SharedResource(Protocol):
    """Something the probes of one or more kinds share for a whole run."""

    async def aclose(self) -> None: ...


R = TypeVar("R", bound=SharedResource)


@dataclass(frozen=True, slots=True)
class ResourceKind(Generic[R]):
    """A shared resource a probe kind declares: `open` builds it once per run, sized by the
    specs of every probe that uses it (so it can be warmed before the first tick)."""

    name: str
    open: Callable[[Sequence[object]], R]


class ProbeContext(Protocol):
    """What the runner gives a probe: where it is, its deadline, its shared resources, an event sink."""

    asset: str
    probe: str
    timeout_s: float
    memory: dict[str, Any]  # survives between ticks of this one probe (canary sequence numbers ...)

    def resource(self, kind: ResourceKind[R]) -> R:
        """The run's instance of a resource this probe's kind declared."""
        ...

    def monotonic_ns(self) -> int: ...

    def emit(self, event: EventDraft) -> None:
        """Add an event to the journal (canary writes, RPO measurements)."""
        ...

    def redact(self, text: str) -> str:
        """text with every form of the run's secrets masked: call it BEFORE cutting a text."""
        ...


def redact_then_cut(ctx: ProbeContext, text: str, limit: int) -> str:
    """The first `limit` characters of text, redacted first: a secret cut in half would no longer
    be recognised by any later redaction, and its first half would leak."""
    return ctx.redact(text)[:limit]


def check_port(kind: str, field_name: str, value: object) -> int:
    """A TCP/UDP port from resolved params (a secret resolves to text, so "5432" counts), else a
    UsageError naming the field, never the value (it may come from a secret)."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError(f"{kind} probe: {field_name} must be an integer from 1 to 65535")
    return value


def check_text(kind: str, field_name: str, value: object) -> str:
    """A host name or similar: non-empty text without control characters."""
    text = str(value).strip() if value is not None else ""
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"{kind} probe: {field_name} must be non-empty text without control characters")
    return text


def check_http_url(
    kind: str, field_name: str, url: str, *, templated: bool = False, whole: bool = True
) -> str:
    """An http(s) URL with a host and a valid port, else a UsageError naming the field only.
    With `templated`, a URL still holding {{placeholders}} is only checked where it can be.
    With `whole=False` only what would otherwise escape the probe as an exception is checked (a
    port out of range, a control character); a URL that does not parse, or an unsupported scheme,
    is then left for the probe to report as its reason (the http probe's historical contract)."""
    import httpx  # here, not at module level: base stays free of any protocol library at import

    hint = "write e.g. https://app.example.com/health"
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise UsageError(f"{kind} probe: {field_name} holds a control character", hint=hint)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        if not whole:
            return url
        raise UsageError(f"{kind} probe: {field_name} is not a valid URL", hint=hint) from None
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UsageError(f"{kind} probe: {field_name} has a port outside 1 to 65535", hint=hint)
    if not whole or (templated and "{{" in url):
        return url
    if parsed.scheme not in ("http", "https"):
        raise UsageError(f"{kind} probe: {field_name} must start with http:// or https://", hint=hint)
    if not parsed.host:
        raise UsageError(f"{kind} probe: {field_name} has no host", hint=hint)
    return url


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_headers(kind: str, field_name: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Header names must be HTTP tokens and values ASCII without line breaks; a UsageError names
    the header, never its value (values are where tokens and passwords go)."""
    for name, value in pairs:
        if not name or not set(name) <= _TOKEN:
            raise UsageError(f"{kind} probe: {field_name}: a header name is not a valid HTTP header name")
        if not value.isascii() or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
            raise UsageError(
                f"{kind} probe: {field_name}: the value of header {name} must be ASCII without line breaks",
                hint="percent-encode or base64 the value; HTTP header values are ASCII",
            )


S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class ProbeKind(Generic[S]):
    """A registered probe kind. `finish` (optional) runs once after the probe loops stopped, e.g.
    to read which canary writes survived a failover and emit an rpo.measured event."""

    name: str
    parse: Callable[[Params], S]
    run: Callable[[S, ProbeContext], Awaitable[Observation]]
    summary: str
    finish: Callable[[S, ProbeContext], Awaitable[None]] | None = None
    resources: tuple[ResourceKind[Any], ...] = ()

    @property
    def schema_file(self) -> str:
        return f"probes/{self.name}.schema.json"
