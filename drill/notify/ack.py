"""Acknowledgements: single-use tokens per page, a tiny HTTP endpoint, and the client `drill ack` uses.

Each page gets its own token (secrets.token_urlsafe(32), 256 bits). `POST /ack/<token>` acknowledges;
`GET /ack/<token>` only shows a confirmation form that POSTs, because chat unfurlers and mail
scanners fetch every link they see and must not acknowledge a page on someone's behalf.
A wrong token is refused with 403, a reused one with 409, one presented after the drill with 410;
every refused POST is recorded as ack.refused, never with the token itself.

The server is plain asyncio (no web framework at run time): one request per connection,
bounded header and body sizes, a per-connection deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import re
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from drill.clock import Clock
from drill.evidence.events import AckRefused, EventDraft
from drill.notify.base import verify_for

Emit = Callable[[EventDraft], None]
OnAck = Callable[[int, str], None]  # (ack instant mono_ns, who acknowledged)

ACK_URL_FILE = "ack.url"  # in the run folder: the endpoint's base URL, for `drill ack`
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_MAX_REFUSALS_RECORDED = 100  # past this, refusals are counted, not journaled (no journal flooding)
_MAX_BODY = 4096
_REQUEST_DEADLINE_S = 5.0


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """The answer to a presented token: accepted, or refused with an HTTP status and a reason."""

    accepted: bool
    status: int  # 200 accepted, 403 unknown, 409 already used, 410 acknowledgements closed
    reason: str
    page_id: str = ""


@dataclass(slots=True)
class _Ticket:
    page_id: str
    on_ack: OnAck
    used: bool = False


def _digest(token: str) -> str:
    # only digests are kept, so a memory dump or a repr never shows a live token
    return hashlib.sha256(token.encode()).hexdigest()


class AckDesk:
    """Issues page ids and single-use tokens, and turns a presented token into an ack or a refusal."""

    def __init__(self, clock: Clock, emit: Emit, base_url: str = "") -> None:
        self.clock = clock
        self.emit = emit
        self.base_url = base_url.rstrip("/")
        self.refusals = 0
        self._tickets: dict[str, _Ticket] = {}
        self._pages = 0
        self._closed = False

    def next_page_id(self) -> str:
        """A page id unique within the run (page-1, page-2, ...)."""
        self._pages += 1
        return f"page-{self._pages}"

    def issue(self, page_id: str, on_ack: OnAck) -> str:
        """A fresh token for one page; `on_ack` runs once, on the first valid presentation."""
        token = secrets.token_urlsafe(32)
        self._tickets[_digest(token)] = _Ticket(page_id, on_ack)
        return token

    def url_for(self, token: str) -> str:
        """The link that goes into the message (empty when no endpoint serves acks)."""
        return f"{self.base_url}/ack/{token}" if self.base_url else ""

    def lookup(self, token: str) -> AckOutcome:
        """What presenting `token` would do, without doing it (the GET confirmation page)."""
        ticket = self._tickets.get(_digest(token)) if _TOKEN.match(token) else None
        if ticket is None:
            return AckOutcome(False, 403, "unknown token")
        if ticket.used:
            return AckOutcome(False, 409, "page already acknowledged", ticket.page_id)
        if self._closed:
            return AckOutcome(False, 410, "acknowledgements are closed (the drill is over)", ticket.page_id)
        return AckOutcome(True, 200, "", ticket.page_id)

    def acknowledge(self, token: str, by: str, *, peer: str = "") -> AckOutcome:
        """Accept `token` once; refuse and record anything else (the token is never recorded)."""
        now = self.clock.monotonic_ns()
        outcome = self.lookup(token)
        if not outcome.accepted:
            self._refuse(now, outcome, by, peer)
            return outcome
        ticket = self._tickets[_digest(token)]
        ticket.used = True
        ticket.on_ack(now, by)
        return AckOutcome(True, 200, "acknowledged", ticket.page_id)

    def close(self) -> None:
        """Refuse every later presentation with 410 (the drill is over)."""
        self._closed = True

    def _refuse(self, now: int, outcome: AckOutcome, by: str, peer: str) -> None:
        self.refusals += 1
        if self.refusals > _MAX_REFUSALS_RECORDED:
            return
        refused = AckRefused(outcome.reason, outcome.status, by, peer, outcome.page_id or "")
        self.emit(EventDraft(refused, now))


# --- the HTTP endpoint --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> _Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise _BadRequest from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > _MAX_BODY:
        raise _BadRequest
    body = await reader.readexactly(int(length_text)) if int(length_text) else b""
    target = urllib.parse.urlsplit(parts[1])
    query = dict(urllib.parse.parse_qsl(target.query))
    return _Request(parts[0].upper(), target.path, query, headers, body)


def _who(request: _Request, peer: str) -> str:
    """Who acknowledged: a `by` field (form, JSON or query), else the peer address."""
    by = request.query.get("by", "")
    ctype = request.headers.get("content-type", "")
    try:
        if ctype.startswith("application/json") and request.body:
            raw = json.loads(request.body)
            by = str(raw.get("by", "")) if isinstance(raw, dict) else by
        elif request.body:
            by = dict(urllib.parse.parse_qsl(request.body.decode())).get("by", by)
    except (ValueError, UnicodeDecodeError):
        pass
    by = "".join(ch for ch in by if ch.isprintable())[:100].strip()
    return by or f"http {peer}"


_FORM = """<!doctype html><meta charset="utf-8"><title>drill: acknowledge {page}</title>
<h1>Acknowledge drill page {page}</h1>
<form method="post"><label>Your name <input name="by" autofocus></label>
<button type="submit">Acknowledge</button></form>"""


def _response(status: int, body: str, ctype: str = "text/plain; charset=utf-8") -> bytes:
    reasons = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
    reasons |= {409: "Conflict", 410: "Gone"}
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + data


class AckServer:
    """Serves GET/POST /ack/<token> for one AckDesk on host:port (port 0: any free port)."""

    def __init__(self, desk: AckDesk, host: str = "127.0.0.1", port: int = 0, public_url: str = "") -> None:
        self.desk = desk
        self.host = host
        self.port = port
        self.public_url = public_url.rstrip("/")  # what links say, when host is not how people reach it
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The base URL links use (http://host:port unless public_url was given)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=16384)
        self.port = self._server.sockets[0].getsockname()[1]
        self.desk.base_url = self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AckServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def write_url_file(self, run_dir: Path) -> Path:
        """Write run_dir/ack.url (the base URL) so `drill ack --run-dir` finds the endpoint."""
        path = run_dir / ACK_URL_FILE
        path.write_text(self.url + "\n", encoding="utf-8")
        return path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = str(peer_info[0]) if isinstance(peer_info, tuple) else ""
        try:
            async with asyncio.timeout(_REQUEST_DEADLINE_S):
                try:
                    request = await _read_request(reader)
                except _BadRequest:
                    writer.write(_response(400, "bad request\n"))
                else:
                    writer.write(self._handle(request, peer))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a slow or vanished client; nothing to record
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _handle(self, request: _Request, peer: str) -> bytes:
        prefix = "/ack/"
        if not request.path.startswith(prefix) or "/" in request.path[len(prefix) :]:
            return _response(404, "not found: use /ack/<token>\n")
        token = request.path[len(prefix) :]
        if request.method == "GET":
            outcome = self.desk.lookup(token)
            if not outcome.accepted:
                return _response(outcome.status, f"refused: {outcome.reason}\n")
            return _response(200, _FORM.format(page=html.escape(outcome.page_id)), "text/html; charset=utf-8")
        if request.method != "POST":
            return _response(405, "use POST to acknowledge\n")
        outcome = self.desk.acknowledge(token, _who(request, peer), peer=peer)
        if not outcome.accepted:
            return _response(outcome.status, f"refused: {outcome.reason}\n")
        return _response(200, f"acknowledged {outcome.page_id}\n")


# --- the client side of `drill ack` -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckReply:
    """What the endpoint answered to `drill ack` (status 0: not reachable)."""

    status: int
    text: str

    @property
    def accepted(self) -> bool:
        return self.status == 200


def read_ack_url(run_dir: Path) -> str:
    """The endpoint's base URL from run_dir/ack.url ('' when the file is absent)."""
    try:
        return (run_dir / ACK_URL_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""


def latest_ack_url(runs_dir: Path) -> str:
    """The base URL of the most recently started run under runs_dir that serves acks ('' if none)."""
    files = sorted(runs_dir.glob(f"*/{ACK_URL_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return files[0].read_text(encoding="utf-8").strip() if files else ""


def ack_target(token_or_link: str, base_url: str) -> str:
    """The URL to POST: the link itself when given one, else base_url/ack/TOKEN."""
    if token_or_link.startswith(("http://", "https://")):
        return token_or_link
    return f"{base_url.rstrip('/')}/ack/{token_or_link}"


def post_ack(url: str, by: str, timeout_s: float = 10.0) -> AckReply:
    """POST one acknowledgement (blocking: this is for the command line, not the runner)."""
    try:
        with httpx.Client(trust_env=False, timeout=timeout_s, verify=verify_for(url)) as client:
            response = client.post(url, data={"by": by})
    except httpx.HTTPError as exc:
        return AckReply(0, f"cannot reach the ack endpoint ({type(exc).__name__})")
    return AckReply(response.status_code, response.text.strip())
