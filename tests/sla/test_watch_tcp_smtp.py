"""`drill watch --sla` over a TCP service the test takes down and brings back at instants it records
itself; the alert reaches a real SMTP server (aiosmtpd) on 127.0.0.1 as an e-mail.

The TCP service is a listening socket in a thread: closed (connection refused) while "down". Every
wait polls the journal or the SMTP server under a deadline; none sleeps to synchronise.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from drill.clock import utc_ms
from drill.evidence.events import ProbeObserved, SlaAlert
from drill.sla.segments import verify_watch
from tests.sla.test_watch import stop_watch, wait_for, watching
from tests.sla.test_watch_alerts import alerts_in, journal, observed_for_ms

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: queue-watched, owner: tests}}
settings: {{interval: 100ms, timeout: 300ms, fall: 1, rise: 1}}
tiers: [{{name: tier-0, rto: 5s}}]
contacts:
  chains:
    oncall:
      contacts:
        - {{name: Ana, via: email, to: [ana@example.test], smtp_host: 127.0.0.1, smtp_port: {smtp_port}, ack_within: 60s}}
assets:
  - id: queue
    tier: tier-0
    contact_chain: oncall
    probes:
      - {{name: port, tcp: {{host: 127.0.0.1, port: {tcp_port}}}}}
scenario:
  - {{name: declare, mark: disaster}}
"""

SLA = """\
apiVersion: drill/v1
kind: SLA
metadata: {name: queue-sla, owner: tests}
spec:
  playbook: watched.yaml
  services:
    - {name: queue, probes: [queue/port]}
  target: "90%"
  window: {calendar: month, time_zone: UTC}
  counting: {method: timeslices, slice: 1s}
  alerts:
    burn_rates:
      - {name: fast-burn, factor: "2", long: 6s, short: 2s, chain: oncall, severity: page}
"""


class TcpService:
    """A TCP service on a fixed loopback port: `down()` closes its listener (connections are then
    refused), `up()` listens again on the same port; each returns the instant it took effect."""

    def __init__(self) -> None:
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.up()

    def up(self) -> datetime:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.settimeout(0.05)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()
        return datetime.now(UTC)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def down(self) -> datetime:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return datetime.now(UTC)


class Mailbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        with self.lock:
            content = envelope.content or b""
            raw = content.encode() if isinstance(content, str) else content
            self.messages.append((list(envelope.rcpt_tos), raw))
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture
def tcp() -> Iterator[TcpService]:
    service = TcpService()
    yield service
    service.down()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.create_server(("127.0.0.1", 0)) as free:  # aiosmtpd's ready check needs a real port
        port = int(free.getsockname()[1])
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def test_a_tcp_outage_under_watch_is_mailed_once_and_dated_after_the_instant_the_test_took_it_down(
    tmp_path: Path, tcp: TcpService, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    playbook = tmp_path / "watched.yaml"
    playbook.write_text(PLAYBOOK.format(smtp_port=smtp_port, tcp_port=tcp.port), encoding="utf-8")
    sla = tmp_path / "sla.yaml"
    sla.write_text(SLA, encoding="utf-8")
    folder = tmp_path / "watch"
    log = tmp_path / "watch.log"
    with watching(tmp_path, str(playbook), "--out", str(folder), "--sla", str(sla)) as process:
        wait_for(lambda: process.poll() is not None or observed_for_ms(folder) >= 7_500, 20, "7.5 s")
        assert process.poll() is None, log.read_text()
        assert box.count() == 0 and alerts_in(folder) == []
        went_down = tcp.down()
        wait_for(lambda: box.count() >= 1, 10, "an e-mail")
        came_back = tcp.up()
        wait_for(lambda: [a.state for a in alerts_in(folder)] == ["firing", "resolved"], 10, "resolved")
        stop_watch(process, tmp_path)
    (rcpts, content) = box.messages[0]
    assert box.count() == 1 and rcpts == ["ana@example.test"]
    assert b"fast-burn" in content
    down_ms = int(went_down.timestamp() * 1000)
    back_ms = int(came_back.timestamp() * 1000)
    observed = [
        (utc_ms(e.utc), e.payload.ok) for e in journal(folder) if isinstance(e.payload, ProbeObserved)
    ]
    failed = [at for at, ok in observed if not ok]
    # the probes saw the outage only inside what the test recorded: nothing failed before the
    # listener closed (a probe started up to 1 ms before it may fail), nothing after it listened again
    # beyond one probe's timeout (300 ms)
    assert failed and min(failed) >= down_ms - 1
    assert max(failed) <= back_ms + 300
    firing = next(a for a in alerts_in(folder) if a.state == "firing")
    assert isinstance(firing, SlaAlert) and firing.kind == "burn" and firing.service == "queue"
    assert utc_ms(firing.at_utc) >= down_ms
    assert verify_watch(folder).ok
