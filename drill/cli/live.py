"""What the operator sees during a run: a live rich table on a TTY, structured log lines otherwise."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from drill import events as ev
from drill.events import Event
from drill.log import get_logger
from drill.playbook.model import ManualStep, Playbook
from drill.run.scenario import Answer

_LOGGED = {
    ev.RUN_STARTED,
    ev.RUN_FINISHED,
    ev.ASSET_STATE,
    ev.STEP_STARTED,
    ev.STEP_FINISHED,
    ev.MARK,
    ev.INJECTED,
    ev.STOP_TRIPPED,
    ev.SIGNAL_RECEIVED,
    ev.ROLLBACK_STARTED,
    ev.ROLLBACK_FINISHED,
    ev.RPO_MEASURED,
    ev.MANUAL_ANSWERED,
    ev.PAGE_SENT,
    ev.PAGE_ACKED,
    ev.CHAIN_EXHAUSTED,
    ev.PROBE_OVERRUN,
}


class LogSink:
    """One structured log line per event that matters to an operator (not every probe result)."""

    def __init__(self) -> None:
        self.log = get_logger("drill.run")

    def __call__(self, event: Event) -> None:
        if event.type in _LOGGED:
            data = {k: v for k, v in event.data.items() if k not in ("document", "playbook")}
            self.log.info(event.type, seq=event.seq, utc=event.utc, asset=event.asset, **data)


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

    def __post_init__(self) -> None:
        self.rows = {a.id: _AssetRow(a.tier) for a in self.playbook.assets}

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
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        if handler is not None:
            handler(event)

    def _on_probe_observed(self, e: Event) -> None:
        row = self.rows.get(e.asset or "")
        if row is not None:
            row.latency_ms = f"{e.data.get('latency_us', 0) / 1000:.1f}"
            row.reason = "" if e.data.get("ok") else str(e.data.get("reason", ""))[:60]

    def _on_asset_state(self, e: Event) -> None:
        row = self.rows.get(e.asset or "")
        if row is None:
            return
        row.state = str(e.data["state"])
        at = int(e.data.get("at_mono_ns", e.mono_ns))
        if self.inject_ns is None:
            return
        if row.state == "down" and not row.detected:
            self.down_ns[e.asset or ""] = at
            row.detected = f"+{(at - self.inject_ns) / 1e9:.2f}s"
        elif row.state == "up" and row.detected and not row.recovered:
            row.recovered = f"+{(at - self.inject_ns) / 1e9:.2f}s"

    def _on_failure_injected(self, e: Event) -> None:
        self.inject_ns = e.mono_ns

    def _on_step_started(self, e: Event) -> None:
        self.step = f"{e.data.get('phase')}: {e.data.get('step')} ({e.data.get('kind')})"

    def render(self) -> Any:
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
        return Group(table, Text(f"step: {self.step or '-'}"))

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
        return Answer(answer, self.who)

    @staticmethod
    def _prompt(step: ManualStep) -> str:
        click.echo(f"\nMANUAL STEP '{step.name}': {step.prompt}", err=True)
        return str(
            click.prompt("done / skip / abort", type=click.Choice(["done", "skip", "abort"]), err=True)
        )
