"""The smtp probe against a real aiosmtpd server and small hostile servers on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drill.clock import SystemClock
from drill.errors import UsageError
from drill.probes import smtp
from drill.probes.base import Observation
from drill.testing import FakeContext, run_probe

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[..., Awaitable[int]]


class _Handler:
    """aiosmtpd's handler: the probe never sends mail, so nothing to do."""


def _self_signed(tmp: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drill-smtp-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
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


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start servers on this loop (aiosmtpd with `tls`, or a hostile `handler`); returns the port."""
    servers: list[asyncio.Server] = []

    async def start(*, handler: Handler | None = None, tls: ssl.SSLContext | None = None) -> int:
        loop = asyncio.get_running_loop()
        if handler is None:
            server = await loop.create_server(
                lambda: SMTP(
                    _Handler(),
                    hostname="mx.drill.test",
                    ident="ESMTP drill-test",
                    tls_context=tls,
                    require_starttls=False,
                ),
                "127.0.0.1",
                0,
            )
        else:
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read (and ignore) what the client sends until it hangs up."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass
    writer.close()


def _greeting(banner: bytes, rest: Handler = _until_closed) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        await writer.drain()
        await rest(reader, writer)

    return handle


async def _answers_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readline()
    writer.write(b"250-mx.drill.test\r\n250 8BITMIME\r\n")
    await _until_closed(reader, writer)


async def _endless_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A banner line that never ends: 64 KiB chunks until the client hangs up."""
    writer.write(b"220 ")
    with contextlib.suppress(ConnectionError):
        for _ in range(1024):  # 64 MiB at most, should the probe keep reading
            writer.write(b"x" * 65536)
            await writer.drain()
    writer.close()


async def _injects_after_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Offers STARTTLS, then answers it with 220 and a plaintext line in the same packet."""
    await reader.readline()
    writer.write(b"250-mx.drill.test\r\n250 STARTTLS\r\n")
    await reader.readline()
    writer.write(b"220 go ahead\r\n250 injected before TLS\r\n")
    await _until_closed(reader, writer)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _probe(ctx: FakeContext, **params: object) -> Observation:
    return await run_probe(smtp.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_a_healthy_server_is_ok(serve: Serve, probe_ctx: FakeContext) -> None:
    port = await serve()
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, expect_banner="ESMTP drill-test")
    assert (obs.ok, obs.reason) == (True, "")
    assert obs.detail == {"banner": "mx.drill.test ESMTP drill-test", "tls": False}


async def test_a_banner_without_the_expected_text_fails_naming_it(
    serve: Serve, probe_ctx: FakeContext
) -> None:
    port = await serve()
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, expect_banner="ESMTP Postfix")
    assert (obs.ok, obs.reason, obs.transient) == (
        False,
        f"banner from 127.0.0.1:{port} does not contain 'ESMTP Postfix': got 'mx.drill.test ESMTP drill-test'",
        False,
    )


async def test_expect_banner_matches_any_line_of_a_multiline_greeting(
    serve: Serve, probe_ctx: FakeContext
) -> None:
    port = await serve(handler=_greeting(b"220-mx.drill.test\r\n220 ESMTP Postfix\r\n", _answers_ehlo))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, expect_banner="ESMTP Postfix")
    assert (obs.ok, obs.reason) == (True, "")
    assert obs.detail == {"banner": "mx.drill.test", "tls": False}


async def test_connection_refused(probe_ctx: FakeContext) -> None:
    free = _free_port()
    obs = await _probe(probe_ctx, host="127.0.0.1", port=free)
    assert (obs.ok, obs.reason, obs.transient) == (False, f"connection refused to 127.0.0.1:{free}", True)


async def test_starttls_without_verification_is_ok(
    serve: Serve, probe_ctx: FakeContext, tmp_path: Path
) -> None:
    port = await serve(tls=_self_signed(tmp_path))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, starttls=True, verify_tls=False)
    assert (obs.ok, obs.reason) == (True, "")
    assert obs.detail["tls"] is True


async def test_starttls_not_offered_fails(serve: Serve, probe_ctx: FakeContext) -> None:
    port = await serve()  # no tls_context: aiosmtpd does not advertise STARTTLS
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, starttls=True)
    assert obs.ok is False
    assert obs.reason.startswith(f"STARTTLS not offered by 127.0.0.1:{port} (its EHLO reply lists "), (
        obs.reason
    )
    assert "SIZE" in obs.reason and not obs.transient


async def test_starttls_with_verification_rejects_a_self_signed_certificate(
    serve: Serve, probe_ctx: FakeContext, tmp_path: Path
) -> None:
    port = await serve(tls=_self_signed(tmp_path))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, starttls=True)
    assert obs.ok is False
    assert obs.reason.startswith(f"TLS certificate of 127.0.0.1:{port} not trusted: self-signed"), obs.reason
    assert obs.reason.endswith("(verify_tls: false skips it)")


async def test_plaintext_injected_after_starttls_fails(serve: Serve, probe_ctx: FakeContext) -> None:
    port = await serve(handler=_greeting(b"220 mx.drill.test ESMTP\r\n", _injects_after_starttls))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port, starttls=True, verify_tls=False)
    assert (obs.ok, obs.reason) == (
        False,
        f"127.0.0.1:{port} sent data after its 220 to STARTTLS, before the TLS handshake",
    )


async def test_a_554_banner_fails(serve: Serve, probe_ctx: FakeContext) -> None:
    port = await serve(handler=_greeting(b"554 5.3.2 no service here\r\n"))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port)
    assert (obs.ok, obs.reason, obs.transient) == (
        False,
        f"banner from 127.0.0.1:{port} is 554 '5.3.2 no service here' (expected 220)",
        False,
    )


async def test_a_421_banner_is_transient(serve: Serve, probe_ctx: FakeContext) -> None:
    port = await serve(handler=_greeting(b"421 4.3.2 shutting down\r\n"))
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port)
    assert (obs.ok, obs.reason, obs.transient) == (
        False,
        f"banner from 127.0.0.1:{port} is 421 '4.3.2 shutting down' (expected 220)",
        True,
    )


async def test_an_endless_banner_line_fails_quickly_with_a_bounded_read(
    serve: Serve, probe_ctx: FakeContext
) -> None:
    port = await serve(handler=_endless_line)
    clock = SystemClock()
    t0 = clock.monotonic_ns()
    obs = await _probe(probe_ctx, host="127.0.0.1", port=port)
    elapsed_ms = (clock.monotonic_ns() - t0) / 1e6
    assert (obs.ok, obs.reason) == (
        False,
        f"127.0.0.1:{port} sent a line longer than {smtp.LINE_LIMIT} bytes in its banner",
    )
    assert elapsed_ms < 500


async def test_a_silent_server_fails_at_the_deadline(serve: Serve) -> None:
    port = await serve(handler=_until_closed)
    clock = SystemClock()
    t0 = clock.monotonic_ns()
    obs = await run_probe(smtp.KIND, {"host": "127.0.0.1", "port": port}, timeout_ms=300)
    elapsed_ms = (clock.monotonic_ns() - t0) / 1e6
    assert (obs.ok, obs.reason, obs.transient) == (False, "timed out after 300 ms", True)
    assert 300 <= elapsed_ms < 600


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"port": 25}, "host must be a non-empty string, got None"),
        ({"host": "mx", "port": 0}, "port must be an integer from 1 to 65535, got 0"),
        ({"host": "mx", "port": True}, "port must be an integer from 1 to 65535, got True"),
        ({"host": "mx", "starttls": "yes"}, "starttls must be true or false, got 'yes'"),
        ({"host": "mx", "helo_name": "x\r\nMAIL FROM:<a@b>"}, "helo_name 'x\\r\\nMAIL FROM:<a@b>' is not"),
    ],
)
def test_bad_params_are_usage_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        smtp.parse(params)
    assert caught.value.message.startswith(f"smtp probe: {message}"), caught.value.message


def test_defaults_and_a_resolved_port_reference() -> None:
    assert smtp.parse({"host": "mx"}) == smtp.SmtpSpec(host="mx")
    assert smtp.parse({"host": "mx", "port": "2525"}).port == 2525
