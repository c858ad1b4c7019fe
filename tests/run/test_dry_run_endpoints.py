"""The dry run's endpoint checks against real servers on 127.0.0.1: notifiers and actions are
reached (TCP connect, SMTP EHLO/QUIT, an executable looked up), never used, and every bad input
is a NOT READY line with a reason, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drill.evidence.snapshot import Metadata
from drill.playbook.model import (
    Action,
    ActionStep,
    Asset,
    Capture,
    Contact,
    ContactChain,
    MarkStep,
    Playbook,
    Probe,
    Settings,
    Step,
    Tier,
)
from drill.run.dryrun import Readiness, check_readiness
from drill.secrets import REDACTED
from tests.cli.test_dry_run_cli import RecordingSmtp
from tests.notify.conftest import start_smtp

# --- servers -----------------------------------------------------------------------------------


def closed_port() -> int:
    """A port nothing listens on: bound, read, closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Listener:
    """A TCP server that records, per connection, every byte the client sent before closing."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)  # one entry per closed connection
    server: asyncio.Server | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(4096):
                data += chunk
        self.received.append(data)
        async with self._changed:
            self._changed.notify_all()
        writer.close()

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> list[bytes]:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return self.received

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class Gate:
    """Servers that say nothing until `needed` connections are open at once (across all of them).

    A check made one after another would wait for the gate alone and time out; checks made at the
    same time all pass it. With `needed` out of reach, a server that never answers; with a
    `greeting` other than 220, an SMTP server that refuses service."""

    needed: int
    greeting: str = "220 gate ready"
    open_now: int = 0
    most_open: int = 0
    commands: list[str] = field(default_factory=list)
    servers: list[asyncio.Server] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    async def smtp(self) -> int:
        return await self._listen(self._smtp)

    async def tcp(self) -> int:
        return await self._listen(self._tcp)

    async def _listen(self, serve: Any) -> int:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _wait_at_gate(self) -> bool:
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        if self.most_open >= self.needed:
            self.opened.set()
        await self.opened.wait()
        return not self.closing

    async def _smtp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not await self._wait_at_gate():
                return
            writer.write(f"{self.greeting}\r\n".encode())
            while line := await reader.readline():
                verb = line.decode().strip().split(" ")[0].upper()
                self.commands.append(verb)
                if verb == "EHLO":
                    writer.write(b"250-gate\r\n250 HELP\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"502 not here\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await self._wait_at_gate() and await reader.readline():
                writer.write(b"PONG\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def stop(self) -> None:
        self.closing = True
        self.opened.set()  # lets every waiting connection go
        for server in self.servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    server = Listener()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp_rec() -> AsyncIterator[RecordingSmtp]:
    """aiosmtpd with AUTH only after TLS (and no TLS offered): a login cannot work over it."""
    catcher = RecordingSmtp()
    server = await start_smtp(catcher)
    yield catcher
    server.close()
    await server.wait_closed()


# --- playbooks -----------------------------------------------------------------------------------


def playbook(
    folder: Path,
    *,
    contacts: Sequence[Contact] = (),
    actions: Mapping[str, tuple[str, Mapping[str, object]]] | None = None,
    probes: Sequence[Probe] = (),
    timeout_ms: int = 1000,
    extra_steps: Sequence[Step] = (),
) -> Playbook:
    steps: list[Step] = [MarkStep("declare", "disaster"), *extra_steps]
    for name, (kind, params) in (actions or {}).items():
        steps.append(ActionStep(name, Action(kind, params)))
    return Playbook(
        metadata=Metadata(name="dry-run-endpoints", owner="tests"),
        tiers=(Tier("tier-0", 0, 5000, 0),),
        assets=(Asset("svc", "tier-0", tuple(probes), contact_chain="oncall"),) if probes else (),
        scenario=tuple(steps),
        settings=Settings(timeout_ms=timeout_ms),
        chains=(ContactChain("oncall", tuple(contacts)),) if contacts else (),
        source=str(folder / "p.yaml"),
    )


def email(name: str, port: int, host: str = "127.0.0.1", **extra: object) -> Contact:
    return Contact(
        name, "email", 60_000, {"to": ["oncall@example.test"], "smtp_host": host, "smtp_port": port, **extra}
    )


def line_of(report: Readiness, what: str) -> str:
    """The one line about `what` (a check's subject: "notifier oncall/alice", "action in step 'x'")."""
    found = [
        line
        for line in report.lines()
        if line.removeprefix("ok  ").removeprefix("NOT READY ").startswith(what)
    ]
    assert len(found) == 1, (what, report.lines())
    return found[0]


# --- tests -----------------------------------------------------------------------------------------


async def test_every_bad_endpoint_is_a_line_with_a_reason_not_a_traceback(tmp_path: Path) -> None:
    contacts = [
        Contact("unparsable", "webhook", 60_000, {"url": "http://[::1/hook"}),
        Contact("port-too-big", "webhook", 60_000, {"url": "http://127.0.0.1:70000/hook"}),
        Contact("port-not-a-number", "slack", 60_000, {"url": "http://127.0.0.1:port/hook"}),
        Contact("no-host", "dingtalk", 60_000, {"url": "http:///robot/send"}),
        Contact(
            "unknown-host",
            "pagerduty",
            60_000,
            {"url": "http://no-such-host.invalid/v2", "routing_key": "k1"},
        ),
        Contact("not-http", "webhook", 60_000, {"url": "ftp://127.0.0.1/hook"}),
        email("smtp-port-too-big", 99_999),
        email("smtp-unknown-host", 25, host="no-such-host.invalid"),
        Contact("pigeon", "carrier-pigeon", 60_000, {}),
    ]
    actions: dict[str, tuple[str, Mapping[str, object]]] = {
        "ftp": ("http", {"url": "ftp://127.0.0.1/fail-over"}),
        "port zero": ("http", {"url": "http://127.0.0.1:0/fail-over"}),
        "url not text": ("http", {"url": 42}),
        "empty argv": ("command", {"argv": []}),
        "bad exit": ("command", {"argv": ["true"], "expect_exit": "zero"}),
        "teleport": ("teleport", {}),
    }
    report = await check_readiness(playbook(tmp_path, contacts=contacts, actions=actions), env={})

    expected = {
        "notifier oncall/unparsable": "webhook: the URL cannot be parsed",
        "notifier oncall/port-too-big": "webhook: the URL cannot be parsed (Port out of range 0-65535)",
        "notifier oncall/port-not-a-number": "slack: the URL cannot be parsed",
        "notifier oncall/no-host": "dingtalk: the URL has no host",
        "notifier oncall/not-http": "its parameters cannot be used: webhook contact: `url` must start with",
        "notifier oncall/smtp-port-too-big": "its parameters cannot be used: email contact: `smtp_port`",
        "notifier oncall/pigeon": "unknown notifier kind 'carrier-pigeon'",
        "action in step 'ftp'": "http: the URL's scheme must be http or https, not 'ftp'",
        "action in step 'port zero'": "http: the URL's port must be 1-65535, not 0",
        "action in step 'url not text'": "http: `url` must be a string",
        "action in step 'empty argv'": "command: `argv` is empty",
        "action in step 'bad exit'": "its parameters cannot be used: ValueError",
        "action in step 'teleport'": "unknown action kind 'teleport'",
    }
    for what, reason in expected.items():
        assert line_of(report, what).startswith(f"NOT READY {what}: {reason}"), report.lines()
    for what in ("notifier oncall/unknown-host", "notifier oncall/smtp-unknown-host"):
        line = line_of(report, what)  # a resolver that cannot answer in time is a timeout
        assert line.startswith(f"NOT READY {what}: "), line
        assert "cannot resolve host 'no-such-host.invalid'" in line or "no answer from" in line, line
    assert not report.ready
    assert report.lines()[-1] == f"not ready: {len(expected) + 2} problem(s)"
    assert all("Traceback" not in line and "k1" not in line for line in report.lines())


async def test_url_endpoints_get_a_tcp_connection_and_not_one_byte(
    tmp_path: Path, listener: Listener
) -> None:
    base = f"http://127.0.0.1:{listener.port}"
    contacts = [
        Contact("hook", "webhook", 60_000, {"url": f"{base}/hook/T0KEN"}),
        Contact("pd", "pagerduty", 60_000, {"url": f"{base}/v2/enqueue", "routing_key": "k"}),
    ]
    actions: dict[str, tuple[str, Mapping[str, object]]] = {
        "fail over": ("http", {"url": f"{base}/failover"})
    }
    report = await check_readiness(playbook(tmp_path, contacts=contacts, actions=actions), env={})

    where = f"127.0.0.1:{listener.port}"
    assert report.ready, report.lines()
    assert f"ok  notifier oncall/hook (webhook {where})" in report.lines()
    assert f"ok  notifier oncall/pd (pagerduty {where})" in report.lines()
    assert f"ok  action in step 'fail over' (http {where})" in report.lines()
    assert all("T0KEN" not in line for line in report.lines())
    assert await listener.wait_for(3) == [b"", b"", b""]  # three connections; no request, no page


async def test_smtp_check_is_ehlo_and_quit_and_says_what_a_send_would_hit(
    tmp_path: Path, smtp_rec: RecordingSmtp
) -> None:
    contacts = [
        email("plain", smtp_rec.port),
        email("wants-tls", smtp_rec.port, starttls=True),
        email("logs-in", smtp_rec.port, username="drill", password="s3cret-smtp-pass"),
    ]
    report = await check_readiness(playbook(tmp_path, contacts=contacts), env={})

    where = f"127.0.0.1:{smtp_rec.port}"
    assert f"ok  notifier oncall/plain (email smtp {where})" in report.lines()
    assert line_of(report, "notifier oncall/wants-tls").startswith(
        f"NOT READY notifier oncall/wants-tls: SMTP server {where}: SMTP STARTTLS extension not supported"
    )
    assert line_of(report, "notifier oncall/logs-in") == (
        f"NOT READY notifier oncall/logs-in: SMTP server {where} offers no AUTH without STARTTLS,"
        " but the contact logs in (username)"
    )
    assert all("s3cret-smtp-pass" not in line for line in report.lines())
    # the server's own record: greetings and goodbyes only; no login, no envelope, no mail
    assert sorted(smtp_rec.commands) == ["EHLO", "EHLO", "EHLO", "QUIT", "QUIT", "QUIT"]
    assert smtp_rec.mails == [] and smtp_rec.logins == []


async def test_an_smtp_server_that_refuses_or_stays_silent_is_not_ready(tmp_path: Path) -> None:
    refusing, silent = Gate(needed=1, greeting="554 5.3.2 no service here"), Gate(needed=1_000)
    try:
        contacts = [email("refused", await refusing.smtp()), email("silent", await silent.smtp())]
        report = await check_readiness(playbook(tmp_path, contacts=contacts), env={})
    finally:
        await refusing.stop()
        await silent.stop()
    assert line_of(report, "notifier oncall/refused").startswith(
        f"NOT READY notifier oncall/refused: SMTP server 127.0.0.1:{contacts[0].params['smtp_port']}"
        " answered 554: 5.3.2 no service here"
    )
    assert line_of(report, "notifier oncall/silent") == (
        f"NOT READY notifier oncall/silent: no answer from 127.0.0.1:{contacts[1].params['smtp_port']}"
        " within 2 s"  # settings.timeout (1 s) is below the 2 s floor
    )
    assert refusing.commands == [] and silent.commands == []


async def test_command_executables_are_found_as_the_runner_would_start_them(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "restart.sh"
    script.write_text(f"#!/bin/sh\necho ran > '{marker}'\n")
    script.chmod(0o755)
    plain = bin_dir / "notes.txt"
    plain.write_text("not a program\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    actions: dict[str, tuple[str, Mapping[str, object]]] = {
        "relative": ("command", {"argv": ["./bin/restart.sh"]}),
        "absolute": ("command", {"argv": [str(script)]}),
        "on PATH": ("command", {"argv": ["sh", "-c", "exit 1"]}),
        "on the action's PATH": ("command", {"argv": ["restart.sh"], "env": {"PATH": str(bin_dir)}}),
        "relative to its cwd": ("command", {"argv": ["../bin/restart.sh"], "cwd": str(elsewhere)}),
        "missing": ("command", {"argv": ["./bin/gone.sh"]}),
        "missing absolute": ("command", {"argv": [str(bin_dir / "gone.sh")]}),
        "not executable": ("command", {"argv": ["bin/notes.txt"]}),
        "a folder": ("command", {"argv": ["./bin"]}),
        "not on PATH": ("command", {"argv": ["restart.sh"]}),
        "no such cwd": ("command", {"argv": ["true"], "cwd": str(tmp_path / "nowhere")}),
    }
    report = await check_readiness(playbook(tmp_path, actions=actions), env={})

    for name in ("relative", "absolute", "on PATH", "on the action's PATH", "relative to its cwd"):
        assert line_of(report, f"action in step '{name}'").startswith(
            f"ok  action in step '{name}' (command "
        )
    assert "ok  action in step 'relative' (command ./bin/restart.sh)" in report.lines()
    not_ready = {
        "missing": f"command: ./bin/gone.sh not found in {tmp_path}",
        "missing absolute": f"command: {bin_dir / 'gone.sh'} not found",
        "not executable": "command: bin/notes.txt is not executable (chmod +x it)",
        "a folder": f"command: ./bin is a folder, not a program (looked in {tmp_path})",
        "not on PATH": "command: 'restart.sh' not found on PATH, or not executable there",
        "no such cwd": f"command: the working folder {tmp_path / 'nowhere'} does not exist",
    }
    for name, reason in not_ready.items():
        assert line_of(report, f"action in step '{name}'") == f"NOT READY action in step '{name}': {reason}"
    assert not marker.exists()  # found, never run


async def test_an_endpoint_known_only_at_run_time_is_said_to_be_unchecked(tmp_path: Path) -> None:
    find = ActionStep("find primary", Action("command", {"argv": ["true"]}), capture=Capture(json_path="url"))
    actions: dict[str, tuple[str, Mapping[str, object]]] = {
        "fail over": ("http", {"url": "${steps.find primary.output}/failover"})
    }
    report = await check_readiness(playbook(tmp_path, actions=actions, extra_steps=[find]), env={})
    assert report.ready, report.lines()
    assert (
        "ok  action in step 'fail over': not checked before the run: it uses the output of step 'find primary'"
    ) in report.lines()
    assert report.lines()[-1] == (
        "ready: every secret resolves, every asset answers, every notifier and action endpoint is reachable"
        " (1 known only during the run, not checked)"
    )


async def test_a_secret_in_an_endpoint_is_redacted(tmp_path: Path, smtp_rec: RecordingSmtp) -> None:
    closed = closed_port()
    contacts = [
        email("up", smtp_rec.port, host="${env:DRILL_TEST_SMTP_HOST}"),
        email("down", closed, host="${env:DRILL_TEST_SMTP_HOST}"),
    ]
    report = await check_readiness(
        playbook(tmp_path, contacts=contacts), env={"DRILL_TEST_SMTP_HOST": "localhost"}
    )
    assert f"ok  notifier oncall/up (email smtp {REDACTED}:{smtp_rec.port})" in report.lines()
    down = line_of(report, "notifier oncall/down")
    assert down.startswith("NOT READY notifier oncall/down: ") and REDACTED in down, down
    assert all("localhost" not in line for line in report.lines())


async def test_every_check_runs_at_the_same_time(tmp_path: Path) -> None:
    """Four endpoints and a probe that answer only once all five are connected at once: one after
    another, the first would wait for the others until its deadline."""
    gate = Gate(needed=5)
    try:
        contacts = [email(f"person-{i}", await gate.smtp()) for i in range(3)]
        hook = Contact("hook", "webhook", 60_000, {"url": f"http://127.0.0.1:{await gate.tcp()}/hook"})
        probe_port = await gate.tcp()
        probe = Probe(
            "port",
            "tcp",
            {"host": "127.0.0.1", "port": probe_port, "send": "PING\n", "expect": "PONG"},
            interval_ms=1000,
            timeout_ms=10_000,
            fall=1,
            rise=1,
        )
        book = playbook(tmp_path, contacts=[*contacts, hook], probes=[probe], timeout_ms=10_000)
        report = await check_readiness(book, env={})
    finally:
        await gate.stop()
    assert report.ready, report.lines()
    assert "ok  probe svc/port" in report.lines()
    assert gate.most_open == 5
    assert sorted(gate.commands) == ["EHLO"] * 3 + ["QUIT"] * 3
