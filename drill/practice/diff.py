"""Two runs compared: what changed in the playbook (the plans journalled in run.started) and in
the results (the signed reports), side by side.

`load_side` reads one evidence folder (its report through `load_report`, as hostile input; its
plan and mode from the journal's first event, `run.started`); `diff_runs` is pure: two RunSides
in, one RunDiff out; `diff_text` (80 columns, durations as `human_ms`, "—" for not measured) and
`diff_data` (one JSON document, integer milliseconds) show it.

Each side carries its Trust, said before anything else: `checked_side` verifies the folder now
(`read_record`, as `drill history add` does, against the auditor's allowed_signers);
`indexed_side` takes the status the history index gave it, only while report.json and the
journal are still the bytes indexed; a bare `load_side` is "not checked". A side that is not
verified is compared all the same (people need to see what a tampered copy claims), flagged.

What is compared, and how entries are matched (by name, never by position):
- playbook: metadata (version, quarter, test type, owner, environment), deciding tiers, paging,
  maximum duration, scenario and rollback bounds, worst case;
- tiers (by name): priority rank, RTO, RPO;
- assets (by id): tier, RTO, RPO, dependencies, contact chain, detection bound, wave, waivers,
  owner, and the definition's SHA-256 (`drill.practice.history.definition_sha256`, what `drill
  due` compares for "needs verification") when it differs; probes (by asset and name): kind,
  interval, timeout, fall, rise, canary;
- contact chains (by name): respond-within and the escalation order; contacts (by chain and
  name): channel, ack-within, role;
- steps (by phase and name, the n-th of that name): kind, summary, bound, injection, parent (a
  renumbering alone is not a change); stop conditions (by name).
Results, per asset (in either run): verdict, detection, switchover, RTO and RPO with their
objective states, lost writes, availability, time to ack; and the drill's verdict. A verdict or
objective state that got worse is "regressed", better "fixed"; a figure that differs otherwise
(a slower RTO still met) is "changed", with its difference. A contact test (mode "contacts")
recovers nothing: against it only time to ack is compared, the rest "not compared".
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, TypeVar

from drill.errors import JournalInvalid, UsageError, VerificationFailed
from drill.evidence.events import RunStarted
from drill.evidence.journal import file_sha256, read_events
from drill.evidence.snapshot import Plan, PlanAsset, PlanChain, PlanProbe, PlanStep, PlanTier
from drill.practice.history import asset_record, definition_sha256, read_record
from drill.practice.records import UNREADABLE, VERIFIED, AssetRecord, RunRecord
from drill.report.build import parse_report, read_report_file
from drill.report.model import Report
from drill.report.sign import REPORT_FILE
from drill.results import plan_of
from drill.units import NOT_MEASURED, human_bp, human_ms

WIDTH = 80
ABSENT = "(absent)"

Value = str | int | bool | tuple[str, ...] | None
T = TypeVar("T")
ChangeKind = Literal["added", "removed", "changed"]
Movement = Literal["same", "changed", "regressed", "fixed", "not compared"]
CONTACTS: Final = "contacts"  # a run.started mode: `drill contacts test`, people only (no recovery)


# ---------------------------------------------------------------- reading one run


NOT_CHECKED: Final = "not checked"  # no trust file given and not looked up in the history


@dataclass(frozen=True, slots=True)
class Trust:
    """Whether one side's evidence may be believed, and on what basis: a side that is not
    VERIFIED is still compared (people need to see it) but shown as such, loudly, up front."""

    status: str  # verified | tampered | unsigned | unreadable (drill.practice.records) | not checked
    basis: str  # how it was decided, for people: "checked now against allowed_signers FILE", ...
    signers: tuple[str, ...] = ()  # the trusted principals whose signatures verified
    problem: str = ""  # why it is not verified ("" when it is)

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED


UNCHECKED = Trust(NOT_CHECKED, "no --allowed-signers given: signatures, journal and fold not checked")


@dataclass(frozen=True, slots=True)
class RunSide:
    """One run as compared: who it is, the plan it was measured against, its results."""

    folder: str
    run_id: str
    report_id: str
    report_sha256: str
    generated_utc: str
    playbook: str
    playbook_sha256: str
    quarter: str
    verdict: str
    verdict_reason: str
    plan: Plan
    assets: tuple[AssetRecord, ...]
    mode: str = "drill"  # drill, or contacts (a contact test: people only, nothing recovered)
    journal: str = ""  # the journal file the plan was read from
    journal_sha256: str = ""  # the SHA-256 the report names for it
    trust: Trust = UNCHECKED


def load_side(folder: Path, trust: Trust = UNCHECKED) -> RunSide:
    """One evidence folder read for comparison: report.json as hostile input (schema-checked),
    the plan from the journal's run.started. UsageError (exit 2) when either cannot be read."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder (an evidence folder holds report.json)")
    if not (folder / REPORT_FILE).exists():
        raise UsageError(f"{folder} is not an evidence folder: it has no {REPORT_FILE}")
    data = read_report_file(folder)
    report = parse_report(data, str(folder / REPORT_FILE))  # its SHA-256 below is of these bytes
    journal = folder / Path(report.journal.file).name
    plan, mode = journalled_plan(journal)
    side = side_of(report, plan, folder=str(folder), report_sha256=hashlib.sha256(data).hexdigest())
    return replace(side, mode=mode, journal=str(journal), journal_sha256=report.journal.sha256, trust=trust)


