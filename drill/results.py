"""Results: a pure fold over typed journal events into per-asset timings, targets and verdicts.

Nothing here reads files or clocks; the same events always give the same results, so a report
can be rebuilt from a journal alone. Targets come from the plan journalled in `run.started`
(drill.evidence.snapshot), never from the playbook document. Timing semantics follow DESIGN §2:
t_detect and t_recover are the instants of the first probe of the streak that changed the
asset's state. `results.json` is `msgspec.to_builtins(results)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from drill.evidence.events import (
    AssetState,
    ChainExhausted,
    Event,
    FailureInjected,
    ManualAnswer,
    ManualAnswered,
    PageAcked,
    PageSent,
    ProbeObserved,
    ProbeSites,
    ReturnChecked,
    RollbackFinished,
    RollbackStarted,
    RpoMeasured,
    RpoUnmeasured,
    RunFinished,
    RunStarted,
    RunStatus,
    SignalReceived,
    SiteDone,
    SiteLost,
    SiteSeen,
    SiteState,
    State,
    SteadyState,
    StepFinished,
    StepStarted,
    StepStatus,
    StopTripped,
    WaitEnded,
    WaitStarted,
)
from drill.evidence.snapshot import Objective, Phase, Plan, PlanAsset, StepKind
from drill.units import human_ms

BP_FULL = 10_000  # availability in basis points: integers only in evidence
# An asset: pass, fail, incomplete (an objective not measured and not waived), unaffected (the
# outage never reached it), not-measured (nothing ran). A drill: pass, fail, incomplete, aborted, not-run.
Verdict = Literal["pass", "fail", "incomplete", "unaffected", "not-measured", "aborted", "not-run"]
# One objective of one asset (README, "Verdicts"): never a number where nothing was measured.
ObjectiveState = Literal["met", "missed", "not-measured", "unaffected"]
RollbackStatus = Literal["ok", "failed", "not-run"]


# -- what results.json holds --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    rto_ms: int
    rpo_ms: int | None


@dataclass(frozen=True, slots=True)
class RpoResult:
    rpo_ms: int
    lost_writes: int
    last_acked_seq: int
    last_surviving_seq: int
    probe: str
    at_risk_writes: int = 0  # accepted by the primary, not confirmed by the replicas asked for


@dataclass(frozen=True, slots=True)
class ObjectiveResult:
    """One objective (RTO or RPO) of one asset: what the evidence shows about it, and why."""

    objective: Objective
    state: ObjectiveState
    target_ms: int
    achieved_ms: int | None  # only when measured (met or missed)
    reason: str  # why missed, not measured or unaffected; empty when met
    waived: str = ""  # the playbook's reason for not demonstrating it (only when not measured)

    @property
    def undemonstrated(self) -> bool:
        """Not measured and not waived: the drill cannot claim it."""
        return self.state == "not-measured" and not self.waived


@dataclass(frozen=True, slots=True)
class AckResult:
    chain: str
    ack_ms: int | None
    target_ms: int | None
    met: bool


@dataclass(frozen=True, slots=True)
class ProbeError:
    probe: str
    reason: str
    count: int
    first_seq: int


@dataclass(frozen=True, slots=True)
class SiteChange:
    """One site's view of one probe changed: state is up, down or "no data" (its agent went silent)."""

    state: str
    at_utc: str
    window_ms: int  # the true change lies within this (probe interval plus the site's clock error)
    seq: int


@dataclass(frozen=True, slots=True)
class SiteView:
    """What one site saw of one probe of an asset (its own fall/rise), beside the quorum rule."""

    site: str
    probe: str
    quorum: int
    sites: int
    observations: int
    failed: int
    changes: tuple[SiteChange, ...]


@dataclass(frozen=True, slots=True)
class SiteLoss:
    at_utc: str
    reason: str
    seq: int


@dataclass(frozen=True, slots=True)
class SiteResult:
    """One site over the run: its agents, their clock, when it was lost, whether all it observed
    reached the journal (None where the agent never said: killed, or cut off to the end)."""

    site: str
    agents: tuple[str, ...]
    clock_offset_us: int | None  # None: no agent of the site ever answered
    clock_error_us: int | None
    clock_source: str
    losses: tuple[SiteLoss, ...]
    journalled: int
    observed: int | None
    dropped: int | None
    complete: bool | None


