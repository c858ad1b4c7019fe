"""The drill runner: probes on a drift-free schedule, the scenario, stop conditions, rollback.

Data flows one way: probes -> monitor -> events -> journal (+ sinks such as the live display).
Results are folded from the written journal afterwards (RunSession), never from runner state,
so what the report says is exactly what the evidence holds.

The rollback runs in a `finally` under its own deadline: whatever ends the scenario (a failed
step, a stop condition, a signal, a bug in a callback), the world is failed back when the
policy says so, and the journal records it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from drill.actions.base import ActionContext
from drill.actions.registry import ACTION_KINDS
from drill.clock import Clock, SystemClock
from drill.errors import EXIT_ABORTED, DrillError, UsageError
from drill.evidence.events import (
    AssetState,
    EventDraft,
    ManualAnswer,
    Mark,
    ProbeAbandoned,
    ProbeOverrun,
    ProbeSites,
    ReturnChecked,
    RollbackFinished,
    RollbackStarted,
    RunStatus,
    SignalReceived,
    SiteDone,
    SiteLost,
    SiteSeen,
    SiteState,
    SteadyState,
    StopTripped,
    WaitEnded,
    WaitStarted,
)
from drill.evidence.snapshot import Phase, Plan
from drill.log import get_logger
from drill.notify.ack import ACK_URL_FILE
from drill.notify.escalation import check_contacts
from drill.plan import build_plan
from drill.playbook.model import ActionStep, Check, ManualStep, Playbook, Probe, WaitForStep, walk_steps
from drill.probes.base import Observation
from drill.probes.registry import PROBE_KINDS
from drill.run.monitor import Monitor
from drill.run.paging import Paging
from drill.run.scenario import Answer, Changes, OperatorAbort, Prompter, ScenarioRunner
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_loops
from drill.run.session import (
    RunOptions,
    RunOutcome,
    RunSession,
    Sink,
    operator_identity,
    outcome_of,
    secrets_for,
)
from drill.run.sites.coordinator import Coordinator, SiteCallbacks
from drill.run.stop import StopWatch
from drill.run.waits import first_of
from drill.secrets import Secrets
from drill.units import human_ms

BASELINE_GRACE_MS = 1_000  # also the grace of the return-to-normal wait
SITE_START_GRACE_MS = 2_000  # for agents to read their assignment and start probing
ROLLBACK_GRACE_MS = 5_000  # beyond the rollback steps' own bounds, for the journal and the last fsync


class AutoConfirm:
    """Answers every manual step with 'done' and records that nobody was asked."""

    def __init__(self, who: str) -> None:
        self.who = who

    async def ask(self, step: ManualStep) -> Answer:
        return Answer(ManualAnswer.DONE, self.who, auto=True)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything resolved before the journal opens: the plan, probe specs with secrets, and the
    checks that wait_for steps run (keyed by step name)."""

    plan: Plan
    probes: tuple[ScheduledProbe, ...]
    checks: Mapping[str, ScheduledProbe] = field(default_factory=dict)


def schedule_probes(playbook: Playbook, secrets: Secrets) -> tuple[ScheduledProbe, ...]:
    """Every asset probe, its secrets resolved and its spec parsed now (a typo fails before
    anything runs): what the runner schedules, and what `drill watch` schedules."""
    scheduled = []
    for asset in playbook.assets:
        for probe in asset.probes:
            if probe.remote:  # run by the agents of its sites (drill/run/sites)
                continue
            kind = PROBE_KINDS[probe.kind]
            params = secrets.resolve_params(probe.params, f"assets.{asset.id}.probes.{probe.name}")
            scheduled.append(ScheduledProbe(asset=asset.id, probe=probe, kind=kind, spec=kind.parse(params)))
    return tuple(scheduled)