def checked_side(folder: Path, allowed_signers: Path, revoked: Path | None = None) -> RunSide:
    """A folder verified now (as `drill history add` does: `drill verify` against the auditor's
    trust file), then read; a folder that does not verify is still read, its Trust saying why.
    UsageError when the report.json verified is not the one then read (it changed meanwhile)."""
    record = read_record(folder, allowed_signers, revoked)
    basis = f"checked now against {allowed_signers}"
    trust = Trust(record.status, basis, record.signers, record.problem)
    try:
        side = load_side(Path(record.folder), trust)
    except UsageError as exc:
        if record.status in (VERIFIED, UNREADABLE):  # the read's own message says it all
            raise
        also = "" if record.problem.split(": ")[-1] in exc.message else f" ({exc.message})"
        raise VerificationFailed(
            f"{folder} is {record.status.upper()}: {record.problem}; it cannot be read to compare{also}"
        ) from None
    if record.report_sha256 and side.report_sha256 != record.report_sha256:
        raise UsageError(f"{folder}: {REPORT_FILE} changed while it was being verified")
    return side


def indexed_side(record: RunRecord, index: Path) -> RunSide:
    """An indexed run read from its folder, not verified again (to verify it now: `checked_side`):
    the index's status stands, and only if the folder still holds what was indexed: report.json
    the same bytes (its SHA-256), and the journal the one the signed report names (its SHA-256),
    else UsageError: the folder changed since, and must be added again or checked now."""
    folder = Path(record.folder)
    basis = f"as indexed in {index}; not checked again now"
    trust = Trust(record.status, basis, record.signers, record.problem)
    side = load_side(folder, trust)
    hint = "check it now with --allowed-signers FILE, or add it again: drill history add FOLDER"
    if side.report_sha256 != record.report_sha256:
        raise UsageError(f"{folder / REPORT_FILE} is no longer the report the history indexed", hint=hint)
    if record.status == VERIFIED:
        try:
            journal_sha256 = file_sha256(side.journal)
        except OSError as exc:
            raise UsageError(f"cannot read {side.journal}: {exc.strerror or exc}") from None
        if journal_sha256 != side.journal_sha256:
            raise UsageError(f"{side.journal} is no longer the journal the signed report names", hint=hint)
    return side


def journalled_plan(journal: Path) -> tuple[Plan, str]:
    """The plan journalled in the first event (run.started) of a journal, and the run's mode
    (drill, or contacts: a contact test); UsageError otherwise."""
    try:
        first = next(read_events(journal), None)
    except OSError as exc:
        raise UsageError(f"cannot read {journal}: {exc.strerror or exc}") from None
    except JournalInvalid as exc:  # its first line is broken: no plan to compare
        raise UsageError(f"{journal}: {exc.message}") from None
    if first is None or not isinstance(first.payload, RunStarted):
        raise UsageError(f"{journal}: the first event is not run.started, so the plan is unknown")
    try:
        return plan_of(first.payload), first.payload.mode
    except ValueError as exc:
        raise UsageError(f"{journal}: {exc}") from None


