"""`drill watch --sla`: burn-rate, threshold and delay alerts page the playbook's contact chain.

A real watch process probes a real HTTP server on 127.0.0.1 that the test switches to failing and
back; the chain's one contact is a webhook to a real HTTP receiver on 127.0.0.1 run by the test.
The evaluator's threshold rule is checked directly (no process: it needs none).

Every wait polls a file, a process or the receiver under a deadline; none sleeps to synchronise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drill.clock import utc_ms
from drill.evidence.events import Event, PageSent, ProbeObserved, SlaAlert
from drill.evidence.journal import read_events
from drill.sla.alerts import AlertEvaluator, describe, every_ms, horizon_ms
from drill.sla.load import load_sla
from drill.sla.segments import verify_watch
from tests.conftest import SwitchableServer, serving
from tests.sla.test_watch import stop_watch, wait_for, watching

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: watched, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms, fall: 1, rise: 1}}
tiers: [{{name: tier-0, rto: 5s}}]
contacts:
  chains:
    oncall:
      contacts:
        - {{name: Ana, via: webhook, url: "{pager}/ana", ack_within: 60s}}
assets:
  - id: web
    tier: tier-0
    contact_chain: oncall
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
"""

SLA = """\
apiVersion: drill/v1
kind: SLA
metadata: {{name: watched-sla, owner: tests}}
spec:
  playbook: watched.yaml
  services:
    - {{name: web, probes: [web/health]}}
  target: "90%"
  window: {{calendar: month, time_zone: UTC}}
  counting: {{method: timeslices, slice: 1s}}
{extra}
"""

BURN = """\
  alerts:
    burn_rates:
      - {name: fast-burn, factor: "2", long: 6s, short: 2s, chain: oncall, severity: page}
"""

THRESHOLD = """\
  alerts:
    thresholds:
      - {name: early-warning, below: "95%", chain: oncall}
"""


