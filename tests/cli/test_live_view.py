"""The live view: worth watching in 80 columns, counting from the run's start and from t_inject,
one frame on screen at a time (no stale copy left above a manual prompt), and log levels that
mean something."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from rich.console import Console

from drill.cli.live import WIDTH, LiveDisplay, LogSink, log_level
from drill.clock import utc_iso
from drill.demo import demo_playbook
from drill.evidence.events import (
    AssetState,
    ChainExhausted,
    Event,
    FailureInjected,
    PageAcked,
    PageSent,
    Payload,
    PlaybookRef,
    ProbeObserved,
    RollbackFinished,
    RunFinished,
    RunStarted,
    RunStatus,
    State,
    StepAttempt,
    StepFinished,
    StepStarted,
    StepStatus,
    StopTripped,
    WaitStarted,
)
from drill.evidence.snapshot import Phase, StepKind
from drill.lab import Lab
from drill.log import configure_logging
from drill.plan import build_plan
from drill.playbook.model import Playbook
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions

MINIMAL = Path(__file__).resolve().parents[1] / "playbook" / "valid" / "minimal.yaml"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the UTC of mono 1 s
S = 1_000_000_000


class Timeline:
    """Journal events of one run on a clock the test moves: mono instants, UTC derived from them."""

    def __init__(self, playbook: Playbook) -> None:
        self.playbook = playbook
        self.now_ns = S
        self.seq = 0

    def now(self) -> int:
        return self.now_ns

    def event(self, at_s: float, payload: Payload, asset: str | None = None) -> Event:
        self.seq += 1
        mono = int(at_s * S)
        utc = utc_iso(T0 + timedelta(microseconds=(mono - S) // 1000))
        return Event(self.seq, "0" * 64, mono, utc, payload, asset)

    def started(self) -> Event:
        return self.event(
            1.0,
            RunStarted(
                run_id="r",
                playbook=PlaybookRef(self.playbook.metadata.name, "ab", str(MINIMAL), {}),
                user="u",
                host="h",
                tool_version="0",
                started_utc=utc_iso(T0),
                plan=build_plan(self.playbook),
            ),
        )


def _state(state: State, at_s: float, initial: bool = False) -> AssetState:
    at = int(at_s * S)
    return AssetState(state, at, at - S // 10, "port", 2, initial, at)


def _frame(display: LiveDisplay, width: int = WIDTH) -> list[str]:
    """The frame as an 80-column terminal shows it (a recording console, as rich renders it)."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(display.render())
    return console.export_text().splitlines()


@pytest.fixture
def minimal() -> Playbook:
    return load_playbook(MINIMAL)


def _before_injection(line: Timeline) -> list[Event]:
    return [
        line.started(),
        line.event(1.5, _state("up", 1.4, initial=True), "db"),
        line.event(1.6, _state("up", 1.5, initial=True), "api"),
        line.event(1.7, _state("up", 1.6, initial=True), "reports"),
    ]


def _injected(line: Timeline) -> list[Event]:
    return [
        line.event(2.0, StepStarted("declare", StepKind.MARK, Phase.SCENARIO)),
        line.event(2.0, StepFinished("declare", StepKind.MARK, StepStatus.OK, Phase.SCENARIO)),
        line.event(2.0, FailureInjected("declare", started_mono_ns=2 * S)),
        line.event(2.1, StepStarted("fail over", StepKind.ACTION, Phase.SCENARIO)),
        line.event(2.5, ProbeObserved("port", False, 1_000, 3, 2 * S, 40, "connection refused"), "db"),
        line.event(2.6, _state("down", 2.4), "db"),
        line.event(2.7, PageSent("p-1", "oncall", "Ana", "webhook", ("db",), True, "", 1, 300_000)),
        line.event(
            2.8,
            PageSent(
                "p-2",
                "oncall",
                "Ben",
                "pagerduty",
                ("db",),
                False,
                "HTTP 500 from receiver after 3 attempts",
                3,
                1,
            ),
        ),
        line.event(3.0, StepFinished("fail over", StepKind.ACTION, StepStatus.OK, Phase.SCENARIO)),
        line.event(3.0, StepStarted("wait", StepKind.WAIT_FOR, Phase.SCENARIO)),
        line.event(32.7, PageAcked("p-1", "oncall", "Ana", "webhook", "ana", 30_000, 300_000, True, 30_300)),
    ]