def side_of(report: Report, plan: Plan, *, folder: str, report_sha256: str) -> RunSide:
    """A RunSide from a typed report and the plan it was measured against."""
    definitions = {a.id: definition_sha256(a) for a in plan.assets}
    chains = {c.name: c.first_ack_ms for c in report.people.chains}
    return RunSide(
        folder=folder,
        run_id=report.run_id,
        report_id=report.report_id,
        report_sha256=report_sha256,
        generated_utc=report.generated_utc,
        playbook=report.playbook.name,
        playbook_sha256=report.playbook.sha256,
        quarter=report.playbook.quarter,
        verdict=str(report.verdict),
        verdict_reason=report.run.verdict_reason or report.run.reason,
        plan=plan,
        assets=tuple(asset_record(a, definitions.get(a.id, ""), chains) for a in report.assets),
    )


# ---------------------------------------------------------------- the comparison


@dataclass(frozen=True, slots=True)
class PlanChange:
    """One difference between the two plans. a/b: the value in each (None also when absent)."""

    section: str  # playbook | tier | asset | probe | chain | contact | step | stop condition
    subject: str  # the entry: "web", "web/front", "scenario: promote the kv replica"
    field: str  # "" for an entry added or removed; else e.g. "interval_ms"
    kind: ChangeKind
    a: Value
    b: Value


@dataclass(frozen=True, slots=True)
class AssetComparison:
    """One asset's results in each run (None: not in that run) and how each figure moved."""

    asset: str
    a: AssetRecord | None
    b: AssetRecord | None
    moves: tuple[tuple[str, Movement], ...]  # (figure, movement) for every figure compared

    def move(self, figure: str) -> Movement:
        return dict(self.moves).get(figure, "same")


@dataclass(frozen=True, slots=True)
class RunDiff:
    a: RunSide
    b: RunSide
    plan_changes: tuple[PlanChange, ...]
    verdict_move: Movement
    assets: tuple[AssetComparison, ...]  # A's order, then those only in B

    @property
    def same_playbook(self) -> bool:
        return self.a.playbook_sha256 == self.b.playbook_sha256

    @property
    def verified(self) -> bool:
        return self.a.trust.verified and self.b.trust.verified


def diff_runs(a: RunSide, b: RunSide) -> RunDiff:
    """Compare two runs: the plans they were measured against, and their results."""
    assets_a = {x.asset: x for x in a.assets}
    assets_b = {x.asset: x for x in b.assets}
    order = [*assets_a, *(name for name in assets_b if name not in assets_a)]
    people_only = CONTACTS in (a.mode, b.mode)  # a contact test recovers nothing: only acks compare
    verdict: Movement = "not compared" if a.mode != b.mode else _movement(a.verdict, b.verdict, _VERDICT_RANK)
    return RunDiff(
        a=a,
        b=b,
        plan_changes=tuple(diff_plans(a.plan, b.plan)),
        verdict_move=verdict,
        assets=tuple(
            _compare_asset(name, assets_a.get(name), assets_b.get(name), people_only=people_only)
            for name in order
        ),
    )


def diff_plans(a: Plan, b: Plan) -> list[PlanChange]:
    """Every difference between two plans, in the order of the module docstring."""
    changes: list[PlanChange] = []
    changes += _fields("playbook", "", _plan_fields(a), _plan_fields(b))
    changes += _entries("tier", {t.name: t for t in a.tiers}, {t.name: t for t in b.tiers}, _tier_fields)
    changes += _entries("asset", {x.id: x for x in a.assets}, {x.id: x for x in b.assets}, _asset_fields)
    changes += _definitions(a, b)
    probes_a = {f"{x.id}/{p.name}": p for x in a.assets for p in x.probes}
    probes_b = {f"{x.id}/{p.name}": p for x in b.assets for p in x.probes}
    owners = {x.id for x in a.assets} ^ {x.id for x in b.assets}  # an asset added or removed: said once
    changes += [
        c
        for c in _entries("probe", probes_a, probes_b, _probe_fields)
        if c.kind == "changed" or c.subject.split("/")[0] not in owners
    ]
    changes += _entries("chain", {c.name: c for c in a.chains}, {c.name: c for c in b.chains}, _chain_fields)
    contacts_a = {f"{c.name}/{p.name}": p for c in a.chains for p in c.contacts}
    contacts_b = {f"{c.name}/{p.name}": p for c in b.chains for p in c.contacts}
    new_chains = {c.name for c in a.chains} ^ {c.name for c in b.chains}
    changes += [
        c
        for c in _entries(
            "contact",
            contacts_a,
            contacts_b,
            lambda p: {"via": p.via, "ack_within_ms": p.ack_within_ms, "role": p.role},
        )
        if c.kind == "changed" or c.subject.split("/")[0] not in new_chains
    ]
    changes += _entries("step", _steps(a.steps), _steps(b.steps), _step_fields)
    changes += _entries(
        "stop condition",
        {s.name: s for s in a.stop_conditions},
        {s.name: s for s in b.stop_conditions},
        lambda s: {"asset": s.asset, "tier": s.tier, "down_for_ms": s.down_for_ms},
    )
    return changes


