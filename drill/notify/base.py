"""The notifier contract: one spec dataclass and one `send` per kind, registered by name.

`send(spec, message, ctx) -> SendResult` never raises: a page that cannot be delivered is data
(ok=False with a reason a person can act on), recorded in the journal, and the drill goes on.
Delivery is retried with tenacity within a bound (a number of attempts and a total deadline);
only transient failures (timeouts, connection errors, 5xx, 429) are retried.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import httpx
import tenacity

from drill.clock import Clock
from drill.errors import EXIT_USAGE, DrillError
from drill.secrets import cut_end
from drill.units import human_ms

S = TypeVar("S")


class NotifierInvalid(DrillError):
    """Raised when a contact's `via` is unknown or its parameters cannot be used."""

    exit_code = EXIT_USAGE


class DeliveryFailed(Exception):
    """Raised inside a notifier when one delivery attempt fails; `transient` ones are retried."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Message:
    """What a page says: which drill, which assets, what is asked, and how to acknowledge."""

    drill: str
    run_id: str
    page_id: str
    chain: str
    contact: str
    assets: tuple[str, ...]
    asked: str  # what the person is asked to do, one sentence
    ack_url: str = ""  # empty when no ack endpoint runs
    ack_token: str = ""
    action: Literal["trigger", "resolve"] = "trigger"
    severity: Literal["critical", "error", "warning", "info"] = "critical"

    @property
    def ack_command(self) -> str:
        """The shell command that acknowledges this page."""
        return f"drill ack {self.ack_token}" if self.ack_token else ""

    @property
    def dedup_key(self) -> str:
        """Stable per page, so a later resolve matches its trigger (PagerDuty)."""
        return f"drill-{self.run_id}-{self.page_id}"

    @property
    def title(self) -> str:
        what = "resolved" if self.action == "resolve" else "acknowledge"
        return f"[drill] {self.drill}: {what} page for {', '.join(self.assets) or 'contact drill'}"

    def how_to_ack(self) -> list[str]:
        lines = []
        if self.ack_url:
            lines.append(f"Acknowledge: {self.ack_url}")
        if self.ack_command:
            lines.append(f"or from a shell: {self.ack_command}")
        return lines

    def text(self) -> str:
        """Plain-text body: the same facts in every channel."""
        lines = [
            self.title,
            "",
            f"Drill: {self.drill} (run {self.run_id})",
            f"Assets: {', '.join(self.assets) or '(none: contact-chain drill)'}",
            f"Chain: {self.chain}; paged: {self.contact}",
            f"Asked: {self.asked}",
        ]
        if self.action == "trigger":
            lines += ["", *self.how_to_ack()]
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        """Markdown body for chat robots (DingTalk, Slack mrkdwn is close enough for our use)."""
        lines = [
            f"**{self.title}**",
            "",
            f"- Drill: {self.drill} (run `{self.run_id}`)",
            f"- Assets: {', '.join(self.assets) or '(none: contact-chain drill)'}",
            f"- Chain: {self.chain}; paged: {self.contact}",
            f"- Asked: {self.asked}",
        ]
        if self.action == "trigger" and self.ack_url:
            lines += ["", f"[Acknowledge]({self.ack_url})"]
        if self.action == "trigger" and self.ack_command:
            lines += ["", f"or from a shell: `{self.ack_command}`"]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The generic JSON form (webhook payload, PagerDuty custom_details)."""
        return {
            "drill": self.drill,
            "run_id": self.run_id,
            "page_id": self.page_id,
            "chain": self.chain,
            "contact": self.contact,
            "assets": list(self.assets),
            "asked": self.asked,
            "action": self.action,
            "severity": self.severity,
            "ack_url": self.ack_url,
            "ack_command": self.ack_command,
            "text": self.text(),
        }


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one page: delivered or not, why, and after how many attempts."""

    ok: bool
    reason: str = ""
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on one delivery: attempts, a deadline for all of them, and one per attempt."""

    attempts: int = 3
    deadline_ms: int = 15_000
    attempt_timeout_ms: int = 5_000
    wait_ms: int = 250  # first back-off; doubles per attempt, capped at 4x

    def wait_s(self) -> tenacity.wait.wait_base:
        first = self.wait_ms / 1000
        return tenacity.wait_exponential(multiplier=first, min=first, max=4 * first)


