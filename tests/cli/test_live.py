"""No silent waits: the log and the live view say what is awaited, since when and until when."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from drill.cli.live import LiveDisplay, LogSink
from drill.evidence.events import (
    Event,
    Payload,
    PlaybookRef,
    RunStarted,
    StepStarted,
    WaitEnded,
    WaitStarted,
)
from drill.evidence.snapshot import Phase, StepKind
from drill.log import configure_logging
from drill.plan import build_plan
from drill.playbook.validate import load_playbook

MINIMAL = Path(__file__).resolve().parents[1] / "playbook" / "valid" / "minimal.yaml"
SINCE = "2026-12-01T10:00:00.000+00:00"


def _event(seq: int, payload: Payload) -> Event:
    return Event(seq, "0" * 64, seq * 1_000_000, SINCE, payload)


def _events() -> list[Event]:
    playbook = load_playbook(MINIMAL)
    step = build_plan(playbook).steps[1]
    assert step.bound_ms is not None  # the first bounded step of the scenario
    started = RunStarted(
        run_id="r",
        playbook=PlaybookRef("minimal", "ab", str(MINIMAL), {}),
        user="u@h",
        host="h",
        tool_version="0",
        started_utc=SINCE,
        plan=build_plan(playbook),
    )
    return [
        _event(1, started),
        _event(2, StepStarted(step.name, StepKind(step.kind), Phase.SCENARIO)),
        _event(3, WaitStarted("acknowledgements", 90_000, "from chains oncall; Ctrl-C ends the wait")),
    ]


def test_the_log_says_until_when_each_step_and_wait_lasts(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    sink = LogSink()
    for event in _events():
        sink(event)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    step, wait = lines[1], lines[2]
    assert step["event"] == "step.started" and step["until_utc"] > SINCE
    assert (wait["what"], wait["bound_ms"], wait["until_utc"]) == (
        "acknowledgements",
        90_000,
        "2026-12-01T10:01:30.000+00:00",
    )


def test_the_live_view_shows_the_step_number_and_the_wait_until_it_ends() -> None:
    display = LiveDisplay(load_playbook(MINIMAL), console=Console(record=True, width=200))
    for event in _events():
        display(event)
    console = Console(record=True, width=200)
    console.print(display.render())
    text = console.export_text()
    assert "scenario step 2/" in text and "since 10:00:00, until " in text
    assert "waiting for acknowledgements since 10:00:00, until 10:01:30" in text
    display(_event(4, WaitEnded("acknowledgements", "done")))
    console = Console(record=True, width=200)
    console.print(display.render())
    assert "waiting for" not in console.export_text()