def _plan_fields(plan: Plan) -> dict[str, Value]:
    m = plan.metadata
    return {
        "name": plan.name,
        "version": m.version,
        "quarter": m.quarter,
        "test_type": str(m.test_type),
        "owner": m.owner,
        "environment": m.environment,
        "pass_tiers": plan.pass_tiers,
        "page_on": str(plan.page_on),
        "max_duration_ms": plan.max_duration_ms or None,
        "scenario_ms": plan.scenario_ms,
        "rollback_ms": plan.rollback_ms,
        "worst_case_ms": plan.worst_case_ms,
    }


def _tier_fields(tier: PlanTier) -> dict[str, Value]:
    return {"rank": tier.rank + 1, "rto_ms": tier.rto_ms, "rpo_ms": tier.rpo_ms}


def _asset_fields(asset: PlanAsset) -> dict[str, Value]:
    return {
        "tier": asset.tier,
        "rto_ms": asset.rto_ms,
        "rpo_ms": asset.rpo_ms,
        "depends_on": asset.depends_on,
        "contact_chain": asset.contact_chain,
        "detection_bound_ms": asset.detection_bound_ms,
        "wave": asset.wave,
        "waivers": tuple(f"{w.objective}: {w.reason}" for w in asset.waivers),
        "owner": asset.owner,
    }


def _probe_fields(probe: PlanProbe) -> dict[str, Value]:
    return {
        "kind": probe.kind,
        "interval_ms": probe.interval_ms,
        "timeout_ms": probe.timeout_ms,
        "fall": probe.fall,
        "rise": probe.rise,
        "measures_rpo": probe.measures_rpo,
    }


def _chain_fields(chain: PlanChain) -> dict[str, Value]:
    return {
        "respond_within_ms": chain.respond_within_ms,
        "order": tuple(c.name for c in chain.contacts),
    }


def _step_fields(step: PlanStep) -> dict[str, Value]:
    return {
        "kind": str(step.kind),
        "summary": step.summary,
        "bound_ms": step.bound_ms,
        "injects": step.injects,
        "parent": step.parent,
    }


def _steps(steps: Iterable[PlanStep]) -> dict[str, PlanStep]:
    """Steps keyed by phase and name; a name used again in its phase gets ' (2)', ' (3)' ..."""
    keyed: dict[str, PlanStep] = {}
    for step in steps:
        key = f"{step.phase}: {step.name}"
        n = 1
        while key in keyed:
            n += 1
            key = f"{step.phase}: {step.name} ({n})"
        keyed[key] = step
    return keyed


def _definitions(a: Plan, b: Plan) -> list[PlanChange]:
    """The definition SHA-256 of each asset in both plans whose definition differs."""
    found = []
    for asset in a.assets:
        other = next((x for x in b.assets if x.id == asset.id), None)
        if other is None:
            continue
        before, after = definition_sha256(asset), definition_sha256(other)
        if before != after:
            found.append(PlanChange("asset", asset.id, "definition_sha256", "changed", before, after))
    return found


def _fields(section: str, subject: str, a: dict[str, Value], b: dict[str, Value]) -> list[PlanChange]:
    return [
        PlanChange(section, subject, name, "changed", a.get(name), b.get(name))
        for name in dict.fromkeys([*a, *b])
        if a.get(name) != b.get(name)
    ]