def _keep(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class NotifyContext:
    """What the runner gives a notifier: a clock (DingTalk timestamps), retry bounds, a redactor."""

    clock: Clock
    retry: RetryPolicy = RetryPolicy()
    redact: Callable[[str], str] = field(default=_keep)


@dataclass(frozen=True, slots=True)
class NotifierKind(Generic[S]):
    """A registered notifier kind: parse resolved params into a spec; send never raises."""

    name: str
    parse: Callable[[Mapping[str, Any]], S]
    send: Callable[[S, Message, NotifyContext], Awaitable[SendResult]]
    summary: str


async def deliver_with_retries(attempt: Callable[[], Awaitable[None]], ctx: NotifyContext) -> SendResult:
    """Run `attempt` until it succeeds, fails permanently, or the retry bounds run out.

    Every attempt is counted; each has its own timeout and all share one deadline. The reason
    of the last failure is kept (redacted: transport errors may quote a secret URL).
    """
    policy = ctx.retry
    attempts = 0
    last = ""

    async def one() -> None:
        nonlocal attempts, last
        attempts += 1
        try:
            async with asyncio.timeout(policy.attempt_timeout_ms / 1000):
                await attempt()
        except TimeoutError:
            last = f"no answer within {human_ms(policy.attempt_timeout_ms)}"
            raise DeliveryFailed(last, transient=True) from None
        except DeliveryFailed as exc:
            last = exc.reason
            raise

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max(1, policy.attempts)),
        wait=policy.wait_s(),
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, DeliveryFailed) and exc.transient),
        reraise=True,
    )
    try:
        async with asyncio.timeout(policy.deadline_ms / 1000):
            await retrying(one)
    except TimeoutError:
        why = f"gave up after {human_ms(policy.deadline_ms)}"
        return SendResult(False, ctx.redact(f"{why} ({last})" if last else why), attempts)
    except DeliveryFailed:
        return SendResult(False, ctx.redact(last), attempts)
    except Exception as exc:  # a notifier bug must not stop the drill; it is recorded instead
        return SendResult(False, ctx.redact(f"internal error: {type(exc).__name__}: {exc}"), attempts)
    return SendResult(True, "", attempts)


SNIPPET_LIMIT = 120  # characters of a receiver's error text kept in a reason


def snippet(text: str, redact: Callable[[str], str] = _keep) -> str:
    """A receiver's error text on one line, shortened: redacted first, so a cut cannot split a secret."""
    return cut_end(redact(text).strip().replace("\n", " "), SNIPPET_LIMIT)


def http_failure(status: int, body: str = "", redact: Callable[[str], str] = _keep) -> DeliveryFailed:
    """Map an HTTP status to a DeliveryFailed: 5xx, 408 and 429 are worth retrying, others not.

    The body is redacted before it is cut (a receiver may echo a secret back)."""
    transient = status >= 500 or status in (408, 429)
    text = snippet(body, redact)
    return DeliveryFailed(f"HTTP {status}" + (f": {text}" if text else ""), transient=transient)


# --- parameter helpers shared by the kinds' parse functions ---------------------------------------


def require_str(params: Mapping[str, Any], key: str, kind: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise NotifierInvalid(f"{kind} contact needs `{key}` (a non-empty string)")
    return value


def optional_str(params: Mapping[str, Any], key: str, kind: str, default: str = "") -> str:
    value = params.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise NotifierInvalid(f"{kind} contact: `{key}` must be a string, not {type(value).__name__}")
    return value


def require_http_url(params: Mapping[str, Any], key: str, kind: str) -> str:
    url = require_str(params, key, kind)
    if not url.startswith(("http://", "https://")):
        # never quote the value: a webhook URL usually carries a token
        raise NotifierInvalid(f"{kind} contact: `{key}` must start with http:// or https://")
    return url


def str_mapping(params: Mapping[str, Any], key: str, kind: str) -> dict[str, str]:
    value = params.get(key) or {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise NotifierInvalid(f"{kind} contact: `{key}` must map names to strings")
    return dict(value)


def str_list(params: Mapping[str, Any], key: str, kind: str) -> tuple[str, ...]:
    value = params.get(key)
    items: Sequence[Any] = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not items or not all(isinstance(v, str) and v for v in items):
        raise NotifierInvalid(f"{kind} contact needs `{key}` (a string or a list of strings)")
    return tuple(items)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context for every page (loading the CA bundle costs ~150 ms: do it once)."""
    return ssl.create_default_context()


def verify_for(url: str) -> ssl.SSLContext | bool:
    """Certificate checking for https; plain http has no TLS, so it needs no CA bundle loaded."""
    return tls_context() if url.lower().startswith("https://") else False


_LAZY_MODULES = ("h11", "httpcore", "anyio._backends._asyncio", "anyio.streams.tls")


def _warm() -> None:
    tls_context()
    for name in _LAZY_MODULES:  # httpx imports these on first use: ~100 ms on a busy machine
        importlib.import_module(name)


async def warm_up() -> None:
    """Do the slow first-use work in a thread, so the first page is neither late nor blocks the loop.

    The runner should await this at start-up, before any trigger instant.
    """
    await asyncio.to_thread(_warm)


async def post_json(
    url: str, payload: Mapping[str, Any], ctx: NotifyContext, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """One POST of a JSON payload; any failure becomes a DeliveryFailed (never quoting the URL)."""
    timeout = ctx.retry.attempt_timeout_ms / 1000
    try:
        # trust_env=False: a proxy or .netrc from the environment must not reroute a page
        async with httpx.AsyncClient(
            trust_env=False, timeout=timeout, follow_redirects=False, verify=verify_for(url)
        ) as client:
            response = await client.post(url, json=dict(payload), headers=dict(headers or {}))
    except httpx.TimeoutException:
        raise DeliveryFailed(
            f"no answer within {human_ms(ctx.retry.attempt_timeout_ms)}", transient=True
        ) from None
    except httpx.TransportError as exc:
        raise DeliveryFailed(f"cannot reach the receiver ({type(exc).__name__})", transient=True) from None
    if not 200 <= response.status_code < 300:
        raise http_failure(response.status_code, response.text, ctx.redact)
    return response
