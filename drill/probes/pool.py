"""A pool of HTTP clients sized for hundreds of concurrent probes.

One shared httpx.AsyncClient collapses under load (measured here: 500 concurrent GETs to a
50 ms loopback server take about 10 s through one client, 0.9 s spread over 50), because its
connection pool does work proportional to the requests queued in it on every change. So the
pool keeps several small clients and hands each probe execution the least loaded one, adding
a client whenever every existing one already carries `per_client` in-flight requests.

Requests go through httpcore over plain asyncio streams (`AsyncioBackend`) instead of its anyio
backend: anyio's cancel scopes around every read and write cost about a third of the CPU of a
request here, and CPU is what limits hundreds of concurrent probes on one event loop.

Every client is built with `trust_env=False` (proxies and .netrc would change what a probe
measures), a cookie jar that keeps nothing (probes sharing a client stay independent), no
client-side timeout (the scheduler owns the deadline) and no keep-alive: each
probe opens a fresh connection, as a new user would, so a failover cannot hide behind a
connection kept open to the old primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import importlib
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from drill.probes.base import ResourceKind

# httpx loads these on its first request: ~130 ms that would block the event loop inside the
# first probe's tick and delay every other probe. The pool loads them up front instead.
_LAZY_MODULES = ("anyio._backends._asyncio", "httpcore._backends.anyio")

PER_CLIENT = 10  # in-flight requests per client before another client is added
MAX_CLIENTS = 256  # beyond this, the least loaded client takes the extra load


@dataclass(slots=True)
class _Slot:
    client: httpx.AsyncClient
    load: int = 0


@dataclass(slots=True)
class HttpPool:
    """HTTP clients for probes: `acquire`/`release` around each request, or `client()` untracked."""

    per_client: int = PER_CLIENT
    max_clients: int = MAX_CLIENTS
    _slots: dict[bool, list[_Slot]] = field(default_factory=dict)
    _ssl: dict[bool, ssl.SSLContext] = field(default_factory=dict)
    _closed: bool = False

    def __post_init__(self) -> None:
        # Loading the CA bundle blocks for ~50 ms: do it now, not inside the first probe's tick.
        self._context(True)
        for name in _LAZY_MODULES:
            with contextlib.suppress(ImportError):  # private names: a warm-up, not a dependency
                importlib.import_module(name)

    def prewarm(self, in_flight: int, verify: bool = True) -> None:
        """Create the clients `in_flight` concurrent requests will need, before the first tick."""
        slots = self._slots.setdefault(verify, [])
        while len(slots) * self.per_client < in_flight and len(slots) < self.max_clients:
            slots.append(_Slot(self._new_client(verify)))

    def acquire(self, verify: bool = True) -> httpx.AsyncClient:
        """The least loaded client for this TLS setting, counted as one more in flight until release()."""
        slot = self._pick(verify)
        slot.load += 1
        return slot.client

    def release(self, client: httpx.AsyncClient) -> None:
        """Count one request of `client` as finished (call exactly once per acquire)."""
        for slots in self._slots.values():
            for slot in slots:
                if slot.client is client:
                    slot.load = max(0, slot.load - 1)
                    return

    @contextlib.contextmanager
    def lease(self, verify: bool = True) -> Iterator[httpx.AsyncClient]:
        """The least loaded client, counted as in flight until the block ends (a probe's request)."""
        slot = self._pick(verify)
        slot.load += 1
        try:
            yield slot.client
        finally:
            slot.load = max(0, slot.load - 1)

    def client(self, verify: bool = True) -> httpx.AsyncClient:
        """A client for one-off use (dry runs, actions): the least loaded one, not counted."""
        return self._pick(verify).client

    @property
    def size(self) -> int:
        """How many clients exist (for tests and benchmarks)."""
        return sum(len(slots) for slots in self._slots.values())

    async def aclose(self) -> None:
        """Close every client; the pool refuses to hand out clients afterwards."""
        self._closed = True
        slots, self._slots = self._slots, {}
        for group in slots.values():
            for slot in group:
                await slot.client.aclose()

    def _pick(self, verify: bool) -> _Slot:
        if self._closed:
            raise RuntimeError("HttpPool used after aclose()")
        slots = self._slots.setdefault(verify, [])
        best = min(slots, key=lambda s: s.load, default=None)
        if best is None or (best.load >= self.per_client and len(slots) < self.max_clients):
            best = _Slot(self._new_client(verify))
            slots.append(best)
        return best

    def _new_client(self, verify: bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=_AsyncioTransport(self._context(verify)),
            # Clients are shared by many probes: a cookie one probe received must never be sent
            # by another (or by the same probe later), so the jar refuses every cookie.
            cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
            trust_env=False,
            timeout=None,
            follow_redirects=False,
        )

    def _context(self, verify: bool) -> ssl.SSLContext:
        # One SSLContext per setting, shared by every client: building one loads the CA bundle.
        context = self._ssl.get(verify)
        if context is None:
            context = self._ssl[verify] = httpx.create_ssl_context(verify=verify, trust_env=False)
        return context


class _AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its httpcore pool running on AsyncioBackend, no keep-alive."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(verify=context, trust_env=False)
        # httpx does not expose httpcore's network_backend; the pool it built is replaced here
        # (tests/probes/test_http.py checks the backend is really in use).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=None,
            max_keepalive_connections=0,
            network_backend=AsyncioBackend(),
        )


class AsyncioStream(httpcore.AsyncNetworkStream):
    """An httpcore network stream over asyncio's StreamReader/StreamWriter."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    # `timeout` parameters below: httpcore's interface, not ours (ASYNC109 does not apply).
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(f"no data within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(f"could not write within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()  # no wait_closed: a dead peer must not hold the probe

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(f"TLS handshake not done within {timeout} s") from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> object:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return self._reader.at_eof()  # only asked of idle kept-alive connections
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on plain asyncio (connect, sleep); errors mapped as httpcore's are."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def open_http_pool(specs: Sequence[object]) -> HttpPool:
    """The run's pool, with the clients the first tick needs built now (not inside the tick)."""
    pool = HttpPool()
    for verify in (True, False):
        # a spec without verify_tls (kv) talks plain HTTP and takes the verifying clients
        pool.prewarm(sum(getattr(spec, "verify_tls", True) is verify for spec in specs), verify)
    return pool


HTTP_POOL: ResourceKind[HttpPool] = ResourceKind("http-pool", open_http_pool)