def _entries(
    section: str, a: dict[str, T], b: dict[str, T], fields: Callable[[T], dict[str, Value]]
) -> list[PlanChange]:
    """Entries matched by key: each added, removed, or its fields that changed."""
    changes: list[PlanChange] = []
    for key in dict.fromkeys([*a, *b]):
        if key not in b:
            changes.append(PlanChange(section, key, "", "removed", _describe(fields(a[key])), None))
        elif key not in a:
            changes.append(PlanChange(section, key, "", "added", None, _describe(fields(b[key]))))
        else:
            changes += _fields(section, key, fields(a[key]), fields(b[key]))
    return changes


def _describe(values: dict[str, Value]) -> str:
    """An entry added or removed, in one line: its main fields."""
    shown = []
    for name in (
        "kind",
        "tier",
        "summary",
        "via",
        "rto_ms",
        "interval_ms",
        "bound_ms",
        "down_for_ms",
        "order",
    ):
        if name in values and values[name] not in (None, "", ()):
            text = show_value(name, values[name])
            shown.append(
                text if name in ("kind", "summary", "tier", "via") else f"{field_label(name)} {text}"
            )
    return ", ".join(dict.fromkeys(shown))


# ---------------------------------------------------------------- results

# Worse is higher. Unknown values rank as changed, never as a regression or a fix.
_VERDICT_RANK = {
    "pass": 0,
    "unaffected": 0,
    "incomplete": 1,
    "not-measured": 1,
    "not-run": 1,
    "fail": 2,
    "aborted": 2,
}
_STATE_RANK = {"met": 0, "unaffected": 0, "not-measured": 1, "missed": 2}
FIGURES = (
    "verdict",
    "detection_ms",
    "switchover_ms",
    "rto",
    "rpo",
    "lost_writes",
    "availability_bp",
    "ack_ms",
)


def _movement(a: str | None, b: str | None, ranks: dict[str, int]) -> Movement:
    if a == b:
        return "same"
    if a in ranks and b in ranks:
        if ranks[b] > ranks[a]:
            return "regressed"
        if ranks[b] < ranks[a]:
            return "fixed"
    return "changed"


def _compare_asset(
    name: str, a: AssetRecord | None, b: AssetRecord | None, *, people_only: bool = False
) -> AssetComparison:
    """How each figure moved; people_only (a contact test on either side): only time to ack,
    the rest "not compared" (a contact test's recovery figures are absent, not worse)."""
    moves: list[tuple[str, Movement]] = []
    for figure in FIGURES:
        if people_only and figure != "ack_ms":
            moves.append((figure, "not compared"))
        elif a is None or b is None:
            moves.append((figure, "changed"))
        elif figure == "verdict":
            moves.append((figure, _movement(a.verdict, b.verdict, _VERDICT_RANK)))
        elif figure in ("rto", "rpo"):
            state = _movement(getattr(a, f"{figure}_state"), getattr(b, f"{figure}_state"), _STATE_RANK)
            same = getattr(a, f"{figure}_ms") == getattr(b, f"{figure}_ms")
            moves.append((figure, "changed" if state == "same" and not same else state))
        else:
            moves.append((figure, "same" if getattr(a, figure) == getattr(b, figure) else "changed"))
    return AssetComparison(name, a, b, tuple(moves))


# ---------------------------------------------------------------- views


_LABELS = {
    "rto_ms": "RTO",
    "rpo_ms": "RPO",
    "definition_sha256": "definition SHA-256",
    "pass_tiers": "deciding tiers",
    "measures_rpo": "canary",
    "respond_within_ms": "respond within",
    "ack_within_ms": "ack within",
    "max_duration_ms": "max duration",
    "scenario_ms": "scenario bound",
    "rollback_ms": "rollback bound",
    "worst_case_ms": "worst case",
    "injects": "injects the failure",
    "bound_ms": "bound",
    "detection_bound_ms": "detection bound",
    "depends_on": "depends on",
    "rank": "priority",
    "availability_bp": "availability",
    "ack_ms": "time to ack",
    "lost_writes": "lost writes",
}


def field_label(name: str) -> str:
    """How a person reads a field's name: 'interval_ms' -> 'interval', 'rto_ms' -> 'RTO'."""
    return _LABELS.get(name, name.removesuffix("_ms").replace("_", " "))