def test_before_the_injection_the_view_counts_the_run_and_says_rtos_start_at_t_inject(
    minimal: Playbook,
) -> None:
    line = Timeline(minimal)
    display = LiveDisplay(minimal, now=line.now)
    for event in _before_injection(line):
        display(event)
    line.now_ns = int(13.5 * S)
    text = "\n".join(_frame(display))
    assert "run 12.5 s · not injected yet" in text
    assert "tier tier-0           RTO 5 min     counts from t_inject" in text
    assert "no step started yet" in text


def test_the_view_counts_from_t_inject_per_tier_and_names_pages_and_who_acknowledged(
    minimal: Playbook,
) -> None:
    line = Timeline(minimal)
    display = LiveDisplay(minimal, now=line.now)
    for event in [*_before_injection(line), *_injected(line)]:
        display(event)
    line.now_ns = 305 * S  # t_inject + 5 min 3 s: tier-0's 5 min RTO passed 3 s ago, db still down
    frame = _frame(display)
    text = "\n".join(frame)
    assert frame[0].startswith("drill · minimal") and frame[0].endswith(
        "run 5 min 4 s · since t_inject 5 min 3 s"
    )
    assert "scenario step 3/3: wait (wait_for)" in text
    assert "  since 10:00:02, until 10:10:02: 4 min 58 s left" in text  # within: 10m, from the plan
    assert re.search(r"^db +tier-0 +down +1 ms +\+400 ms$", text, re.M), text
    assert "  ↳ db/port: connection refused" in text
    assert "tier tier-0           RTO 5 min     RTO passed 3 s ago, 1 down" in text
    assert "tier tier-2           RTO 4 h       3 h 55 min left, none seen down" in text
    assert "2 pages sent, 1 delivered, 1 acknowledged" in text
    assert "  Ana (webhook) sent 10:00:01, acked 10:00:31 (30 s) by ana" in text
    assert (
        "  Ben (pagerduty) sent 10:00:01: NOT delivered\n    HTTP 500 from receiver after 3 attempts" in text
    )
    assert all(len(x) <= WIDTH for x in frame)

    display(line.event(305.5, _state("up", 305.5), "db"))
    text = "\n".join(_frame(display))
    assert "tier tier-0           RTO 5 min     back after 5 min 4 s: missed" in text
    assert re.search(r"^db +tier-0 +up +1 ms +\+400 ms +\+5 min 4 s$", text, re.M), text


def test_a_retried_action_shows_its_last_failed_attempt_while_it_runs(minimal: Playbook) -> None:
    line = Timeline(minimal)
    display = LiveDisplay(minimal, now=line.now)
    for event in [*_before_injection(line), *_injected(line)[:4]]:  # up to "fail over" started
        display(event)
    display(line.event(2.3, StepAttempt("fail over", 1, False, "expected status 2xx, got 503")))
    line.now_ns = int(3.1 * S)
    assert _frame(display)[1:4] == [
        "scenario step 2/3: fail over (action)",
        "  since 10:00:01, until 10:02:06: 2 min 4 s left",  # 2 attempts of 1 min, 5 s apart
        "  attempt 1 failed: expected status 2xx, got 503",
    ]


def test_the_frame_fits_80_columns_without_wrapping_whatever_the_names_and_reasons(
    minimal: Playbook,
) -> None:
    long_id = "payments-ledger-primary-database-eu-west-1"
    assets = (*minimal.assets[:2], replace(minimal.assets[2], id=long_id))  # reports: nothing depends on it
    tiers = (replace(minimal.tiers[0], name="tier-0-critical-payments-and-ledger"), *minimal.tiers[1:])
    playbook = replace(
        minimal,
        assets=tuple(replace(a, tier=tiers[0].name) if a.tier == "tier-0" else a for a in assets),
        tiers=tiers,
        metadata=replace(
            minimal.metadata, name="a drill whose name is much longer than anyone would type" * 2
        ),
    )
    line = Timeline(playbook)
    display = LiveDisplay(playbook, now=line.now)
    for event in [*_before_injection(line), *_injected(line)]:
        display(event)
    display(line.event(40.0, ProbeObserved("run", False, 9, 9, 9, 9, "refused " * 60), long_id))
    display(line.event(41.0, WaitStarted("acknowledgements", 90_000, "from chains " + "oncall, " * 30)))
    display(line.event(42.0, StopTripped("db outage", "db down for 15 min (limit 15 min) " * 5)))
    line.now_ns = 45 * S
    lines = display.frame_lines()
    shown = _frame(display)
    assert len(shown) == len(lines)  # nothing wrapped onto a second line
    assert all(len(x) <= WIDTH for x in shown), max(shown, key=len)
    assert shown == [x.rstrip() for x in lines]  # nothing cut by the terminal: only by the view, with …
    assert any(x.startswith("payments-ledger-p…  tier-2 ") for x in shown), shown
    assert any(
        x.startswith("waiting for acknowledgements since 10:00:40, until 10:02:10: 1 min 26 s left")
        for x in shown
    )