@dataclass(frozen=True, slots=True)
class AssetResult:
    id: str
    tier: str
    owner: str
    depends_on: tuple[str, ...]
    contact_chain: str
    targets: Targets
    t_inject_utc: str | None
    t_detect_utc: str | None
    t_recover_utc: str | None
    detection_ms: int | None
    switchover_ms: int | None
    rto_ms: int | None
    uncertainty_ms: int  # of rto_ms (else of detection_ms; else the probe interval: nothing measured)
    rpo: RpoResult | None
    availability_bp: int | None  # None: no probe result, so not measured (never 0 %)
    probes_total: int
    probes_ok: int
    probe_errors: tuple[ProbeError, ...]
    ack: AckResult | None
    verdict: Verdict
    reasons: tuple[str, ...]
    evidence_seqs: tuple[int, ...]
    description: str = ""
    probes: tuple[str, ...] = ()  # probe names
    t_inject_done_utc: str | None = None  # the injecting step's completion (t_inject is its start)
    detect_window_ms: int | None = (
        None  # the true outage start lies within this much before t_detect's probe ended
    )
    recover_window_ms: int | None = None  # the true recovery lies within this much before t_recover
    objectives: tuple[ObjectiveResult, ...] = ()  # RTO, then RPO when the asset has an RPO target
    sites: tuple[SiteView, ...] = ()  # each site's view of its probes run at sites (absent: none)

    def objective(self, name: Objective) -> ObjectiveResult | None:
        return next((o for o in self.objectives if o.objective == name), None)


@dataclass(frozen=True, slots=True)
class TierResult:
    name: str
    rank: int
    rto_ms: int
    rpo_ms: int | None
    availability_bp: int | None  # None: no probe result, so not measured (never 0 %)
    verdict: Verdict
    description: str = ""


@dataclass(frozen=True, slots=True)
class OrderViolation:
    asset: str
    depends_on: str
    asset_recovered_utc: str | None
    dependency_recovered_utc: str | None
    seq: int


@dataclass(frozen=True, slots=True)
class ManualRecord:
    answer: ManualAnswer
    who: str
    auto: bool


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    kind: StepKind
    phase: Phase
    status: StepStatus
    started_utc: str
    finished_utc: str | None
    duration_ms: int | None
    reason: str
    attempts: int
    manual: ManualRecord | None
    seq: int


@dataclass(frozen=True, slots=True)
class StopRecord:
    condition: str
    reason: str
    utc: str
    seq: int


@dataclass(frozen=True, slots=True)
class RollbackResult:
    ran: bool
    status: RollbackStatus


@dataclass(frozen=True, slots=True)
class PageResult:
    page_id: str
    chain: str
    contact: str
    via: str
    assets: tuple[str, ...]
    chains: tuple[str, ...]
    sent_utc: str
    ok: bool
    reason: str
    acked_utc: str | None
    ack_ms: int | None
    by: str
    ack_within_ms: int
    met: bool | None


@dataclass(frozen=True, slots=True)
class ChainResult:
    name: str
    respond_within_ms: int | None
    first_ack_ms: int | None
    met: bool | None  # None: the chain was never paged
    exhausted: bool


@dataclass(frozen=True, slots=True)
class WaitRecord:
    """A wait that was not a step (acknowledgements, return to normal): how it ended."""

    what: str
    bound_ms: int | None
    started_utc: str
    ended_utc: str | None
    outcome: str  # done | timed out | ended by the operator | "" (the journal ends inside it)
    detail: str


@dataclass(frozen=True, slots=True)
class ReturnResult:
    """Whether the probes saw every asset back at its baseline state after the drill."""

    confirmed: bool
    not_back: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SteadyStateResult:
    met: bool
    not_up: tuple[str, ...]
    degraded_allowed: bool


@dataclass(frozen=True, slots=True)
class PlaybookIdentity:
    name: str
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class Results:
    """Everything results.json holds (integers only)."""

    run_id: str
    status: RunStatus
    reason: str
    playbook: PlaybookIdentity
    started_utc: str
    finished_utc: str | None
    duration_ms: int | None
    verdict: Verdict
    mode: str
    pass_tiers: tuple[str, ...]
    assets: tuple[AssetResult, ...]
    tiers: tuple[TierResult, ...]
    order_violations: tuple[OrderViolation, ...]
    steps: tuple[StepResult, ...]
    stops: tuple[StopRecord, ...]
    rollback: RollbackResult
    pages: tuple[PageResult, ...]
    chains: tuple[ChainResult, ...]
    events: int
    journal_head: str
    steady_state: SteadyStateResult | None = None  # None: no check journalled (format 1, contact drills)
    verdict_reason: str = ""  # why the verdict is not pass, in one line
    return_to_normal: ReturnResult | None = None  # None: not checked (nothing ran, or drill 0.1)
    waits: tuple[WaitRecord, ...] = ()
    sites: tuple[SiteResult, ...] = ()  # the playbook's sites (absent: it has none)


@dataclass(frozen=True, slots=True)
class FoldedRun:
    """A journal folded: its results, the plan they were measured against, and its run.started."""

    results: Results
    plan: Plan
    started: RunStarted
    generated_utc: str  # run.finished's time, else the last event's: a stable report timestamp


def results_json(results: Results) -> str:
    """results.json: the results as indented, sorted JSON (not signed; the report covers its digest)."""
    import msgspec

    return json.dumps(without_empty_sites(msgspec.to_builtins(results)), indent=2, sort_keys=True) + "\n"


def without_empty_sites(data: dict[str, Any]) -> dict[str, Any]:
    """Drop the `sites` lists of a drill probed from nowhere but here, so its files keep the
    bytes they had before sites existed."""
    if not data.get("sites"):
        data.pop("sites", None)
    for asset in data.get("assets") or ():
        if not asset.get("sites"):
            asset.pop("sites", None)
    return data