def show_value(name: str, value: Value) -> str:
    """A plan value for people: durations via human_ms, yes/no, lists joined, 'none' for empty."""
    if value is None or value == "" or value == ():
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and name.endswith("_ms"):
        return human_ms(value)
    if isinstance(value, tuple):
        return ", ".join(value)
    if name == "definition_sha256" and isinstance(value, str):
        return value[:12] + "…"
    return str(value)


PLAN_WIDTHS = (22, 24, 24)  # label, A, B: the playbook section
RESULT_WIDTHS = (18, 21, 21)  # the results, leaving 17 columns for the note (REGRESSED, +1.2 s)


def _column(text: str, width: int) -> list[str]:
    """A cell's text in lines of at most `width` columns: wrapped at spaces, a longer word cut."""
    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _row(
    indent: int, label: str, a: str, b: str, note: str = "", widths: tuple[int, int, int] = PLAN_WIDTHS
) -> list[str]:
    """One side-by-side row: label, A, B (and a note after B), each cell wrapped in its column."""
    lw, aw, bw = widths
    lw -= indent
    cells = [_column(label, lw), _column(a, aw), _column(b, bw)]
    lines = []
    for i in range(max(len(c) for c in cells)):
        label_i, a_i, b_i = (c[i] if i < len(c) else "" for c in cells)
        line = f"{' ' * indent}{label_i:<{lw}} {a_i:<{aw}} {b_i:<{bw}}"
        if note and i == 0:
            line = f"{line} {note}"
        lines.append(line.rstrip()[:WIDTH])
    return lines


def _state(ms: int | None, state: str | None) -> str:
    if state is None:
        return human_ms(ms) if ms is not None else "no target"
    word = {"met": "met", "missed": "MISSED", "not-measured": "not measured", "unaffected": "unaffected"}
    if state in ("met", "missed"):
        return f"{human_ms(ms)} {word[state]}"
    return f"{NOT_MEASURED} {word.get(state, state)}"


def _figure_text(record: AssetRecord | None, figure: str) -> str:
    if record is None:
        return "(not in run)"
    if figure == "verdict":
        return record.verdict
    if figure == "rto":
        return _state(record.rto_ms, record.rto_state)
    if figure == "rpo":
        return _state(record.rpo_ms, record.rpo_state)
    if figure == "lost_writes":
        return NOT_MEASURED if record.lost_writes is None else str(record.lost_writes)
    if figure == "availability_bp":
        return human_bp(record.availability_bp)
    value = getattr(record, figure)
    return human_ms(value)


def _note(comparison: AssetComparison, figure: str) -> str:
    move = comparison.move(figure)
    if move in ("regressed", "fixed"):
        return move.upper() if move == "regressed" else move
    a, b = comparison.a, comparison.b
    if move in ("same", "not compared") or a is None or b is None:
        return ""
    key = {"rto": "rto_ms", "rpo": "rpo_ms"}.get(figure, figure)
    before, after = getattr(a, key), getattr(b, key)
    if isinstance(before, int) and isinstance(after, int) and not isinstance(before, bool):
        delta = after - before
        if figure == "availability_bp":  # a difference of percentages: percentage points
            return f"{'+' if delta > 0 else '-'}{abs(delta) // 100}.{abs(delta) % 100:02d} points"
        if figure == "lost_writes":
            return f"{delta:+d}"
        return ("+" if delta > 0 else "-") + human_ms(abs(delta))
    return "changed"


_FIGURE_LABELS = {
    "verdict": "verdict",
    "detection_ms": "detection",
    "switchover_ms": "switchover",
    "rto": "RTO",
    "rpo": "RPO",
    "lost_writes": "lost writes",
    "availability_bp": "availability",
    "ack_ms": "time to ack",
}


def trust_text(trust: Trust) -> str:
    """One side's evidence status for people: "verified, signed by ...", else in capitals."""
    if trust.verified:
        signed = f", signed by {', '.join(trust.signers)}" if trust.signers else ""
        return f"verified{signed} ({trust.basis})"
    why = f": {trust.problem}" if trust.problem else ""
    return f"{trust.status.upper()}{why} ({trust.basis})"


def _wrap(text: str, indent: str, hang: str = "  ") -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=indent, subsequent_indent=indent + hang, break_on_hyphens=False
    ) or [indent.rstrip()]


