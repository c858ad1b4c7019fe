"""The embedded demo lab: a small simulated estate on 127.0.0.1, run with asyncio.

`drill demo` starts it in-process on free ports; `drill lab up` runs it as a background process
on fixed ports (see PORTS), so a playbook such as `drill init --lab`'s can name them literally.

- `primary` and `secondary`: HTTP services; `front`: the switch that proxies to the active one.
- `reports`: an internal HTTP service (tier 2 of the demo).
- `kv`: a replicated key-value service. The master acknowledges a write at once; the replica
  applies it `kv_lag_ms` later. Failing over promotes the replica and drops what it had not yet
  applied, so acknowledged writes are really lost (a real, measurable RPO).
- `control`: POST /control/... injects failures (crash, hang, slow, partial outage) and switches
  sides, so playbooks drive the lab with plain `action: {http: ...}` steps. POST /hooks/pager is
  a webhook contact that acknowledges every page through its ack URL after `ack_delay_ms`.
  GET /health says the lab answers (with its PID); GET /control/state shows every mode.

With `port_base` 0 every server listens on a free port; otherwise server NAME listens on
`port_base + PORTS[NAME]`. Behaviour is deterministic (partial outage fails every n-th request;
lag is a fixed delay), so the demo's outcome is stable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["ok", "crash", "hang", "slow", "partial"]
MODES: tuple[Mode, ...] = ("ok", "crash", "hang", "slow", "partial")
_HEAD_LIMIT = 64 * 1024

# Where each server listens, as an offset from LabConfig.port_base (a fixed layout: a playbook
# written for the lab names these ports literally).
PORTS: dict[str, int] = {"control": 0, "front": 1, "primary": 2, "secondary": 3, "reports": 4, "kv": 5}
DEFAULT_PORT_BASE = 18780  # 18780-18785: outside the usual 8080/18080 development ports
LabLog = Callable[[str, dict[str, Any]], None]  # (event, fields): what the background lab logs


def lab_urls(port_base: int) -> dict[str, str]:
    """Base URL of every lab server when the lab listens from `port_base` (not 0)."""
    return {name: f"http://127.0.0.1:{port_base + offset}" for name, offset in PORTS.items()}


@dataclass(frozen=True, slots=True)
class LabConfig:
    """Knobs of the lab; the defaults make the demo's outcome."""

    kv_lag_ms: int = 400
    slow_ms: int = 1500
    partial_every: int = 2  # in partial mode every n-th request answers 503
    ack_delay_ms: int = 700
    upstream_timeout_ms: int = 800
    port_base: int = 0  # 0: every server on a free port; else the fixed layout of PORTS


def _port(config: LabConfig, name: str) -> int:
    return config.port_base + PORTS[name] if config.port_base else 0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, data: object, **headers: str) -> Response:
        return cls(status, json.dumps(data).encode() + b"\n", headers=tuple(headers.items()))


Handler = Callable[[Request], Awaitable[Response | None]]  # None: never answer (a hang)
_REASONS = {200: "OK", 204: "No Content", 404: "Not Found", 405: "Method Not Allowed", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 400: "Bad Request"}  # fmt: skip


class HttpServer:
    """A minimal HTTP/1.1 server on asyncio streams, with a crash that really refuses connections."""

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.handler = handler
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listening socket and drop every open connection (a crash, as clients see it)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                response = await self.handler(request)
                if response is None:
                    return  # hang answered by nobody: the connection closes unanswered
                writer.write(_render(response))
                await writer.drain()
                if request.headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:
            # Shutdown of the loop: end quietly (on 3.11 a cancelled connection task is logged
            # as an error by asyncio's stream callback).
            return
        finally:
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    if len(head) > _HEAD_LIMIT:
        raise ValueError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    parts = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(parts.query))
    return Request(method.upper(), parts.path, query, headers, body)


