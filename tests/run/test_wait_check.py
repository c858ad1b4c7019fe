"""wait_for on a check: a probe kind run every `every` until it succeeds (a command's exit 0, an
HTTP answer), within its bound; each try is journalled."""

from __future__ import annotations

import sys
from pathlib import Path

from drill.clock import monotonic_ns
from drill.evidence.events import Event, StepAttempt, StepFinished, StepStatus
from drill.evidence.journal import read_events
from drill.playbook.model import Check, MarkStep, WaitFor, WaitForStep
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook

PY = sys.executable


def _wait(check: Check, within_ms: int, every_ms: int = 50) -> WaitForStep:
    return WaitForStep("ready", WaitFor(within_ms=within_ms, check=check, every_ms=every_ms))


async def test_a_command_check_waits_until_it_succeeds(http_server: SwitchableServer, tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    check = Check(
        "command", {"argv": [PY, "-c", f"import os,sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]}
    )
    scenario = (MarkStep("declare", "disaster"), _wait(check, within_ms=5000))
    playbook = one_asset_playbook("http", {"url": http_server.url + "/health"}, scenario)

    ready_at: list[int] = []

    def make_ready_after_a_failed_try(event: Event) -> None:
        """The world changes only once the check has been seen to fail (an event, not a sleep)."""
        payload = event.payload
        if isinstance(payload, StepAttempt) and payload.step == "ready" and not payload.ok and not ready_at:
            flag.write_text("")
            ready_at.append(monotonic_ns())

    options = RunOptions(runs_dir=tmp_path / "runs", auto_confirm=True)
    outcome = await run_drill(playbook, options, sinks=[make_ready_after_a_failed_try])
    events = list(read_events(outcome.journal_path))
    tries = [e for e in events if isinstance(e.payload, StepAttempt) and e.payload.step == "ready"]
    done = next(e for e in events if isinstance(e.payload, StepFinished) and e.payload.step == "ready")
    assert isinstance(done.payload, StepFinished) and done.payload.status == StepStatus.OK
    assert len(tries) >= 2 and not tries[0].payload.ok and tries[-1].payload.ok  # type: ignore[union-attr]
    assert ready_at and tries[-1].mono_ns >= ready_at[0]  # it succeeded only after the test made it true
    # the check passed; nothing went down, so the drill demonstrated no recovery
    assert (outcome.results.verdict, outcome.results.assets[0].verdict) == ("incomplete", "unaffected")


async def test_an_http_check_waits_for_the_answer_it_expects(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    http_server.statuses = [503, 503, 503]  # the next three requests fail, then 200 again
    check = Check("http", {"url": http_server.url + "/ready", "expect_status": 200})
    scenario = (MarkStep("declare", "disaster"), _wait(check, within_ms=5000))
    playbook = one_asset_playbook("tcp", {"host": "127.0.0.1", "port": http_server.server_port}, scenario)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    step = next(s for s in outcome.results.steps if s.name == "ready")
    assert (step.status, step.attempts) == (StepStatus.OK, 4)
    assert http_server.requests.count("/ready") == 4


async def test_a_check_that_never_succeeds_fails_the_step_naming_why(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    check = Check("command", {"argv": [PY, "-c", "import sys; sys.exit(3)"]})
    scenario = (MarkStep("declare", "disaster"), _wait(check, within_ms=400, every_ms=100))
    playbook = one_asset_playbook("http", {"url": http_server.url + "/health"}, scenario)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    step = next(s for s in outcome.results.steps if s.name == "ready")
    assert step.status == StepStatus.FAILED
    assert step.reason.startswith("command check did not succeed within 400 ms (")
    assert "exit" in step.reason and 2 <= step.attempts <= 5
    assert outcome.results.verdict == "fail"
