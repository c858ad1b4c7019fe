"""What the operator sees during a run: a live view on a TTY, structured log lines otherwise.

Both are sinks: they see every journalled event as it is written, and nothing else. Durations
on the live view come from the events' monotonic instants and the display's own monotonic clock
(the same process clock the runner stamps with); only clock times (since 10:42:44) are UTC.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import click
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from drill.clock import monotonic_ns, parse_utc, utc_iso
from drill.evidence.events import (
    AckRefused,
    AssetState,
    CanaryWritten,
    ChainExhausted,
    Event,
    FailureInjected,
    ManualAnswer,
    PageAcked,
    PageSent,
    Payload,
    PayloadMismatch,
    ProbeAbandoned,
    ProbeObserved,
    ReturnChecked,
    RollbackFinished,
    RpoMeasured,
    RpoUnmeasured,
    RunFinished,
    RunStarted,
    RunStatus,
    SignalReceived,
    SteadyState,
    StepAttempt,
    StepFinished,
    StepStarted,
    StepStatus,
    StopTripped,
    WaitEnded,
    WaitStarted,
    payload_data,
)
from drill.evidence.snapshot import PlanStep
from drill.log import get_logger
from drill.playbook.model import ManualStep, Playbook
from drill.run.scenario import Answer
from drill.units import human_count, human_ms, human_us

_DEBUG = (ProbeObserved, StepAttempt, CanaryWritten)  # per-tick detail: the journal has it all
_NS = 1_000_000


def log_level(payload: Payload) -> int:
    """What an event means to an operator: error when the run aborted or failed; warning when
    something went wrong that the drill carries on from (a failed step, an undelivered page, an
    exhausted chain, a stop condition, a signal, a failed rollback, not back to normal); debug
    for per-tick detail (probe results, action attempts, canary writes); info for the rest."""
    if isinstance(payload, _DEBUG):
        return logging.DEBUG
    if isinstance(payload, RunFinished):
        if payload.status in (RunStatus.ABORTED, RunStatus.FAILED):
            return logging.ERROR
        return logging.WARNING if payload.status == RunStatus.NOT_RUN else logging.INFO
    warn = (
        (isinstance(payload, StepFinished) and payload.status in (StepStatus.FAILED, StepStatus.ABORTED))
        or (isinstance(payload, PageSent) and not payload.ok)
        or (isinstance(payload, RollbackFinished) and payload.status == "failed")
        or (isinstance(payload, ReturnChecked) and not payload.confirmed)
        or (isinstance(payload, SteadyState) and not payload.met)
        or isinstance(
            payload,
            ChainExhausted | StopTripped | SignalReceived | ProbeAbandoned | RpoUnmeasured | AckRefused,
        )
    )
    return logging.WARNING if warn else logging.INFO


class LogSink:
    """One structured log line per event, at a level that means something (see log_level); fields
    that hold nothing (None, '') are left out."""

    def __init__(self) -> None:
        self.log = get_logger("drill.run")
        self.steps: dict[tuple[str, str], PlanStep] = {}  # (phase, step name), from the plan

    def __call__(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, RunStarted):
            self.steps = planned_steps(payload)
        level = log_level(payload)
        if not self.log.is_enabled_for(level):  # a probe result per tick: not even its fields
            return
        if isinstance(payload, RunStarted):  # the plan and document are for the record, not the log
            fields: dict[str, object] = {"run_id": payload.run_id, "playbook": payload.playbook.name}
        else:
            try:
                fields = payload_data(payload)
            except PayloadMismatch:  # pragma: no cover - the journal wrote it, so it fits
                fields = {}
        if isinstance(payload, WaitStarted):  # no silent wait: what, since when, until when
            fields["until_utc"] = until_utc(event.utc, payload.bound_ms)
        elif isinstance(payload, StepStarted):
            fields["until_utc"] = until_utc(event.utc, bound_of(self.steps, payload))
        fields = {k: v for k, v in fields.items() if v is not None and v != ""}
        if event.asset:
            fields["asset"] = event.asset
        self.log.log(level, event.type, seq=event.seq, utc=event.utc, **fields)


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
    """HH:MM:SS of a UTC timestamp (the live view's clock times)."""
    return "—" if not utc else utc.partition("T")[2][:8]


# -------------------------------------------------------------------------------- the live view

WIDTH = 80  # the view is laid out for an 80-column terminal: no line is longer
MAX_ASSET_ROWS = 12  # beyond, the assets that are up are counted, not listed
MAX_PAGE_ROWS = 4  # the latest pages; the count line covers the rest
_ASSET_W, _TIER_W, _STATE_W, _LAT_W, _WHEN_W = 18, 15, 5, 8, 11


def fit(text: str, width: int = WIDTH) -> str:
    """text cut to width with an ellipsis: only free text (names, reasons) is ever cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _cell(text: str, width: int) -> str:
    return f"{fit(text, width):<{width}}"


@dataclass
class _AssetRow:
    tier: str
    state: str = "…"
    latency: str = ""
    detected_ms: int | None = None  # since t_inject
    recovered_ms: int | None = None
    failing: dict[str, str] = field(default_factory=dict)  # probe -> its last failure


@dataclass
class _StepNow:
    key: tuple[str, str]  # (phase, name)
    label: str  # "scenario step 3/10: name (kind)"
    since_ns: int
    since_utc: str
    bound_ms: int | None
    status: str = ""  # set once it finished
    finished_ns: int | None = None
    note: str = ""  # the last failed attempt of a retried action


@dataclass
class _WaitNow:
    what: str
    since_ns: int
    since_utc: str
    bound_ms: int | None
    detail: str


@dataclass
class _PageRow:
    contact: str
    via: str
    chains: str
    sent_ns: int
    sent_utc: str
    ok: bool
    reason: str
    ack_within_ms: int
    acked_utc: str = ""
    by: str = ""
    ack_ms: int | None = None


@dataclass
class LiveDisplay:
    """The run as it happens, in at most 80 columns: elapsed time since the start and since
    t_inject, the current step (n of N, since when, until when), each asset's state and timings,
    each tier's time left against its RTO, the pages and acknowledgements, and any wait."""

    playbook: Playbook
    console: Console = field(default_factory=lambda: Console(stderr=True))
    now: Callable[[], int] = monotonic_ns  # the process's monotonic clock, as the runner's events
    rows: dict[str, _AssetRow] = field(default_factory=dict)
    live: Live | None = None
    steps: dict[tuple[str, str], PlanStep] = field(default_factory=dict)  # (phase, step name)
    totals: dict[str, int] = field(default_factory=dict)  # phase -> its top-level steps
    started_ns: int | None = None
    finished_ns: int | None = None
    inject_ns: int | None = None
    step: _StepNow | None = None
    waiting: _WaitNow | None = None
    pages: dict[str, _PageRow] = field(default_factory=dict)
    exhausted: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # stops, signals, the end: the latest last
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _entered: bool = False

    def __post_init__(self) -> None:
        self.rows = {a.id: _AssetRow(a.tier) for a in self.playbook.assets}

    # -- the rich Live region: one at a time; cleared around a prompt, kept at the end

    def __enter__(self) -> LiveDisplay:
        self._entered = True
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._entered = False
        if self.live is not None:
            self.live.transient = False  # the last frame stays on the terminal, once
            self.live.stop()
            self.live = None

    def _start(self) -> None:
        # transient: stopping erases the frame, so a prompt takes its place instead of leaving a
        # stale copy above it (and the restarted region never moves up over the prompt's lines)
        self.live = Live(
            get_renderable=self.render, console=self.console, refresh_per_second=4, transient=True
        )
        self.live.start(refresh=True)

    def pause(self) -> None:
        """Before a prompt: the frame is erased and the region released."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def resume(self) -> None:
        """After a prompt: a new region below it (the prompt and its answer stay on screen)."""
        if self._entered and self.live is None:
            self._start()

    # -- events

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._event(event)

    def _event(self, event: Event) -> None:
        p = event.payload
        if self.started_ns is None:
            self.started_ns = event.mono_ns  # run.started, or the first event seen
        if isinstance(p, ProbeObserved):
            self._observed(event.asset, p)
        elif isinstance(p, AssetState):
            self._state(event.asset, p)
        elif isinstance(p, RunStarted):
            self._plan(p, event.mono_ns)
        elif isinstance(p, StepStarted):
            self._step_started(event, p)
        elif isinstance(p, StepFinished):
            if self.step is not None and self.step.key == (str(p.phase), p.step):
                self.step.status, self.step.finished_ns = str(p.status), event.mono_ns
        elif isinstance(p, FailureInjected) and self.inject_ns is None:
            self.inject_ns = p.started_mono_ns if p.started_mono_ns is not None else event.mono_ns
        elif isinstance(p, WaitStarted):
            self.waiting = _WaitNow(p.what, event.mono_ns, event.utc, p.bound_ms, p.detail)
        elif isinstance(p, WaitEnded):
            self.waiting = None
        elif isinstance(p, PageSent):
            chains = ", ".join(p.chains or (p.chain,))
            self.pages[p.page_id] = _PageRow(
                p.contact, p.via, chains, event.mono_ns, event.utc, p.ok, p.reason, p.ack_within_ms
            )
        elif isinstance(p, PageAcked):
            page = self.pages.get(p.page_id)
            if page is not None:
                page.acked_utc, page.by, page.ack_ms = event.utc, p.by, p.ack_ms
        elif isinstance(p, ChainExhausted):
            self.exhausted.append(p.chain)
        elif isinstance(p, StepAttempt):
            if self.step is not None and not p.ok and self.step.key[1] == p.step:
                self.step.note = f"attempt {p.attempt} failed: {p.reason}"
        elif isinstance(p, RpoMeasured):
            lost = human_count(p.lost_writes, "acknowledged write")
            self.notices.append(f"{event.asset}: RPO {human_ms(p.rpo_ms)}, {lost} lost")
        elif isinstance(p, RpoUnmeasured):
            self.notices.append(f"! {event.asset}: RPO not measured: {p.reason}")
        else:
            self._notice(event, p)

    def _notice(self, event: Event, p: Payload) -> None:
        if isinstance(p, StopTripped):
            self.notices.append(f"! stop condition '{p.condition}' tripped: {p.reason}")
        elif isinstance(p, SignalReceived):
            self.notices.append(f"! {p.signal} received")
        elif isinstance(p, RollbackFinished) and p.status == "failed":
            self.notices.append("! the rollback failed")
        elif isinstance(p, ReturnChecked):
            back = "every asset back at its baseline state"
            self.notices.append(back if p.confirmed else f"! NOT back to normal: {', '.join(p.not_back)}")
        elif isinstance(p, RunFinished):
            self.finished_ns = event.mono_ns
            took = human_ms(self._since(self.started_ns, event.mono_ns))
            self.notices.append(f"run {p.status} after {took}" + (f": {p.reason}" if p.reason else ""))

    def _plan(self, started: RunStarted, mono_ns: int) -> None:
        """Step numbers and bounds from the plan the run journalled (built once, by the runner)."""
        self.started_ns = mono_ns
        self.steps = planned_steps(started)
        self.totals = {}
        for s in self.steps.values():
            if not s.parent:
                self.totals[str(s.phase)] = self.totals.get(str(s.phase), 0) + 1

    def _step_started(self, event: Event, p: StepStarted) -> None:
        planned = self.steps.get((str(p.phase), p.step))
        if planned is not None and planned.injects and self.inject_ns is None:
            self.inject_ns = event.mono_ns  # t_inject is the injecting step's start
        number = planned.number if planned else "?"
        total = self.totals.get(str(p.phase))
        of = f"/{total}" if total else ""
        label = f"{p.phase} step {number}{of}: {p.step} ({p.kind})"
        key = (str(p.phase), p.step)
        self.step = _StepNow(key, label, event.mono_ns, event.utc, planned.bound_ms if planned else None)

    def _observed(self, asset: str | None, p: ProbeObserved) -> None:
        row = self.rows.get(asset or "")
        if row is None:
            return
        row.latency = human_us(p.latency_us)
        if p.ok:
            row.failing.pop(p.probe, None)
        else:
            row.failing[p.probe] = p.reason

    def _state(self, asset: str | None, p: AssetState) -> None:
        row = self.rows.get(asset or "")
        if row is None:
            return
        row.state = p.state
        inject = self.inject_ns
        if inject is None or p.at_mono_ns < inject:
            return
        if p.state == "down" and row.detected_ms is None:
            row.detected_ms = (p.at_mono_ns - inject) // _NS
        elif p.state == "up" and row.detected_ms is not None and row.recovered_ms is None:
            row.recovered_ms = (p.at_mono_ns - inject) // _NS

    # -- the frame

    def _now(self) -> int:
        return self.finished_ns if self.finished_ns is not None else self.now()

    @staticmethod
    def _since(start_ns: int | None, now_ns: int) -> int:
        return 0 if start_ns is None else max(0, (now_ns - start_ns) // _NS)

    def render(self) -> RenderableType:
        with self._lock:
            lines = self.frame_lines()
        return Group(*(Text(line, no_wrap=True, overflow="ellipsis", style=_style(line)) for line in lines))

    def frame_lines(self) -> list[str]:
        """The frame as plain lines, none longer than WIDTH."""
        now = self._now()
        lines = [self._header(now), *self._step_lines(now), *self._asset_lines()]
        lines += self._tier_lines(now)
        lines += self._page_lines(now)
        lines += self._wait_lines(now)
        lines += [fit(n) for n in self.notices[-3:]]
        return lines

    def _header(self, now: int) -> str:
        run = f"run {human_ms(self._since(self.started_ns, now))}"
        injected = (
            f"since t_inject {human_ms(self._since(self.inject_ns, now))}"
            if self.inject_ns is not None
            else "not injected yet"
        )
        right = f"{run} · {injected}"
        left = fit(f"drill · {self.playbook.metadata.name}", WIDTH - len(right) - 2)
        return f"{left}{' ' * (WIDTH - len(left) - len(right))}{right}"

    def _step_lines(self, now: int) -> list[str]:
        step = self.step
        if step is None:
            return ["no step started yet"]
        return [*self._step_now(step, now), *([fit(f"  {step.note}")] if step.note else [])]

    def _step_now(self, step: _StepNow, now: int) -> list[str]:
        since = f"since {_clock(step.since_utc)}"
        if step.status == StepStatus.SKIPPED:
            return [fit(step.label), f"  {since}: skipped"]
        if step.status:
            took = human_ms(self._since(step.since_ns, step.finished_ns or now))
            return [fit(step.label), f"  {since}: {step.status} after {took}"]
        if step.bound_ms is None:
            return [fit(step.label), f"  {since}, no time limit"]
        until = _clock(until_utc(step.since_utc, step.bound_ms))
        left = max(0, step.bound_ms - self._since(step.since_ns, now))
        return [fit(step.label), f"  {since}, until {until}: {human_ms(left)} left"]

    def _asset_lines(self) -> list[str]:
        head = (
            f"{'asset':<{_ASSET_W}}  {'tier':<{_TIER_W}}  {'state':<{_STATE_W}}  {'latency':>{_LAT_W}}"
            f"  {'detected':>{_WHEN_W}}  {'recovered':>{_WHEN_W}}"
        )
        rows = list(self.rows.items())
        hidden = 0
        if len(rows) > MAX_ASSET_ROWS:  # the ones that are not up first; the rest counted
            rows.sort(key=lambda item: item[1].state == "up")
            hidden = len(rows) - MAX_ASSET_ROWS
            rows = rows[:MAX_ASSET_ROWS]
        lines = [head]
        for asset_id, row in rows:
            detected = "" if row.detected_ms is None else f"+{human_ms(row.detected_ms)}"
            recovered = "" if row.recovered_ms is None else f"+{human_ms(row.recovered_ms)}"
            lines.append(
                f"{_cell(asset_id, _ASSET_W)}  {_cell(row.tier, _TIER_W)}  {row.state:<{_STATE_W}}"
                f"  {row.latency:>{_LAT_W}}  {detected:>{_WHEN_W}}  {recovered:>{_WHEN_W}}".rstrip()
            )
        if hidden:
            lines.append(f"… and {hidden} more assets, up")
        for asset_id, row in rows:
            for probe, reason in list(row.failing.items())[:1]:
                lines.append(fit(f"  ↳ {asset_id}/{probe}: {reason}"))
        return lines

    def _tier_lines(self, now: int) -> list[str]:
        """Each tier's RTO, counted from t_inject: time left, 'RTO passed', or when it was back."""
        out = []
        for tier in self.playbook.tiers:
            members = [r for r in self.rows.values() if r.tier == tier.name]
            status = self._tier_status(tier.rto_ms, members, now)
            out.append(fit(f"tier {_cell(tier.name, _TIER_W)}  RTO {human_ms(tier.rto_ms):<9} {status}"))
        return out

    def _tier_status(self, rto_ms: int, members: list[_AssetRow], now: int) -> str:
        if self.inject_ns is None:
            return "counts from t_inject"
        elapsed = self._since(self.inject_ns, now)
        hit = [r for r in members if r.detected_ms is not None]
        down = [r for r in hit if r.recovered_ms is None]
        if hit and not down:
            back = max(r.recovered_ms or 0 for r in hit)
            return f"back after {human_ms(back)}: {'met' if back <= rto_ms else 'missed'}"
        if elapsed >= rto_ms:
            over = human_ms(elapsed - rto_ms)
            return f"RTO passed {over} ago, {len(down)} down" if down else "RTO passed, none seen down"
        left = human_ms(rto_ms - elapsed)
        return f"{left} left, {len(down)} down" if down else f"{left} left, none seen down"

    def _page_lines(self, now: int) -> list[str]:
        if not self.pages and not self.exhausted:
            return []
        pages = list(self.pages.values())
        delivered = sum(1 for p in pages if p.ok)
        answered = sum(1 for p in pages if p.ack_ms is not None)
        lines = [
            f"{human_count(len(pages), 'page')} sent, {delivered} delivered, {answered} acknowledged"
            + (f" (showing the latest {MAX_PAGE_ROWS})" if len(pages) > MAX_PAGE_ROWS else "")
        ]
        for page in pages[-MAX_PAGE_ROWS:]:
            who = f"  {fit(page.contact, 20)} ({page.via}) sent {_clock(page.sent_utc)}"
            if not page.ok:  # why, on a line of its own: the reason is what the operator acts on
                lines += [f"{who}: NOT delivered", fit(f"    {page.reason or 'not sent'}")]
            elif page.ack_ms is not None:
                acked = f"{who}, acked {_clock(page.acked_utc)} ({human_ms(page.ack_ms)})"
                lines.append(fit(f"{acked} by {page.by}" if page.by else acked))
            else:
                left = page.ack_within_ms - self._since(page.sent_ns, now)
                due = f"{human_ms(left)} left to ack" if left > 0 else "ack overdue"
                lines.append(fit(f"{who}, not acknowledged, {due}"))
        lines += [fit(f"  chain {c} exhausted: nobody acknowledged") for c in self.exhausted]
        return lines

    def _wait_lines(self, now: int) -> list[str]:
        wait = self.waiting
        if wait is None:
            return []
        since = f"waiting for {wait.what} since {_clock(wait.since_utc)}"
        if wait.bound_ms is None:
            first = f"{since}, no time limit"
        else:
            until = _clock(until_utc(wait.since_utc, wait.bound_ms))
            left = max(0, wait.bound_ms - self._since(wait.since_ns, now))
            first = f"{since}, until {until}: {human_ms(left)} left"
        return [fit(first), *([fit(f"  {wait.detail}")] if wait.detail else [])]


def _style(line: str) -> str:
    if line.startswith("!") or "NOT delivered" in line or "RTO passed" in line or ": missed" in line:
        return "bold red"
    if line.startswith("waiting for"):
        return "bold yellow"
    if line.startswith("drill · "):
        return "bold"
    return ""


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