# -- the fold -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Transition:
    state: State
    at_mono: int
    utc: str
    seq: int
    window_ns: int  # upper - lower: where the true change lies, as recorded


@dataclass(frozen=True, slots=True)
class _Injection:
    """t_inject: the start of the injecting step (its StepStarted), and the step's completion."""

    mono: int
    utc: str
    seq: int
    done_utc: str
    done_seq: int


@dataclass(slots=True)
class _Timeline:
    """Mutable accumulator for one asset while folding (never leaves this module)."""

    plan: PlanAsset
    states: list[_Transition] = field(default_factory=list)
    total: int = 0
    ok: int = 0
    errors: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (probe, reason) -> [count, seq]
    rpo: RpoResult | None = None
    rpo_unmeasured: str = ""
    sites: dict[tuple[str, str], _SiteLine] = field(default_factory=dict)  # (probe, site) -> its view


@dataclass(slots=True)
class _SiteLine:
    quorum: int
    sites: int
    observations: int = 0
    failed: int = 0
    changes: list[SiteChange] = field(default_factory=list)


@dataclass(slots=True)
class _Site:
    agents: list[str] = field(default_factory=list)
    clock: SiteSeen | None = None
    losses: list[SiteLoss] = field(default_factory=list)
    journalled: int = 0
    observed: int | None = None
    dropped: int | None = None
    said_done: int = 0  # agents that reported their count


@dataclass(slots=True)
class _OpenStep:
    started: StepStarted
    utc: str
    mono: int
    seq: int
    finished: StepFinished | None = None
    finished_utc: str | None = None
    finished_mono: int | None = None
    manual: ManualRecord | None = None

    def result(self) -> StepResult:
        done = self.finished
        return StepResult(
            name=self.started.step,
            kind=self.started.kind,
            phase=self.started.phase,
            status=done.status if done else StepStatus.ABORTED,
            started_utc=self.utc,
            finished_utc=self.finished_utc,
            duration_ms=(self.finished_mono - self.mono) // 1_000_000
            if self.finished_mono is not None
            else None,
            reason=done.reason if done else "did not finish",
            attempts=done.attempts if done else 0,
            manual=self.manual,
            seq=self.seq,
        )


@dataclass(slots=True)
class _Page:
    sent: PageSent
    utc: str
    acked: PageAcked | None = None
    acked_utc: str | None = None

    def result(self) -> PageResult:
        sent, acked = self.sent, self.acked
        return PageResult(
            page_id=sent.page_id,
            chain=sent.chain,
            contact=sent.contact,
            via=sent.via,
            assets=sent.assets,
            chains=sent.chains or (sent.chain,),
            sent_utc=self.utc,
            ok=sent.ok,
            reason=sent.reason,
            acked_utc=self.acked_utc,
            ack_ms=acked.ack_ms if acked else None,
            by=acked.by if acked else "",
            ack_within_ms=sent.ack_within_ms,
            met=acked.ack_ms <= sent.ack_within_ms if acked else None,
        )


