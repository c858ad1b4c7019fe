"""Real servers for ground-truth tests, run in the test's own event loop on 127.0.0.1.

`stop()` closes the listening socket AND every open connection at once, so the instant it
returns is a sharp ground truth for "the service went away"; `start()` binds the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib

from drill.clock import monotonic_ns


class ToggleServer:
    """A TCP (or minimal HTTP/1.1 keep-alive) server that a test switches off and on."""

    def __init__(self, http: bool = True) -> None:
        self.http = http
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.hang = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    async def start(self) -> int:
        """Listen (again) on the same port; returns the monotonic instant it became reachable."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return monotonic_ns()

    async def stop(self) -> int:
        """Close the listener and every connection; returns the instant before it began."""
        at = monotonic_ns()
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None
        return at

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                if self.http:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head:
                        return
                    if self.hang:
                        await asyncio.Event().wait()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
                    )
                else:
                    data = await reader.read(1024)
                    if not data:
                        return
                    writer.write(b"pong\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
