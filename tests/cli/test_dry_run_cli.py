"""`drill run --dry-run`: a readiness check that resolves secrets, probes once, reaches every notifier
and action endpoint without using it, and runs no action."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from click.testing import CliRunner

from drill.cli import cli
from tests.conftest import SwitchableServer
from tests.notify.conftest import SmtpCatcher, start_smtp

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: dry-run, owner: tests}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes: [{{name: health, http: {{url: "{url}/health"}}}}]
  - id: db
    tier: tier-0
    probes: [{{name: port, tcp: {{host: 127.0.0.1, port: {closed}}}, timeout: 500ms}}]
scenario:
  - {{name: declare, mark: disaster}}
  - name: fail over
    action: {{http: {{url: "{url}/failover", headers: {{X-Key: "${{env:DRILL_DRY_RUN_MISSING}}"}}}}}}
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_dry_run_reports_every_problem_and_runs_no_action(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url, closed=_closed_port()))
    result = CliRunner().invoke(cli, ["run", "--dry-run", str(playbook)], env={"DRILL_DRY_RUN_MISSING": None})
    lines = result.output.splitlines()
    assert result.exit_code == 3, result.output  # not ready: could not run
    assert "ok  probe web/health" in lines
    assert any(line.startswith("NOT READY probe db/port: connection refused") for line in lines)
    assert any(
        "NOT READY action in step 'fail over'" in line and "DRILL_DRY_RUN_MISSING" in line for line in lines
    )
    assert lines[-1] == "not ready: 2 problem(s)"
    assert http_server.requests == ["/health"]  # probed once; the failover action never ran


# --- notifier and action endpoints: checked, never used ----------------------------------------


@dataclass
class RecordingSmtp(SmtpCatcher):
    """An SmtpCatcher that also records every SMTP command it was given, in order."""

    commands: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.commands.append("EHLO")
        session.host_name = hostname  # what aiosmtpd does itself when no hook is set
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self.commands.append("HELO")
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append("MAIL")
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.commands.append("RCPT")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.commands.append("DATA")
        return await super().handle_DATA(server, session, envelope)

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.commands.append("QUIT")
        return "221 Bye"


class ThreadedSmtp:
    """A RecordingSmtp served by aiosmtpd on 127.0.0.1 in its own thread and event loop, so a
    CLI invocation (which runs its own asyncio loop) can reach it."""

    def __init__(self) -> None:
        self.catcher = RecordingSmtp()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self.catcher.port

    def start(self) -> None:
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(
            start_smtp(self.catcher, auth_require_tls=False), self.loop
        )
        self.server = started.result(timeout=30)

    def wait_for_quit(self, timeout_s: float = 30.0) -> None:
        """QUIT is answered before the client closes; this only absorbs a busy machine's delay."""
        deadline = time.monotonic() + timeout_s
        while "QUIT" not in self.catcher.commands and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
                await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def smtp_server() -> Iterator[ThreadedSmtp]:
    server = ThreadedSmtp()
    server.start()
    yield server
    server.stop()


ENDPOINTS = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: dry-run-endpoints, owner: tests}}
tiers: [{{name: tier-0, rto: 5s}}]
contacts:
  chains:
    oncall:
      contacts:
        - {{name: alice, via: email, to: [alice@example.test], smtp_host: 127.0.0.1, smtp_port: {smtp_port}, ack_within: 1m}}
        - {{name: bob, via: webhook, url: "{hook_url}/page/T0KEN", ack_within: 1m}}
assets:
  - id: web
    tier: tier-0
    contact_chain: oncall
    probes: [{{name: health, http: {{url: "{url}/health"}}, timeout: 5s}}]
scenario:
  - {{name: declare, mark: disaster}}
  - name: fail over
    action: {{http: {{url: "{action_url}/failover"}}}}
  - name: restart
    action: {{command: {{argv: ["{exe}", "restarted"]}}}}
