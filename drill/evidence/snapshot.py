"""The resolved plan as journalled in `run.started`: the only source of targets after the plan.

`drill.plan.build_plan` builds it once from the playbook model; the runner journals it; results
and the report read it back from the journal and never look at the playbook document again.
Every name here is part of the evidence format (format 2): add fields with defaults, never
rename them. All durations are integer milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

# Integers in evidence must be exact as IEEE doubles (RFC 8785, I-JSON): checked when written and read.
Int = Annotated[int, msgspec.Meta(ge=-(2**53 - 1), le=2**53 - 1)]

TestType = Literal["tabletop", "functional", "full-scale", "switchover"]
PageOn = Literal["declare", "asset-down", "never"]
Objective = Literal["rto", "rpo"]

State = Literal["up", "down"]  # of an asset, as probes see it (events and the model share it)


class StepKind(StrEnum):
    """The YAML key that made a step."""

    MARK = "mark"
    ACTION = "action"
    WAIT_FOR = "wait_for"
    PAUSE = "pause"
    MANUAL = "manual"
    PARALLEL = "parallel"


class Phase(StrEnum):
    SCENARIO = "scenario"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Participant:
    name: str
    role: str  # drill-lead | decision-maker | independent-observer | operator | participant
    contact: str = ""
    organisation: str = ""


@dataclass(frozen=True, slots=True)
class ThirdParty:
    name: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class Metadata:
    """What an auditor asks of every exercise (NIST SP 800-84, ISO 22301 §8.5, DORA art. 11-12)."""

    name: str
    owner: str
    description: str = ""
    version: str = ""
    quarter: str = ""
    test_type: TestType = "functional"
    objectives: tuple[str, ...] = ()
    success_criteria: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    exclusions: tuple[str, ...] = ()
    third_parties: tuple[ThirdParty, ...] = ()
    participants: tuple[Participant, ...] = ()
    business_impact_ref: str = ""
    previous_drill: str = ""  # ISO date, YYYY-MM-DD
    planned_start: str = ""  # ISO 8601 with offset
    planned_duration_ms: Int = 0
    environment: str = ""  # where the drill runs, as the playbook states it


@dataclass(frozen=True, slots=True)
class PlanProbe:
    name: str
    kind: str
    interval_ms: Int
    timeout_ms: Int
    fall: Int
    rise: Int
    measures_rpo: bool = False  # a canary probe: its kind reads back which writes survived


@dataclass(frozen=True, slots=True)
class Waiver:
    """An objective the playbook says this drill does not demonstrate, and why (shown in the report)."""

    objective: Objective
    reason: str


@dataclass(frozen=True, slots=True)
class PlanAsset:
    id: str
    tier: str
    wave: Int  # 1-based, within its tier
    depends_on: tuple[str, ...]
    contact_chain: str
    rto_ms: Int  # resolved: the asset's own target, else its tier's
    rpo_ms: Int | None
    detection_bound_ms: Int  # longest interval x fall of its probes
    probes: tuple[PlanProbe, ...]
    waits_on_later_tier: tuple[str, ...] = ()
    owner: str = ""
    description: str = ""
    waivers: tuple[Waiver, ...] = ()  # the asset's own, else its tier's, per objective

    def waiver(self, objective: Objective) -> Waiver | None:
        return next((w for w in self.waivers if w.objective == objective), None)

    @property
    def longest_interval_ms(self) -> int:
        return max((p.interval_ms for p in self.probes), default=0)


@dataclass(frozen=True, slots=True)
class PlanTier:
    name: str
    rank: Int
    rto_ms: Int
    rpo_ms: Int | None
    waves: tuple[tuple[str, ...], ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class PlanStep:
    phase: Phase
    number: str  # "3" or "3.2" inside a parallel step
    name: str
    kind: StepKind
    summary: str  # one line, never a parameter that could hold a secret (urls, argv, bodies)
    bound_ms: Int | None  # None: unbounded (manual step without timeout)
    injects: bool = False  # this step's completion is t_inject
    parent: str = ""  # the parallel step it belongs to


@dataclass(frozen=True, slots=True)
class PlanContact:
    name: str
    via: str  # the channel kind only: its url or token stays out of the evidence
    ack_within_ms: Int
    role: str = ""


@dataclass(frozen=True, slots=True)
class PlanChain:
    name: str
    respond_within_ms: Int | None
    contacts: tuple[PlanContact, ...]


@dataclass(frozen=True, slots=True)
class PlanStopCondition:
    name: str
    down_for_ms: Int
    asset: str = ""
    tier: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """The resolved plan of a playbook, everything in integer milliseconds."""

    name: str
    sha256: str
    metadata: Metadata
    tiers: tuple[PlanTier, ...]
    assets: tuple[PlanAsset, ...]  # in recovery order
    steps: tuple[PlanStep, ...]
    chains: tuple[PlanChain, ...]
    stop_conditions: tuple[PlanStopCondition, ...]
    pass_tiers: tuple[str, ...]
    scenario_ms: Int | None
    rollback_ms: Int | None
    worst_case_ms: Int | None  # scenario + rollback, capped by max_duration; None: unbounded
    max_duration_ms: Int = 0
    page_on: PageOn = "declare"

    def asset(self, asset_id: str) -> PlanAsset:
        return next(a for a in self.assets if a.id == asset_id)

    def chain(self, name: str) -> PlanChain | None:
        return next((c for c in self.chains if c.name == name), None)

    def phase_steps(self, phase: Phase) -> tuple[PlanStep, ...]:
        return tuple(s for s in self.steps if s.phase == phase)
