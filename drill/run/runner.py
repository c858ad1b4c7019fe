"""The drill runner: probes on a drift-free schedule, the scenario, stop conditions, rollback.

Data flows one way: probes -> monitor -> events -> journal (+ sinks such as the live display).
Results are folded from the written journal afterwards, never from runner state, so what the
report says is exactly what the evidence holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import signal
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from drill import __version__
from drill import events as ev
from drill.actions.base import ActionContext
from drill.actions.registry import ACTION_KINDS
from drill.clock import Clock, SystemClock, utc_iso
from drill.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, UsageError
from drill.events import Event, EventDraft
from drill.notify.escalation import check_contacts
from drill.playbook.model import ActionStep, ManualStep, Playbook, StopCondition, walk_steps
from drill.probes.base import ProbeKind
from drill.probes.pool import HttpPool
from drill.probes.registry import PROBE_KINDS
from drill.results import fold_results
from drill.run.journal import JournalStream, JournalSummary, JournalWriter
from drill.run.monitor import Monitor
from drill.run.paging import Paging, emitter
from drill.run.scenario import Answer, Changes, OperatorAbort, Prompter, ScenarioRunner
from drill.run.scheduler import LiveProbeContext, ScheduledProbe, run_probe_loops
from drill.secrets import Secrets

Sink = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where evidence goes, how the operator takes part, when rollback runs."""

    runs_dir: Path = Path("runs")
    run_id: str = ""
    auto_confirm: bool = False
    interactive: bool = False
    rollback: str = "on-failure"  # on-failure | always | never
    operator: str = ""  # user@host; defaults to the current user
    env: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    journal_path: Path
    results: dict[str, Any]
    journal: JournalSummary
    exit_code: int


class AutoConfirm:
    """Answers every manual step with 'done' and records that nobody was asked."""

    def __init__(self, who: str) -> None:
        self.who = who

    async def ask(self, step: ManualStep) -> Answer:
        return Answer("done", self.who, auto=True)


def operator_identity() -> str:
    """user@host of whoever runs the drill, for the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id(clock: Clock) -> str:
    stamp = clock.utc_at(clock.monotonic_ns()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything resolved before the journal opens: specs with secrets, probe kinds."""

    probes: tuple[ScheduledProbe, ...]


def prepare(playbook: Playbook, secrets: Secrets) -> Prepared:
    """Resolve every secret and build every probe spec now, so a typo fails before anything runs."""
    scheduled = []
    for asset in playbook.assets:
        for probe in asset.probes:
            kind: ProbeKind[Any] = PROBE_KINDS[probe.kind]
            params = secrets.resolve(dict(probe.params), f"assets.{asset.id}.probes.{probe.name}")
            scheduled.append(ScheduledProbe(asset=asset.id, probe=probe, kind=kind, spec=kind.parse(params)))
    for step in walk_steps((*playbook.scenario, *playbook.rollback)):
        if isinstance(step, ActionStep):
            ACTION_KINDS[step.action.kind].parse(
                secrets.resolve(dict(step.action.params), f"step '{step.name}'")
            )
    check_contacts(playbook.chains, secrets)
    return Prepared(tuple(scheduled))


def check_operator_presence(playbook: Playbook, options: RunOptions) -> None:
    """A manual step needs a person at a terminal, or an explicit --auto-confirm."""
    manual = [
        s.name for s in walk_steps((*playbook.scenario, *playbook.rollback)) if isinstance(s, ManualStep)
    ]
    if manual and not options.interactive and not options.auto_confirm:
        raise UsageError(
            f"the scenario has manual steps ({', '.join(manual)}) but this run is not interactive",
            hint="run it from a terminal, or pass --auto-confirm to record them as confirmed automatically",
        )


