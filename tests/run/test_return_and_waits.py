"""After the scenario: the rollback runs by default, drill waits (bounded, visibly) until the
world is back at its baseline, and the wait for acknowledgements is bounded and on record.

The world here is a real HTTP server whose health answer the drill's own actions switch: the
scenario's POST /kill makes /health fail, /failover and /failback (when they heal) make it
answer again, /noop changes nothing. Timing is asserted against instants in the journal.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drill.evidence.events import (
    AssetState,
    Event,
    FailureInjected,
    PageSent,
    ReturnChecked,
    RollbackFinished,
    RollbackStarted,
    RunStatus,
    WaitEnded,
    WaitStarted,
)
from drill.evidence.journal import read_events, verify_journal
from drill.playbook.model import Action, ActionStep, MarkStep, Playbook, Step, WaitFor, WaitForStep
from drill.playbook.validate import load_playbook
from drill.report.build import build_report_from_journal
from drill.run.runner import run_drill
from drill.run.session import RunOptions, RunOutcome
from tests.conftest import SwitchableHandler, SwitchableServer
from tests.run.helpers import one_asset_playbook

HEALTHY, FAILING = 200, 503
RUN_BOUND_S = 120  # a regression that waits for people (5 min, 15 min) fails instead of hanging


class _WorldHandler(SwitchableHandler):
    """/health answers the server's status; any other path answers 200 and applies its effect."""

    def _answer(self) -> None:
        server: WorldServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append(self.path)
            server.calls.append((self.command, self.path))
            if self.path == "/health":
                status = server.status
            else:
                status = HEALTHY
                server.status = server.effects.get(self.path, server.status)
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n" if status < 400 else b"no\n")


class WorldServer(SwitchableServer):
    def __init__(self, effects: dict[str, int]) -> None:
        super().__init__()
        self.RequestHandlerClass = _WorldHandler
        self.effects = effects  # path -> the health status it leaves behind


@pytest.fixture
def world() -> Iterator[WorldServer]:
    server = WorldServer({"/kill": FAILING, "/failover": HEALTHY, "/failback": HEALTHY})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _post(server: SwitchableServer, name: str, path: str) -> ActionStep:
    return ActionStep(name, Action("http", {"method": "POST", "url": server.url + path}))


def _kill_and_see_it(world: WorldServer) -> tuple[Step, ...]:
    return (
        MarkStep("declare", "disaster"),
        _post(world, "kill primary", "/kill"),
        WaitForStep("detected", WaitFor(state="down", within_ms=10_000, asset="svc")),
    )


async def _run(playbook: Playbook, runs: Path, ack_wait_ms: int | None = None) -> RunOutcome:
    options = RunOptions(runs_dir=runs, auto_confirm=True, ack_wait_ms=ack_wait_ms)
    async with asyncio.timeout(RUN_BOUND_S):
        return await run_drill(playbook, options)


def _events(outcome: RunOutcome) -> list[Event]:
    verify_journal(outcome.journal_path)
    return list(read_events(outcome.journal_path))


def _waits(events: list[Event], what: str) -> list[Event]:
    return [e for e in events if isinstance(e.payload, WaitStarted | WaitEnded) and e.payload.what == what]


def _only(events: list[Event], kind: type) -> Event:
    (found,) = [e for e in events if isinstance(e.payload, kind)]
    return found


# ------------------------------------------------------------------ rollback and return to normal


async def test_a_drill_that_passes_still_fails_back_by_default(tmp_path: Path, world: WorldServer) -> None:
    scenario = (
        *_kill_and_see_it(world),
        _post(world, "fail over", "/failover"),
        WaitForStep("recovered", WaitFor(state="up", within_ms=10_000, asset="svc")),
    )
    rollback = (_post(world, "fail back", "/failback"),)
    playbook = one_asset_playbook("http", {"url": world.url + "/health"}, scenario, rollback=rollback)
    outcome = await _run(playbook, tmp_path)  # no rollback= : the default policy

    results = outcome.results
    assert (results.status, results.verdict, outcome.exit_code) == (RunStatus.COMPLETED, "pass", 0)
    assert results.rollback.ran and results.rollback.status == "ok"
    actions = [c for c in world.calls if c[1] != "/health"]
    assert actions == [("POST", "/kill"), ("POST", "/failover"), ("POST", "/failback")]
    events = _events(outcome)
    assert _only(events, RollbackStarted).payload == RollbackStarted("")
    assert _only(events, ReturnChecked).payload == ReturnChecked(True, ())
    # up all along, yet re-probed after the rollback before it counts as back: a visible wait
    started, ended = _waits(events, "return to normal")
    assert isinstance(started.payload, WaitStarted)
    assert started.payload.detail == "re-probing 1 asset(s) after the rollback: svc"
    assert ended.payload == WaitEnded("return to normal", "done", "")
    assert results.return_to_normal is not None and results.return_to_normal.confirmed
    cleanup = build_report_from_journal(outcome.journal_path).cleanup
    assert cleanup.confirmed and "baseline state" in cleanup.basis


