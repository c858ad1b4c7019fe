"""Build the drill report: a folded journal (typed results + the journalled plan) -> a Report.

`build_report` is pure: the same inputs always give the same Report, so the same journal always
gives byte-identical canonical JSON (report_id and generated_utc are derived from the journal).
The report holds what auditors ask of an exercise report (NIST SP 800-84, ISO 22301 §8.5,
DORA art. 11-12, 24-26) and nothing secret: probe, action and notifier parameters are never in
the plan, so they cannot be copied here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import jsonschema

from drill.clock import parse_utc, utc_iso
from drill.errors import JournalInvalid, UsageError
from drill.evidence.canonical import canonical_bytes
from drill.evidence.events import ManualAnswer, PreviousDrill, RunStarted, StepStatus
from drill.evidence.inputs import REPORT_LIMIT, check_json_depth, read_bounded
from drill.evidence.journal import JournalStream, JournalSummary, file_sha256
from drill.evidence.snapshot import Phase, Plan, PlanStep
from drill.report.model import (
    REPORT_FORMAT,
    SEVERITIES,
    AssetChange,
    ChainSection,
    Cleanup,
    ContactRow,
    Deviation,
    EvidenceFile,
    Exercise,
    Finding,
    FindingCounts,
    JournalBlock,
    People,
    PlannedStep,
    PlaybookSection,
    PreviousComparison,
    Report,
    RunSection,
    Scope,
    Severity,
    Signer,
    StopConditionRow,
    Summary,
    Tool,
    report_data,
    report_from_data,
)
from drill.resources import load_schema
from drill.results import (
    AssetResult,
    FoldedRun,
    PageResult,
    Results,
    StepResult,
    fold_journal,
    unacknowledged,
    undelivered,
)
from drill.units import human_ms
from drill.version import __version__

REPORT_FILE = "report.json"


def report_id_for(run_id: str, journal_head: str) -> str:
    """A stable report id: the same run and journal always give the same id."""
    digest = hashlib.sha256(f"{run_id}\n{journal_head}".encode()).hexdigest()
    return f"rpt-{digest[:24]}"


def tool_version() -> str:
    """The installed drill version (the builder's, recorded next to the runner's)."""
    return __version__


def build_report(
    folded: FoldedRun,
    journal: JournalSummary,
    *,
    report_id: str,
    generated_utc: str,
    tool_version: str,
    evidence: Sequence[EvidenceFile] = (),
    signer: Signer | None = None,
    journal_file: str = "journal.jsonl",
) -> Report:
    """The report of a folded journal (see schemas/report.schema.json)."""
    results, plan, started = folded.results, folded.plan, folded.started
    meta = plan.metadata
    assets = results.assets
    findings = build_findings(results)
    return Report(
        format=REPORT_FORMAT,
        report_id=report_id,
        run_id=results.run_id,
        generated_utc=generated_utc,
        tool=Tool("drill", tool_version),
        prepared_by=signer,
        playbook=PlaybookSection(
            name=results.playbook.name or meta.name,
            version=meta.version,
            quarter=meta.quarter,
            owner=meta.owner,
            description=meta.description,
            sha256=results.playbook.sha256,
            path=results.playbook.path,
        ),
        exercise=_exercise(plan),
        run=_run(results, plan, started),
        verdict=results.verdict,
        summary=_summary(assets, results, findings),
        scope=Scope(
            tiers=results.tiers,
            exclusions=meta.exclusions,
            third_parties=meta.third_parties,
        ),
        participants=meta.participants,
        contact_chains=tuple(
            ChainSection(
                c.name,
                c.respond_within_ms,
                tuple(ContactRow(x.name, x.role, x.via, x.ack_within_ms) for x in c.contacts),
            )
            for c in sorted(plan.chains, key=lambda c: c.name)
        ),
        assets=assets,
        order_violations=results.order_violations,
        steps=results.steps,
        deviations=tuple(_deviations(results.steps)),
        stops=results.stops,
        rollback=results.rollback,
        cleanup=_cleanup(results),
        people=People(results.pages, results.chains),
        findings=findings,
        journal=JournalBlock(journal_file, journal.sha256, journal.count, journal.head),
        evidence=tuple(sorted(evidence, key=lambda e: e.file)),
        previous=_previous(started.previous, assets),
        sites=results.sites,
    )


def _previous(previous: PreviousDrill | None, assets: Sequence[AssetResult]) -> PreviousComparison | None:
    """The change against the previous drill, asset by asset (its assets first, then new ones)."""
    if previous is None:
        return None
    now = {a.id: a for a in assets}
    then = {a.asset: a for a in previous.assets}
    changes = []
    for name in [*then, *(a for a in now if a not in then)]:
        old, new = then.get(name), now.get(name)
        changes.append(
            AssetChange(
                asset=name,
                verdict_then=old.verdict if old else "",
                verdict_now=new.verdict if new else "",
                rto_then_ms=old.rto_ms if old else None,
                rto_now_ms=new.rto_ms if new else None,
                rpo_then_ms=old.rpo_ms if old else None,
                rpo_now_ms=new.rpo.rpo_ms if new and new.rpo else None,
            )
        )
    return PreviousComparison(
        previous.run_id,
        previous.report_sha256,
        previous.generated_utc,
        previous.verdict,
        previous.quarter,
        tuple(changes),
    )


# ---------------------------------------------------------------- from the journal


def build_report_from_journal(
    journal_path: Path | str,
    *,
    signer: Signer | None = None,
    generated_utc: str | None = None,
    evidence_files: Iterable[Path] = (),
    allow_torn_tail: bool = False,
) -> Report:
    """Rebuild the report from a journal alone (the hash chain is checked while streaming).

    generated_utc defaults to the run.finished event's time (else the last event's), so the
    same journal always yields the same report. `evidence_files` are hashed by name.
    allow_torn_tail accepts a last line cut short by a crash (the report covers the intact prefix).
    """
    path = Path(journal_path)
    folded, summary = fold_journal_file(path, allow_torn_tail=allow_torn_tail)
    return report_of_fold(
        folded,
        summary,
        signer=signer,
        generated_utc=generated_utc,
        evidence=[EvidenceFile(p.name, file_sha256(p)) for p in evidence_files],
        journal_file=path.name,
    )


def report_of_fold(
    folded: FoldedRun,
    summary: JournalSummary,
    *,
    signer: Signer | None = None,
    generated_utc: str | None = None,
    evidence: Sequence[EvidenceFile] = (),
    journal_file: str = "journal.jsonl",
) -> Report:
    """The report of an already folded journal (fold_journal_file), with its stable report_id and
    generated_utc and this drill's version: what build_report_from_journal returns."""
    return build_report(
        folded,
        summary,
        report_id=report_id_for(folded.results.run_id, summary.head),
        generated_utc=generated_utc or folded.generated_utc,
        tool_version=tool_version(),
        evidence=evidence,
        signer=signer,
        journal_file=journal_file,
    )