@dataclass(slots=True)
class _Fold:
    started: RunStarted | None = None
    plan: Plan | None = None
    started_utc: str = ""
    started_mono: int = 0
    finished: RunFinished | None = None
    finished_utc: str | None = None
    finished_mono: int | None = None
    last_utc: str = ""
    last_mono: int = 0
    inject: _Injection | None = None
    step_starts: dict[tuple[Phase, str], Event] = field(default_factory=dict)  # the latest of each step
    assets: dict[str, _Timeline] = field(default_factory=dict)
    steps: list[_OpenStep] = field(default_factory=list)
    open_steps: dict[tuple[Phase, str], _OpenStep] = field(default_factory=dict)
    stops: list[StopRecord] = field(default_factory=list)
    rollback_ran: bool = False
    rollback_status: RollbackStatus = "not-run"
    pages: dict[str, _Page] = field(default_factory=dict)
    exhausted: set[str] = field(default_factory=set)
    count: int = 0
    steady: SteadyState | None = None
    returned: ReturnChecked | None = None
    waits: list[WaitRecord] = field(default_factory=list)
    sites: dict[str, _Site] = field(default_factory=dict)

    def add(self, e: Event) -> None:
        """One flat dispatch over the event catalogue (the hot loop of every report build)."""
        self.count += 1
        self.last_utc, self.last_mono = e.utc, e.mono_ns
        p = e.payload
        if isinstance(p, ProbeObserved):
            self._observed(e, p)
        elif isinstance(p, AssetState):
            line = self.assets.get(e.asset or "")
            if line is not None:
                upper = p.at_mono_ns if p.upper_mono_ns is None else p.upper_mono_ns
                line.states.append(_Transition(p.state, p.at_mono_ns, e.utc, e.seq, upper - p.lower_mono_ns))
        elif isinstance(p, RunStarted):
            self._run_started(e, p)
        elif isinstance(p, RunFinished):
            self.finished, self.finished_utc, self.finished_mono = p, e.utc, e.mono_ns
        elif isinstance(p, FailureInjected):
            if self.inject is None:
                self.inject = self._injection(e, p)
        elif isinstance(p, StepStarted):
            self.step_starts[(p.phase, p.step)] = e
            step = _OpenStep(p, e.utc, e.mono_ns, e.seq)
            self.open_steps[(p.phase, p.step)] = step
            self.steps.append(step)
        elif isinstance(p, StepFinished):
            open_step = self.open_steps.pop((p.phase, p.step), None)
            if open_step is not None:
                open_step.finished, open_step.finished_utc, open_step.finished_mono = p, e.utc, e.mono_ns
        elif isinstance(p, ManualAnswered):
            asked = self.open_steps.get((p.phase, p.step))
            if asked is not None:
                asked.manual = ManualRecord(p.answer, p.who, p.auto)
        elif isinstance(p, StopTripped):
            self.stops.append(StopRecord(p.condition, p.reason, e.utc, e.seq))
        elif isinstance(p, SignalReceived):
            self.stops.append(
                StopRecord(f"signal {p.signal}", "operator interrupted the drill", e.utc, e.seq)
            )
        elif isinstance(p, RollbackStarted):
            self.rollback_ran = True
        elif isinstance(p, RollbackFinished):
            self.rollback_status = p.status
        elif isinstance(p, RpoMeasured | RpoUnmeasured):
            self._rpo(e, p)
        elif isinstance(p, PageSent):
            self.pages[p.page_id] = _Page(p, e.utc)
        elif isinstance(p, PageAcked):
            page = self.pages.get(p.page_id)
            if page is not None:
                page.acked, page.acked_utc = p, e.utc
        elif isinstance(p, ChainExhausted):
            self.exhausted.add(p.chain)
        elif isinstance(p, SteadyState):
            self.steady = p
        elif isinstance(p, ReturnChecked):
            self.returned = p
        elif isinstance(p, WaitStarted):
            self.waits.append(WaitRecord(p.what, p.bound_ms, e.utc, None, "", p.detail))
        elif isinstance(p, WaitEnded):
            self._wait_ended(e, p)
        elif isinstance(p, ProbeSites | SiteState | SiteSeen | SiteLost | SiteDone):
            self._site(e, p)

    def _site(self, e: Event, p: ProbeSites | SiteState | SiteSeen | SiteLost | SiteDone) -> None:
        line = self.assets.get(e.asset or "")
        if isinstance(p, ProbeSites):
            if line is not None:
                for name in p.sites:
                    line.sites[(p.probe, name)] = _SiteLine(p.quorum, len(p.sites))
                    self.sites.setdefault(name, _Site())
        elif isinstance(p, SiteState):
            view = line.sites.get((p.probe, p.site)) if line is not None else None
            if view is not None:
                window = _ms(p.upper_mono_ns - p.lower_mono_ns)
                view.changes.append(SiteChange(p.state, e.utc, window, e.seq))
        else:
            site = self.sites.setdefault(p.site, _Site())
            if isinstance(p, SiteSeen):
                site.clock = p
                if p.agent not in site.agents:
                    site.agents.append(p.agent)
            elif isinstance(p, SiteLost):
                site.losses.append(SiteLoss(e.utc, p.reason, e.seq))
            else:
                site.observed = (site.observed or 0) + p.observed
                site.dropped = (site.dropped or 0) + p.dropped
                site.said_done += 1

    def _wait_ended(self, e: Event, p: WaitEnded) -> None:
        for i in range(len(self.waits) - 1, -1, -1):
            wait = self.waits[i]
            if wait.what == p.what and wait.ended_utc is None:
                self.waits[i] = WaitRecord(
                    wait.what, wait.bound_ms, wait.started_utc, e.utc, p.outcome, p.detail
                )
                return
        # ended before it began (the operator had already said stop): no bound was ever set
        self.waits.append(WaitRecord(p.what, None, e.utc, e.utc, p.outcome, p.detail))

    def _injection(self, e: Event, p: FailureInjected) -> _Injection:
        start = self.step_starts.get((Phase.SCENARIO, p.step))
        if p.started_mono_ns is None or start is None:  # format 1: t_inject was the completion
            return _Injection(e.mono_ns, e.utc, e.seq, e.utc, e.seq)
        return _Injection(p.started_mono_ns, start.utc, start.seq, e.utc, e.seq)

    def _run_started(self, e: Event, p: RunStarted) -> None:
        self.started, self.started_utc, self.started_mono = p, e.utc, e.mono_ns
        self.plan = plan_of(p)
        self.assets = {a.id: _Timeline(a) for a in self.plan.assets}

    def _observed(self, e: Event, p: ProbeObserved) -> None:
        line = self.assets.get(e.asset or "")
        if line is None:
            return
        if p.site is not None:
            self._site_observed(line, p, p.site)
        line.total += 1
        if p.ok:
            line.ok += 1
            return
        slot = line.errors.setdefault((p.probe, p.reason), [0, e.seq])
        slot[0] += 1

    def _site_observed(self, line: _Timeline, p: ProbeObserved, site: str) -> None:
        view = line.sites.get((p.probe, site))
        if view is not None:
            view.observations += 1
            view.failed += not p.ok
        known = self.sites.get(site)
        if known is not None:
            known.journalled += 1

    def _rpo(self, e: Event, p: RpoMeasured | RpoUnmeasured) -> None:
        line = self.assets.get(e.asset or "")
        if line is None:
            return
        if isinstance(p, RpoMeasured):
            line.rpo = RpoResult(
                p.rpo_ms, p.lost_writes, p.last_acked_seq, p.last_surviving_seq, p.probe, p.at_risk_writes
            )
        elif line.rpo is None:
            line.rpo_unmeasured = p.reason or "the surviving canary writes could not be read"