async def test_drill_waits_until_the_rollback_has_brought_the_service_back(
    tmp_path: Path, world: WorldServer
) -> None:
    """The scenario leaves svc down; the rollback heals it; return.checked comes only once the
    probes have seen svc up again."""
    rollback = (_post(world, "fail back", "/failback"),)
    playbook = one_asset_playbook(
        "http", {"url": world.url + "/health"}, _kill_and_see_it(world), rollback=rollback, rise=3
    )
    outcome = await _run(playbook, tmp_path)

    assert world.requests.count("/failback") == 1
    events = _events(outcome)
    seq = {id(e): i for i, e in enumerate(events)}
    rolled = _only(events, RollbackFinished)
    assert rolled.payload == RollbackFinished("ok")
    back_up = [
        e
        for e in events
        if isinstance(e.payload, AssetState)
        and e.payload.state == "up"
        and seq[id(e)] > seq[id(_only(events, RollbackStarted))]
    ]
    assert back_up, "the probes never saw svc up after the rollback"
    checked = _only(events, ReturnChecked)
    assert checked.payload == ReturnChecked(True, ())
    assert seq[id(checked)] > seq[id(back_up[0])]  # it waited for the probes, not for the action
    started, ended = _waits(events, "return to normal")
    assert isinstance(started.payload, WaitStarted) and started.payload.bound_ms
    assert started.payload.detail == "re-probing 1 asset(s) after the rollback: svc"
    assert ended.payload == WaitEnded("return to normal", "done", "")
    assert seq[id(started)] > seq[id(rolled)]
    results = outcome.results
    assert results.rollback.ran and results.return_to_normal is not None
    assert results.return_to_normal.confirmed and results.return_to_normal.not_back == ()
    report = build_report_from_journal(outcome.journal_path)
    assert report.cleanup.confirmed
    assert report.cleanup.basis == "every asset back at its baseline state after the rollback (probes)"
    assert "Not back to normal" not in [f.title for f in report.findings]


async def test_a_rollback_that_does_not_heal_is_not_back_to_normal(
    tmp_path: Path, world: WorldServer
) -> None:
    rollback = (_post(world, "fail back", "/noop"),)  # answers 200, heals nothing
    playbook = one_asset_playbook(
        "http", {"url": world.url + "/health"}, _kill_and_see_it(world), rollback=rollback
    )
    outcome = await _run(playbook, tmp_path)

    assert world.requests.count("/noop") == 1 and world.status == FAILING  # ground truth: still down
    events = _events(outcome)
    assert _only(events, RollbackFinished).payload == RollbackFinished("ok")  # the action itself worked
    assert _only(events, ReturnChecked).payload == ReturnChecked(False, ("svc (down)",))
    started, ended = _waits(events, "return to normal")
    assert isinstance(started.payload, WaitStarted) and isinstance(ended.payload, WaitEnded)
    assert started.payload.detail == "re-probing 1 asset(s) after the rollback: svc"
    assert (ended.payload.outcome, ended.payload.detail) == ("timed out", "svc")

    bound_ms = started.payload.bound_ms
    assert bound_ms is not None and 0 < bound_ms <= 10_000
    waited_ms = (ended.mono_ns - started.mono_ns) / 1e6
    assert bound_ms - 20 <= waited_ms <= bound_ms + 5_000, f"waited {waited_ms:.0f} ms for {bound_ms}"
    results = outcome.results
    assert results.return_to_normal is not None
    assert (results.return_to_normal.confirmed, results.return_to_normal.not_back) == (False, ("svc (down)",))
    report = build_report_from_journal(outcome.journal_path)
    assert not report.cleanup.confirmed
    assert "svc (down)" in report.cleanup.basis
    (finding,) = [f for f in report.findings if f.title == "Not back to normal"]
    assert "svc (down)" in finding.detail


async def test_a_rollback_that_breaks_a_recovered_service_is_not_back_to_normal(
    tmp_path: Path, world: WorldServer
) -> None:
    """svc is up when the rollback ends, but the rollback broke it: the state the monitor held
    then is older than the damage, so only probes started afterwards may confirm the return."""
    scenario = (
        *_kill_and_see_it(world),
        _post(world, "fail over", "/failover"),
        WaitForStep("recovered", WaitFor(state="up", within_ms=10_000, asset="svc")),
    )
    rollback = (_post(world, "fail back, wrongly", "/kill"),)  # leaves svc down
    playbook = one_asset_playbook("http", {"url": world.url + "/health"}, scenario, rollback=rollback)
    outcome = await _run(playbook, tmp_path)

    assert world.status == FAILING  # ground truth: the rollback broke it
    events = _events(outcome)
    checked = _only(events, ReturnChecked).payload
    assert isinstance(checked, ReturnChecked) and not checked.confirmed, checked
    assert checked.not_back in (("svc (down)",), ("svc (up before the rollback ended, not re-probed since)",))
    report = build_report_from_journal(outcome.journal_path)
    assert "Not back to normal" in [f.title for f in report.findings]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_drill_that_did_not_run_checks_no_return(tmp_path: Path, world: WorldServer) -> None:
    rollback = (_post(world, "fail back", "/failback"),)
    playbook = one_asset_playbook(
        "tcp", {"host": "127.0.0.1", "port": _closed_port()}, _kill_and_see_it(world), rollback=rollback
    )
    outcome = await _run(playbook, tmp_path)

    assert outcome.results.status == RunStatus.NOT_RUN
    assert world.requests == []  # nothing was changed, nothing rolled back
    events = _events(outcome)
    assert [e for e in events if isinstance(e.payload, ReturnChecked)] == []
    assert _waits(events, "return to normal") == []
    assert outcome.results.return_to_normal is None


