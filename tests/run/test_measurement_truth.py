"""Measurement truth on real failures, against ground truth the test records itself (issue 10).

- A blocking inject step (the kill returns long after the service is dead) keeps its outage.
- A drill with a Redis canary at 10 ms always stops (a redis-py cancellation can be lost) and,
  when nothing fails, reports no outage and no lost write (the finish no longer races the probes).
- State changes and step boundaries reach stable storage while the drill runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drill.clock import SystemClock, monotonic_ns
from drill.evidence.events import AssetState, ProbeAbandoned, StepFinished, StepStarted
from drill.evidence.journal import JournalWriter, read_events, verify_journal
from drill.playbook.model import Action, ActionStep, MarkStep, PauseStep, Playbook, Step, WaitFor, WaitForStep
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook
from tests.support.drills import mono_of
from tests.support.servers import RedisSentinelCluster

INTERVAL_MS = 50
SLACK_MS = 40  # scheduling on a loaded 2-core host, on top of what drill states as its uncertainty


@dataclass
class Control(ThreadingHTTPServer):
    """The fault injector: POST /kill turns the target to 503 at once and answers only 300 ms later
    (a blocking kill, like `pg_ctl stop -m immediate`); POST /heal turns it back to 200. The
    instants are the test's own ground truth, taken when the target's status changed."""

    target: SwitchableServer
    killed_ns: list[int] = field(default_factory=list)
    healed_ns: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with control.target.lock:
                    control.target.status = 503 if self.path == "/kill" else 200
                    (control.killed_ns if self.path == "/kill" else control.healed_ns).append(monotonic_ns())
                if self.path == "/kill":
                    time.sleep(0.3)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@pytest.fixture
def control(http_server: SwitchableServer) -> Iterator[Control]:
    server = Control(http_server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _blocking_kill_playbook(target: SwitchableServer, control: Control, *, heal: bool) -> Playbook:
    kill = ActionStep(
        "kill primary", Action("http", {"method": "POST", "url": control.url + "/kill"}), inject=True
    )
    steps: list[Step] = [
        kill,
        WaitForStep("detected", WaitFor(state="down", within_ms=2000, asset="svc")),
        PauseStep("outage", 300),
    ]
    if heal:
        steps.append(
            ActionStep("fail over", Action("http", {"method": "POST", "url": control.url + "/heal"}))
        )
    steps.append(WaitForStep("recovered", WaitFor(state="up", within_ms=1500 if heal else 400, asset="svc")))
    return one_asset_playbook(
        "http",
        {"url": target.url + "/health"},
        tuple(steps),
        interval_ms=INTERVAL_MS,
        timeout_ms=200,
        # unhealed, the drill outlasts the target: still down then is a miss, not "not yet measured"
        rto_ms=5000 if heal else 500,
    )


@pytest.mark.parametrize("trial", range(3))
async def test_a_blocking_inject_step_keeps_its_outage(
    http_server: SwitchableServer, control: Control, tmp_path: Path, trial: int
) -> None:
    clock = SystemClock()
    playbook = _blocking_kill_playbook(http_server, control, heal=True)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True), clock=clock)
    asset = outcome.results.assets[0]
    assert asset.verdict == "pass", asset.reasons
    assert "was already down before the failure was injected" not in asset.reasons
    # the monitor saw the outage while the kill step was still running (it answers 300 ms late)
    events = list(read_events(outcome.journal_path))
    down = next(e for e in events if isinstance(e.payload, AssetState) and e.payload.state == "down")
    kill_done = next(
        e for e in events if isinstance(e.payload, StepFinished) and e.payload.step == "kill primary"
    )
    assert down.seq < kill_done.seq
    # t_inject is the kill step's start; the outage is dated against the test's own instants
    t_inject = mono_of(clock, asset.t_inject_utc)
    t_detect, t_recover = mono_of(clock, asset.t_detect_utc), mono_of(clock, asset.t_recover_utc)
    (killed,), (healed,) = control.killed_ns, control.healed_ns
    assert t_inject <= killed
    assert asset.detect_window_ms is not None and asset.recover_window_ms is not None
    assert -SLACK_MS <= (t_detect - killed) / 1e6 <= asset.detect_window_ms + SLACK_MS
    assert -SLACK_MS <= (t_recover - healed) / 1e6 <= asset.recover_window_ms + SLACK_MS
    true_rto_ms = (healed - t_inject) / 1e6
    assert asset.rto_ms is not None
    assert true_rto_ms - SLACK_MS <= asset.rto_ms <= true_rto_ms + asset.recover_window_ms + SLACK_MS
    assert (
        asset.t_inject_done_utc is not None
        and mono_of(clock, asset.t_inject_done_utc) >= killed + 290_000_000
    )


async def test_a_blocking_inject_step_that_never_recovers_is_not_rto_0(
    http_server: SwitchableServer, control: Control, tmp_path: Path
) -> None:
    playbook = _blocking_kill_playbook(http_server, control, heal=False)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True, rollback="never"))
    asset = outcome.results.assets[0]
    assert (asset.verdict, asset.rto_ms) == ("fail", None)
    assert asset.detection_ms is not None
    assert "did not recover before the drill ended" in asset.reasons


# -- Redis: stopping, and the finish after stop ------------------------------------------------


async def test_a_redis_canary_at_10_ms_stops_every_time_and_reports_no_false_loss(
    redis_cluster: RedisSentinelCluster, tmp_path: Path
) -> None:
    """50 drills with nothing failing: each ends within its bound, no loop is abandoned, and no
    outage or lost write is reported (a finish racing the probes used to invent both)."""
    params = {"host": "127.0.0.1", "port": redis_cluster.master_port, "canary": True}
    scenario = (MarkStep("declare", "disaster"), PauseStep("traffic", 150))
    playbook = one_asset_playbook("redis", params, scenario, interval_ms=10, timeout_ms=200)
    baseline_bound_s = (10 * 3 + 200) / 1000
    for run in range(50):
        started = time.monotonic()
        outcome = await run_drill(
            playbook, RunOptions(runs_dir=tmp_path, run_id=f"run-{run}", auto_confirm=True)
        )
        took_s = time.monotonic() - started
        assert took_s < baseline_bound_s + 0.15 + 2.5, f"run {run} took {took_s:.2f} s"
        events = list(read_events(outcome.journal_path))
        assert not [e for e in events if isinstance(e.payload, ProbeAbandoned)], f"run {run}"
        downs = [e for e in events if isinstance(e.payload, AssetState) and e.payload.state == "down"]
        asset = outcome.results.assets[0]
        assert downs == [] and asset.probe_errors == (), f"run {run}: {asset.probe_errors}"
        assert asset.rpo is not None and asset.rpo.lost_writes == 0, f"run {run}: {asset.rpo}"


# -- durability ---------------------------------------------------------------------------------


async def test_state_changes_and_step_boundaries_are_fsynced_during_the_run(
    http_server: SwitchableServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every step boundary and state change is covered by an fdatasync while the drill runs (here
    within the 300 ms pause that follows each boundary), observed at the journal's own sync calls
    (their instant and the events they covered), not taken from drill's word."""
    syncs: list[tuple[int, int]] = []  # (monotonic instant after the fdatasync, events it covered)
    real_sync = JournalWriter.sync

    def recording_sync(self: JournalWriter) -> None:
        real_sync(self)
        syncs.append((monotonic_ns(), self.synced))

    monkeypatch.setattr(JournalWriter, "sync", recording_sync)
    scenario = (
        MarkStep("declare", "disaster"),
        PauseStep("one", 300),
        PauseStep("two", 300),
        PauseStep("three", 300),
    )
    playbook = one_asset_playbook(
        "http", {"url": http_server.url + "/health"}, scenario, interval_ms=INTERVAL_MS
    )
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    verify_journal(outcome.journal_path)
    events = list(read_events(outcome.journal_path))
    finished = {e.payload.step: e for e in events if isinstance(e.payload, StepFinished)}
    started = {e.payload.step: e for e in events if isinstance(e.payload, StepStarted)}
    states = [e for e in events if isinstance(e.payload, AssetState)]
    run_end = events[-1].mono_ns

    def covered_by(seq: int, before_ns: int) -> bool:
        return any(at <= before_ns and synced >= seq for at, synced in syncs)

    # every step boundary is followed by at least 300 ms of pause: it must be on disk by then
    for name in ("declare", "one", "two"):
        for boundary in (started[name], finished[name]):
            assert covered_by(boundary.seq, boundary.mono_ns + 300_000_000), (name, boundary.seq, syncs)
    assert states and all(covered_by(e.seq, run_end) for e in states)
    assert len([s for s in syncs if s[0] < run_end]) >= 4  # during the run, not only at close
