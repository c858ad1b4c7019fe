"""The playbook as typed, frozen data: what the loader produces and every later stage reads.

Durations are exact integer milliseconds (`*_ms`). Strings may hold secret references
(`${env:NAME}`, `${file:path}`); they stay references here and are resolved only by the runner.
Probe, action and notifier parameters stay plain JSON-like mappings (`params`) because their
typed spec is built by the kind's own module, after secrets are resolved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from drill.evidence.snapshot import Metadata, Objective, PageOn, State, StepKind


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column of a node in the source file (0 when built in code)."""

    line: int = 0
    col: int = 0


NOWHERE = Pos()


def _pos() -> Pos:
    return field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    """Run-wide defaults and policy."""

    interval_ms: int = 1000
    timeout_ms: int = 1000
    fall: int = 2
    rise: int = 2
    pass_tiers: tuple[str, ...] = ()  # empty: the first two tiers decide the verdict
    max_duration_ms: int = 0  # 0: no limit beyond the steps' own
    page_on: PageOn = "declare"
    unattended: bool = False  # nobody at a terminal: manual steps are a validate error


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    rank: int  # 0 = recovers first (the tier's position in the list)
    rto_ms: int
    rpo_ms: int | None = None
    description: str = ""
    waive: Mapping[Objective, str] = field(default_factory=dict)  # objective -> why not demonstrated
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    via: str  # a notifier kind: webhook | slack | dingtalk | pagerduty | email
    ack_within_ms: int
    params: Mapping[str, Any] = field(default_factory=dict)  # url, to, secret, routing_key ...
    role: str = ""
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class ContactChain:
    name: str
    contacts: tuple[Contact, ...]
    respond_within_ms: int | None = None  # the chain's overall target (e.g. 15m P1 response)
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Probe:
    """One check of one aspect of an asset, run every interval_ms with a timeout_ms."""

    name: str
    kind: str  # a registered probe kind: http | tcp | dns | command | redis | postgres ...
    params: Mapping[str, Any]
    interval_ms: int
    timeout_ms: int
    fall: int
    rise: int
    pos: Pos = _pos()
    sites: tuple[str, ...] = ()  # empty: drill run probes it itself; else these sites' agents do
    quorum: int = 0  # with sites: down when at least this many of them see it down

    @property
    def remote(self) -> bool:
        """Probed by agents at sites, not by the coordinator."""
        return bool(self.sites)

    @property
    def detection_bound_ms(self) -> int:
        """The longest an outage can go unnoticed: fall consecutive failures, one interval apart."""
        return self.interval_ms * self.fall

    @property
    def writes_canary(self) -> bool:
        """Whether this probe writes canaries, so it can measure an RPO (redis, postgres, kv)."""
        return self.params.get("canary") is True


@dataclass(frozen=True, slots=True)
class Site:
    """A vantage point whose agents probe from elsewhere (`drill agent --site NAME`)."""

    name: str
    description: str = ""


def majority(sites: int) -> int:
    """The default quorum: more than half of a probe's sites."""
    return sites // 2 + 1


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    tier: str
    probes: tuple[Probe, ...]
    owner: str = ""
    description: str = ""
    depends_on: tuple[str, ...] = ()
    contact_chain: str = ""
    rto_ms: int | None = None  # overrides the tier's
    rpo_ms: int | None = None
    waive: Mapping[Objective, str] = field(default_factory=dict)  # wins over the tier's, per objective
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int = 1
    wait_ms: int = 1000


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # a registered action kind: http | command
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MarkStep:
    name: str
    mark: str
    inject: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Capture:
    """What a step keeps of its action's output for later steps (`${steps.NAME.output}`)."""

    source: Literal["stdout", "stderr"] = "stdout"
    json_path: str = ""  # a dotted path into the output parsed as JSON; empty: the text itself


