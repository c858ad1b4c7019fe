"""The http probe against real servers on 127.0.0.1 (aiohttp, port 0), including TLS and a hanging one."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drill.clock import FakeClock, SystemClock
from drill.errors import UsageError
from drill.playbook.schema import compiled
from drill.probes import http
from drill.probes.base import Observation
from drill.probes.pool import HTTP_POOL, AsyncioBackend, HttpPool
from drill.testing import FakeContext, run_probe


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status page")


async def _json(request: web.Request) -> web.Response:
    doc = {"role": "primary", "db": {"ok": True, "lag": 0}, "nodes": [{"name": "a"}, {"name": "b"}]}
    return web.json_response(doc, headers={"X-Role": "primary"})


async def _echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.Response(text=f"{request.method} {request.headers.get('X-Token', '-')} {body}")


async def _cookie(request: web.Request) -> web.Response:
    response = web.Response(text=f"cookie={request.headers.get('Cookie', '')}")
    response.set_cookie("session", "abc")
    return response


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/status/200")


async def _hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()  # never answers; cancelled when the server stops
    raise AssertionError("unreachable")


def _app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/status/{code}", _status)
    app.router.add_get("/json", _json)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/cookie", _cookie)
    app.router.add_get("/hang", _hang)
    return app


async def _serve(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(_app(), shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, server.sockets[0].getsockname()[1]


@pytest.fixture
def pool(probe_ctx: FakeContext) -> HttpPool:
    """The pool probe_ctx hands the http probes (opened on first use, closed with the context)."""
    return probe_ctx.resource(HTTP_POOL)


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    runner, port = await _serve()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drill-test")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            False,
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


async def _probe(ctx: FakeContext, **params: object) -> Observation:
    return await run_probe(http.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_2xx_is_ok_and_status_is_kept(base_url: str, probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, url=f"{base_url}/status/204")
    assert (obs.ok, obs.reason, obs.detail["status"]) == (True, "", 204)


async def test_503_is_down_with_the_status_in_the_reason(base_url: str, probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, url=f"{base_url}/status/503")
    assert (obs.ok, obs.reason) == (False, "expected status 2xx, got 503")


async def test_expect_status_list(base_url: str, probe_ctx: FakeContext) -> None:
    assert (await _probe(probe_ctx, url=f"{base_url}/status/404", expect_status=[404, 410])).ok
    obs = await _probe(probe_ctx, url=f"{base_url}/status/200", expect_status=[204, 202])
    assert obs.reason == "expected status 202 or 204, got 200"


async def test_body_contains_and_regex(base_url: str, probe_ctx: FakeContext) -> None:
    url = f"{base_url}/status/200"
    assert (await _probe(probe_ctx, url=url, body_contains="status", body_regex=r"^stat\w+ page$")).ok
    miss = await _probe(probe_ctx, url=url, body_contains="healthy")
    assert miss.reason == "body does not contain 'healthy' (body starts 'status page')"
    nomatch = await _probe(probe_ctx, url=url, body_regex=r"^ok$")
    assert nomatch.reason == "body does not match /^ok$/ (body starts 'status page')"


async def test_json_equals_follows_dotted_paths(base_url: str, probe_ctx: FakeContext) -> None:
    url = f"{base_url}/json"
    good = await _probe(
        probe_ctx, url=url, json_equals={"role": "primary", "db.ok": True, "nodes.1.name": "b"}
    )
    assert good.ok, good.reason
    wrong = await _probe(probe_ctx, url=url, json_equals={"db.lag": 5})
    assert wrong.reason == "JSON field db.lag: expected 5, got 0"
    missing = await _probe(probe_ctx, url=url, json_equals={"db.replica": "x"})
    assert missing.reason == "JSON field db.replica missing"
    # true is not 1: a health flag must be the boolean it claims to be
    assert not (await _probe(probe_ctx, url=url, json_equals={"db.ok": 1})).ok
    not_json = await _probe(probe_ctx, url=f"{base_url}/status/200", json_equals={"a": 1})
    assert not_json.reason.startswith("body is not JSON")


async def test_expect_headers(base_url: str, probe_ctx: FakeContext) -> None:
    url = f"{base_url}/json"
    assert (await _probe(probe_ctx, url=url, expect_headers={"x-role": "primary"})).ok
    wrong = await _probe(probe_ctx, url=url, expect_headers={"X-Role": "replica"})
    assert wrong.reason == "expected header X-Role: 'replica', got 'primary'"
    missing = await _probe(probe_ctx, url=url, expect_headers={"X-Region": "eu"})
    assert missing.reason == "expected header X-Region: 'eu', header missing"


async def test_method_headers_and_body_are_sent(base_url: str, probe_ctx: FakeContext) -> None:
    obs = await _probe(
        probe_ctx,
        url=f"{base_url}/echo",
        method="post",
        headers={"X-Token": "t0k"},
        body="hi",
        body_contains="POST t0k hi",
    )
    assert obs.ok, obs.reason


async def test_redirects_are_not_followed_unless_asked(base_url: str, probe_ctx: FakeContext) -> None:
    assert (await _probe(probe_ctx, url=f"{base_url}/redirect")).reason == "expected status 2xx, got 302"
    followed = await _probe(probe_ctx, url=f"{base_url}/redirect", follow_redirects=True)
    assert (followed.ok, followed.detail["status"]) == (True, 200)


async def test_connection_refused_names_the_endpoint(probe_ctx: FakeContext) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    obs = await _probe(probe_ctx, url=f"http://127.0.0.1:{port}/")
    assert (obs.ok, obs.reason, obs.transient) == (False, f"connection refused to 127.0.0.1:{port}", True)


async def test_bad_urls_are_reasons_not_exceptions(probe_ctx: FakeContext) -> None:
    assert (await _probe(probe_ctx, url="ftp://127.0.0.1/x")).reason.startswith("unsupported URL scheme")
    assert not (await _probe(probe_ctx, url="http://[::1")).ok


def test_a_bad_regex_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="body_regex"):
        http.parse({"url": "http://127.0.0.1/", "body_regex": "("})


async def test_tls_verification_on_and_off(tmp_path: Path, probe_ctx: FakeContext) -> None:
    runner, port = await _serve(_self_signed(tmp_path))
    try:
        url = f"https://127.0.0.1:{port}/status/200"
        strict = await _probe(probe_ctx, url=url)
        assert not strict.ok
        assert strict.reason.startswith(f"TLS certificate of 127.0.0.1:{port} not trusted"), strict.reason
        relaxed = await _probe(probe_ctx, url=url, verify_tls=False)
        assert relaxed.ok, relaxed.reason
    finally:
        await runner.cleanup()


async def test_a_hanging_server_fails_at_the_deadline(base_url: str) -> None:
    clock = SystemClock()
    t0 = clock.monotonic_ns()
    obs = await run_probe(http.KIND, {"url": f"{base_url}/hang"}, timeout_ms=200)
    elapsed_ms = (clock.monotonic_ns() - t0) / 1e6
    assert (obs.ok, obs.reason) == (False, "timed out after 200 ms")
    assert 200 <= elapsed_ms < 400 and 200_000 <= obs.latency_us < 400_000


async def test_the_pool_grows_under_load_and_every_lease_is_returned(base_url: str) -> None:
    ctx = FakeContext()
    pool = ctx.resource(HTTP_POOL)  # the one pool every probe run below shares, as in a run
    pool.per_client = 5
    try:
        params = {"url": f"{base_url}/status/200"}
        results = await asyncio.gather(*(run_probe(http.KIND, params, ctx=ctx) for _ in range(60)))
        assert all(obs.ok for obs in results), {obs.reason for obs in results}
        assert pool.size >= 60 // 5
        assert all(slot.load == 0 for slots in pool._slots.values() for slot in slots)
        client = pool.client()
        assert isinstance(client, httpx.AsyncClient) and client._trust_env is False
    finally:
        await ctx.aclose()
    with pytest.raises(RuntimeError):
        pool.client()


async def test_pool_clients_run_on_the_asyncio_backend(pool: HttpPool) -> None:
    # httpx does not expose httpcore's network backend; the pool swaps it in, and this pins that.
    transport = cast(httpx.AsyncHTTPTransport, pool.client()._transport)  # the pool's own subclass
    assert isinstance(transport._pool._network_backend, AsyncioBackend)


async def test_probes_sharing_a_client_never_carry_cookies(
    base_url: str, probe_ctx: FakeContext, pool: HttpPool
) -> None:
    pool.per_client = 100  # every request below goes through the same client
    for _ in range(2):
        obs = await _probe(probe_ctx, url=f"{base_url}/cookie", body_regex="^cookie=$")
        assert obs.ok, obs.reason
    assert pool.size == 1


# -- max_latency: a stall is an outage by the team's own threshold, not only at the timeout --------

SLOW_MS = 300


async def _slow_headers(request: web.Request) -> web.Response:
    await asyncio.sleep(SLOW_MS / 1000)  # the server's behaviour under test, not synchronisation
    return web.Response(text="late but fine")


async def _slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)  # the headers go out at once; the body comes SLOW_MS later
    await asyncio.sleep(SLOW_MS / 1000)
    await response.write(b"late body")
    await response.write_eof()
    return response


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/slow-headers", _slow_headers)
    app.router.add_get("/slow-body", _slow_body)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
async def test_an_answer_slower_than_max_latency_fails(
    slow_url: str, path: str, probe_ctx: FakeContext
) -> None:
    obs = await _probe(probe_ctx, url=slow_url + path, max_latency="100ms")
    assert (obs.ok, obs.detail["status"]) == (False, 200)
    match = re.fullmatch(r"answered in (\d+) ms, slower than max_latency 100 ms", obs.reason)
    assert match is not None, obs.reason
    assert SLOW_MS <= int(match.group(1)) < 1000


@pytest.mark.parametrize("path", ["/slow-headers", "/slow-body"])
async def test_an_answer_within_max_latency_is_ok(slow_url: str, path: str, probe_ctx: FakeContext) -> None:
    obs = await _probe(probe_ctx, url=slow_url + path, max_latency="2s")
    assert (obs.ok, obs.reason) == (True, "")


async def test_the_latency_is_read_on_the_probe_context_clock() -> None:
    """Start to headers+body read, on ctx.monotonic_ns(): a server that takes 1.2 s by that clock."""
    clock = FakeClock()

    async def answer(request: web.Request) -> web.Response:
        clock.advance(1_200_000_000)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        async with FakeContext(clock=clock) as ctx:
            slow = await run_probe(http.KIND, {"url": url, "max_latency": "500ms"}, ctx=ctx)
            fine = await run_probe(http.KIND, {"url": url, "max_latency": "1s200ms"}, ctx=ctx)
    finally:
        await runner.cleanup()
    assert (slow.ok, slow.reason) == (False, "answered in 1.2 s, slower than max_latency 500 ms")
    assert (fine.ok, fine.reason) == (True, "")  # exactly at the threshold is within it


def test_max_latency_parses_playbook_durations() -> None:
    url = "http://127.0.0.1/"
    assert http.parse({"url": url}).max_latency_ms is None
    assert http.parse({"url": url, "max_latency": "1m30s"}).max_latency_ms == 90_000
    assert http.parse({"url": url, "max_latency": "1s500ms"}).max_latency_ms == 1_500
    for bad in ("100", "fast", "30s1m", "0ms"):
        with pytest.raises(UsageError, match="max_latency"):
            http.parse({"url": url, "max_latency": bad})


def test_the_schema_takes_max_latency_as_a_duration() -> None:
    fragment = compiled("probes/http.schema.json")
    assert fragment.validator.is_valid({"url": "http://x/", "max_latency": "500ms"})
    for bad in ("500", 500, "0", "half a second"):
        assert not fragment.validator.is_valid({"url": "http://x/", "max_latency": bad}), bad