@dataclass
class _Run:
    playbook: Playbook
    options: RunOptions
    clock: Clock
    secrets: Secrets
    prepared: Prepared
    journal: JournalWriter
    prompter: Prompter
    sinks: list[Sink]
    monitor: Monitor = field(init=False)
    stop_watch: dict[str, list[StopCondition]] = field(default_factory=dict)  # asset -> its conditions
    changes: Changes = field(default_factory=Changes)
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str = ""
    signals: int = 0
    paging: Paging | None = None
    sync_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    def __post_init__(self) -> None:
        self.monitor = Monitor.for_assets(self.playbook.assets)
        for cond in self.playbook.stop_conditions:
            for asset in self.playbook.assets:
                if asset.id == cond.asset or (not cond.asset and asset.tier == cond.tier):
                    self.stop_watch.setdefault(asset.id, []).append(cond)

    # -- events ------------------------------------------------------------------------------
    def emit(self, draft: EventDraft, sync: bool = False) -> Event:
        """Journal an event (in the OS at once: a SIGKILL loses nothing) and feed the sinks.

        sync asks the syncer for an fsync; it runs in a worker thread so that a 4 ms fdatasync
        at every state change never stalls the probes' schedule.
        """
        event = self.journal.append(draft)
        if sync:
            self.sync_wanted.set()
        for sink in self.sinks:
            sink(event)
        return event

    async def syncer(self) -> None:
        """fsync the journal whenever asked, coalescing requests; a last sync before it returns."""
        while True:
            await self.sync_wanted.wait()
            self.sync_wanted.clear()
            await asyncio.to_thread(self.journal.sync)
            if self.closing:
                return

    def stop_syncer(self) -> None:
        self.closing = True
        self.sync_wanted.set()

    def emit_now(
        self, kind: str, data: dict[str, Any], *, asset: str | None = None, sync: bool = True
    ) -> Event:
        return self.emit(EventDraft(kind, self.clock.monotonic_ns(), data, asset), sync)

    def on_observation(
        self, probe: ScheduledProbe, obs: Any, scheduled_ns: int, started_ns: int, tick: int
    ) -> None:
        drafts = self.monitor.observe(probe.asset, probe.probe.name, obs, started_ns, scheduled_ns, tick)
        for draft in drafts:
            self.emit(draft, sync=draft.type == ev.ASSET_STATE)
        if len(drafts) > 1:
            self.changes.notify()
        self.check_stop_conditions(probe.asset)

    def on_overrun(self, probe: ScheduledProbe, missed: int, at_ns: int) -> None:
        self.emit(
            EventDraft(
                ev.PROBE_OVERRUN, at_ns, {"probe": probe.probe.name, "missed_ticks": missed}, probe.asset
            )
        )

    # -- stopping ----------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def check_stop_conditions(self, asset: str) -> None:
        """Evaluate the conditions that watch `asset`: it is probed every interval while down, so
        checking on its own observations trips a condition within one interval of its limit."""
        conditions = self.stop_watch.get(asset)
        if not conditions or self.stop_event.is_set():
            return
        since = self.monitor.down_since_ns(asset)
        if since is None:
            return
        down_ms = (self.clock.monotonic_ns() - since) // 1_000_000
        for cond in conditions:
            if down_ms >= cond.down_for_ms:
                reason = f"{asset} down for {down_ms} ms (limit {cond.down_for_ms} ms)"
                self.emit_now(ev.STOP_TRIPPED, {"condition": cond.name, "reason": reason}, asset=asset)
                self.request_stop(f"stop condition '{cond.name}' tripped: {reason}")
                return

    def on_signal(self, signame: str) -> None:
        self.signals += 1
        if self.signals > 1:
            self.journal.sync()  # a second Ctrl-C leaves at once, with what is written kept
            os._exit(EXIT_ABORTED)
        self.emit_now(ev.SIGNAL_RECEIVED, {"signal": signame})
        self.request_stop(f"{signame} received: the operator interrupted the drill")

    # -- phases ------------------------------------------------------------------------------
    async def main(self) -> str:
        pool = HttpPool()
        for verify in (True, False):  # clients built before the first tick, not during it
            pool.prewarm(
                sum(getattr(p.spec, "verify_tls", None) is verify for p in self.prepared.probes), verify
            )
        stop_probes = asyncio.Event()
        try:
            async with (
                httpx.AsyncClient(trust_env=False, timeout=30) as action_http,
                asyncio.TaskGroup() as group,
            ):
                contexts = {
                    (p.asset, p.probe.name): LiveProbeContext.for_probe(p, pool, self.clock, self.emit)
                    for p in self.prepared.probes
                }
                group.create_task(
                    run_probe_loops(
                        self.prepared.probes,
                        contexts,
                        self.clock,
                        self.on_observation,
                        self.on_overrun,
                        stop_probes,
                    )
                )
                if self.playbook.settings.max_duration_ms:
                    group.create_task(self._deadline(self.playbook.settings.max_duration_ms, stop_probes))
                await self._baseline()
                scenario = self._scenario(
                    ActionContext(http=action_http, cwd=str(Path(self.playbook.source).parent or "."))
                )
                status, reason = await self._scenario_until_stopped(scenario)
                if self._wants_rollback(status):
                    await self._rollback(scenario, reason)
                if self.paging is not None:
                    await self.paging.drain()
                await self._finish_probes(contexts)
                stop_probes.set()
                self.stop_syncer()
        finally:
            await pool.aclose()
        self.emit_now(ev.RUN_FINISHED, {"status": status, "reason": reason})
        return status

    async def _baseline(self) -> None:
        """Wait until every asset has a known state before the scenario starts, so an outage the
        scenario causes is never mistaken for the starting state (bounded by the slowest probe)."""
        probes = [p.probe for p in self.prepared.probes]
        bound_ms = max((p.interval_ms * (max(p.fall, p.rise) + 1) + p.timeout_ms for p in probes), default=0)
        assets = [a.id for a in self.playbook.assets if a.probes]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound_ms / 1000):
                await self.changes.wait_until(lambda: all(self.monitor.state(a) is not None for a in assets))
        states = {a: self.monitor.state(a) or "unknown" for a in assets}
        self.emit_now(ev.MARK, {"name": "baseline", "states": states})

    def _scenario(self, action_ctx: ActionContext) -> ScenarioRunner:
        return ScenarioRunner(
            playbook=self.playbook,
            emit=lambda draft, sync: self.emit(draft, sync),
            now_ns=self.clock.monotonic_ns,
            states=self.monitor,
            changed=self.changes,
            secrets=self.secrets,
            action_ctx=action_ctx,
            prompter=self.prompter,
        )

    async def _scenario_until_stopped(self, scenario: ScenarioRunner) -> tuple[str, str]:
        task = asyncio.create_task(scenario.run_steps(self.playbook.scenario, "scenario"))
        stopper = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return "aborted", self.stop_reason
        try:
            ok = task.result()
        except OperatorAbort as exc:
            return "aborted", str(exc)
        return ("completed", "") if ok else ("failed", "a scenario step failed")

    def _wants_rollback(self, status: str) -> bool:
        policy = self.options.rollback
        return bool(self.playbook.rollback) and (
            policy == "always" or (policy == "on-failure" and status != "completed")
        )

    async def _rollback(self, scenario: ScenarioRunner, reason: str) -> None:
        self.emit_now(ev.ROLLBACK_STARTED, {"reason": reason})
        try:
            ok = await scenario.run_steps(self.playbook.rollback, "rollback")
        except OperatorAbort:
            ok = False
        self.emit_now(ev.ROLLBACK_FINISHED, {"status": "ok" if ok else "failed"})

    async def _finish_probes(self, contexts: Mapping[tuple[str, str], LiveProbeContext]) -> None:
        for probe in self.prepared.probes:
            if probe.kind.finish is not None:
                ctx = contexts[(probe.asset, probe.probe.name)]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(5.0, ctx.timeout_s * 3)):
                        await probe.kind.finish(probe.spec, ctx)

    async def _deadline(self, limit_ms: int, done: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_ms / 1000):
                await done.wait()
                return
        self.emit_now(
            ev.STOP_TRIPPED,
            {"condition": "max_duration", "reason": f"the drill ran longer than {limit_ms} ms"},
        )
        self.request_stop(f"max_duration {limit_ms} ms exceeded")


