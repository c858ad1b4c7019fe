"""The drill report as typed, frozen data (see schemas/report.schema.json).

`build_report` makes one; report.json is `canonical_bytes(report_data(report))`; `load_report`
turns a report.json back into one after checking it against the schema, and the renderers
read nothing else. Integers only: durations in ms, availability in basis points.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import msgspec

from drill.evidence.snapshot import Participant, Phase, StepKind, TestType, ThirdParty
from drill.results import (
    AssetResult,
    ChainResult,
    OrderViolation,
    PageResult,
    RollbackResult,
    SiteResult,
    SteadyStateResult,
    StepResult,
    StopRecord,
    TierResult,
    Verdict,
    without_empty_sites,
)

REPORT_FORMAT = "drill-report/v1"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


SEVERITIES: tuple[Severity, ...] = tuple(Severity)


@dataclass(frozen=True, slots=True)
class Tool:
    name: Literal["drill"]
    version: str


@dataclass(frozen=True, slots=True)
class Signer:
    principal: str
    fingerprint: str  # SHA256:... of the signing key


@dataclass(frozen=True, slots=True)
class PlaybookSection:
    name: str
    version: str
    quarter: str
    owner: str
    description: str
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class PlannedStep:
    name: str
    kind: StepKind
    phase: Phase
    parent: str
    inject: bool
    detail: str  # one line with no parameter that could hold a secret


@dataclass(frozen=True, slots=True)
class StopConditionRow:
    name: str
    asset: str
    tier: str
    down_for_ms: int | None


@dataclass(frozen=True, slots=True)
class Exercise:
    test_type: TestType
    objectives: tuple[str, ...]
    success_criteria: tuple[str, ...]
    assumptions: tuple[str, ...]
    business_impact_ref: str
    previous_drill: str
    scenario: tuple[PlannedStep, ...]
    rollback_plan: tuple[PlannedStep, ...]
    stop_conditions: tuple[StopConditionRow, ...]


@dataclass(frozen=True, slots=True)
class RunSection:
    status: str
    reason: str
    operator: str
    run_tool_version: str
    planned_start_utc: str | None
    planned_end_utc: str | None
    planned_duration_ms: int | None
    started_utc: str | None
    finished_utc: str | None
    duration_ms: int | None
    pass_tiers: tuple[str, ...]
    steady_state: SteadyStateResult | None = None
    verdict_reason: str = ""  # why the verdict is not pass


@dataclass(frozen=True, slots=True)
class FindingCounts:
    critical: int
    high: int
    medium: int
    low: int
    info: int


@dataclass(frozen=True, slots=True)
class Summary:
    assets_total: int
    assets_passed: int
    assets_failed: int
    assets_not_measured: int
    order_violations: int
    pages_sent: int
    pages_acked: int
    findings: FindingCounts


@dataclass(frozen=True, slots=True)
class Scope:
    tiers: tuple[TierResult, ...]
    exclusions: tuple[str, ...]
    third_parties: tuple[ThirdParty, ...]


@dataclass(frozen=True, slots=True)
class ContactRow:
    name: str
    role: str
    via: str  # the channel kind only: its url or token stays out
    ack_within_ms: int | None


@dataclass(frozen=True, slots=True)
class ChainSection:
    name: str
    respond_within_ms: int | None
    contacts: tuple[ContactRow, ...]


@dataclass(frozen=True, slots=True)
class Deviation:
    step: str
    phase: str
    status: str
    deviation: str
    reason: str
    seq: int


@dataclass(frozen=True, slots=True)
class Cleanup:
    confirmed: bool
    basis: str


@dataclass(frozen=True, slots=True)
class People:
    pages: tuple[PageResult, ...]
    chains: tuple[ChainResult, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: Severity
    title: str
    detail: str
    evidence_seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class JournalBlock:
    file: str
    sha256: str
    events: int
    head: str


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    file: str
    sha256: str


@dataclass(frozen=True, slots=True)
class AssetChange:
    """One asset, then (the previous drill) and now."""

    asset: str
    verdict_then: str  # "" when the asset was not in the previous drill
    verdict_now: str  # "" when the asset is no longer in the playbook
    rto_then_ms: int | None
    rto_now_ms: int | None
    rpo_then_ms: int | None
    rpo_now_ms: int | None


@dataclass(frozen=True, slots=True)
class PreviousComparison:
    """The previous verified drill of this playbook (known to the history when the run started),
    linked by its report's SHA-256, and the change against it."""

    run_id: str
    report_sha256: str
    generated_utc: str
    verdict: str
    quarter: str
    changes: tuple[AssetChange, ...]


@dataclass(frozen=True, slots=True)
class Report:
    format: str
    report_id: str
    run_id: str
    generated_utc: str
    tool: Tool
    prepared_by: Signer | None
    playbook: PlaybookSection
    exercise: Exercise
    run: RunSection
    verdict: Verdict
    summary: Summary
    scope: Scope
    participants: tuple[Participant, ...]
    contact_chains: tuple[ChainSection, ...]
    assets: tuple[AssetResult, ...]
    order_violations: tuple[OrderViolation, ...]
    steps: tuple[StepResult, ...]
    deviations: tuple[Deviation, ...]
    stops: tuple[StopRecord, ...]
    rollback: RollbackResult
    cleanup: Cleanup
    people: People
    findings: tuple[Finding, ...]
    journal: JournalBlock
    evidence: tuple[EvidenceFile, ...]
    previous: PreviousComparison | None = None  # None: no history, or it knew no earlier drill
    sites: tuple[SiteResult, ...] = ()  # the playbook's sites (absent from report.json when none)


def report_data(report: Report) -> dict[str, object]:
    """The report as JSON-ready data: what report.json holds (canonicalised by the writer)."""
    data: dict[str, object] = msgspec.to_builtins(report)
    if data.get("previous") is None:  # absent, not null: reports without a history stay as they were
        data.pop("previous", None)
    return without_empty_sites(data)


def report_from_data(data: object) -> Report:
    """A Report from JSON data that already passed the schema; ValueError names what does not fit."""
    try:
        return msgspec.convert(data, Report)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