def plan_of(started: RunStarted) -> Plan:
    """The plan a run was measured against: journalled since format 2; for a format-1 journal
    (drill 0.1.0) rebuilt from the journalled document by the same loader and planner."""
    if started.plan is not None:
        return started.plan
    # Imported only for these old journals: the planner loads every probe kind's driver.
    from drill.plan import build_plan
    from drill.playbook.load import parse_document
    from drill.playbook.validate import check_document

    raw = json.dumps(started.playbook.document).encode()
    playbook, diagnostics = check_document(parse_document(raw, started.playbook.path or "<journal>"))
    if playbook is None:
        errors = "; ".join(d.message for d in diagnostics if d.severity == "error")
        raise ValueError(f"the playbook journalled in run.started does not validate: {errors}")
    return build_plan(playbook)


def fold_journal(events: Iterable[Event], *, journal_head: str = "") -> FoldedRun:
    """Fold journal events (in order) into results; pure and deterministic."""
    fold = _Fold()
    for event in events:
        fold.add(event)
    if fold.started is None or fold.plan is None:
        raise ValueError("the journal has no run.started event")
    return FoldedRun(_assemble(fold, fold.plan, journal_head), fold.plan, fold.started, _generated(fold))


def fold_results(events: Iterable[Event], *, journal_head: str = "") -> Results:
    return fold_journal(events, journal_head=journal_head).results


def _generated(fold: _Fold) -> str:
    return fold.finished_utc or fold.last_utc


# -- assembling ----------------------------------------------------------------------------------


def _ms(ns: int) -> int:
    return ns // 1_000_000


def _first(states: list[_Transition], state: State, after_mono: int, after_seq: int) -> _Transition | None:
    for item in states:
        if item.state == state and (item.at_mono >= after_mono or item.seq > after_seq):
            return item
    return None


def _outage(fold: _Fold, line: _Timeline) -> tuple[_Transition | None, _Transition | None]:
    """The first down after the injection, and the first up after that (DESIGN §2)."""
    if fold.inject is None:
        return None, None
    down = _first(line.states, "down", fold.inject.mono, fold.inject.seq)
    up = _first(line.states, "up", down.at_mono, down.seq) if down else None
    return down, up