def _journal_safe(value: Any) -> Any:
    """The playbook document as journal data: integers only in evidence, so a float (say a
    json_equals value of 0.5) is kept as its decimal text; dates and other scalars as text."""
    if isinstance(value, Mapping):
        return {str(k): _journal_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_journal_safe(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    return repr(value) if isinstance(value, float) else str(value)


def started_data(playbook: Playbook, options: RunOptions, run_id: str, clock: Clock) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "playbook": {
            "name": playbook.metadata.name,
            "sha256": playbook.sha256,
            "path": playbook.source,
            "document": _journal_safe(playbook.document),
        },
        "user": options.operator or operator_identity(),
        "host": socket.gethostname(),
        "tool_version": __version__,
        "planned_start": playbook.metadata.planned_start,
        "options": {"auto_confirm": options.auto_confirm, "rollback": options.rollback},
        "started_utc": utc_iso(clock.utc_at(clock.monotonic_ns())),
    }


JOURNAL_FILE = "journal.jsonl"


def secrets_for(playbook: Playbook, env: Mapping[str, str] | None) -> Secrets:
    """Secrets resolved against `env` (default: this process's) and the playbook's folder."""
    return Secrets(env=dict(env if env is not None else os.environ), base_dir=Path(playbook.source).parent)


def open_run_dir(options: RunOptions, clock: Clock) -> tuple[str, Path]:
    """A new, empty evidence folder runs/<run-id>; an existing one is never reused."""
    run_id = options.run_id or new_run_id(clock)
    run_dir = options.runs_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_id, run_dir


def finish_run(journal_path: Path) -> tuple[JournalSummary, dict[str, Any]]:
    """Fold the written journal (one checked pass) and write results.json beside it."""
    stream = JournalStream(journal_path)
    results = fold_results(stream).data
    summary = stream.summary
    results = {**results, "journal_head": summary.head}
    (journal_path.parent / "results.json").write_text(
        json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return summary, results


async def run_drill(
    playbook: Playbook,
    options: RunOptions,
    *,
    clock: Clock | None = None,
    prompter: Prompter | None = None,
    sinks: Sequence[Sink] = (),
    install_signal_handlers: bool = False,
) -> RunOutcome:
    """Run a drill end to end; write runs/<run-id>/journal.jsonl and results.json; never lose events."""
    clock = clock or SystemClock()
    secrets = secrets_for(playbook, options.env)
    prepared = prepare(playbook, secrets)
    check_operator_presence(playbook, options)
    who = options.operator or operator_identity()
    run_id, run_dir = open_run_dir(options, clock)
    journal_path = run_dir / JOURNAL_FILE
    with JournalWriter.create(journal_path, clock, redact=secrets.redact) as journal:
        run = _Run(
            playbook, options, clock, secrets, prepared, journal, prompter or AutoConfirm(who), list(sinks)
        )
        run.paging = Paging(playbook, secrets, clock, emitter(run.emit), run_id=run_id, run_dir=run_dir)
        run.sinks.append(run.paging.sink)
        run.emit_now(ev.RUN_STARTED, started_data(playbook, options, run_id, clock))
        _install_signals(run, install_signal_handlers)
        try:
            async with run.paging:
                status = await run.main()
        finally:
            _remove_signals(install_signal_handlers)
    summary, results = finish_run(journal_path)
    code = EXIT_ABORTED if status == "aborted" else (EXIT_OK if results["verdict"] == "pass" else EXIT_FAILED)
    return RunOutcome(run_dir, journal_path, results, summary, code)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _install_signals(run: _Run, enabled: bool) -> None:
    if not enabled:
        return
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, run.on_signal, sig.name)


def _remove_signals(enabled: bool) -> None:
    if enabled:
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
