"""The tcp probe against real asyncio servers on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from drill.probes import tcp
from drill.probes.base import Observation
from drill.testing import FakeContext, run_probe


async def _pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line.strip() == b"PING" else b"-ERR unknown\r\n")
    await writer.drain()
    writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_pong, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _probe(ctx: FakeContext, **params: object) -> Observation:
    return await run_probe(tcp.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_connect_only(port: int, probe_ctx: FakeContext) -> None:
    assert (await _probe(probe_ctx, host="127.0.0.1", port=port)).ok


async def test_send_and_expect(port: int, probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, send="PING\r\n", expect="+PONG")
    assert obs.ok, obs.reason


async def test_unexpected_answer_names_what_came_back(port: int, probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, send="HELLO\r\n", expect="+PONG")
    assert obs.reason == (
        f"expected '+PONG' from 127.0.0.1:{port}, got '-ERR unknown\\r\\n' then the connection closed"
    )


async def test_connection_refused(probe_ctx: FakeContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    obs = await _probe(probe_ctx, host="127.0.0.1", port=free)
    assert (obs.ok, obs.reason, obs.transient) == (False, f"connection refused to 127.0.0.1:{free}", True)


async def test_unresolvable_host(probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, host="no-such-host.invalid", port=80)
    assert obs.reason.startswith("cannot resolve host 'no-such-host.invalid'"), obs.reason