async def test_a_real_drill_in_80_columns_shows_steps_of_n_t_inject_tiers_and_the_ack(tmp_path: Path) -> None:
    playbook = demo_playbook()
    display = LiveDisplay(playbook)
    frames: list[list[str]] = []
    seqs: list[int] = []

    def sink(event: Event) -> None:
        seqs.append(event.seq)
        display(event)
        frames.append(_frame(display))

    async with Lab.start() as lab:
        options = RunOptions(runs_dir=tmp_path, auto_confirm=True, env={**os.environ, **lab.env()})
        await run_drill(playbook, options, sinks=[sink])
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, run.started first
    seen = "\n".join("\n".join(f) for f in frames)
    assert all(len(x) <= WIDTH for f in frames for x in f)
    # the plan reached the view (run.started is the first event a sink sees): step n of N
    assert "scenario step 3/10: lose the primary site (action)" in seen
    assert "rollback step 3/3: fail the kv store back (action)" in seen
    assert "since t_inject" in seen and re.search(r"until \d\d:\d\d:\d\d: [\d.]+ (ms|s) left", seen)
    assert re.search(r"tier data +RTO 5 s +back after \d+ ms: met", seen), frames[-1]
    assert re.search(r"Lab on-call \(webhook\) sent [\d:]+, acked [\d:]+ \(\d+ ms\) by lab-oncall", seen)
    assert re.search(r"orders-kv: RPO \d+ ms, \d+ acknowledged writes? lost", seen)
    assert frames[-1][-1].startswith("run completed after")


# ------------------------------------------------------------- one frame on screen at a time


def screen_of(output: str) -> list[str]:
    """What a terminal shows after `output`: enough of VT100 for rich's live region (CR, LF,
    cursor up, erase line); other escape sequences (cursor visibility, colours) change nothing."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.finditer(r"\x1b\[([0-9;?]*)([A-Za-z])|\r\n|[\r\n]|[^\x1b\r\n]", output):
        text = token.group(0)
        if token.group(2) == "A":
            row = max(0, row - int(token.group(1) or 1))
        elif token.group(2) == "K":
            lines[row] = []
        elif token.group(2) is not None:
            continue
        elif text == "\r":
            col = 0
        elif text in ("\n", "\r\n"):
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        else:
            cells = lines[row]
            cells.extend(" " * (col - len(cells)))
            cells[col : col + 1] = [text]
            col += 1
    shown = ["".join(cells).rstrip() for cells in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


def test_a_manual_prompt_leaves_no_stale_frame_above_or_below_it(minimal: Playbook) -> None:
    line = Timeline(minimal)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=WIDTH, height=40, color_system=None)
    display = LiveDisplay(minimal, console=console, now=line.now)
    prompt = ["MANUAL STEP 'check': Check the status page", "done / skip / abort: done"]
    with display:
        for event in _before_injection(line):
            display(event)
        assert display.live is not None
        display.live.refresh()
        display.pause()  # what TerminalPrompter does around the prompt
        out.write("\n" + "\n".join(prompt) + "\n")
        display.resume()
        for event in _injected(line):
            display(event)
        assert display.live is not None
        display.live.refresh()
        final = [x.rstrip() for x in display.frame_lines()]
    screen = screen_of(out.getvalue())
    assert [x for x in screen if x.startswith("drill · minimal")] == [final[0]]  # one header
    assert [x for x in screen if x.startswith("asset ")] == [final[3]]  # one table
    assert screen[: len(prompt) + 1] == ["", *prompt]  # the prompt and its answer stay on screen
    assert screen[-len(final) :] == final  # below them, the last frame, once


CHILD = """
import asyncio, sys
from drill.cli.live import LiveDisplay, TerminalPrompter
from drill.playbook.model import ManualStep
from drill.playbook.validate import load_playbook
from tests.cli.test_live_view import Timeline, _before_injection, _injected

playbook = load_playbook(sys.argv[1])
line = Timeline(playbook)
display = LiveDisplay(playbook, now=line.now)
with display:
    for event in _before_injection(line):
        display(event)
    display.live.refresh()
    answer = asyncio.run(TerminalPrompter("tester", display).ask(ManualStep("check", "Check the status page")))
    for event in _injected(line):
        display(event)
    display.live.refresh()
