"""Step outputs: `capture:` keeps what an action printed or answered; later steps use it as
${steps.NAME.output} (a new primary's address, a PID)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from drill.evidence.events import StepFinished, StepStatus
from drill.evidence.journal import read_events
from drill.playbook.model import Action, ActionStep, Capture, MarkStep
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook

PY = sys.executable


def _print(text: str) -> Action:
    return Action("command", {"argv": [PY, "-c", f"print({text!r})"]})


async def test_a_json_field_of_a_command_feeds_a_later_http_action(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    found = json.dumps({"primary": {"port": http_server.server_port, "host": "127.0.0.1"}})
    scenario = (
        MarkStep("declare", "disaster"),
        ActionStep("find primary", _print(found), capture=Capture(json_path="primary.port")),
        ActionStep(
            "fail over",
            Action(
                "http", {"method": "POST", "url": "http://127.0.0.1:${steps.find primary.output}/failover"}
            ),
        ),
    )
    playbook = one_asset_playbook("http", {"url": http_server.url + "/health"}, scenario)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    assert "/failover" in http_server.requests  # the captured port reached the server: ground truth
    finished = {
        e.payload.step: e.payload
        for e in read_events(outcome.journal_path)
        if isinstance(e.payload, StepFinished)
    }
    assert finished["find primary"].captured == str(http_server.server_port)
    assert finished["fail over"].status == StepStatus.OK and finished["fail over"].captured is None


async def test_stdout_is_kept_stripped_and_can_be_captured_again(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    scenario = (
        MarkStep("declare", "disaster"),
        ActionStep("pid", _print("4242"), capture=Capture()),
        ActionStep(
            "echo",
            Action(
                "command",
                {"argv": [PY, "-c", "import sys; print('pid=' + sys.argv[1])", "${steps.pid.output}"]},
            ),
            capture=Capture(),
        ),
    )
    playbook = one_asset_playbook("http", {"url": http_server.url + "/health"}, scenario)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    captured = {
        s.payload.step: s.payload.captured
        for s in read_events(outcome.journal_path)
        if isinstance(s.payload, StepFinished)
    }
    assert (captured["pid"], captured["echo"]) == ("4242", "pid=4242")


async def test_a_missing_json_field_fails_the_step_that_captures(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    scenario = (
        MarkStep("declare", "disaster"),
        ActionStep("find primary", _print('{"replica": 1}'), capture=Capture(json_path="primary.port")),
    )
    playbook = one_asset_playbook("http", {"url": http_server.url + "/health"}, scenario)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    step = next(s for s in outcome.results.steps if s.name == "find primary")
    assert (step.status, step.reason) == (
        StepStatus.FAILED,
        "capture: no field 'primary.port' in the JSON output",
    )