def _path(path: str, width: int) -> str:
    """A path in at most `width` columns: its end kept (the run's folder name), '…' before it."""
    return path if len(path) <= width else "…" + path[len(path) - width + 1 :]


def _side_lines(name: str, side: RunSide) -> list[str]:
    quarter = f"  {side.quarter}" if side.quarter else ""
    return [
        *_wrap(f"{name}  {side.run_id}{quarter}  {side.verdict.upper()}  {side.generated_utc}", "", "   "),
        *_wrap(f"evidence: {trust_text(side.trust)}", "   "),
        *_wrap(f"{side.playbook}, playbook SHA-256 {side.playbook_sha256[:12]}…", "   "),
        f"   {_path(side.folder, WIDTH - 3)}",
    ]


def _warnings(diff: RunDiff) -> list[str]:
    """What must be read before the comparison: a side that is not verified, other playbooks."""
    lines = []
    for name, side in (("A", diff.a), ("B", diff.b)):
        status = side.trust.status
        if status == NOT_CHECKED:
            text = f"!! {name} was NOT VERIFIED: its figures are what its report.json says, unchecked."
        elif not side.trust.verified:
            text = (
                f"!! {name} is {status.upper()}: its figures below are what its report.json claims, "
                "not evidence; never count them."
            )
        else:
            continue
        lines += _wrap(text, "", "   ")
    if diff.a.playbook != diff.b.playbook:
        lines += _wrap(f"Different playbooks: A is {diff.a.playbook}, B is {diff.b.playbook}.", "")
    tests = [name for name, side in (("A", diff.a), ("B", diff.b)) if side.mode == CONTACTS]
    if tests:
        which = " and ".join(tests)
        lines += _wrap(
            f"{which} {'is a contact test' if len(tests) == 1 else 'are contact tests'} (people only, "
            "nothing recovered): only time to ack is compared.",
            "",
        )
    return lines


def diff_text(diff: RunDiff) -> list[str]:
    """The comparison for people, in lines of at most 80 columns (cells wrapped in their column)."""
    lines = [f"drill diff: A {diff.a.run_id} → B {diff.b.run_id}"]
    warnings = _warnings(diff)
    if warnings:
        lines += [*warnings, ""]
    lines += _side_lines("A", diff.a) + _side_lines("B", diff.b)
    lines += ["", *_wrap(summary_text(diff), ""), ""]
    if not diff.plan_changes:
        same = "same SHA-256" if diff.same_playbook else "the playbook's text differs, not the plan"
        lines.append(f"Playbook: no change in the plan ({same}).")
    else:
        n = len(diff.plan_changes)
        lines += _row(0, f"Playbook: {n} change{'s' if n != 1 else ''}", "A", "B")
        subject = None
        for change in diff.plan_changes:
            if change.kind == "changed":
                if (change.section, change.subject) != subject:
                    subject = (change.section, change.subject)
                    lines.append(f"  {change.section} {change.subject}".rstrip())
                lines += _row(
                    4,
                    field_label(change.field),
                    show_value(change.field, change.a),
                    show_value(change.field, change.b),
                )
            else:
                subject = None
                sign = "+" if change.kind == "added" else "-"
                where = "added in B" if change.kind == "added" else "removed in B"
                lines.append(f"  {sign} {change.section} {change.subject} ({where})")
                a = ABSENT if change.a is None else str(change.a)
                b = ABSENT if change.b is None else str(change.b)
                lines += _row(4, "", a, b)
    lines += ["", *_row(0, "Results", "A", "B", widths=RESULT_WIDTHS)]
    verdict_note = {
        "regressed": "REGRESSED",
        "fixed": "fixed",
        "changed": "changed",
        "same": "",
        "not compared": "not compared",
    }[diff.verdict_move]
    lines += _row(
        2, "drill verdict", diff.a.verdict.upper(), diff.b.verdict.upper(), verdict_note, RESULT_WIDTHS
    )
    for comparison in diff.assets:
        tiers = dict.fromkeys(x.tier for x in (comparison.a, comparison.b) if x is not None)
        lines.append(f"  {comparison.asset} ({' → '.join(tiers)})")
        for figure in FIGURES:
            lines += _row(
                4,
                _FIGURE_LABELS[figure],
                _figure_text(comparison.a, figure),
                _figure_text(comparison.b, figure),
                _note(comparison, figure),
                RESULT_WIDTHS,
            )
    return lines