def prepare(playbook: Playbook, secrets: Secrets) -> Prepared:
    """Resolve every secret and build every probe spec now, so a typo fails before anything runs."""
    scheduled = list(schedule_probes(playbook, secrets))
    checks: dict[str, ScheduledProbe] = {}
    for step in walk_steps((*playbook.scenario, *playbook.rollback)):
        if isinstance(step, ActionStep):
            spec = ACTION_KINDS[step.action.kind].parse(
                secrets.resolve_params(step.action.params, f"step '{step.name}'")
            )
            problem = getattr(spec, "problem", "")  # a kind's spec may say why it cannot run
            if problem:
                raise UsageError(f"step '{step.name}': {step.action.kind} action: {problem}")
        elif isinstance(step, WaitForStep) and step.wait_for.check is not None:
            checks[step.name] = _check_probe(playbook, step, step.wait_for.check, secrets)
    check_contacts(playbook.chains, secrets)
    return Prepared(build_plan(playbook), tuple(scheduled), checks)


def _check_probe(playbook: Playbook, step: WaitForStep, check: Check, secrets: Secrets) -> ScheduledProbe:
    """A wait_for check as a probe of no asset: run every `every`, under the playbook's timeout."""
    kind = PROBE_KINDS[check.kind]
    params = secrets.resolve_params(check.params, f"step '{step.name}'.check")
    timeout = min(playbook.settings.timeout_ms, step.wait_for.within_ms or playbook.settings.timeout_ms)
    probe = Probe(step.name, check.kind, check.params, step.wait_for.every_ms, timeout, fall=1, rise=1)
    return ScheduledProbe(asset="", probe=probe, kind=kind, spec=kind.parse(params))


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