def _asset_result(fold: _Fold, line: _Timeline, chains: dict[str, ChainResult]) -> AssetResult:
    info, inject = line.plan, fold.inject
    down, up = _outage(fold, line)
    detection = max(0, _ms(down.at_mono - inject.mono)) if down and inject else None
    switchover = _ms(up.at_mono - down.at_mono) if down and up else None
    rto = max(0, _ms(up.at_mono - inject.mono)) if down and up and inject else None
    ack = _asset_ack(info, chains)
    rto_objective = _rto_objective(fold, line, down, up, rto)
    objectives = [rto_objective, *_optional(_rpo_objective(fold, line, rto_objective))]
    verdict, reasons = _asset_verdict(fold, line, objectives, ack)
    evidence = [x.seq for x in (down, up) if x] + ([inject.seq, inject.done_seq] if inject else [])
    detect_window = _ms(down.window_ns) if down else None
    recover_window = _ms(up.window_ns) if up else None
    measured = recover_window if recover_window is not None else detect_window
    return AssetResult(
        id=info.id,
        tier=info.tier,
        owner=info.owner,
        depends_on=info.depends_on,
        contact_chain=info.contact_chain,
        targets=Targets(info.rto_ms, info.rpo_ms),
        t_inject_utc=inject.utc if inject else None,
        t_detect_utc=down.utc if down else None,
        t_recover_utc=up.utc if up else None,
        detection_ms=detection,
        switchover_ms=switchover,
        rto_ms=rto,
        uncertainty_ms=measured if measured is not None else info.longest_interval_ms,
        rpo=line.rpo,
        availability_bp=(line.ok * BP_FULL // line.total) if line.total else None,
        probes_total=line.total,
        probes_ok=line.ok,
        probe_errors=tuple(ProbeError(p, r, c, s) for (p, r), (c, s) in sorted(line.errors.items())),
        ack=ack,
        verdict=verdict,
        reasons=tuple(reasons),
        evidence_seqs=tuple(sorted(set(evidence))),
        description=info.description,
        probes=tuple(p.name for p in info.probes),
        t_inject_done_utc=inject.done_utc if inject else None,
        detect_window_ms=detect_window,
        recover_window_ms=recover_window,
        objectives=tuple(objectives),
        sites=_site_views(line),
    )


def _optional(item: ObjectiveResult | None) -> list[ObjectiveResult]:
    return [] if item is None else [item]


def _objective(
    info: PlanAsset,
    name: Objective,
    target: int,
    state: ObjectiveState,
    reason: str,
    achieved: int | None = None,
) -> ObjectiveResult:
    waiver = info.waiver(name) if state == "not-measured" else None
    return ObjectiveResult(name, state, target, achieved, reason, waiver.reason if waiver else "")


def _not_run(fold: _Fold) -> bool:
    return fold.finished is not None and fold.finished.status == RunStatus.NOT_RUN


def _rto_objective(
    fold: _Fold, line: _Timeline, down: _Transition | None, up: _Transition | None, rto: int | None
) -> ObjectiveResult:
    """Met or missed only when an outage caused by the injection was seen to end (DESIGN §2)."""
    info, inject, target = line.plan, fold.inject, line.plan.rto_ms

    def state(value: ObjectiveState, reason: str, achieved: int | None = None) -> ObjectiveResult:
        return _objective(info, "rto", target, value, reason, achieved)

    if _not_run(fold):
        return state("not-measured", _not_run_reason(fold, info.id))
    if line.total == 0:
        return state("not-measured", "no probe result was recorded")
    if inject is None:
        return state("not-measured", "no failure was injected")
    if _state_before(line, inject.seq) == "down":
        return state(
            "not-measured",
            "was already down before the failure was injected, so no recovery from it can be timed",
        )
    if down is None:
        return state(
            "unaffected",
            "no probe saw it down after the injection"
            f" (an outage shorter than its detection bound of {human_ms(info.detection_bound_ms)} goes unseen)",
        )
    if up is None:
        observed = _ms(_end_mono(fold) - inject.mono)
        if observed < target:
            return state(
                "not-measured",
                f"still down when the drill ended, {human_ms(observed)} after the injection,"
                f" before its target of {human_ms(target)} had elapsed",
            )
        return state("missed", "did not recover before the drill ended")
    assert rto is not None
    if rto > target:
        return state("missed", f"RTO {human_ms(rto)} exceeds target {human_ms(target)}", rto)
    return state("met", "", rto)


def _rpo_objective(fold: _Fold, line: _Timeline, rto: ObjectiveResult) -> ObjectiveResult | None:
    """Met or missed only from a canary's count of the writes that survived the failover."""
    info, target = line.plan, line.plan.rpo_ms
    if target is None:
        return None

    def state(value: ObjectiveState, reason: str, achieved: int | None = None) -> ObjectiveResult:
        return _objective(info, "rpo", target, value, reason, achieved)

    if _not_run(fold):
        return state("not-measured", _not_run_reason(fold, info.id))
    if fold.inject is None:
        return state("not-measured", "no failure was injected, so no write was put at risk")
    if line.rpo is not None:
        achieved = line.rpo.rpo_ms
        if achieved > target:
            return state(
                "missed",
                f"RPO {human_ms(achieved)} ({line.rpo.lost_writes} lost writes) exceeds target {human_ms(target)}",
                achieved,
            )
        return state("met", "", achieved)
    if line.rpo_unmeasured:
        return state("not-measured", line.rpo_unmeasured)
    if rto.state == "unaffected":
        return state("unaffected", "the outage never reached it")
    if not any(p.measures_rpo for p in info.probes):
        return state("not-measured", "no canary probe writes to it")
    return state("not-measured", "the canary reported no count of surviving writes")


def _end_mono(fold: _Fold) -> int:
    """The last instant the drill observed: run.finished, else the journal's last event."""
    return fold.finished_mono if fold.finished_mono is not None else fold.last_mono


def _asset_verdict(
    fold: _Fold, line: _Timeline, objectives: list[ObjectiveResult], ack: AckResult | None
) -> tuple[Verdict, list[str]]:
    """fail (an objective missed, or its chain late) > incomplete (one not measured, unwaived) >
    unaffected > pass; not-measured when the drill did not run at all."""
    if _not_run(fold):
        return "not-measured", [_not_run_reason(fold, line.plan.id)]
    missed = [o.reason for o in objectives if o.state == "missed"]
    if ack is not None and not ack.met:
        missed.append(ack_missed(ack, [p.result() for p in fold.pages.values()]))
    unmeasured = [f"{o.objective.upper()} not measured: {o.reason}" for o in objectives if o.undemonstrated]
    reasons = missed + unmeasured
    if missed:
        return "fail", reasons
    if unmeasured:
        return "incomplete", reasons
    if objectives[0].state == "unaffected":
        return "unaffected", reasons
    return "pass", reasons


def ack_missed(ack: AckResult, pages: Iterable[PageResult]) -> str:
    """Why a chain's acknowledgement target was missed, in words: acknowledged late, paged but
    not acknowledged, or never reached (no page delivered, with the reasons)."""
    target = f"target {human_ms(ack.target_ms)}" if ack.target_ms is not None else "no target"
    if ack.ack_ms is not None:
        return f"contact chain {ack.chain} acknowledged after {human_ms(ack.ack_ms)}, {target}"
    return f"contact chain {ack.chain}: {unacknowledged(ack.chain, ack.target_ms, pages)}"


def unacknowledged(chain: str, target_ms: int | None, pages: Iterable[PageResult]) -> str:
    """A chain nobody acknowledged: 'page not delivered (who via what: why)' when no page reached
    anyone, else 'delivered to who (via), not acknowledged within X' (and who was not reached)."""
    mine = [p for p in pages if chain in p.chains]
    if not mine:
        return "not paged"
    failed = undelivered(chain, mine)
    delivered = list(dict.fromkeys(f"{p.contact} ({p.via})" for p in mine if p.ok))
    if not delivered:
        return f"page not delivered ({'; '.join(failed)})"
    within = f" within {human_ms(target_ms)}" if target_ms is not None else ""
    text = f"delivered to {', '.join(delivered)}, not acknowledged{within}"
    return text + (f"; not delivered: {'; '.join(failed)}" if failed else "")


def undelivered(chain: str, pages: Iterable[PageResult]) -> list[str]:
    """'who via what: why' for each page to the chain that could not be delivered."""
    return list(
        dict.fromkeys(
            f"{p.contact} via {p.via}: {p.reason or 'not sent'}"
            for p in pages
            if chain in p.chains and not p.ok
        )
    )


def _not_run_reason(fold: _Fold, asset_id: str) -> str:
    down = fold.steady is not None and asset_id in fold.steady.not_up
    return "the drill did not run: the steady state was not met" + (
        " (this asset was not up at the start)" if down else ""
    )


def _state_before(line: _Timeline, seq: int) -> str | None:
    """The asset's state as journalled before the injection event."""
    before = [t.state for t in line.states if t.seq < seq]
    return before[-1] if before else None


def _chains(fold: _Fold, plan: Plan) -> dict[str, ChainResult]:
    out: dict[str, ChainResult] = {}
    for chain in sorted(plan.chains, key=lambda c: c.name):  # by name, as the report lists them
        pages = [p for p in fold.pages.values() if chain.name in (p.sent.chains or (p.sent.chain,))]
        first_ack = min((p.acked.since_trigger_ms for p in pages if p.acked is not None), default=None)
        target = chain.respond_within_ms
        met = None if not pages else (first_ack is not None and (target is None or first_ack <= target))
        out[chain.name] = ChainResult(chain.name, target, first_ack, met, chain.name in fold.exhausted)
    return out


def _asset_ack(info: PlanAsset, chains: dict[str, ChainResult]) -> AckResult | None:
    chain = chains.get(info.contact_chain)
    if chain is None or chain.met is None:  # never paged
        return None
    return AckResult(chain.name, chain.first_ack_ms, chain.respond_within_ms, bool(chain.met))


def _order_violations(fold: _Fold, assets: dict[str, AssetResult]) -> list[OrderViolation]:
    out = []
    for asset in assets.values():
        if asset.t_recover_utc is None:
            continue
        for dep_id in asset.depends_on:
            dep = assets.get(dep_id)
            if dep is None or dep.t_detect_utc is None:
                continue  # the dependency was never down: nothing to wait for
            if dep.t_recover_utc is None or _recover_mono(fold, dep_id) > _recover_mono(fold, asset.id):
                seq = asset.evidence_seqs[-1] if asset.evidence_seqs else 0
                out.append(OrderViolation(asset.id, dep_id, asset.t_recover_utc, dep.t_recover_utc, seq))
    return out


def _recover_mono(fold: _Fold, asset_id: str) -> int:
    _, up = _outage(fold, fold.assets[asset_id])
    return up.at_mono if up else 2**62


_TIER_ORDER: tuple[Verdict, ...] = ("fail", "incomplete", "pass", "unaffected")


def _tiers(plan: Plan, assets: dict[str, AssetResult]) -> list[TierResult]:
    out = []
    for tier in plan.tiers:
        members = [a for a in assets.values() if a.tier == tier.name]
        total = sum(a.probes_total for a in members)
        ok = sum(a.probes_ok for a in members)
        verdicts = {a.verdict for a in members}
        verdict: Verdict = next((v for v in _TIER_ORDER if v in verdicts), "not-measured")
        bp = ok * BP_FULL // total if total else None
        out.append(TierResult(tier.name, tier.rank, tier.rto_ms, tier.rpo_ms, bp, verdict, tier.description))
    return out


def _verdict(
    fold: _Fold,
    status: RunStatus,
    assets: dict[str, AssetResult],
    steps: list[StepResult],
    pass_tiers: tuple[str, ...],
    chains: list[ChainResult],
) -> tuple[Verdict, str]:
    """The drill's verdict and, unless it passed, why. Pass needs every deciding asset to pass
    or be unaffected, and at least one recovery demonstrated (or every RTO waived)."""
    if status == RunStatus.ABORTED:
        return "aborted", ""  # the run's own reason says why
    if status == RunStatus.NOT_RUN:
        return "not-run", ""
    if fold.started is not None and fold.started.mode == "contacts":
        late = [c.name for c in chains if not c.met or c.exhausted]
        return ("fail", f"not acknowledged in time: {', '.join(late)}") if late else ("pass", "")
    if status != RunStatus.COMPLETED:
        return "fail", "the scenario did not complete"
    failed_steps = [s.name for s in steps if s.status == StepStatus.FAILED and s.phase == Phase.SCENARIO]
    if failed_steps:
        return "fail", f"a scenario step failed: {', '.join(failed_steps)}"
    deciding = [a for a in assets.values() if a.tier in pass_tiers]
    failed = [a.id for a in deciding if a.verdict == "fail"]
    if failed:
        return "fail", f"objectives missed: {', '.join(failed)}"
    unmeasured = [a.id for a in deciding if a.verdict in ("incomplete", "not-measured")]
    if unmeasured:
        return "incomplete", f"objectives not measured (and not waived): {', '.join(unmeasured)}"
    demonstrated = any(a.verdict == "pass" for a in deciding)
    waived = all(_rto_waived(a) for a in deciding)
    if deciding and not demonstrated and not waived:
        return (
            "incomplete",
            "the injected failure reached no asset of the deciding tiers: no recovery was demonstrated",
        )
    return "pass", ""


def _rto_waived(asset: AssetResult) -> bool:
    rto = asset.objective("rto")
    return rto is not None and bool(rto.waived)


def _assemble(fold: _Fold, plan: Plan, journal_head: str) -> Results:
    started = fold.started
    assert started is not None
    chains = _chains(fold, plan)
    assets = {aid: _asset_result(fold, line, chains) for aid, line in fold.assets.items()}
    steps = [s.result() for s in fold.steps]
    finished = fold.finished
    status = finished.status if finished else RunStatus.ABORTED
    reason = finished.reason if finished else "the journal ends before run.finished"
    duration = _ms(fold.finished_mono - fold.started_mono) if fold.finished_mono is not None else None
    chain_results = list(chains.values())
    verdict, verdict_reason = _verdict(fold, status, assets, steps, plan.pass_tiers, chain_results)
    return Results(
        run_id=started.run_id,
        status=status,
        reason=reason,
        playbook=PlaybookIdentity(started.playbook.name, started.playbook.sha256, started.playbook.path),
        started_utc=fold.started_utc,
        finished_utc=fold.finished_utc,
        duration_ms=duration,
        verdict=verdict,
        verdict_reason=verdict_reason,
        mode=started.mode,
        pass_tiers=plan.pass_tiers,
        assets=tuple(assets.values()),
        tiers=tuple(_tiers(plan, assets)),
        order_violations=tuple(_order_violations(fold, assets)),
        steps=tuple(steps),
        stops=tuple(fold.stops),
        rollback=RollbackResult(fold.rollback_ran, fold.rollback_status if fold.rollback_ran else "not-run"),
        pages=tuple(p.result() for p in fold.pages.values()),
        chains=tuple(chain_results),
        events=fold.count,
        journal_head=journal_head,
        steady_state=(
            SteadyStateResult(fold.steady.met, fold.steady.not_up, fold.steady.degraded_allowed)
            if fold.steady is not None
            else None
        ),
        waits=tuple(fold.waits),
        return_to_normal=(
            ReturnResult(fold.returned.confirmed, fold.returned.not_back) if fold.returned else None
        ),
        sites=tuple(_site_result(name, site) for name, site in fold.sites.items()),
    )


def _site_result(name: str, site: _Site) -> SiteResult:
    clock = site.clock
    # complete only when every agent seen said how many it observed, and they all arrived
    known = site.observed is not None and site.said_done >= len(site.agents)
    return SiteResult(
        site=name,
        agents=tuple(site.agents),
        clock_offset_us=clock.offset_us if clock else None,
        clock_error_us=clock.error_us if clock else None,
        clock_source=clock.clock_source if clock else "",
        losses=tuple(site.losses),
        journalled=site.journalled,
        observed=site.observed if known else None,
        dropped=site.dropped if known else None,
        complete=(site.observed == site.journalled) if known else None,
    )


def _site_views(line: _Timeline) -> tuple[SiteView, ...]:
    return tuple(
        SiteView(site, probe, v.quorum, v.sites, v.observations, v.failed, tuple(v.changes))
        for (probe, site), v in line.sites.items()
    )


__all__ = [
    "AckResult",
    "AssetResult",
    "ChainResult",
    "FoldedRun",
    "ManualRecord",
    "ObjectiveResult",
    "ObjectiveState",
    "OrderViolation",
    "PageResult",
    "PlaybookIdentity",
    "ProbeError",
    "Results",
    "ReturnResult",
    "RollbackResult",
    "RpoResult",
    "SteadyStateResult",
    "StepResult",
    "StopRecord",
    "Targets",
    "TierResult",
    "WaitRecord",
    "ack_missed",
    "fold_journal",
    "fold_results",
    "plan_of",
    "results_json",
    "unacknowledged",
    "undelivered",
]