# ------------------------------------------------------------------ the wait for acknowledgements

PAGED = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: ack-wait, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    contact_chain: oncall
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: hold, pause: {pause_ms}ms}}
rollback:
  - {{name: fail back, action: {{http: {{url: "{url}/failback"}}}}}}
contacts:
  chains:
    oncall:
      respond_within: {respond_within}
      contacts:
        - {{name: Ana, via: webhook, url: "{url}/page", ack_within: 5m}}
"""
PAUSE_MS = 300


def _paged_playbook(tmp_path: Path, url: str, respond_within: str) -> Playbook:
    path = tmp_path / "paged.yaml"
    path.write_text(PAGED.format(url=url, pause_ms=PAUSE_MS, respond_within=respond_within))
    return load_playbook(path)


async def test_ack_wait_caps_the_wait_for_acknowledgements(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _paged_playbook(tmp_path, http_server.url, "15m")
    began = time.monotonic()
    outcome = await _run(playbook, tmp_path / "runs", ack_wait_ms=1000)
    took_s = time.monotonic() - began

    assert http_server.requests.count("/page") == 1  # the page went out
    events = _events(outcome)
    _only(events, PageSent)
    started, ended = _waits(events, "acknowledgements")
    assert isinstance(started.payload, WaitStarted) and isinstance(ended.payload, WaitEnded)
    assert started.payload.bound_ms is not None and 0 < started.payload.bound_ms <= 1000
    assert (ended.payload.outcome, ended.payload.detail) == ("timed out", "not acknowledged: oncall")
    waited_ms = (ended.mono_ns - started.mono_ns) / 1e6
    assert started.payload.bound_ms - 20 <= waited_ms <= started.payload.bound_ms + 3_000, waited_ms
    rolled = _only(events, RollbackFinished)
    assert rolled.mono_ns < started.mono_ns  # after the scenario and the rollback, not instead
    # the whole run: baseline and scenario (~PAUSE_MS), rollback, 1 s of waiting, generous margin;
    # without the cap it would wait out the 5 min escalation
    assert took_s < PAUSE_MS / 1000 + 1 + 20, f"took {took_s:.1f} s"
    findings = build_report_from_journal(outcome.journal_path).findings
    (finding,) = [f for f in findings if f.title == "Wait for acknowledgements ended early"]
    assert finding.detail == "timed out; not acknowledged: oncall"


async def test_the_wait_for_acknowledgements_ends_when_respond_within_has_passed(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _paged_playbook(tmp_path, http_server.url, "2s")
    outcome = await _run(playbook, tmp_path / "runs")  # no ack_wait_ms: the chain's target bounds it

    events = _events(outcome)
    page = _only(events, PageSent)
    assert isinstance(page.payload, PageSent)
    trigger_ns = _only(events, FailureInjected).mono_ns
    assert page.payload.trigger_mono_ns == trigger_ns
    started, ended = _waits(events, "acknowledgements")
    assert isinstance(started.payload, WaitStarted) and isinstance(ended.payload, WaitEnded)
    bound_ms = started.payload.bound_ms
    assert bound_ms is not None and 0 < bound_ms <= 3_000
    # the bound is what is left of respond_within (2 s from the trigger), plus drill's 1 s grace
    left_ms = max(0, (trigger_ns + 2_000 * 1_000_000 - started.mono_ns) // 1_000_000)
    assert abs(bound_ms - (left_ms + 1_000)) <= 5, (bound_ms, left_ms)
    waited_ms = (ended.mono_ns - started.mono_ns) / 1e6
    assert bound_ms - 20 <= waited_ms <= bound_ms + 3_000, f"waited {waited_ms:.0f} ms for {bound_ms}"
    assert ended.mono_ns - trigger_ns >= 2_000 * 1_000_000  # never before the target has passed
    assert ended.payload.detail == "not acknowledged: oncall"


async def test_a_wait_that_ran_its_course_is_not_reported_as_ended_early(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _paged_playbook(tmp_path, http_server.url, "2s")
    outcome = await _run(playbook, tmp_path / "runs")

    events = _events(outcome)
    trigger_ns = _only(events, FailureInjected).mono_ns
    _, ended = _waits(events, "acknowledgements")
    assert ended.mono_ns - trigger_ns >= 2_000 * 1_000_000  # respond_within had passed: nothing cut short
    titles = [f.title for f in build_report_from_journal(outcome.journal_path).findings]
    assert "web: nobody acknowledged the page" in titles  # the missed target is on record
    assert "Wait for acknowledgements ended early" not in titles
    assert isinstance(ended.payload, WaitEnded) and ended.payload.outcome == "respond_within passed"
