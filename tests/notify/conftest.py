"""Real receivers on 127.0.0.1 port 0 for the notifier tests: an HTTP catcher and an SMTP server."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from drill.clock import monotonic_ns
from drill.evidence.events import EventDraft, Payload

P = TypeVar("P", bound=Payload)


@dataclass
class Received:
    """One request as the receiver saw it, with its arrival instant (time.monotonic_ns)."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes
    at_ns: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP receiver: answers `status` (or `statuses` first, one per request), or hangs."""

    url: str = ""
    status: int = 200
    statuses: list[int] = field(default_factory=list)
    reply: str = "ok"
    hang: bool = False
    requests: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(
            request.method,
            request.path,
            request.raw_path.partition("?")[2],  # as sent: query_string would be decoded
            dict(request.headers),
            await request.read(),
            monotonic_ns(),
        )
        self.requests.append(got)
        async with self._changed:
            self._changed.notify_all()
        if self.on_request is not None:
            self.on_request(got)
        if self.hang:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else self.status
        return web.Response(status=status, text=self.reply)

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Received]:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    rec.release.set()
    await runner.cleanup()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: bytes


@dataclass
class SmtpCatcher:
    """aiosmtpd's SMTP protocol served on this loop, 127.0.0.1 port 0; records mails and logins."""

    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        self.arrived.set()
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login = data.login.decode() if isinstance(data.login, bytes) else str(data.login)
        password = data.password.decode() if isinstance(data.password, bytes) else str(data.password)
        self.logins.append((login, password))
        return AuthResult(success=password == "s3cret-smtp-pass", handled=False)


async def start_smtp(
    catcher: SmtpCatcher,
    *,
    tls_context: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    auth_require_tls: bool = True,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            catcher,
            hostname="drill-test",
            authenticator=catcher.authenticate,
            tls_context=tls_context,
            require_starttls=require_starttls,
            auth_require_tls=auth_require_tls,
        ),
        "127.0.0.1",
        0,
    )
    catcher.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpCatcher]:
    catcher = SmtpCatcher()
    server = await start_smtp(catcher, auth_require_tls=False)
    yield catcher
    server.close()
    await server.wait_closed()


@dataclass(frozen=True, slots=True)
class Emitted(Generic[P]):
    """One emitted event whose payload is known to be a P: its instant, payload and asset."""

    mono_ns: int
    payload: P
    asset: str | None


class Journal:
    """An in-memory emit sink."""

    def __init__(self) -> None:
        self.events: list[EventDraft] = []
        self.changed = asyncio.Event()

    def __call__(self, draft: EventDraft) -> None:
        self.events.append(draft)
        self.changed.set()

    async def wait_for(self, kind: type[P], timeout_s: float = 10.0) -> Emitted[P]:
        """The first emitted event of this type, awaited (never polled with sleeps)."""
        async with asyncio.timeout(timeout_s):
            while not (found := self.of(kind)):
                self.changed.clear()
                await self.changed.wait()
        return found[0]

    def of(self, kind: type[P]) -> list[Emitted[P]]:
        """The emitted events of one payload type, in emission order."""
        return [Emitted(e.mono_ns, e.payload, e.asset) for e in self.events if isinstance(e.payload, kind)]


@pytest.fixture
def journal() -> Journal:
    return Journal()