def _render(response: Response) -> bytes:
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    head += [f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]
    head += [f"{k}: {v}" for k, v in response.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + response.body


@dataclass
class Service:
    """An HTTP service whose failure mode the control API sets."""

    name: str
    config: LabConfig
    mode: Mode = "ok"
    requests: int = 0
    server: HttpServer = field(init=False)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.server = HttpServer(self.handle, _port(self.config, self.name))

    async def handle(self, request: Request) -> Response | None:
        self.requests += 1
        if self.mode == "hang":
            await self._release.wait()
            return Response.json(503, {"service": self.name, "error": "released after hang"})
        if self.mode == "slow":
            await asyncio.sleep(self.config.slow_ms / 1000)
        if self.mode == "partial" and self.requests % self.config.partial_every == 0:
            return Response.json(503, {"service": self.name, "error": "partial outage"})
        return Response.json(200, {"service": self.name, "status": "ok", "path": request.path})

    async def set_mode(self, mode: Mode) -> None:
        if self.mode == "hang":
            self._release.set()
            self._release = asyncio.Event()
        self.mode = mode
        if mode == "crash" and self.server.running:
            await self.server.stop()
        elif mode != "crash" and not self.server.running:
            await self.server.start()  # the same port again, as a restarted process would


@dataclass
class Front:
    """The switch: forwards each request to the active side (primary until failover)."""

    sides: dict[str, Service]
    config: LabConfig
    active: str = "primary"
    server: HttpServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = HttpServer(self.handle, _port(self.config, "front"))

    async def handle(self, request: Request) -> Response:
        side = self.sides[self.active]
        timeout_s = self.config.upstream_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout_s):
                status, body = await _forward(side.server.port, request)
        except TimeoutError:
            return Response.json(
                504, {"error": f"{side.name} did not answer within {self.config.upstream_timeout_ms} ms"}
            )
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            return Response.json(502, {"error": f"{side.name} unreachable: {type(exc).__name__}"})
        return Response(status, body, headers=(("X-Served-By", side.name),))