@dataclass(frozen=True, slots=True)
class ActionStep:
    name: str
    action: Action
    timeout_ms: int = 60_000
    retry: Retry = Retry()
    capture: Capture | None = None
    inject: bool = False  # completion of this step is t_inject (see injects)
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Check:
    """A probe kind run by a wait_for step until it succeeds (parameters as written, secrets unresolved)."""

    kind: str
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WaitFor:
    within_ms: int
    state: State = "up"
    asset: str = ""
    tier: str = ""
    all_assets: bool = False
    check: Check | None = None  # instead of an asset state: run this until it succeeds
    every_ms: int = 500


@dataclass(frozen=True, slots=True)
class WaitForStep:
    name: str
    wait_for: WaitFor
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class PauseStep:
    name: str
    pause_ms: int
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class ManualStep:
    name: str
    prompt: str
    timeout_ms: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class ParallelStep:
    name: str
    steps: tuple[Step, ...]
    pos: Pos = _pos()


Step = MarkStep | ActionStep | WaitForStep | PauseStep | ManualStep | ParallelStep


def walk_steps(steps: Iterable[Step]) -> Iterator[Step]:
    """Every step, depth first, including the steps inside parallel groups."""
    for step in steps:
        yield step
        if isinstance(step, ParallelStep):
            yield from walk_steps(step.steps)


_KINDS: dict[type[Step], StepKind] = {
    MarkStep: StepKind.MARK,
    ActionStep: StepKind.ACTION,
    WaitForStep: StepKind.WAIT_FOR,
    PauseStep: StepKind.PAUSE,
    ManualStep: StepKind.MANUAL,
    ParallelStep: StepKind.PARALLEL,
}
STEP_KINDS: tuple[StepKind, ...] = tuple(StepKind)
OUTPUT_REFERENCE = re.compile(r"\$\{steps\.([^}.]+)\.output\}")  # what a later step uses of a capture
DISASTER_MARK = "disaster"


def step_kind(step: Step) -> StepKind:
    """The YAML key that made this step: mark, action, wait_for, pause, manual, parallel."""
    return _KINDS[type(step)]


def injects(step: Step) -> bool:
    """Whether this step injects the failure (marked `inject`, or the `disaster` mark): its start
    is t_inject."""
    if isinstance(step, MarkStep) and step.mark == DISASTER_MARK:
        return True
    return isinstance(step, MarkStep | ActionStep) and step.inject


@dataclass(frozen=True, slots=True)
class StopCondition:
    """Abort the drill when an asset (or any asset of a tier) stays down for down_for_ms."""

    name: str
    down_for_ms: int
    asset: str = ""
    tier: str = ""
    pos: Pos = _pos()


@dataclass(frozen=True, slots=True)
class Playbook:
    metadata: Metadata
    tiers: tuple[Tier, ...]
    assets: tuple[Asset, ...]
    scenario: tuple[Step, ...]
    settings: Settings = Settings()
    chains: tuple[ContactChain, ...] = ()
    stop_conditions: tuple[StopCondition, ...] = ()
    rollback: tuple[Step, ...] = ()
    sites: tuple[Site, ...] = ()
    source: str = ""  # the file it came from
    sha256: str = ""  # of the file's bytes
    document: Mapping[str, Any] = field(
        default_factory=dict, compare=False, repr=False
    )  # raw, secrets unresolved

    def tier(self, name: str) -> Tier:
        return next(t for t in self.tiers if t.name == name)

    def asset(self, asset_id: str) -> Asset:
        return next(a for a in self.assets if a.id == asset_id)

    def chain(self, name: str) -> ContactChain:
        return next(c for c in self.chains if c.name == name)

    def rto_ms(self, asset: Asset) -> int:
        return asset.rto_ms if asset.rto_ms is not None else self.tier(asset.tier).rto_ms

    def rpo_ms(self, asset: Asset) -> int | None:
        return asset.rpo_ms if asset.rpo_ms is not None else self.tier(asset.tier).rpo_ms

    def pass_tiers(self) -> tuple[str, ...]:
        return self.settings.pass_tiers or tuple(t.name for t in self.tiers[:2])
