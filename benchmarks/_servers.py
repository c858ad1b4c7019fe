"""The loopback HTTP server the probe benchmarks run in a process of their own, and its launch.

Shared by bench_probes.py, bench_sustained.py and bench_watch.py (imported as `_servers`: `make
bench` runs `python benchmarks/bench_X.py`, which puts benchmarks/ first on sys.path). The server
lives in a separate process so that it does not share the measured clients' event loop and its
CPU is not counted; it binds 127.0.0.1 port 0, prints the port, and serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence


class Answer(asyncio.Protocol):
    """Answers each request head (keep-alive honoured) with `response`, after `delay_s` if above 0;
    closes when the request asks (drill's probes ask)."""

    def __init__(self, response: bytes, delay_s: float) -> None:
        self.response = response
        self.delay_s = delay_s
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            close = b"connection: close" in head.lower()
            if self.delay_s > 0:
                loop.call_later(self.delay_s, self._answer, close)
            else:
                self._answer(close)

    def _answer(self, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(self.response)
        if close:
            self.transport.close()


def serve(response: bytes, delay_s: float, backlog: int) -> None:
    """Child process: serve until stdin closes; print the port first."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Answer(response, delay_s), "127.0.0.1", 0, backlog=backlog)
        print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(main())


def start_servers(argv: Sequence[str], count: int = 1) -> tuple[list[subprocess.Popen[str]], list[int]]:
    """Start `count` server processes (`argv` runs serve()) and read the port each printed."""
    procs = [
        subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    ports = []
    for proc in procs:
        assert proc.stdout is not None
        ports.append(int(proc.stdout.readline()))
    return procs, ports


def stop_servers(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Close every server's stdin (its signal to stop), then wait; kill one that does not stop in 10 s."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