def fold_journal_file(
    journal_path: Path | str, *, allow_torn_tail: bool = False
) -> tuple[FoldedRun, JournalSummary]:
    """Fold a journal file in one streaming pass: the stream re-checks the hash chain line by line
    (JournalInvalid names the first broken line) and ends with the file digest, count and head."""
    path = Path(journal_path)
    stream = JournalStream(path, allow_torn_tail=allow_torn_tail)
    try:
        folded = fold_journal(stream)
    except ValueError as exc:
        raise JournalInvalid(f"{path}: {exc}", hint="a run writes run.started first") from None
    return folded, stream.summary


def read_report_file(path: Path | str) -> bytes:
    """The bytes of report.json (or of the report.json inside a folder), read as hostile input:
    a regular file of at most REPORT_LIMIT bytes (InputRejected, exit 2, otherwise)."""
    source = Path(path)
    if source.is_dir():
        source = source / REPORT_FILE
    try:
        return read_bounded(source, REPORT_LIMIT, "report")
    except OSError as exc:
        raise UsageError(f"cannot read report {source}: {exc.strerror}") from None


def load_report(path: Path | str) -> Report:
    """Read report.json (or the report.json inside a folder) as hostile input: a regular file,
    bounded in size and nesting (a FIFO or /dev/zero is refused, never read); then check it
    against its schema and type it."""
    source = Path(path)
    if source.is_dir():
        source = source / REPORT_FILE
    return parse_report(read_report_file(source), str(source))


