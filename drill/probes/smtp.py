"""The smtp probe: read the 220 greeting, say EHLO, optionally upgrade with STARTTLS, then QUIT.

Every read is bounded (a line at most LINE_LIMIT bytes, a reply at most REPLY_LIMIT bytes), so a
hostile or broken server cannot make the probe buffer without end; the scheduler's deadline
bounds the time. No mail is sent: the probe stops after EHLO (again after STARTTLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from drill.errors import UsageError
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok
from drill.probes.tcp import connect_failure_reason

LINE_LIMIT = 4096  # bytes in one reply line (RFC 5321 allows 512; some servers send more)
REPLY_LIMIT = 64 * 1024  # bytes in one (multi-line) reply
_REPLY_LINE = re.compile(rb"([1-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_HELO_NAME = re.compile(r"[A-Za-z0-9.\-\[\]:]+")


@dataclass(frozen=True, slots=True)
class SmtpSpec:
    """Where the server is and what the conversation must show. Empty expect_banner: any 220."""

    host: str
    port: int = 25
    starttls: bool = False
    verify_tls: bool = True
    expect_banner: str = ""
    helo_name: str = "drill.invalid"


def parse(params: Mapping[str, object]) -> SmtpSpec:
    """Build the spec from resolved params; a value of the wrong type or range is a usage error."""
    host = params.get("host")
    if not isinstance(host, str) or not host.strip():
        raise UsageError(f"smtp probe: host must be a non-empty string, got {host!r}", hint="e.g. host: mx1")
    helo_name = _text(params, "helo_name", "drill.invalid")
    if not _HELO_NAME.fullmatch(helo_name):
        raise UsageError(
            f"smtp probe: helo_name {helo_name!r} is not a host name or address literal",
            hint="e.g. helo_name: probe.example.com (no spaces or line breaks)",
        )
    return SmtpSpec(
        host=host.strip(),
        port=_port(params.get("port", 25)),
        starttls=_flag(params, "starttls", False),
        verify_tls=_flag(params, "verify_tls", True),
        expect_banner=_text(params, "expect_banner", ""),
        helo_name=helo_name,
    )


def _port(value: object) -> int:
    # A secret reference resolves to text, so "2525" is accepted as well as 2525.
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError(
            f"smtp probe: port must be an integer from 1 to 65535, got {value!r}",
            hint="25 (MTA), 587 (submission with STARTTLS) or 2525",
        )
    return value


def _flag(params: Mapping[str, object], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise UsageError(f"smtp probe: {key} must be true or false, got {value!r}")
    return value


def _text(params: Mapping[str, object], key: str, default: str) -> str:
    value = params.get(key, default)
    if not isinstance(value, str):
        raise UsageError(f"smtp probe: {key} must be a string, got {value!r}")
    return value


class _Stop(Exception):
    """Ends the conversation early with the observation to report."""

    def __init__(self, observation: Observation) -> None:
        super().__init__(observation.reason)
        self.observation = observation


async def probe_smtp(spec: SmtpSpec, ctx: ProbeContext) -> Observation:
    """Greeting (220, containing expect_banner), EHLO (250), optionally STARTTLS + EHLO, QUIT."""
    try:
        reader, writer = await asyncio.open_connection(spec.host, spec.port, limit=LINE_LIMIT)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        return fail(connect_failure_reason(exc, spec.host, spec.port), transient=True)
    try:
        observation = await _converse(spec, reader, writer)
        _quit(reader, writer)
        return observation
    except _Stop as stop:
        _quit(reader, writer)
        return stop.observation
    except ssl.SSLError as exc:
        return fail(connect_failure_reason(exc, spec.host, spec.port))
    except OSError as exc:
        return fail(connect_failure_reason(exc, spec.host, spec.port), transient=True)
    finally:
        writer.close()  # no wait_closed: a dead peer must not hold the probe past its answer


async def _converse(
    spec: SmtpSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Observation:
    where = f"{spec.host}:{spec.port}"
    code, banner = await _reply(reader, where, "banner")
    if code != 220:
        raise _Stop(
            fail(f"banner from {where} is {_show(code, banner)} (expected 220)", transient=_temporary(code))
        )
    greeting = "\n".join(banner)
    if spec.expect_banner and spec.expect_banner not in greeting:
        raise _Stop(
            fail(f"banner from {where} does not contain {spec.expect_banner!r}: got {_clip(greeting)}")
        )
    extensions = await _ehlo(spec, reader, writer, where, tls=False)
    if not spec.starttls:
        return ok(banner=banner[0][:200], tls=False)
    if "STARTTLS" not in extensions:
        offered = ", ".join(sorted(extensions)) or "no extensions"
        raise _Stop(fail(f"STARTTLS not offered by {where} (its EHLO reply lists {offered})"))
    await _send(writer, "STARTTLS")
    code, text = await _reply(reader, where, "reply to STARTTLS")
    if code != 220:
        raise _Stop(
            fail(
                f"{where} answered STARTTLS with {_show(code, text)} (expected 220)",
                transient=_temporary(code),
            )
        )
    if _buffered(reader):
        # Bytes sent before the handshake would be read as if they came over TLS (CVE-2011-0411).
        raise _Stop(fail(f"{where} sent data after its 220 to STARTTLS, before the TLS handshake"))
    await writer.start_tls(_tls_context(spec.verify_tls), server_hostname=spec.host)
    await _ehlo(spec, reader, writer, where, tls=True)
    return ok(banner=banner[0][:200], tls=True)


async def _ehlo(
    spec: SmtpSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str, *, tls: bool
) -> set[str]:
    """Say EHLO; the keywords of the extensions the 250 reply lists (upper case)."""
    what = "reply to EHLO after STARTTLS" if tls else "reply to EHLO"
    await _send(writer, f"EHLO {spec.helo_name}")
    code, lines = await _reply(reader, where, what)
    if code != 250:
        after = " after STARTTLS" if tls else ""
        raise _Stop(
            fail(
                f"{where} answered EHLO {spec.helo_name}{after} with {_show(code, lines)} (expected 250)",
                transient=_temporary(code),
            )
        )
    return {line.split(maxsplit=1)[0].upper() for line in lines[1:] if line.strip()}


async def _send(writer: asyncio.StreamWriter, command: str) -> None:
    writer.write(command.encode("ascii") + b"\r\n")
    await writer.drain()


async def _reply(reader: asyncio.StreamReader, where: str, what: str) -> tuple[int, list[str]]:
    """One reply: its code and each line's text. A malformed or oversized one stops the probe."""
    code = 0
    lines: list[str] = []
    size = 0
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise _Stop(fail(f"{where} sent a line longer than {LINE_LIMIT} bytes in its {what}")) from None
        except asyncio.IncompleteReadError as exc:
            got = f" (it sent {_clip(exc.partial.decode('utf-8', 'replace'))})" if exc.partial else ""
            raise _Stop(
                fail(f"{where} closed the connection before its {what}{got}", transient=True)
            ) from None
        size += len(raw)
        if size > REPLY_LIMIT:
            raise _Stop(fail(f"{where} sent more than {REPLY_LIMIT} bytes in its {what}"))
        match = _REPLY_LINE.fullmatch(raw.rstrip(b"\r\n"))
        if match is None or (lines and int(match[1]) != code):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            raise _Stop(fail(f"{where} sent a line that is not SMTP in its {what}: {_clip(text)}"))
        code = int(match[1])
        lines.append((match[3] or b"").decode("utf-8", "replace"))
        if match[2] != b"-":
            return code, lines


def _quit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Say goodbye without waiting for the 221: a server that never answers must not cost a failure."""
    if reader.at_eof() or writer.transport.is_closing():
        return
    with contextlib.suppress(OSError, RuntimeError):
        writer.write(b"QUIT\r\n")  # flushed by close()


def _buffered(reader: asyncio.StreamReader) -> bool:
    """Whether the reader already holds bytes nobody asked for (StreamReader has no public API)."""
    return bool(getattr(reader, "_buffer", b""))


@functools.cache
def _tls_context(verify: bool) -> ssl.SSLContext:
    """One context per mode, built once (loading the system CA store costs milliseconds)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _temporary(code: int) -> bool:
    """4xx replies are temporary by definition (RFC 5321 4.2.1)."""
    return 400 <= code < 500


def _show(code: int, lines: list[str]) -> str:
    return f"{code} {_clip(' '.join(lines))}"


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


KIND: ProbeKind[SmtpSpec] = ProbeKind(
    name="smtp",
    parse=parse,
    run=probe_smtp,
    summary="read the 220 banner and EHLO; optionally STARTTLS (with or without verifying the certificate)",
)