@dataclass(slots=True)
class _Stop:
    """Why the scenario must end early (the first reason wins)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def request(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


@dataclass(slots=True)
class _Run:
    """One drill in progress: routes observations, watches stop conditions, runs the phases."""

    session: RunSession
    prepared: Prepared
    prompter: Prompter
    paging: Paging
    monitor: Monitor
    stop_watch: StopWatch
    changes: Changes = field(default_factory=Changes)
    stop: _Stop = field(default_factory=_Stop)
    signals: int = 0
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)  # the operator said stop
    emergency: Callable[[RunOutcome], None] | None = None  # a second Ctrl-C: evidence, unsigned
    sites: Coordinator | None = None  # the playbook's remote probes: their agents, through the broker
    scenario_started: bool = False  # something may have changed the world: roll back
    scenario_over: bool = False  # its verdict is decided: a Ctrl-C now only shortens what is left
    closed: bool = False  # run.finished is journalled: the evidence is being written
    late_signal: bool = False  # a signal came while the evidence was written (exit 3 after it)
    checks: dict[str, tuple[ScheduledProbe, LiveProbeContext]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # captured by steps, shared by every phase
    awaiting_fresh: bool = False  # the return to normal counts every observation, not only changes

    # -- routing -----------------------------------------------------------------------------
    def on_observation(
        self, probe: ScheduledProbe, obs: Observation, scheduled_ns: int, started_ns: int, tick: int
    ) -> None:
        drafts = self.monitor.observe(probe.asset, probe.probe.name, obs, started_ns, scheduled_ns, tick)
        self._journal_changes(drafts, probe.asset)

    def on_site_observation(
        self,
        site: str,
        asset: str,
        probe: str,
        obs: Observation,
        started_ns: int,
        scheduled_ns: int,
        tick: int,
        error_ns: int,
    ) -> None:
        if not self.monitor.knows(asset, probe, site):  # not this run's: an agent's stale order
            return
        drafts = self.monitor.observe_site(asset, probe, site, obs, started_ns, scheduled_ns, tick, error_ns)
        self._journal_changes(drafts, asset)

    def on_site_seen(self, site: str, agent: str, offset_ns: int, error_ns: int, source: str) -> None:
        self.session.emit(SiteSeen(site, agent, offset_ns // 1000, -(-error_ns // 1000), source))

    def on_site_lost(self, site: str, reason: str, last_seen_ns: int) -> None:
        self.session.emit(SiteLost(site, reason))
        for draft in self.monitor.site_silent(site, last_seen_ns):
            self._journal_changes([draft], draft.asset or "")

    def on_site_done(self, site: str, agent: str, observed: int, journalled: int, dropped: int) -> None:
        self.session.emit(SiteDone(site, agent, observed, journalled, dropped))

    def _journal_changes(self, drafts: list[EventDraft], asset: str) -> None:
        for draft in drafts:
            self.session.emit_draft(draft, sync=isinstance(draft.payload, AssetState | SiteState))
        if len(drafts) > 1 or self.awaiting_fresh:
            self.changes.notify()
        self._check_stop_conditions(asset)

    def _journal_quorum_rules(self) -> None:
        for asset in self.session.playbook.assets:
            for probe in asset.probes:
                if probe.remote:
                    self.session.emit(ProbeSites(probe.name, probe.sites, probe.quorum), asset=asset.id)

    def inject_refusal(self) -> str:
        """The dead man's switch: no fault while a quorum of some probe's sites is out of sight."""
        return self.sites.refusal() if self.sites is not None else ""

    def on_overrun(self, probe: ScheduledProbe, missed: int, at_ns: int) -> None:
        self.session.emit_draft(EventDraft(ProbeOverrun(probe.probe.name, missed), at_ns, probe.asset))

    def on_abandoned(self, probe: ScheduledProbe, reason: str) -> None:
        self.session.emit(ProbeAbandoned(probe.probe.name, reason), asset=probe.asset)

    def _check_stop_conditions(self, asset: str) -> None:
        if self.stop.event.is_set():
            return
        clock = self.session.clock
        tripped = self.stop_watch.check(asset, self.monitor.down_since_ns(asset), clock.monotonic_ns())
        if tripped is not None:
            self.session.emit(tripped, asset=asset)
            self.stop.request(f"stop condition '{tripped.condition}' tripped: {tripped.reason}")

    def on_signal(self, signame: str) -> None:
        if self.closed:  # the run is over: finish writing its evidence, then exit 3
            if not self.late_signal:
                announce(f"{signame}: the drill is over; writing its evidence, then exiting")
            self.late_signal = True
            return
        self.signals += 1
        self.session.emit(SignalReceived(signame))
        if self.signals > 1:
            self._stop_now(signame)
        if self.scenario_over:
            announce(
                f"{signame}: stopping: the scenario has ended and its verdict stands; finishing the"
                " rollback under its deadline, not waiting for acknowledgements; Ctrl-C again to stop now"
            )
        else:
            announce(
                f"{signame}: aborting: ending the scenario, rolling back, not waiting for acknowledgements;"
                " Ctrl-C again to stop now"
            )
        self.interrupted.set()
        self.stop.request(f"{signame} received: the operator interrupted the drill")

    def on_journal_error(self, exc: DrillError) -> None:
        """The journal cannot be written: end like an abort (stop the scenario, roll back, wait for
        nobody); the rollback still runs against the world, unjournalled."""
        if self.closed:
            return
        announce(
            f"{exc.message}: aborting: ending the scenario and rolling back"
            " (steps from now on cannot be journalled)"
        )
        self.interrupted.set()
        self.stop.request(f"aborted: {exc.message}")

    def _stop_now(self, signame: str) -> None:
        """A second signal: leave within moments, but with the run finished in the journal, its
        results folded and (through `emergency`) an unsigned report that says it was interrupted."""
        announce(f"{signame} again: stopping now; writing the evidence unsigned")
        session = self.session
        try:
            session.finish(
                RunStatus.ABORTED,
                f"interrupted twice ({signame}): stopped at once; the rollback may not have run or finished",
            )
            session.journal.sync()
            (session.run_dir / ACK_URL_FILE).unlink(missing_ok=True)  # no stale endpoint for `drill ack`
            outcome = outcome_of(session)
            if self.emergency is not None:
                self.emergency(outcome)
        finally:
            os._exit(EXIT_ABORTED)

    # -- phases ------------------------------------------------------------------------------
    async def main(self) -> tuple[RunStatus, str]:
        """Baseline, scenario, rollback (in a finally), paging drain; the run's status and reason."""
        session = self.session
        resources = Resources((*self.prepared.probes, *self.prepared.checks.values()))
        self.checks = {
            name: (
                probe,
                LiveProbeContext.for_probe(
                    probe, resources, session.clock, session.emit_draft, session.secrets.redact_text
                ),
            )
            for name, probe in self.prepared.checks.items()
        }
        stop_probes = asyncio.Event()
        status, reason = RunStatus.ABORTED, "the runner stopped before the scenario ended"
        rolled_back = False
        try:
            async with (
                httpx.AsyncClient(trust_env=False, timeout=30) as action_http,
                asyncio.TaskGroup() as group,
            ):
                contexts = {
                    (p.asset, p.probe.name): LiveProbeContext.for_probe(
                        p, resources, session.clock, session.emit_draft, session.secrets.redact_text
                    )
                    for p in self.prepared.probes
                }
                probing = group.create_task(
                    run_probe_loops(
                        self.prepared.probes,
                        contexts,
                        session.clock,
                        self.on_observation,
                        self.on_overrun,
                        stop_probes,
                        on_abandoned=self.on_abandoned,
                    )
                )
                if self.sites is not None:
                    self._journal_quorum_rules()
                    await self.sites.connect()
                    group.create_task(self.sites.run(stop_probes))
                if self.prepared.plan.max_duration_ms:
                    group.create_task(self._deadline(self.prepared.plan.max_duration_ms, stop_probes))
                states = await self._baseline()
                scenario = self._scenario(self._action_context(action_http))
                not_up = self._steady_state(states)
                if self.stop.event.is_set():  # a signal (or a stop) before anything ran: run nothing
                    scenario.skip(session.playbook.scenario, Phase.SCENARIO, self.stop.reason)
                    status, reason = RunStatus.ABORTED, self.stop.reason
                elif not_up and not session.options.allow_degraded:
                    # nothing that changes the world runs against an environment already broken
                    scenario.skip(session.playbook.scenario, Phase.SCENARIO, "the steady state was not met")
                    status, reason = RunStatus.NOT_RUN, f"steady state not met: not up at the start: {not_up}"
                else:
                    self.scenario_started = True
                    status, reason = await self._scenario_until_stopped(scenario)
                self.scenario_over = True
                rolled_back = True  # the normal path rolls back here, while the probes still watch
                await self._rollback_if_wanted(scenario, status, reason)
                if self.scenario_started:
                    await self._return_to_normal(states)
                # after Ctrl-C nobody waits for people: who had not acknowledged is journalled
                await self.paging.drain(session.options.ack_wait_ms, self.interrupted)
                # Stop first, then read the canaries' survivors: no write can be acknowledged
                # after the read, and no tick shares a connection with the finisher.
                stop_probes.set()
                await probing
                await self._finish_probes(contexts)
        except BaseException as exc:
            status, reason = RunStatus.ABORTED, _internal_error(exc)
            raise
        finally:
            if not rolled_back:  # a bug or a cancellation ended the scenario: fail back all the same
                await self._rollback_after_failure(status, reason)
            await resources.aclose()
        return status, reason

    async def _rollback_after_failure(self, status: RunStatus, reason: str) -> None:
        """The rollback a bug or a cancellation would otherwise skip, with fresh HTTP for its actions."""
        async with httpx.AsyncClient(trust_env=False, timeout=30) as action_http:
            scenario = self._scenario(self._action_context(action_http))
            await self._rollback_if_wanted(scenario, status, reason)

    async def _baseline(self) -> dict[str, str]:
        """Wait until every asset has a known state before the scenario starts, so an outage the
        scenario causes is never mistaken for the starting state (bounded by the slowest probe)."""
        bound_ms = self._settle_ms()
        assets = [a.id for a in self.prepared.plan.assets if a.probes]
        await first_of(
            self.changes.wait_until(lambda: all(self.monitor.state(a) is not None for a in assets)),
            self.stop.event.wait(),  # a Ctrl-C ends the baseline too
            timeout_s=bound_ms / 1000,
        )
        states: dict[str, str] = {a: self.monitor.state(a) or "unknown" for a in assets}
        self.session.emit(Mark("baseline", states=states))
        return states

    async def _return_to_normal(self, baseline: dict[str, str]) -> None:
        """After a drill that ran: wait (bounded, visibly) until every asset up at the baseline is
        seen up again by probes started after the rollback ended (`rise` answers in a row each),
        and journal whether it was; after Ctrl-C, only look (what is not re-probed is not back)."""
        wanted = [a for a, state in baseline.items() if state == "up"]
        self.monitor.start_fresh(self.session.clock.monotonic_ns())

        def not_back() -> list[str]:
            return [a for a in wanted if not self.monitor.back_fresh(a)]

        if wanted and not self.interrupted.is_set():
            bound_ms = self._settle_ms()
            detail = f"re-probing {len(wanted)} asset(s) after the rollback: {', '.join(wanted)}"
            self.session.emit(WaitStarted("return to normal", bound_ms, detail))
            self.awaiting_fresh = True
            try:
                await first_of(
                    self.changes.wait_until(lambda: not not_back()),
                    self.interrupted.wait(),
                    timeout_s=bound_ms / 1000,
                )
            finally:
                self.awaiting_fresh = False
            missing = not_back()
            ended = "ended by the operator" if self.interrupted.is_set() else "timed out"
            self.session.emit(WaitEnded("return to normal", ended if missing else "done", ", ".join(missing)))
        missing = not_back()
        self.session.emit(ReturnChecked(not missing, tuple(self._not_back_state(a) for a in missing)))

    def _settle_ms(self) -> int:
        probes = [p.probe for p in self.prepared.probes]
        remote = [p for a in self.session.playbook.assets for p in a.probes if p.remote]
        return _settle_ms([*probes, *remote]) + (SITE_START_GRACE_MS if remote else 0)

    def _not_back_state(self, asset: str) -> str:
        state = self.monitor.state(asset)
        if state == "up":  # up by older probes only: not shown to be back
            return f"{asset} (up before the rollback ended, not re-probed since)"
        return f"{asset} ({state or 'unknown'})"

    def _steady_state(self, states: dict[str, str]) -> str:
        """Journal whether every asset was up at the start; the ones that were not, for people."""
        not_up = tuple(a for a, state in states.items() if state != "up")
        allowed = bool(not_up) and self.session.options.allow_degraded
        self.session.emit(SteadyState(not not_up, not_up, allowed))
        return ", ".join(f"{a} ({states[a]})" for a in not_up)

    def _action_context(self, http: httpx.AsyncClient) -> ActionContext:
        return ActionContext(http=http, cwd=self._cwd(), redact=self.session.secrets.redact_text)

    def _cwd(self) -> str:
        return str(Path(self.session.playbook.source).parent or ".")

    def _scenario(self, action_ctx: ActionContext) -> ScenarioRunner:
        session = self.session
        return ScenarioRunner(
            playbook=session.playbook,
            emit=lambda draft, sync: session.emit_draft(draft, sync=sync),
            now_ns=session.clock.monotonic_ns,
            states=self.monitor,
            changed=self.changes,
            secrets=session.secrets,
            action_ctx=action_ctx,
            prompter=self.prompter,
            checks=self.checks,
            outputs=self.outputs,
            inject_refusal=self.inject_refusal,
        )

    async def _scenario_until_stopped(self, scenario: ScenarioRunner) -> tuple[RunStatus, str]:
        task = asyncio.create_task(scenario.run_steps(self.session.playbook.scenario, Phase.SCENARIO))
        stopper = asyncio.create_task(self.stop.event.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return RunStatus.ABORTED, self.stop.reason
        try:
            ok = task.result()
        except OperatorAbort as exc:
            return RunStatus.ABORTED, str(exc)
        return (RunStatus.COMPLETED, "") if ok else (RunStatus.FAILED, "a scenario step failed")

    def _wants_rollback(self, status: RunStatus) -> bool:
        policy = self.session.options.rollback
        if not self.scenario_started:  # nothing ran: nothing to roll back
            return False
        return bool(self.session.playbook.rollback) and (
            policy == "always" or (policy == "on-failure" and status != RunStatus.COMPLETED)
        )

    async def _rollback_if_wanted(self, scenario: ScenarioRunner, status: RunStatus, reason: str) -> None:
        """Run the rollback under its own deadline (the steps' bounds plus a grace), journalled."""
        if not self._wants_rollback(status):
            return
        self.session.emit(RollbackStarted(reason))
        bound = self.prepared.plan.rollback_ms
        ok = False
        try:
            async with asyncio.timeout(None if bound is None else (bound + ROLLBACK_GRACE_MS) / 1000):
                ok = await scenario.run_steps(self.session.playbook.rollback, Phase.ROLLBACK)
        except (OperatorAbort, TimeoutError):
            ok = False
        finally:
            self.session.emit(RollbackFinished("ok" if ok else "failed"))

    async def _finish_probes(self, contexts: dict[tuple[str, str], LiveProbeContext]) -> None:
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
        self.session.emit(StopTripped("max_duration", f"the drill ran longer than {human_ms(limit_ms)}"))
        self.stop.request(f"max_duration {human_ms(limit_ms)} exceeded")


def _settle_ms(specs: Sequence[Probe]) -> int:
    """How long a probe may take to give an asset a state (fall or rise streak, then a timeout),
    plus a second: a loaded host must not turn a slow tick into "steady state not met"."""
    bound_ms = max((p.interval_ms * (max(p.fall, p.rise) + 1) + p.timeout_ms for p in specs), default=0)
    return bound_ms + (BASELINE_GRACE_MS if specs else 0)


def announce(text: str) -> None:
    """A line for the operator at once (stderr, in the run's log format): what a signal does."""
    get_logger("drill.run").warning(text)


def _internal_error(exc: BaseException) -> str:
    """One line for the journal: the innermost cause of a failure of the runner itself (a
    DrillError, a problem of its environment, as its own message)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        found = drill_error_in(exc)
        if found is not None:
            return f"aborted: {found.message}"
    if isinstance(exc, DrillError):
        return f"aborted: {exc.message}"
    if isinstance(exc, asyncio.CancelledError):
        return "internal error: the run was cancelled"
    return f"internal error: {type(exc).__name__}: {exc}"


def drill_error_in(group: BaseExceptionGroup[BaseException]) -> DrillError | None:
    """The first DrillError of an exception group when it holds nothing else but cancellations
    (a problem of the environment); None when a bug is among them."""
    drill_errors, rest = group.split(DrillError)
    if rest is not None:
        _, other = rest.split(asyncio.CancelledError)
        if other is not None:
            return None
    if drill_errors is None:
        return None
    first: BaseException = drill_errors
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, DrillError) else None


async def run_drill(
    playbook: Playbook,
    options: RunOptions,
    *,
    clock: Clock | None = None,
    prompter: Prompter | None = None,
    sinks: Sequence[Sink] = (),
    install_signal_handlers: bool = False,
    emergency: Callable[[RunOutcome], None] | None = None,
) -> RunOutcome:
    """Run a drill end to end; write runs/<run-id>/journal.jsonl and results.json; never lose events.

    A failure of the runner itself (a bug in a callback or a sink) still rolls back and journals
    run.finished (aborted, with the reason) before it propagates.
    """
    clock = clock or SystemClock()
    router = SignalRouter(install_signal_handlers)
    router.install()  # from the start: a Ctrl-C while secrets resolve is held for the run, not lost
    try:
        return await _run_drill(playbook, options, clock, prompter, sinks, emergency, router)
    finally:
        router.remove()


async def _run_drill(
    playbook: Playbook,
    options: RunOptions,
    clock: Clock,
    prompter: Prompter | None,
    sinks: Sequence[Sink],
    emergency: Callable[[RunOutcome], None] | None,
    router: SignalRouter,
) -> RunOutcome:
    secrets = secrets_for(playbook, options.env, options.variables)
    prepared = prepare(playbook, secrets)
    check_operator_presence(playbook, options)
    check_broker(playbook, options)
    who = options.operator or operator_identity()
    with RunSession.open(playbook, prepared.plan, options, clock, secrets) as session:

        def journal_people(draft: EventDraft) -> None:
            session.emit_draft(draft, sync=True)  # pages and acks are evidence of people: fsynced

        paging = Paging(
            playbook,
            secrets,
            clock,
            journal_people,
            run_id=session.run_id,
            run_dir=session.run_dir,
            ack_host=options.ack_host,
            ack_port=options.ack_port,
            public_url=options.public_url,
        )
        session.sinks.extend([*sinks, paging.sink])
        run = _Run(
            session,
            prepared,
            prompter or AutoConfirm(who),
            paging,
            Monitor.for_assets(playbook.assets),
            StopWatch.for_plan(prepared.plan),
            emergency=emergency,
        )
        run.sites = _coordinator(playbook, options, session, run)
        status, reason = RunStatus.ABORTED, "the runner failed"
        failure: BaseException | None = None
        session.on_journal_error.append(run.on_journal_error)
        try:
            session.show_started(sinks)  # journalled before they were attached: first, before a held signal
            router.attach(run)
            async with session.syncing(), paging:
                status, reason = await run.main()
        except BaseException as exc:
            status, reason, failure = RunStatus.ABORTED, _internal_error(exc), exc
        finally:
            session.finish(status, reason)
            run.closed = True  # a signal from now on only waits for the evidence (exit 3)
    outcome = outcome_of(session)  # results.json even when the runner itself failed
    if failure is not None:
        raise failure
    return replace(outcome, exit_code=EXIT_ABORTED) if run.late_signal else outcome


def _coordinator(
    playbook: Playbook, options: RunOptions, session: RunSession, run: _Run
) -> Coordinator | None:
    if not any(p.remote for a in playbook.assets for p in a.probes):
        return None
    callbacks = SiteCallbacks(run.on_site_observation, run.on_site_seen, run.on_site_lost, run.on_site_done)
    return Coordinator(
        options.broker, session.run_id, playbook, session.clock, callbacks, playbook.settings.max_duration_ms
    )


def check_broker(playbook: Playbook, options: RunOptions) -> None:
    """A playbook whose probes run at sites needs a broker to reach their agents."""
    remote = [f"{a.id}/{p.name}" for a in playbook.assets for p in a.probes if p.remote]
    if remote and not options.broker:
        raise UsageError(
            f"probes run at sites ({', '.join(remote[:3])}{', ...' if len(remote) > 3 else ''}) but no broker was given",
            hint="pass --broker nats://HOST:PORT (or set DRILL_BROKER), where the sites' `drill agent`s connect",
        )


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalRouter:
    """SIGINT and SIGTERM to the run, on its event loop, from the start of run_drill to its end.

    Signals are taken with signal.signal (not loop.add_signal_handler, whose removal resets SIGINT
    to KeyboardInterrupt) and the handlers found are restored on removal, so a caller's own
    handling (the CLI's, while it writes the evidence) takes over without a gap.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.run: _Run | None = None
        self.pending: list[str] = []  # arrived before the run existed
        self.previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()

        def handler(signum: int, _frame: object) -> None:
            loop.call_soon_threadsafe(self._deliver, signal.Signals(signum).name)

        for sig in _SIGNALS:
            self.previous[sig] = signal.signal(sig, handler)

    def _deliver(self, name: str) -> None:
        if self.run is None:
            self.pending.append(name)
        else:
            self.run.on_signal(name)

    def attach(self, run: _Run) -> None:
        self.run = run
        for name in self.pending:
            run.on_signal(name)
        self.pending.clear()

    def remove(self) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
        self.previous.clear()