class _Pager(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        server = self.server
        assert isinstance(server, PagerReceiver)
        with server.lock:
            server.pages.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class PagerReceiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: every POST's path and JSON body, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Pager)
        self.lock = threading.Lock()
        self.pages: list[tuple[str, dict[str, object]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def count(self) -> int:
        with self.lock:
            return len(self.pages)


@pytest.fixture
def server() -> Iterator[SwitchableServer]:
    yield from serving(SwitchableServer())


def receiving() -> Iterator[PagerReceiver]:
    """A PagerReceiver serving in a thread, for a fixture to yield from (stopped after)."""
    receiver = PagerReceiver()
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()
    thread.join(timeout=5)


@pytest.fixture
def pager() -> Iterator[PagerReceiver]:
    yield from receiving()


def write_files(
    folder: Path, server: SwitchableServer, pager: PagerReceiver, extra: str
) -> tuple[Path, Path]:
    playbook = folder / "watched.yaml"
    playbook.write_text(PLAYBOOK.format(url=server.url, pager=pager.url), encoding="utf-8")
    sla = folder / "sla.yaml"
    sla.write_text(SLA.format(extra=extra.rstrip("\n")), encoding="utf-8")
    return playbook, sla


def journal(folder: Path) -> list[Event]:
    return [
        event
        for path in sorted(folder.glob("segment-*.jsonl"))
        for event in read_events(path, allow_torn_tail=True)
    ]


def alerts_in(folder: Path) -> list[SlaAlert]:
    return [e.payload for e in journal(folder) if isinstance(e.payload, SlaAlert)]


def observed_for_ms(folder: Path) -> int:
    """From the first probe.observed to the last one journalled."""
    stamps = [utc_ms(e.utc) for e in journal(folder) if isinstance(e.payload, ProbeObserved)]
    return stamps[-1] - stamps[0] if stamps else 0


def set_status(server: SwitchableServer, status: int) -> None:
    with server.lock:
        server.status = status


def test_a_burn_pages_the_chain_once_and_resolves_when_the_service_is_back(
    tmp_path: Path, server: SwitchableServer, pager: PagerReceiver
) -> None:
    playbook, sla = write_files(tmp_path, server, pager, BURN)
    folder = tmp_path / "watch"
    log = tmp_path / "watch.log"
    with watching(tmp_path, str(playbook), "--out", str(folder), "--sla", str(sla)) as process:
        # healthy for longer than the long window (6 s) plus an evaluation: measured, not firing
        wait_for(lambda: process.poll() is None and observed_for_ms(folder) >= 7_500, 20, "7.5 s of probing")
        assert process.poll() is None, log.read_text()
        assert pager.count() == 0 and alerts_in(folder) == []

        set_status(server, 503)
        wait_for(lambda: pager.count() >= 1, 10, "a page")
        ((path, body),) = pager.pages
        assert path == "/ana"
        assert "fast-burn" in str(body["asked"]) and body["chain"] == "oncall"

        set_status(server, 200)
        wait_for(lambda: [a.state for a in alerts_in(folder)] == ["firing", "resolved"], 10, "resolved")
        stop_watch(process, tmp_path)
    assert pager.count() == 1  # once per episode: never again while it kept firing, none on resolve
    firing, resolved = alerts_in(folder)
    assert (firing.name, firing.kind, firing.service, firing.chain) == ("fast-burn", "burn", "web", "oncall")
    assert firing.long_milli is not None and firing.long_milli >= 2_000
    assert firing.short_milli is not None and firing.short_milli >= 2_000
    assert (firing.factor_milli, firing.long_ms, firing.short_ms) == (2_000, 6_000, 2_000)
    assert firing.availability is None and firing.below is None  # not a threshold: not measured
    assert resolved.short_milli is not None and resolved.short_milli < 2_000
    sent = [e.payload for e in journal(folder) if isinstance(e.payload, PageSent)]
    assert [(p.chain, p.contact, p.ok) for p in sent] == [("oncall", "Ana", True)]
    assert verify_watch(folder).ok  # sla.alert and page.sent are chained evidence like the rest


JANUARY_2027_MS = 31 * 86_400_000  # t0 below lies in it (2027-01-15T08:00:00Z)


def test_a_threshold_fires_only_when_the_contract_period_is_certain_to_end_below_it(
    tmp_path: Path, server: SwitchableServer, pager: PagerReceiver
) -> None:
    _, path = write_files(tmp_path, server, pager, THRESHOLD)
    sla = load_sla(path)
    assert horizon_ms(sla) == 3_600_000 and every_ms(sla) == 1000  # no burn pair: the defaults
    evaluator = AlertEvaluator(sla)
    t0 = 1_800_000_000_000
    evaluator.observe("web/health", True, t0)
    evaluator.observe("web/other", False, t0 + 10_000)  # not a probe of the service: ignored
    evaluator.observe("web/health", False, t0 + 10_000)
    # Ten minutes down: 100 % of the last ten minutes, but 99.977 % of January at best: no page.
    assert evaluator.evaluate(t0 + 610_000) == []
    # 5 % of January down (37.2 h): the month can still end at exactly 95.000 %, not below.
    allowed = JANUARY_2027_MS // 20
    assert evaluator.evaluate(t0 + 10_000 + allowed) == []
    (edge,) = evaluator.evaluate(t0 + 10_000 + allowed + 1_000)  # one more bad second: 94.999 %
    assert (edge.event.state, edge.event.availability, edge.event.window_ms) == (
        "firing",
        94_999,
        JANUARY_2027_MS,
    )
    assert "can end at 94.999 % availability at most" in describe(edge.event)
    assert evaluator.evaluate(t0 + 20_000 + allowed) == []  # still below: no second edge
    evaluator.observe("web/health", True, t0 + 20_000 + allowed)
    assert evaluator.evaluate(t0 + 60_000 + allowed) == []  # up again, but the downtime stays
    # February starts: a new period, nothing down in it yet: resolved, paging nobody.
    february = t0 + (17 * 86_400_000 - 8 * 3_600_000)
    (back,) = evaluator.evaluate(february + 5_000)
    assert (back.event.state, back.event.availability) == ("resolved", 100_000)


def test_the_period_threshold_keeps_one_span_per_change_and_evaluates_quickly(
    tmp_path: Path, server: SwitchableServer, pager: PagerReceiver
) -> None:
    """A flapping month: the spans kept are one per change of health (back to the period's
    start), and one evaluation over them stays far below the 1 s between evaluations."""
    _, path = write_files(tmp_path, server, pager, THRESHOLD)
    evaluator = AlertEvaluator(load_sla(path))
    t0 = 1_800_000_000_000
    changes = 2_000
    for k in range(changes):
        evaluator.observe("web/health", k % 2 == 0, t0 + k * 60_000)
    now = t0 + changes * 60_000
    started = time.perf_counter()
    evaluator.evaluate(now)
    took = time.perf_counter() - started
    assert len(evaluator.services["web"].closed) == changes - 1
    assert took < 0.5, f"one evaluation over {changes} spans took {took:.3f} s"


DELAY = """\
  kpis:
    delay:
      - name: round-trip
        probe: web/health
        within: 150ms
        levels:
          - {after: 150ms, chain: oncall}
          - {after: 400ms, chain: oncall}
"""


def delay_alerts(folder: Path) -> list[tuple[str, str]]:
    return [(a.name, a.state) for a in alerts_in(folder) if a.kind == "delay"]


def test_a_slow_service_pages_each_delay_level_once_and_resolves(
    tmp_path: Path, server: SwitchableServer, pager: PagerReceiver
) -> None:
    """The server answers 250 ms late (level 1 only), then not within the 500 ms timeout (a failed
    round trip, over every level), then promptly: each level pages once and resolves."""
    playbook, sla = write_files(tmp_path, server, pager, DELAY)
    folder = tmp_path / "watch"
    log = tmp_path / "watch.log"
    with watching(tmp_path, str(playbook), "--out", str(folder), "--sla", str(sla)) as process:
        wait_for(lambda: process.poll() is None and observed_for_ms(folder) >= 1_000, 20, "1 s of probing")
        assert pager.count() == 0, log.read_text()
        server.delay_s = 0.25
        wait_for(lambda: pager.count() >= 1, 10, "the level-1 page")
        slow_from = len(journal(folder))
        server.delay_s = 0.6
        wait_for(lambda: pager.count() >= 2, 10, "the level-2 page")
        server.delay_s = 0.0
        wait_for(lambda: len(delay_alerts(folder)) >= 4, 10, "both levels resolved")
        stop_watch(process, tmp_path)
    assert delay_alerts(folder) == [
        ("round-trip level 1", "firing"),
        ("round-trip level 2", "firing"),
        ("round-trip level 1", "resolved"),
        ("round-trip level 2", "resolved"),
    ]
    assert [str(body["asked"]).count("round-trip level") for _, body in pager.pages] == [1, 1]
    assert ["level 1" in str(pager.pages[0][1]["asked"]), "level 2" in str(pager.pages[1][1]["asked"])] == [
        True,
        True,
    ]
    # ground truth set here: while the server slept 250 ms, every answered trip took at least that
    slow = [e.payload for e in journal(folder)[:slow_from] if isinstance(e.payload, ProbeObserved)]
    assert any(o.ok and o.latency_us >= 250_000 for o in slow)
    assert verify_watch(folder).ok


def test_after_a_restart_the_threshold_counts_the_downtime_earlier_segments_saw(
    tmp_path: Path, server: SwitchableServer, pager: PagerReceiver
) -> None:
    """A 60 s rolling window with a 90 % threshold (fires past 6 s down). The first watch sees 5 s
    down and stops; the second sees the service down again: it pages within ~1-2 s, which only
    the first outage, read back from the folder's seals, can explain (the second outage alone
    would need 6 s, and the test gives it 4.5 s). Downtime is the test's own record."""
    playbook, sla = write_files(tmp_path, server, pager, THRESHOLD.replace("95%", "90%"))
    text = sla.read_text(encoding="utf-8")
    sla.write_text(text.replace("{calendar: month, time_zone: UTC}", "{rolling: 60s, time_zone: UTC}"))
    folder = tmp_path / "watch"
    args = (str(playbook), "--out", str(folder), "--sla", str(sla))
    with watching(tmp_path, *args) as first:
        wait_for(lambda: first.poll() is None and observed_for_ms(folder) >= 1_000, 20, "1 s of probing")
        down_from = time.time()
        set_status(server, 503)
        time.sleep(5)  # the outage's length is what is tested: the test's clock sets it
        set_status(server, 200)
        first_down = time.time() - down_from
        back = observed_for_ms(folder)
        wait_for(lambda: observed_for_ms(folder) >= back + 500, 10, "0.5 s up again")
        stop_watch(first, tmp_path)
    assert pager.count() == 0 and alerts_in(folder) == []  # 5 s of 60: 91.7 %, above 90 %
    with watching(tmp_path, *args) as second:
        wait_for(
            lambda: second.poll() is None and observed_for_ms(folder) >= back + 1_500, 20, "probing again"
        )
        down_from = time.time()
        set_status(server, 503)
        wait_for(lambda: pager.count() >= 1, 4.5, "the threshold's page")
        second_down = time.time() - down_from
        set_status(server, 200)
        stop_watch(second, tmp_path)
    (firing,) = [a for a in alerts_in(folder) if a.state == "firing"]
    assert (firing.kind, firing.name, firing.window_ms) == ("threshold", "early-warning", 60_000)
    assert firing.availability is not None and firing.availability < 90_000
    # both outages in it: at most what the test's own record of them leaves, give or take a probe
    # interval and a request per edge (4 edges, 250 ms each: 1,667 thousandths of a percent)
    recorded = 100_000 - round((first_down + second_down) * 100_000 / 60)
    assert firing.availability <= recorded + 1_667, (firing.availability, first_down, second_down)
    assert second_down < 6.0  # the second outage alone could not have crossed 90 %