async def _forward(port: int, request: Request) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{request.method} {request.path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n".encode()
            + request.body
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        return status, await reader.readexactly(length)
    finally:
        writer.close()


@dataclass
class KeyValue:
    """A master and a replica that applies each write kv_lag_ms later; failover loses the backlog."""

    config: LabConfig
    stores: dict[str, dict[str, str]] = field(default_factory=lambda: {"a": {}, "b": {}})
    master: str = "a"
    master_down: bool = False
    lost_on_failover: int = 0
    unshipped: int = 0  # writes only the crashed master holds
    _pending: list[asyncio.TimerHandle] = field(default_factory=list)
    server: HttpServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = HttpServer(self.handle, _port(self.config, "kv"))

    @property
    def replica(self) -> str:
        return "b" if self.master == "a" else "a"

    async def handle(self, request: Request) -> Response:
        if self.master_down:
            return Response.json(503, {"error": f"kv master {self.master} is down"})
        if request.path == "/health":
            return Response.json(200, {"master": self.master})
        if request.path == "/kv" and request.method == "GET":
            prefix = request.query.get("prefix", "")
            store = self.stores[self.master]
            return Response.json(200, {"items": {k: v for k, v in store.items() if k.startswith(prefix)}})
        if request.path.startswith("/kv/") and request.method == "PUT":
            key = urllib.parse.unquote(request.path[4:])
            self._write(key, request.body.decode())
            return Response.json(200, {"ok": True, "master": self.master})
        if request.path.startswith("/kv/") and request.method == "GET":
            value = self.stores[self.master].get(urllib.parse.unquote(request.path[4:]))
            return Response.json(200 if value is not None else 404, {"value": value})
        return Response.json(404, {"error": "no such endpoint"})

    def _write(self, key: str, value: str) -> None:
        self.stores[self.master][key] = value
        replica = self.stores[self.replica]
        handle = asyncio.get_running_loop().call_later(
            self.config.kv_lag_ms / 1000, self._apply, replica, key, value
        )
        self._pending.append(handle)

    def _apply(self, replica: dict[str, str], key: str, value: str) -> None:
        replica[key] = value
        self._pending = [h for h in self._pending if not h.cancelled() and h.when() > _now()]

    def crash(self) -> None:
        """The master dies: what it had not yet shipped to the replica exists only on its disk."""
        self.master_down = True
        self.unshipped += self._drop_backlog()

    def _drop_backlog(self) -> int:
        dropped = 0
        for handle in self._pending:
            if not handle.cancelled() and handle.when() > _now():
                handle.cancel()
                dropped += 1
        self._pending = []
        return dropped

    def failover(self) -> int:
        """Promote the replica; the writes it had not applied yet are gone. Returns how many."""
        lost = self._drop_backlog() + self.unshipped
        self.unshipped = 0
        self.lost_on_failover += lost
        self.master = self.replica
        self.master_down = False
        return lost

    def failback(self) -> None:
        """Resynchronise the old master from the current one and make it master again."""
        self.stores[self.replica] = dict(self.stores[self.master])
        self.master = self.replica
        self.master_down = False


def _now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class Lab:
    """The running lab; use `async with Lab.start(config) as lab:`."""

    config: LabConfig
    services: dict[str, Service]
    front: Front
    kv: KeyValue
    control: HttpServer | None = None
    pages: list[dict[str, Any]] = field(default_factory=list)
    acks: list[int] = field(default_factory=list)  # status of each ack POST
    log: LabLog | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, config: LabConfig | None = None, log: LabLog | None = None) -> AsyncIterator[Lab]:
        """Start every server on 127.0.0.1 (free ports, or config.port_base's layout); stop them
        all on exit. An OSError (a port in use) propagates once the servers already started are
        stopped. `log` hears each control request, page and acknowledgement."""
        config = config or LabConfig()
        services = {name: Service(name, config) for name in ("primary", "secondary", "reports")}
        lab = cls(
            config,
            services,
            Front({k: services[k] for k in ("primary", "secondary")}, config),
            KeyValue(config),
            log=log,
        )
        lab.control = HttpServer(lab.handle_control, _port(config, "control"))
        servers = [s.server for s in services.values()] + [lab.front.server, lab.kv.server, lab.control]
        try:
            for server in servers:
                await server.start()
            yield lab
        finally:
            for task in list(lab._tasks):
                task.cancel()
            for service in services.values():
                service._release.set()
            for server in servers:
                await server.stop()

    @property
    def urls(self) -> dict[str, str]:
        assert self.control is not None
        urls = {name: s.server.url for name, s in self.services.items()}
        return {**urls, "front": self.front.server.url, "kv": self.kv.server.url, "control": self.control.url}

    def env(self) -> dict[str, str]:
        """Environment variables for playbooks/demo.yaml (each a whole URL: references are whole strings)."""
        u = self.urls
        c = u["control"]
        return {
            "DRILL_LAB_FRONT_URL": f"{u['front']}/health",
            "DRILL_LAB_PRIMARY_URL": f"{u['primary']}/health",
            "DRILL_LAB_SECONDARY_URL": f"{u['secondary']}/health",
            "DRILL_LAB_REPORTS_URL": f"{u['reports']}/health",
            "DRILL_LAB_KV_URL": u["kv"],
            "DRILL_LAB_CONTROL_URL": c,
            "DRILL_LAB_DISASTER_URL": f"{c}/control/disaster",
            "DRILL_LAB_FAILOVER_URL": f"{c}/control/failover",
            "DRILL_LAB_FAILBACK_URL": f"{c}/control/failback",
            "DRILL_LAB_KV_FAILOVER_URL": f"{c}/control/kv/failover",
            "DRILL_LAB_KV_FAILBACK_URL": f"{c}/control/kv/failback",
            "DRILL_LAB_RECOVER_PRIMARY_URL": f"{c}/control/primary/ok",
            "DRILL_LAB_RECOVER_REPORTS_URL": f"{c}/control/reports/ok",
            "DRILL_LAB_PAGER_URL": f"{c}/hooks/pager",
        }

    def state(self) -> dict[str, Any]:
        return {
            "modes": {name: s.mode for name, s in self.services.items()},
            "active": self.front.active,
            "kv": {"master": self.kv.master, "down": self.kv.master_down, "lost": self.kv.lost_on_failover},
            "pages": len(self.pages),
        }

    def _log(self, event: str, **fields: Any) -> None:
        if self.log is not None:
            self.log(event, fields)

    async def handle_control(self, request: Request) -> Response:
        if request.path == "/hooks/pager" and request.method == "POST":
            return self._page(request)
        if request.method == "GET" and request.path == "/health":
            return Response.json(200, {"lab": "drill", "pid": os.getpid(), "urls": self.urls})
        if request.method == "GET" and request.path == "/control/state":
            return Response.json(200, self.state())
        if request.method != "POST":
            return Response.json(405, {"error": "use POST"})
        parts = request.path.strip("/").split("/")
        result = await self._control(parts[1:] if parts[:1] == ["control"] else [])
        if result is None:
            self._log("lab.control.unknown", path=request.path)
            return Response.json(404, {"error": f"unknown control {request.path}"})
        self._log("lab.control", path=request.path, **result)
        return Response.json(200, {**result, "state": self.state()})

    async def _control(self, parts: list[str]) -> dict[str, Any] | None:
        match parts:
            case [name, mode] if name in self.services and mode in MODES:
                await self.services[name].set_mode(mode)
                return {"done": f"{name} {mode}"}
            case ["failover"]:
                self.front.active = "secondary"
                return {"done": "front serves secondary"}
            case ["failback"]:
                self.front.active = "primary"
                return {"done": "front serves primary"}
            case ["kv", "crash"]:
                self.kv.crash()
                return {"done": "kv master down"}
            case ["kv", "failover"]:
                return {"done": "kv replica promoted", "lost": self.kv.failover()}
            case ["kv", "failback"]:
                self.kv.failback()
                return {"done": "kv failed back"}
            case ["disaster"]:
                # The primary site goes dark: web primary and kv master crash, reports crawls.
                await self.services["primary"].set_mode("crash")
                self.kv.crash()
                await self.services["reports"].set_mode("slow")
                return {"done": "primary site down"}
            case ["restore"]:
                # The primary site is repaired: its services answer again; the front and the kv
                # master stay where the operators put them (failing back is a step of its own).
                await self.services["primary"].set_mode("ok")
                await self.services["reports"].set_mode("ok")
                return {"done": "primary site restored"}
        return None

    def _page(self, request: Request) -> Response:
        try:
            page = json.loads(request.body or b"{}")
        except ValueError:
            return Response.json(400, {"error": "expected JSON"})
        if not isinstance(page, dict):
            return Response.json(400, {"error": "expected a JSON object"})
        self.pages.append(page)
        self._log("lab.page", action=page.get("action", "trigger"), page_id=page.get("page_id"))
        if page.get("action", "trigger") == "trigger" and page.get("ack_url"):
            task = asyncio.get_running_loop().create_task(self._ack_later(str(page["ack_url"])))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Response.json(200, {"received": True})

    async def _ack_later(self, ack_url: str) -> None:
        """The on-call engineer of the lab reads the page and acknowledges it."""
        await asyncio.sleep(self.config.ack_delay_ms / 1000)
        parts = urllib.parse.urlsplit(ack_url)
        body = b"by=lab-oncall"
        try:
            reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80)
        except OSError:
            self.acks.append(0)
            return
        try:
            writer.write(
                f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            self.acks.append(int(head.split(b" ", 2)[1]))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            self.acks.append(0)
        finally:
            writer.close()
        self._log("lab.ack", status=self.acks[-1])