def moved(diff: RunDiff, movement: Movement) -> list[str]:
    """The results that moved so ("regressed", "fixed", "changed"): "verdict" for the drill's
    verdict, "ASSET FIGURE" for an asset's (e.g. "orders-kv rto"), in the order shown."""
    found = ["verdict"] if diff.verdict_move == movement else []
    for comparison in diff.assets:
        found += [f"{comparison.asset} {figure}" for figure, move in comparison.moves if move == movement]
    return found


def summary_text(diff: RunDiff) -> str:
    """One sentence: how many playbook changes, what regressed and what was fixed."""
    n = len(diff.plan_changes)
    plan = f"{n} playbook change{'s' if n != 1 else ''}" if n else "no playbook change"
    regressed, fixed, changed = (moved(diff, m) for m in ("regressed", "fixed", "changed"))
    if not (regressed or fixed or changed):
        return f"No change: {plan}, the same results."
    parts = [f"regressed: {', '.join(regressed) or 'nothing'}"]
    if fixed:
        parts.append(f"fixed: {', '.join(fixed)}")
    parts.append(f"{len(changed)} other figure{'s' if len(changed) != 1 else ''} changed")
    return f"Summary: {plan}; {'; '.join(parts)}."


def _figures_data(record: AssetRecord | None) -> dict[str, object] | None:
    if record is None:
        return None
    return {
        "tier": record.tier,
        "verdict": record.verdict,
        "detection_ms": record.detection_ms,
        "switchover_ms": record.switchover_ms,
        "rto_ms": record.rto_ms,
        "rto_target_ms": record.rto_target_ms,
        "rto_state": record.rto_state,
        "rpo_ms": record.rpo_ms,
        "rpo_target_ms": record.rpo_target_ms,
        "rpo_state": record.rpo_state,
        "lost_writes": record.lost_writes,
        "availability_bp": record.availability_bp,
        "ack_ms": record.ack_ms,
        "definition_sha256": record.definition_sha256,
    }


def _json_value(value: Value) -> object:
    return list(value) if isinstance(value, tuple) else value


def _side_data(side: RunSide) -> dict[str, object]:
    return {
        "folder": side.folder,
        "run_id": side.run_id,
        "report_id": side.report_id,
        "report_sha256": side.report_sha256,
        "generated_utc": side.generated_utc,
        "playbook": side.playbook,
        "playbook_sha256": side.playbook_sha256,
        "quarter": side.quarter,
        "verdict": side.verdict,
        "verdict_reason": side.verdict_reason,
        "mode": side.mode,
        "journal": side.journal,
        "journal_sha256": side.journal_sha256,
        "evidence": {
            "status": side.trust.status,
            "verified": side.trust.verified,
            "basis": side.trust.basis,
            "signers": list(side.trust.signers),
            "problem": side.trust.problem or None,
        },
    }


def diff_data(diff: RunDiff) -> dict[str, object]:
    """The comparison as one JSON document: durations in integer ms, availability in basis points."""
    return {
        "a": _side_data(diff.a),
        "b": _side_data(diff.b),
        "verified": diff.verified,
        "same_playbook": diff.same_playbook,
        "same_playbook_name": diff.a.playbook == diff.b.playbook,
        "summary": {
            "playbook_changes": len(diff.plan_changes),
            "regressed": moved(diff, "regressed"),
            "fixed": moved(diff, "fixed"),
            "changed": moved(diff, "changed"),
        },
        "playbook_changes": [
            {
                "section": c.section,
                "subject": c.subject,
                "field": c.field or None,
                "change": c.kind,
                "a": _json_value(c.a),
                "b": _json_value(c.b),
            }
            for c in diff.plan_changes
        ],
        "results": {
            "verdict": {"a": diff.a.verdict, "b": diff.b.verdict, "change": diff.verdict_move},
            "assets": [
                {
                    "asset": c.asset,
                    "a": _figures_data(c.a),
                    "b": _figures_data(c.b),
                    "changes": dict(c.moves),
                }
                for c in diff.assets
            ],
        },
    }
