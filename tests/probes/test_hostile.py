"""Probes against hostile or broken targets: a frozen server, an endless body, bad values,
a catastrophic regex. None of them may hurt a healthy neighbour probe or the process."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from drill.errors import UsageError
from drill.probes import http as http_probe
from drill.probes import postgres as pg_probe
from drill.probes.pool import HTTP_POOL
from drill.testing import FakeContext, probe_kind, run_probe
from tests.support.ticker import Ticker

INTERVAL_S = 0.1
RUN_S = 3.0
# Descriptors the frozen probe may hold: one client socket per abandoned attempt, plus the
# in-process frozen server's end of each, plus a few for the healthy neighbour in flight.
FD_BOUND = 2 * pg_probe.MAX_ABANDONED + 8
HEALTHY_TIMEOUT_S = 0.3  # the neighbour's deadline: generous for a loaded test machine

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)


async def _frozen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, never writes; lets go of its end only when the client closes."""
    try:
        while await reader.read(4096):
            pass
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _http_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def healthy_url() -> AsyncIterator[str]:
    async with serve(_http_ok) as port:
        yield f"http://127.0.0.1:{port}/health"


async def test_frozen_postgres_keeps_descriptors_bounded_and_neighbour_healthy(healthy_url: str) -> None:
    async with (
        serve(_frozen) as port,
        FakeContext("db", "frozen", timeout_s=INTERVAL_S) as frozen_ctx,
        FakeContext("web", "healthy", timeout_s=HEALTHY_TIMEOUT_S) as healthy_ctx,
    ):
        healthy_ctx.resource(HTTP_POOL)  # opened before the first tick, as the runner does
        frozen = Ticker(
            pg_probe.KIND, {"dsn": f"postgresql://postgres@127.0.0.1:{port}/postgres"}, frozen_ctx, INTERVAL_S
        )
        healthy = Ticker(http_probe.KIND, {"url": healthy_url}, healthy_ctx, INTERVAL_S)
        baseline = open_fds()
        peak = baseline
        runs = [asyncio.create_task(frozen.run()), asyncio.create_task(healthy.run())]
        for _ in range(int(RUN_S / 0.02)):
            await asyncio.sleep(0.02)
            peak = max(peak, open_fds())
        frozen.stop()
        healthy.stop()
        await asyncio.gather(*runs)
        await pg_probe.finish_postgres(pg_probe.parse_postgres(frozen.params), frozen_ctx)
    print(f"open fds: baseline {baseline}, peak {peak}, growth {peak - baseline} (bound {FD_BOUND})")
    assert peak - baseline <= FD_BOUND
    assert len(healthy.ticks) >= RUN_S / INTERVAL_S - 2
    bad = [t.obs.reason for t in healthy.ticks if not t.obs.ok]
    assert not bad, bad
    reasons = [t.obs.reason for t in frozen.ticks]
    assert all(not t.obs.ok for t in frozen.ticks)
    assert any("connections still open to a target that does not answer" in r for r in reasons), reasons


RSS_GROWTH_LIMIT_KB = 50 * 1024


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _endless(status: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"a" * 65536
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            )
            while True:
                writer.write(chunk)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return handler


@pytest.mark.parametrize(
    ("kind", "status", "params"),
    [
        ("http", b"200 OK", {"body_contains": "never there"}),
        ("kv", b"500 Internal Server Error", {}),
        ("journey", b"200 OK", {}),
    ],
)
async def test_an_endless_body_is_read_only_to_its_limit(
    kind: str, status: bytes, params: dict[str, object]
) -> None:
    async with serve(_endless(status)) as port:
        url = f"http://127.0.0.1:{port}/health"
        if kind == "journey":
            params = {"steps": [{"name": "login", "url": url, "extract": {"TOKEN": "access_token"}}]}
        else:
            params = {"url": url, **params}
        before = rss_kb()
        started = asyncio.get_running_loop().time()
        obs = await run_probe(kind, params, timeout_ms=3000)
        took = asyncio.get_running_loop().time() - started
        growth = rss_kb() - before
    print(f"{kind}: {obs.reason!r} in {took:.2f} s, RSS growth {growth} kB")
    assert not obs.ok
    assert "timed out" not in obs.reason and took < 3.0
    assert growth < RSS_GROWTH_LIMIT_KB
    if kind == "http":
        assert f"only the first {http_probe.limit_text()} of the body was read" in obs.reason
        assert obs.detail["truncated"] is True
    if kind == "journey":
        assert "larger than 1 MiB" in obs.reason
    if kind == "kv":
        assert obs.reason == "HTTP 500"


