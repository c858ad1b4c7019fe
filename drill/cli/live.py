"""What the operator sees during a run: a live rich table on a TTY, structured log lines otherwise."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from drill.clock import parse_utc, utc_iso
from drill.evidence.events import (
    AssetState,
    CanaryWritten,
    Event,
    FailureInjected,
    ManualAnswer,
    PayloadMismatch,
    ProbeObserved,
    RunStarted,
    StepAttempt,
    StepStarted,
    WaitEnded,
    WaitStarted,
    payload_data,
)
from drill.evidence.snapshot import PlanStep
from drill.log import get_logger
from drill.playbook.model import ManualStep, Playbook
from drill.run.scenario import Answer
from drill.units import human_ms

_QUIET = (ProbeObserved, StepAttempt, CanaryWritten)  # per-tick detail: the journal has it


class LogSink:
    """One structured log line per event that matters to an operator (not every probe result)."""

    def __init__(self) -> None:
        self.log = get_logger("drill.run")
        self.steps: dict[tuple[str, str], PlanStep] = {}  # (phase, step name), from the plan

    def __call__(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, _QUIET):
            return
        if isinstance(payload, RunStarted):  # the plan and document are for the record, not the log
            fields: dict[str, object] = {"run_id": payload.run_id, "playbook": payload.playbook.name}
            self.steps = planned_steps(payload)
        else:
            try:
                fields = payload_data(payload)
            except PayloadMismatch:  # pragma: no cover - the journal wrote it, so it fits
                fields = {}
        if isinstance(payload, WaitStarted):  # no silent wait: what, since when, until when
            fields["until_utc"] = until_utc(event.utc, payload.bound_ms)
        elif isinstance(payload, StepStarted):
            fields["until_utc"] = until_utc(event.utc, bound_of(self.steps, payload))
        self.log.info(event.type, seq=event.seq, utc=event.utc, asset=event.asset, **fields)


def planned_steps(started: RunStarted) -> dict[tuple[str, str], PlanStep]:
    """The run's planned steps by (phase, name), as journalled in run.started."""
    steps = started.plan.steps if started.plan is not None else ()
    return {(str(s.phase), s.name): s for s in steps}


def bound_of(steps: dict[tuple[str, str], PlanStep], started: StepStarted) -> int | None:
    planned = steps.get((str(started.phase), started.step))
    return planned.bound_ms if planned else None


def until_utc(since_utc: str, bound_ms: int | None) -> str | None:
    if bound_ms is None:
        return None
    return utc_iso(parse_utc(since_utc) + timedelta(milliseconds=bound_ms))


def _clock(utc: str | None) -> str:
    return "—" if not utc else utc.partition("T")[2][:8]


@dataclass
class _AssetRow:
    tier: str
    state: str = "…"
    latency_ms: str = ""
    detected: str = ""
    recovered: str = ""
    reason: str = ""


@dataclass
class LiveDisplay:
    """A rich table of assets (state, latency, detection, recovery) and the current step."""

    playbook: Playbook
    console: Console = field(default_factory=lambda: Console(stderr=True))
    rows: dict[str, _AssetRow] = field(default_factory=dict)
    step: str = ""
    inject_ns: int | None = None
    down_ns: dict[str, int] = field(default_factory=dict)
    live: Live | None = None
    waiting: str = ""  # a wait that is not a step: what, since, until
    steps: dict[tuple[str, str], PlanStep] = field(default_factory=dict)  # (phase, step name)
    total_steps: int = 0

    def __post_init__(self) -> None:
        self.rows = {a.id: _AssetRow(a.tier) for a in self.playbook.assets}

    def _plan(self, started: RunStarted) -> None:
        """Step numbers and bounds from the plan the run journalled (built once, by the runner)."""
        self.steps = planned_steps(started)
        self.total_steps = sum(1 for s in self.steps.values() if s.phase == "scenario" and not s.parent)

    def __enter__(self) -> LiveDisplay:
        self.live = Live(
            get_renderable=self.render, console=self.console, refresh_per_second=8, transient=False
        )
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, ProbeObserved):
            self._observed(event.asset, payload)
        elif isinstance(payload, RunStarted):
            self._plan(payload)
        elif isinstance(payload, AssetState):
            self._state(event.asset, payload)
        elif isinstance(payload, FailureInjected):
            self.inject_ns = event.mono_ns
        elif isinstance(payload, StepStarted):
            planned = self.steps.get((str(payload.phase), payload.step))
            number = planned.number if planned else "?"
            of = f"/{self.total_steps}" if payload.phase == "scenario" else ""
            until = until_utc(event.utc, bound_of(self.steps, payload))
            limit = f", until {_clock(until)}" if until else ", no time limit"
            self.step = f"{payload.phase} step {number}{of}: {payload.step} ({payload.kind}) since {_clock(event.utc)}{limit}"
        elif isinstance(payload, WaitStarted):
            until = until_utc(event.utc, payload.bound_ms)
            self.waiting = f"waiting for {payload.what} since {_clock(event.utc)}, until {_clock(until)}: {payload.detail}"
        elif isinstance(payload, WaitEnded):
            self.waiting = ""

    def _observed(self, asset: str | None, p: ProbeObserved) -> None:
        row = self.rows.get(asset or "")
        if row is not None:
            row.latency_ms = f"{p.latency_us / 1000:.1f}"
            row.reason = "" if p.ok else p.reason[:60]

    def _state(self, asset: str | None, p: AssetState) -> None:
        row = self.rows.get(asset or "")
        if row is None:
            return
        row.state = p.state
        if self.inject_ns is None:
            return
        if row.state == "down" and not row.detected:
            self.down_ns[asset or ""] = p.at_mono_ns
            row.detected = f"+{human_ms((p.at_mono_ns - self.inject_ns) // 1_000_000)}"
        elif row.state == "up" and row.detected and not row.recovered:
            row.recovered = f"+{human_ms((p.at_mono_ns - self.inject_ns) // 1_000_000)}"

    def render(self) -> RenderableType:
        table = Table(title=f"drill · {self.playbook.metadata.name}", expand=False)
        for col in ("asset", "tier", "state", "latency ms", "detected", "recovered", "last failure"):
            table.add_column(col)
        for asset_id, row in self.rows.items():
            style = {"up": "green", "down": "red"}.get(row.state, "yellow")
            table.add_row(
                asset_id,
                row.tier,
                Text(row.state, style=style),
                row.latency_ms,
                row.detected,
                row.recovered,
                row.reason,
            )
        lines: list[RenderableType] = [table, Text(self.step or "step: -")]
        if self.waiting:
            lines.append(Text(self.waiting, style="bold yellow"))
        return Group(*lines)

    def pause(self) -> None:
        if self.live is not None:
            self.live.stop()

    def resume(self) -> None:
        if self.live is not None:
            self.live.start()


class TerminalPrompter:
    """Asks done / skip / abort on the terminal without blocking the probes (a worker thread)."""

    def __init__(self, who: str, display: LiveDisplay | None = None) -> None:
        self.who = who
        self.display = display

    async def ask(self, step: ManualStep) -> Answer:
        if self.display is not None:
            self.display.pause()
        try:
            answer = await asyncio.to_thread(self._prompt, step)
        finally:
            if self.display is not None:
                self.display.resume()
        return Answer(ManualAnswer(answer), self.who)

    @staticmethod
    def _prompt(step: ManualStep) -> str:
        click.echo(f"\nMANUAL STEP '{step.name}': {step.prompt}", err=True)
        return str(
            click.prompt("done / skip / abort", type=click.Choice(["done", "skip", "abort"]), err=True)
        )