def parse_report(data: bytes, source: str) -> Report:
    """report.json's bytes, already read (so that a digest and the typed report come from the
    same bytes), checked for nesting, against the schema, and typed; UsageError naming `source`."""
    check_json_depth(data, source)
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{source}: not a JSON report ({exc})") from None
    validator = jsonschema.Draft202012Validator(load_schema("report.schema.json"))
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = error.json_path.removeprefix("$") or "(top level)"
        raise UsageError(
            f"{source}: not a valid drill report at {where}: {error.message}",
            hint="rebuild it from the journal: drill report journal.jsonl",
        )
    try:
        return report_from_data(document)
    except ValueError as exc:
        raise UsageError(f"{source}: not a valid drill report: {exc}") from None


def report_bytes(report: Report) -> bytes:
    """The RFC 8785 canonical bytes of a report: exactly what signatures cover."""
    return canonical_bytes(report_data(report))


def write_report(report: Report, directory: Path | str) -> Path:
    """Write report.json as RFC 8785 canonical bytes (the exact bytes signatures cover)."""
    target = Path(directory) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(target, report_bytes(report))


def write_atomically(target: Path, data: bytes) -> Path:
    """Write beside the target, then rename over it: a reader (or a signal) never sees half a file."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


# ---------------------------------------------------------------- sections


def _planned(step: PlanStep) -> PlannedStep:
    return PlannedStep(step.name, step.kind, step.phase, step.parent, step.injects, step.summary)


def _exercise(plan: Plan) -> Exercise:
    meta = plan.metadata
    return Exercise(
        test_type=meta.test_type,
        objectives=meta.objectives,
        success_criteria=meta.success_criteria,
        assumptions=meta.assumptions,
        business_impact_ref=meta.business_impact_ref,
        previous_drill=meta.previous_drill,
        scenario=tuple(_planned(s) for s in plan.phase_steps(Phase.SCENARIO)),
        rollback_plan=tuple(_planned(s) for s in plan.phase_steps(Phase.ROLLBACK)),
        stop_conditions=tuple(
            StopConditionRow(c.name, c.asset, c.tier, c.down_for_ms) for c in plan.stop_conditions
        ),
    )


def _run(results: Results, plan: Plan, started: RunStarted) -> RunSection:
    user, host = started.user, started.host
    planned_start = started.planned_start or plan.metadata.planned_start
    planned_ms = plan.metadata.planned_duration_ms or None
    planned_end: str | None = None
    planned_start_utc: str | None = None
    if planned_start:
        try:
            moment = parse_utc(planned_start)
        except ValueError:
            moment = None
        if moment is not None:
            planned_start_utc = utc_iso(moment)
            if planned_ms:
                planned_end = utc_iso(moment + timedelta(milliseconds=planned_ms))
    return RunSection(
        status=str(results.status),
        reason=results.reason,
        operator=user if "@" in user else (f"{user}@{host}" if user or host else ""),
        run_tool_version=started.tool_version,
        planned_start_utc=planned_start_utc,
        planned_end_utc=planned_end,
        planned_duration_ms=planned_ms,
        started_utc=results.started_utc,
        finished_utc=results.finished_utc,
        duration_ms=results.duration_ms,
        pass_tiers=results.pass_tiers,
        steady_state=results.steady_state,
        verdict_reason=results.verdict_reason,
    )


def _deviations(steps: Iterable[StepResult]) -> list[Deviation]:
    """Departures from the plan: steps not ok, and manual prompts skipped, aborted or auto-answered."""
    out = []
    for step in steps:
        manual = step.manual
        overridden = manual is not None and (manual.answer != ManualAnswer.DONE or manual.auto)
        if step.status == StepStatus.OK and not overridden:
            continue
        what = f"step {step.status}"
        if manual is not None and overridden:
            how = "automatically" if manual.auto else f"by {manual.who or 'unknown'}"
            what = f"manual prompt answered '{manual.answer}' {how}"
        out.append(Deviation(step.name, str(step.phase), str(step.status), what, step.reason, step.seq))
    return out


def _cleanup(results: Results) -> Cleanup:
    """Whether the return to normal was confirmed: the probes saw every asset back at its baseline
    state (they win over everything else), else an operator said so in the rollback, else the
    rollback completed."""
    back = results.return_to_normal
    if back is not None and not back.confirmed:
        return Cleanup(False, f"not back at their baseline state: {', '.join(back.not_back)}")
    for step in results.steps:
        manual = step.manual
        if step.phase == Phase.ROLLBACK and manual and manual.answer == ManualAnswer.DONE and not manual.auto:
            return Cleanup(True, f"confirmed by {manual.who or 'operator'} at '{step.name}'")
    rollback = results.rollback
    if back is not None and rollback.status != "failed":
        after = " after the rollback" if rollback.ran else ""
        return Cleanup(True, f"every asset back at its baseline state{after} (probes)")
    if rollback.ran and rollback.status == "ok":
        return Cleanup(True, "rollback completed")
    if rollback.ran:
        return Cleanup(False, f"rollback {rollback.status}")
    return Cleanup(False, "no rollback ran")


def _summary(assets: Sequence[AssetResult], results: Results, findings: Sequence[Finding]) -> Summary:
    verdicts = [a.verdict for a in assets]
    counts = {s: 0 for s in SEVERITIES}
    for finding in findings:
        counts[finding.severity] += 1
    return Summary(
        assets_total=len(verdicts),
        assets_passed=verdicts.count("pass"),
        assets_failed=verdicts.count("fail"),
        assets_not_measured=verdicts.count("not-measured"),
        order_violations=len(results.order_violations),
        pages_sent=len(results.pages),
        pages_acked=sum(1 for p in results.pages if p.acked_utc),
        findings=FindingCounts(*(counts[s] for s in SEVERITIES)),
    )


# ---------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class _Raw:
    severity: Severity
    title: str
    detail: str
    seqs: tuple[int, ...] = ()


def build_findings(results: Results) -> tuple[Finding, ...]:
    """Every failed step, missed target, probe error, stop, order violation and exhausted chain."""
    pass_tiers = set(results.pass_tiers)
    raw: list[_Raw] = []
    if results.status != "completed" and not results.stops:
        raw.append(_Raw(Severity.HIGH, f"Drill {results.status}", results.reason))
    steady = results.steady_state
    if steady is not None and not steady.met and steady.degraded_allowed:
        detail = f"not up at the start: {', '.join(steady.not_up)}; run anyway (--allow-degraded)"
        raw.append(_Raw(Severity.HIGH, "Drill run against a degraded environment", detail))
    for stop in results.stops:
        detail = f"{stop.reason} at {stop.utc}".strip()
        raw.append(_Raw(Severity.HIGH, f"Stop condition tripped: {stop.condition}", detail, (stop.seq,)))
    for step in results.steps:
        raw.extend(_step_findings(step))
    if results.rollback.status == "failed":
        raw.append(_Raw(Severity.CRITICAL, "Rollback failed", _rollback_detail(results.steps)))
    back = results.return_to_normal
    if back is not None and not back.confirmed:
        detail = f"after the drill, not back at their baseline state: {', '.join(back.not_back)}"
        raw.append(_Raw(Severity.HIGH, "Not back to normal", detail))
    for wait in results.waits:
        if wait.what == "acknowledgements" and wait.outcome in ("timed out", "ended by the operator"):
            detail = f"{wait.outcome}; {wait.detail}" if wait.detail else wait.outcome
            raw.append(_Raw(Severity.MEDIUM, "Wait for acknowledgements ended early", detail))
    for asset in results.assets:
        raw.extend(_asset_findings(asset, asset.tier in pass_tiers, results.pages))
    for v in results.order_violations:
        detail = f"{v.asset} recovered at {v.asset_recovered_utc}; {v.depends_on} recovered {v.dependency_recovered_utc or 'never'}"
        raw.append(
            _Raw(
                Severity.MEDIUM, f"Recovery order violated: {v.asset} before {v.depends_on}", detail, (v.seq,)
            )
        )
    for page in results.pages:
        if not page.ok:
            raw.append(_Raw(Severity.MEDIUM, f"Page to {page.contact} via {page.via} failed", page.reason))
    for chain in results.chains:
        target = (
            "no target" if chain.respond_within_ms is None else f"target {human_ms(chain.respond_within_ms)}"
        )
        if chain.exhausted:
            detail = unacknowledged(chain.name, None, results.pages)
            raw.append(_Raw(Severity.HIGH, f"Contact chain exhausted: {chain.name}", detail))
        elif chain.met is False and chain.first_ack_ms is None:
            detail = unacknowledged(chain.name, chain.respond_within_ms, results.pages)
            raw.append(_Raw(Severity.MEDIUM, f"Contact chain {chain.name} did not respond", detail))
        elif chain.met is False:
            detail = f"first ack after {human_ms(chain.first_ack_ms)}, {target}"
            raw.append(_Raw(Severity.MEDIUM, f"Contact chain {chain.name} responded late", detail))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranked = sorted(enumerate(raw), key=lambda item: (order[item[1].severity], item[0]))
    return tuple(
        Finding(f"F-{n:03d}", r.severity, r.title, r.detail, tuple(sorted(set(r.seqs))))
        for n, (_, r) in enumerate(ranked, start=1)
    )


def _step_findings(step: StepResult) -> list[_Raw]:
    phase, seq = str(step.phase).capitalize(), (step.seq,)
    if step.status == StepStatus.FAILED:
        return [_Raw(Severity.HIGH, f"{phase} step failed: {step.name}", step.reason, seq)]
    if step.status == StepStatus.ABORTED:
        return [_Raw(Severity.MEDIUM, f"{phase} step aborted: {step.name}", step.reason, seq)]
    if step.status == StepStatus.SKIPPED:
        return [_Raw(Severity.LOW, f"{phase} step skipped: {step.name}", step.reason, seq)]
    if step.manual and step.manual.auto:
        title = f"Manual step answered automatically: {step.name}"
        return [_Raw(Severity.INFO, title, f"answer '{step.manual.answer}'", seq)]
    return []


def _objective_findings(asset: AssetResult, decisive: bool) -> list[_Raw]:
    """An objective the drill could not demonstrate, and one the playbook waived: both on record."""
    out: list[_Raw] = []
    for o in asset.objectives:
        name = o.objective.upper()
        if o.undemonstrated and asset.verdict != "not-measured":
            severity = Severity.HIGH if decisive else Severity.MEDIUM
            out.append(_Raw(severity, f"{asset.id}: {name} not measured", o.reason, asset.evidence_seqs))
        elif o.state == "not-measured" and o.waived:
            out.append(
                _Raw(Severity.INFO, f"{asset.id}: {name} waived", f"{o.waived} (not measured: {o.reason})")
            )
    return out


def _rollback_detail(steps: Iterable[StepResult]) -> str:
    """Which rollback steps failed, and why: the systems may not be back to normal."""
    failed = [
        f"step '{s.name}' {s.status}" + (f" ({s.reason})" if s.reason else "")
        for s in steps
        if s.phase == Phase.ROLLBACK and s.status in (StepStatus.FAILED, StepStatus.ABORTED)
    ]
    return "; ".join([*failed, "systems may not be back to normal"])


def _asset_findings(asset: AssetResult, decisive: bool, pages: Sequence[PageResult]) -> list[_Raw]:
    out: list[_Raw] = []
    aid, seqs = asset.id, asset.evidence_seqs
    missed = Severity.CRITICAL if decisive else Severity.HIGH
    rto, rto_target, unc = asset.rto_ms, asset.targets.rto_ms, asset.uncertainty_ms
    if asset.verdict == "fail":
        found = False
        if rto is None and asset.t_detect_utc:
            objective = asset.objective("rto")
            why = f"{objective.reason}; " if objective is not None and objective.reason else ""
            out.append(
                _Raw(missed, f"{aid} did not recover", f"{why}target RTO {human_ms(rto_target)}", seqs)
            )
            found = True
        elif rto is not None and rto > rto_target:
            detail = f"achieved {human_ms(rto)} ± {human_ms(unc)}, target {human_ms(rto_target)}"
            out.append(_Raw(missed, f"{aid} missed its RTO", detail, seqs))
            found = True
        rpo, rpo_target = asset.rpo, asset.targets.rpo_ms
        if rpo and rpo_target is not None and rpo.rpo_ms > rpo_target:
            detail = f"achieved {human_ms(rpo.rpo_ms)} ({rpo.lost_writes} lost writes), target {human_ms(rpo_target)}"
            out.append(_Raw(missed, f"{aid} missed its RPO", detail, seqs))
            found = True
        ack = asset.ack
        if ack and ack.met is False:
            target = "no target" if ack.target_ms is None else f"target {human_ms(ack.target_ms)}"
            severity = Severity.HIGH if decisive else Severity.MEDIUM
            if ack.ack_ms is None:
                if any(p.ok for p in pages if ack.chain in p.chains):
                    title = f"{aid}: nobody acknowledged the page"
                    detail = f"chain {ack.chain}: {unacknowledged(ack.chain, ack.target_ms, pages)}"
                else:
                    title = f"{aid}: page not delivered"
                    detail = f"chain {ack.chain}: {'; '.join(undelivered(ack.chain, pages)) or 'not sent'}"
            else:
                title, detail = f"{aid} acknowledged late", f"after {human_ms(ack.ack_ms)}, {target}"
            out.append(_Raw(severity, title, detail, seqs))
            found = True
        if not found:
            detail = "; ".join(asset.reasons) or "verdict fail"
            out.append(_Raw(missed, f"{aid} failed its objectives", detail, seqs))
    elif asset.verdict == "not-measured" and decisive:
        detail = "; ".join(asset.reasons) or "no outage or recovery was observed"
        out.append(_Raw(Severity.MEDIUM, f"{aid} was not measured", detail, seqs))
    out.extend(_objective_findings(asset, decisive))
    if asset.rpo is not None and asset.rpo.at_risk_writes:
        count = asset.rpo.at_risk_writes
        detail = f"{count} write(s) the primary accepted were not confirmed by the replicas asked for"
        out.append(
            _Raw(Severity.HIGH if decisive else Severity.MEDIUM, f"{aid}: writes at risk", detail, seqs)
        )
    for err in asset.probe_errors:
        title = f"Probe {err.probe} on {aid}: {err.reason}"
        out.append(_Raw(Severity.LOW, title, f"{err.count} occurrence(s)", (err.first_seq,)))
    return out