print("ANSWER", answer.answer.value)
"""


def _read_until(fd: int, needle: bytes, timeout_s: float = 20.0) -> bytes:
    """Everything the terminal received until needle (or the end of the output)."""
    got = b""
    while needle not in got:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        assert ready, f"no {needle!r} within {timeout_s} s; got {got[-400:]!r}"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    return got


def test_the_terminal_prompter_in_a_real_terminal_shows_one_frame_after_the_answer() -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, WIDTH, 0, 0))
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1", "COLUMNS": str(WIDTH), "LINES": "40"}
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(MINIMAL)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=root,
    )
    os.close(slave)
    try:
        before = _read_until(master, b"done / skip / abort")
        os.write(master, b"done\n")
        after = _read_until(master, b"\x00")  # to the end: the child exits
        assert child.wait(timeout=20) == 0
    finally:
        os.close(master)
        if child.poll() is None:
            child.kill()
            child.wait()
    screen = screen_of((before + after).decode())
    assert "ANSWER done" in screen
    assert len([x for x in screen if x.startswith("drill · minimal")]) == 1, "\n".join(screen)
    assert len([x for x in screen if x.startswith("asset ")]) == 1, "\n".join(screen)
    assert [x for x in screen if "MANUAL STEP 'check'" in x] == ["MANUAL STEP 'check': Check the status page"]
    assert any(x.startswith("done / skip / abort") and x.endswith("done") for x in screen)
    assert any("scenario step 3/3: wait (wait_for)" in x for x in screen)  # the last frame, after it


# -------------------------------------------------------------------------------- log levels


@pytest.fixture
def debug_logging() -> object:
    configure_logging("json", "debug")
    yield
    configure_logging("json", "info")


def test_log_levels_mean_something(minimal: Playbook, debug_logging: object) -> None:
    line = Timeline(minimal)
    events = [
        *_before_injection(line),
        *_injected(line),
        line.event(
            40, StepFinished("wait", StepKind.WAIT_FOR, StepStatus.FAILED, Phase.SCENARIO, "timed out")
        ),
        line.event(41, ChainExhausted("oncall", ("db",), 2)),
        line.event(42, StopTripped("db outage", "db down for 15 min (limit 15 min)")),
        line.event(43, RollbackFinished("failed")),
        line.event(44, RunFinished(RunStatus.ABORTED, "stop condition 'db outage' tripped")),
    ]
    sink = LogSink()
    with structlog.testing.capture_logs() as logs:
        for event in events:
            sink(event)
    levels = [(e["event"], e["log_level"]) for e in logs]
    assert levels == [
        ("run.started", "info"),
        ("asset.state", "info"),
        ("asset.state", "info"),
        ("asset.state", "info"),
        ("step.started", "info"),
        ("step.finished", "info"),
        ("failure.injected", "info"),
        ("step.started", "info"),
        ("probe.observed", "debug"),
        ("asset.state", "info"),
        ("page.sent", "info"),
        ("page.sent", "warning"),  # not delivered
        ("step.finished", "info"),
        ("step.started", "info"),
        ("page.acked", "info"),
        ("step.finished", "warning"),  # failed
        ("chain.exhausted", "warning"),
        ("stop.tripped", "warning"),
        ("rollback.finished", "warning"),
        ("run.finished", "error"),  # aborted
    ]
    undelivered = logs[11]
    assert undelivered["reason"] == "HTTP 500 from receiver after 3 attempts" and undelivered["ok"] is False
    assert "asset" not in logs[0] and logs[1]["asset"] == "db"  # empty fields are left out


def test_a_run_that_completes_logs_info_and_probe_results_only_at_debug(minimal: Playbook) -> None:
    configure_logging("json", "info")
    line = Timeline(minimal)
    sink = LogSink()
    with structlog.testing.capture_logs() as logs:
        for event in [*_before_injection(line), *_injected(line)]:
            sink(event)
        sink(line.event(50, RunFinished(RunStatus.COMPLETED)))
    assert "probe.observed" not in [e["event"] for e in logs]  # below the level: not even built
    assert logs[-1]["event"] == "run.finished" and logs[-1]["log_level"] == "info"
    assert log_level(RunFinished(RunStatus.NOT_RUN)) == logging.WARNING
    assert log_level(RunFinished(RunStatus.FAILED)) == logging.ERROR
