"""The tcp probe: connect to host:port, optionally send bytes and expect bytes back."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drill.probes.base import Observation, ProbeContext, ProbeKind, check_port, check_text, fail, ok

READ_LIMIT = 64 * 1024  # bytes read while waiting for `expect`


@dataclass(frozen=True, slots=True)
class TcpSpec:
    """Where to connect and what to exchange (bytes, UTF-8 encoded from the playbook)."""

    host: str
    port: int
    send: bytes = b""
    expect: bytes = b""


def parse(params: Mapping[str, Any]) -> TcpSpec:
    """Build the spec from resolved, schema-valid params; a bad host or port is a usage error."""
    return TcpSpec(
        host=check_text("tcp", "host", params["host"]),
        port=check_port("tcp", "port", params["port"]),
        send=str(params.get("send") or "").encode(),
        expect=str(params.get("expect") or "").encode(),
    )


def connect_failure_reason(exc: BaseException, host: str, port: int | None) -> str:
    """One actionable line for a failed connection, naming the endpoint (shared by http)."""
    where = f"{host}:{port}" if port is not None else host
    cause = _root_os_error(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not trusted: {cause.verify_message} (verify_tls: false skips it)"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {where} failed: {cause.reason or cause}"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve host {host!r}: {cause.strerror}"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused to {where}"
    if isinstance(cause, ConnectionResetError):
        return f"connection reset by {where}"
    if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to {where}"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot connect to {where}: {cause.strerror}"
    text = str(exc) or type(exc).__name__
    return f"cannot connect to {where}: {text}"


def _root_os_error(exc: BaseException) -> BaseException:
    """The innermost OSError in the cause chain (libraries wrap it), else exc itself."""
    found: BaseException = exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found


async def probe_tcp(spec: TcpSpec, ctx: ProbeContext) -> Observation:
    """Connect; when `send` is set write it; when `expect` is set read until it appears."""
    try:
        reader, writer = await asyncio.open_connection(spec.host, spec.port, limit=READ_LIMIT)
    except OSError as exc:
        return fail(connect_failure_reason(exc, spec.host, spec.port), transient=True)
    try:
        return await _exchange(spec, reader, writer)
    except OSError as exc:
        return fail(connect_failure_reason(exc, spec.host, spec.port), transient=True)
    finally:
        writer.close()  # no wait_closed: a dead peer must not hold the probe past its answer


async def _exchange(spec: TcpSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Observation:
    if spec.send:
        writer.write(spec.send)
        await writer.drain()
    if not spec.expect:
        return ok()
    seen = b""
    while spec.expect not in seen and len(seen) < READ_LIMIT:
        chunk = await reader.read(READ_LIMIT)
        if not chunk:
            return fail(
                f"expected {_show(spec.expect)} from {spec.host}:{spec.port}, "
                f"got {_show(seen)} then the connection closed"
            )
        seen += chunk
    if spec.expect in seen:
        return ok()
    return fail(f"expected {_show(spec.expect)} from {spec.host}:{spec.port}, got {_show(seen)}")


def _show(data: bytes, limit: int = 80) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


KIND: ProbeKind[TcpSpec] = ProbeKind(
    name="tcp",
    parse=parse,
    run=probe_tcp,
    summary="connect to host:port; optionally send bytes and expect bytes back",
)