SECRET = "s3cr3t-Ünicode"


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("http", {"url": "http://127.0.0.1:70000/"}, "url"),
        ("http", {"url": "http://127.0.0.1/", "headers": {"Authorization": f"Bearer {SECRET}"}}, "headers"),
        ("http", {"url": "http://127.0.0.1/", "headers": {"X-A": "a\r\nX-B: b"}}, "headers"),
        ("http", {"url": "http://127.0.0.1/", "body_regex": f"(?={SECRET})"}, "body_regex"),
        ("kv", {"url": f"http://[{SECRET}"}, "url"),
        ("kv", {"url": "http://127.0.0.1:99999"}, "url"),
        ("kv", {"url": f"ftp://{SECRET}"}, "url"),
        ("tcp", {"host": "127.0.0.1", "port": 70000}, "port"),
        ("tcp", {"host": "127.0.0.1", "port": SECRET}, "port"),
        ("dns", {"name": "example.com", "port": 0}, "port"),
        ("redis", {"port": 65536}, "port"),
        (
            "redis",
            {"sentinels": [{"host": "127.0.0.1", "port": 99999}], "master_name": "m"},
            "sentinels[].port",
        ),
        ("postgres", {"dsn": f"host=127.0.0.1 password='{SECRET}"}, "dsn"),
        ("postgres", {"dsn": f"postgresql://u:{SECRET}@127.0.0.1:70000/db"}, "dsn"),
        ("journey", {"steps": [{"name": "a", "url": "http://127.0.0.1:70000/"}]}, "url"),
        ("journey", {"steps": [{"name": "a", "url": "http://h/", "headers": {"X": SECRET}}]}, "headers"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_field_not_the_value(
    kind: str, params: dict[str, object], field: str
) -> None:
    with pytest.raises(UsageError) as caught:
        probe_kind(kind).parse(params)
    text = str(caught.value)
    assert field in text, text
    assert SECRET not in text and "s3cr3t" not in text, text


async def test_a_catastrophic_regex_does_not_delay_a_healthy_probe(healthy_url: str) -> None:
    async def backtracking_bait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b"a" * 40 + b"!"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async with (
        serve(backtracking_bait) as port,
        FakeContext("web", "regex", timeout_s=HEALTHY_TIMEOUT_S) as bad_ctx,
        FakeContext("web", "healthy", timeout_s=HEALTHY_TIMEOUT_S) as healthy_ctx,
    ):
        bad_ctx.resource(HTTP_POOL)
        healthy_ctx.resource(HTTP_POOL)
        # 40 a's and a '!': Python's re would backtrack for about 2**40 steps (hours).
        params = {"url": f"http://127.0.0.1:{port}/", "body_regex": "^(a+)+$"}
        bad = Ticker(http_probe.KIND, params, bad_ctx, INTERVAL_S)
        healthy = Ticker(http_probe.KIND, {"url": healthy_url}, healthy_ctx, INTERVAL_S)
        runs = [asyncio.create_task(bad.run()), asyncio.create_task(healthy.run())]
        await asyncio.sleep(1.5)
        bad.stop()
        healthy.stop()
        await asyncio.gather(*runs)
    starts = [t.started_ns for t in healthy.ticks]
    lateness_ms = max((b - a) / 1e6 - INTERVAL_S * 1000 for a, b in itertools.pairwise(starts))
    print(f"healthy ticks {len(starts)}, worst lateness {lateness_ms:.1f} ms")
    assert all(t.obs.ok for t in healthy.ticks), [t.obs.reason for t in healthy.ticks]
    assert lateness_ms < 50
    assert bad.ticks and all("does not match" in t.obs.reason for t in bad.ticks)


class RedactingContext(FakeContext):
    """A context whose `redact` masks one secret, as the run's Secrets.redact_text would."""

    def redact(self, text: str) -> str:
        return text.replace(LONG_SECRET, "«redacted»")


LONG_SECRET = "tok-0123456789abcdefghijklmnopqrstuvwxyz"


async def test_a_body_snippet_is_redacted_before_it_is_cut() -> None:
    body = ("x" * 40 + LONG_SECRET).encode()  # the secret straddles the 60-character cut

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        finally:
            writer.close()

    async with serve(answer) as port, RedactingContext(timeout_s=1.0) as ctx:
        obs = await run_probe("http", {"url": f"http://127.0.0.1:{port}/", "body_contains": "nope"}, ctx=ctx)
    assert "«redacted»" in obs.reason and LONG_SECRET[:10] not in obs.reason, obs.reason