"""


def _script(folder: Path, marker: Path) -> Path:
    """An executable that would leave `marker` behind if anything ran it."""
    script = folder / "bin" / "restart.sh"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho ran > '{marker}'\n")
    script.chmod(0o755)
    return script


def _dry_run(
    tmp_path: Path,
    http_server: SwitchableServer,
    *,
    smtp_port: int,
    action_url: str | None = None,
    exe: str = "./bin/restart.sh",
) -> tuple[int, list[str]]:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(
        ENDPOINTS.format(
            url=http_server.url,
            hook_url=http_server.url,
            action_url=action_url or http_server.url,
            smtp_port=smtp_port,
            exe=exe,
        )
    )
    result = CliRunner().invoke(cli, ["run", "--dry-run", str(playbook)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def test_dry_run_ready_when_every_endpoint_answers_and_uses_none(
    http_server: SwitchableServer, smtp_server: ThreadedSmtp, tmp_path: Path
) -> None:
    marker = tmp_path / "restart-ran"
    _script(tmp_path, marker)
    code, lines = _dry_run(tmp_path, http_server, smtp_port=smtp_server.port)
    assert code == 0, lines
    where = f"127.0.0.1:{http_server.server_port}"
    assert "ok  probe web/health" in lines
    assert f"ok  notifier oncall/alice (email smtp 127.0.0.1:{smtp_server.port})" in lines
    assert f"ok  notifier oncall/bob (webhook {where})" in lines
    assert f"ok  action in step 'fail over' (http {where})" in lines
    assert "ok  action in step 'restart' (command ./bin/restart.sh)" in lines
    assert lines[-1] == (
        "ready: every secret resolves, every asset answers, every notifier and action endpoint is reachable"
    )
    assert all("T0KEN" not in line for line in lines)  # a webhook URL's token is never shown
    # the servers' own records: probed once; no action request, no page, no mail; nothing ran
    assert http_server.requests == ["/health"]
    smtp_server.wait_for_quit()
    assert smtp_server.catcher.commands == ["EHLO", "QUIT"]
    assert smtp_server.catcher.mails == []
    assert not marker.exists()


def test_dry_run_smtp_server_down_is_not_ready(http_server: SwitchableServer, tmp_path: Path) -> None:
    _script(tmp_path, tmp_path / "restart-ran")
    closed = _closed_port()
    code, lines = _dry_run(tmp_path, http_server, smtp_port=closed)
    assert code == 3, lines
    assert f"NOT READY notifier oncall/alice: connection refused to 127.0.0.1:{closed}" in lines
    assert lines[-1] == "not ready: 1 problem(s)"
    assert http_server.requests == ["/health"]


def test_dry_run_http_action_endpoint_down_is_not_ready(
    http_server: SwitchableServer, smtp_server: ThreadedSmtp, tmp_path: Path
) -> None:
    _script(tmp_path, tmp_path / "restart-ran")
    closed = _closed_port()
    code, lines = _dry_run(
        tmp_path, http_server, smtp_port=smtp_server.port, action_url=f"http://127.0.0.1:{closed}"
    )
    assert code == 3, lines
    assert f"NOT READY action in step 'fail over': connection refused to 127.0.0.1:{closed}" in lines
    assert lines[-1] == "not ready: 1 problem(s)"
    assert http_server.requests == ["/health"]
    smtp_server.wait_for_quit()
    assert "MAIL" not in smtp_server.catcher.commands and smtp_server.catcher.mails == []


def test_dry_run_missing_executable_is_not_ready(
    http_server: SwitchableServer, smtp_server: ThreadedSmtp, tmp_path: Path
) -> None:
    code, lines = _dry_run(tmp_path, http_server, smtp_port=smtp_server.port, exe="./bin/restart.sh")
    assert code == 3, lines
    assert f"NOT READY action in step 'restart': command: ./bin/restart.sh not found in {tmp_path}" in lines
    code, lines = _dry_run(tmp_path, http_server, smtp_port=smtp_server.port, exe="no-such-drill-program")
    assert code == 3, lines
    assert (
        "NOT READY action in step 'restart': command: 'no-such-drill-program' not found on PATH,"
        " or not executable there"
    ) in lines
    assert http_server.requests == ["/health", "/health"]
