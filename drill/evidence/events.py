"""The journal's events: one frozen dataclass per event type, the one catalogue of the format.

An emitter builds a payload (say `ProbeObserved(...)`) and hands an `EventDraft` to the journal,
which stamps seq, prev and utc and writes `{seq, prev, mono_ns, utc, type, asset?, data}`; the
reader gives back `Event`s whose payload is the same dataclass. Dicts exist only inside
`payload_data` / `decode_payload`, at serialisation. Every name here is part of the evidence
format: add types and defaulted fields, never rename them. Format 1 (drill 0.1.0) journals
decode with the same classes: fields they lack have defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import ClassVar, Literal

import msgspec

from drill.evidence.snapshot import Int, Phase, Plan, State, StepKind

JOURNAL_FORMAT = 2  # 1: drill 0.1.0 (no format field, no plan in run.started)


class RunStatus(StrEnum):
    COMPLETED = "completed"
    ABORTED = "aborted"
    FAILED = "failed"
    NOT_RUN = "not-run"  # the steady state was not met: nothing that changes the world ran


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABORTED = "aborted"


class ManualAnswer(StrEnum):
    DONE = "done"
    SKIP = "skip"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class PlaybookRef:
    name: str
    sha256: str
    path: str
    document: dict[str, object] = field(default_factory=dict)  # the raw document, for the record only


@dataclass(frozen=True, slots=True)
class RunOptionsRecord:
    auto_confirm: bool = False
    rollback: str = "on-failure"
    allow_degraded: bool = False  # --allow-degraded: run although the steady state was not met


@dataclass(frozen=True, slots=True)
class PreviousAsset:
    """One asset of the previous drill, as its signed report gave it."""

    asset: str
    verdict: str
    rto_ms: int | None
    rpo_ms: int | None


@dataclass(frozen=True, slots=True)
class PreviousDrill:
    """The previous verified drill of the same playbook, as the history knew it when this run
    started: journalled so that the report (rebuilt from the journal alone) can show the change."""

    run_id: str
    report_sha256: str  # of the previous report.json: what its signatures cover
    generated_utc: str
    verdict: str
    quarter: str = ""
    assets: tuple[PreviousAsset, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStarted:
    TYPE: ClassVar[str] = "run.started"
    # fields added after journal format 2: absent when unset, so journals without them keep
    # their bytes (a reader takes the default)
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("previous",)
    run_id: str
    playbook: PlaybookRef
    user: str
    host: str
    tool_version: str
    started_utc: str
    options: RunOptionsRecord = RunOptionsRecord()
    planned_start: str = ""
    mode: Literal["drill", "contacts"] = "drill"
    plan: Plan | None = None  # None only in format 1, whose readers rebuild it from the document
    format: Int = 1
    previous: PreviousDrill | None = None  # when run with a history that knows an earlier drill


@dataclass(frozen=True, slots=True)
class RunFinished:
    TYPE: ClassVar[str] = "run.finished"
    status: RunStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ProbeObserved:
    TYPE: ClassVar[str] = "probe.observed"
    # site: absent for the coordinator's own probes, so their lines keep their bytes
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("site",)
    probe: str
    ok: bool
    latency_us: Int
    tick: Int
    scheduled_mono_ns: Int  # an agent's tick: its start mapped onto this run's clock, less the jitter
    jitter_us: Int
    reason: str = ""
    site: str | None = None  # the site whose agent observed it (its clock: see site.seen)


@dataclass(frozen=True, slots=True)
class ProbeOverrun:
    """A probe slower than its interval: missed_ticks ticks were skipped."""

    TYPE: ClassVar[str] = "probe.overrun"
    probe: str
    missed_ticks: Int


@dataclass(frozen=True, slots=True)
class ProbeAbandoned:
    """A probe loop that did not stop when told to (a driver that swallowed its cancellation):
    the run went on without waiting for it; nothing it did afterwards is in the journal."""

    TYPE: ClassVar[str] = "probe.abandoned"
    probe: str
    reason: str


@dataclass(frozen=True, slots=True)
class AssetState:
    """An asset changed state at at_mono_ns (DESIGN §2); the true change lies in
    [lower_mono_ns, upper_mono_ns]: from the start of the last probe that saw the old state to
    the completion of the first probe that saw the new one (upper absent in format 1: at_mono_ns)."""

    TYPE: ClassVar[str] = "asset.state"
    state: State
    at_mono_ns: Int
    lower_mono_ns: Int
    probe: str
    streak: Int
    initial: bool = False
    upper_mono_ns: Int | None = None


@dataclass(frozen=True, slots=True)
class ProbeSites:
    """A probe run at sites, and its quorum rule: down when at least `quorum` of them see it down."""

    TYPE: ClassVar[str] = "probe.sites"
    probe: str
    sites: tuple[str, ...]
    quorum: Int


@dataclass(frozen=True, slots=True)
class SiteState:
    """One site's view of one probe changed (fall/rise counted on that site's observations
    alone); `no data` when its agent went silent. The asset's state follows the probe's quorum."""

    TYPE: ClassVar[str] = "site.state"
    site: str
    probe: str
    state: Literal["up", "down", "no data"]
    at_mono_ns: Int
    lower_mono_ns: Int
    upper_mono_ns: Int


@dataclass(frozen=True, slots=True)
class SiteSeen:
    """An agent of a site answered: its clock's offset from this run's, and the bound of that
    offset's error (half the round trip, plus the agent's own synchronisation error when known)."""

    TYPE: ClassVar[str] = "site.seen"
    site: str
    agent: str
    offset_us: Int
    error_us: Int
    clock_source: str  # "chrony" | "broker round trip"


@dataclass(frozen=True, slots=True)
class SiteLost:
    """No agent of a site answered for a while: its probes read `no data` from here on."""

    TYPE: ClassVar[str] = "site.lost"
    site: str
    reason: str


@dataclass(frozen=True, slots=True)
class SiteDone:
    """An agent's count of the observations it made for this run, beside how many of them this
    journal holds: equal when nothing was lost between them."""

    TYPE: ClassVar[str] = "site.done"
    site: str
    agent: str
    observed: Int
    journalled: Int
    dropped: Int  # dropped by the agent itself (its backlog was full while the broker was away)


@dataclass(frozen=True, slots=True)
class StepStarted:
    TYPE: ClassVar[str] = "step.started"
    step: str
    kind: StepKind
    phase: Phase = Phase.SCENARIO


@dataclass(frozen=True, slots=True)
class StepFinished:
    TYPE: ClassVar[str] = "step.finished"
    step: str
    kind: StepKind
    status: StepStatus
    phase: Phase = Phase.SCENARIO
    reason: str = ""
    attempts: Int = 0
    captured: str | None = None  # what a `capture:` kept for ${steps.NAME.output} (not a secret)


@dataclass(frozen=True, slots=True)
class StepAttempt:
    """One try of an action (a declared retry makes several)."""

    TYPE: ClassVar[str] = "step.attempt"
    step: str
    attempt: Int
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Mark:
    """A named instant: a mark step, or the `baseline` the runner records before the scenario."""

    TYPE: ClassVar[str] = "mark"
    name: str
    step: str = ""
    states: dict[str, str] = field(default_factory=dict)  # baseline: asset -> up|down|unknown


@dataclass(frozen=True, slots=True)
class SteadyState:
    """Before anything changes the world: were all assets up? (not_up: down or of unknown state)."""

    TYPE: ClassVar[str] = "steady.state"
    met: bool
    not_up: tuple[str, ...] = ()
    degraded_allowed: bool = False


@dataclass(frozen=True, slots=True)
class WaitStarted:
    """A wait that is not a step (acknowledgements, the return to normal): what, and how long at most."""

    TYPE: ClassVar[str] = "wait.started"
    what: str
    bound_ms: Int | None  # None: until it ends by itself
    detail: str = ""


@dataclass(frozen=True, slots=True)
class WaitEnded:
    TYPE: ClassVar[str] = "wait.ended"
    what: str
    outcome: str  # done | timed out | ended by the operator | respond_within passed (acks)
    detail: str = ""  # e.g. the chains that had not acknowledged


@dataclass(frozen=True, slots=True)
class ReturnChecked:
    """After a drill that changed the world: is every asset back at the state it had at baseline?"""

    TYPE: ClassVar[str] = "return.checked"
    confirmed: bool
    not_back: tuple[str, ...] = ()  # "asset (state)" of each asset not back


@dataclass(frozen=True, slots=True)
class ManualAnswered:
    TYPE: ClassVar[str] = "manual.answered"
    step: str
    answer: ManualAnswer
    who: str
    auto: bool
    prompt: str
    phase: Phase = Phase.SCENARIO


@dataclass(frozen=True, slots=True)
class FailureInjected:
    """The injecting step (or the `disaster` mark) completed; t_inject is its start,
    started_mono_ns (format 1 has none: t_inject was this event's own instant)."""

    TYPE: ClassVar[str] = "failure.injected"
    step: str
    started_mono_ns: Int | None = None


@dataclass(frozen=True, slots=True)
class StopTripped:
    TYPE: ClassVar[str] = "stop.tripped"
    condition: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignalReceived:
    TYPE: ClassVar[str] = "signal.received"
    signal: str


@dataclass(frozen=True, slots=True)
class RollbackStarted:
    TYPE: ClassVar[str] = "rollback.started"
    reason: str


@dataclass(frozen=True, slots=True)
class RollbackFinished:
    TYPE: ClassVar[str] = "rollback.finished"
    status: Literal["ok", "failed"]


@dataclass(frozen=True, slots=True)
class RpoMeasured:
    TYPE: ClassVar[str] = "rpo.measured"
    probe: str
    last_acked_seq: Int
    last_acked_utc: str | None
    last_surviving_seq: Int
    surviving_utc: str | None
    lost_writes: Int
    rpo_ms: Int
    # writes the master accepted but fewer replicas than required confirmed (never counted as acked)
    at_risk_writes: Int = 0


@dataclass(frozen=True, slots=True)
class RpoUnmeasured:
    """The surviving canary writes could not be read: RPO stays unmeasured, with the reason."""

    TYPE: ClassVar[str] = "rpo.unmeasured"
    probe: str
    reason: str
    last_acked_seq: Int = 0
    last_acked_utc: str | None = None


@dataclass(frozen=True, slots=True)
class CanaryWritten:
    """An acknowledged canary write; journalled sparsely (first write, last before each failure)."""

    TYPE: ClassVar[str] = "canary.written"
    probe: str
    seq: Int
    utc: str


@dataclass(frozen=True, slots=True)
class PageSent:
    TYPE: ClassVar[str] = "page.sent"
    page_id: str
    chain: str
    contact: str
    via: str
    assets: tuple[str, ...]
    ok: bool
    reason: str
    attempts: Int
    ack_within_ms: Int
    chains: tuple[str, ...] = ()
    delivery_ms: Int = 0
    trigger_mono_ns: Int = 0


@dataclass(frozen=True, slots=True)
class PageAcked:
    TYPE: ClassVar[str] = "page.acked"
    page_id: str
    chain: str
    contact: str
    via: str
    by: str
    ack_ms: Int
    ack_within_ms: Int
    met: bool
    since_trigger_ms: Int
    chains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AckRefused:
    """A refused acknowledgement (the token is never recorded)."""

    TYPE: ClassVar[str] = "ack.refused"
    reason: str
    status: Int
    by: str = ""
    peer: str = ""
    page_id: str = ""


@dataclass(frozen=True, slots=True)
class ChainExhausted:
    TYPE: ClassVar[str] = "chain.exhausted"
    chain: str
    assets: tuple[str, ...]
    contacts: Int
    trigger_mono_ns: Int = 0


# -- drill watch (issue 15): continuous probing into rotated, sealed journal segments --------------


@dataclass(frozen=True, slots=True)
class WatchSegment:
    """The first event of every segment of a watch folder: it names the segment before it (file
    and chain head), so segments chain as lines do, and carries the plan in force, so one segment
    read alone says what was watched. `states`: each asset's state when the segment opened
    (up|down|unknown; all unknown after a restart: nothing is carried over a gap)."""

    TYPE: ClassVar[str] = "watch.segment"
    segment: Int
    previous_file: str  # "" for the first segment
    previous_head: str  # the previous segment's chain head (64 zeros for the first)
    previous_events: Int
    reason: Literal["start", "rotation", "restart"]
    rotate_ms: Int
    plan: Plan
    states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WatchStarted:
    """A watch process started (the segment it opened follows watch.segment): who, where, what."""

    TYPE: ClassVar[str] = "watch.started"
    session: str  # this process's id (a restart is a new session)
    playbook: PlaybookRef  # document left empty: the plan is in watch.segment
    user: str
    host: str
    tool_version: str
    started_utc: str
    format: Int  # of the watch folder's segments and seals (1)


@dataclass(frozen=True, slots=True)
class WatchGap:
    """The watch was not running from from_utc (the last event journalled before it stopped) to
    to_utc (this process opened its first segment): no data, for every asset, never up."""

    TYPE: ClassVar[str] = "watch.gap"
    from_utc: str
    to_utc: str
    duration_ms: Int
    previous_file: str  # the segment whose last event from_utc is
    health: Literal["no-data"]  # said, not implied: the one health a gap can have
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WatchStopped:
    """The watch stopped cleanly (a signal, --duration); the segment is sealed after this event."""

    TYPE: ClassVar[str] = "watch.stopped"
    reason: str


@dataclass(frozen=True, slots=True)
class SlaAlert:
    """An SLA alert of a watch (drill.sla.alerts) changed state: `firing` on the rising edge (the
    alert's chain is paged then, once per episode), `resolved` when it clears (nothing paged).
    Burn: both windows' burn rates in milli-x against factor_milli; threshold: the availability
    (PctMilli) over window_ms against below. A figure that does not apply, or could not be
    measured, is None, never 0."""

    TYPE: ClassVar[str] = "sla.alert"
    name: str
    kind: Literal["burn", "threshold", "delay"]
    state: Literal["firing", "resolved"]
    service: str
    chain: str
    at_utc: str
    factor_milli: Int | None
    long_ms: Int | None
    short_ms: Int | None
    long_milli: Int | None
    short_milli: Int | None
    below: Int | None
    availability: Int | None
    window_ms: Int | None


Payload = (
    RunStarted
    | RunFinished
    | ProbeObserved
    | ProbeOverrun
    | ProbeAbandoned
    | AssetState
    | ProbeSites
    | SiteState
    | SiteSeen
    | SiteLost
    | SiteDone
    | StepStarted
    | StepFinished
    | StepAttempt
    | Mark
    | SteadyState
    | WaitStarted
    | WaitEnded
    | ReturnChecked
    | ManualAnswered
    | FailureInjected
    | StopTripped
    | SignalReceived
    | RollbackStarted
    | RollbackFinished
    | RpoMeasured
    | RpoUnmeasured
    | CanaryWritten
    | PageSent
    | PageAcked
    | AckRefused
    | ChainExhausted
    | WatchSegment
    | WatchStarted
    | WatchGap
    | WatchStopped
    | SlaAlert
)

# The one list of event types: `type` in the journal -> its payload class.
PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        RunStarted,
        RunFinished,
        ProbeObserved,
        ProbeOverrun,
        ProbeAbandoned,
        AssetState,
        ProbeSites,
        SiteState,
        SiteSeen,
        SiteLost,
        SiteDone,
        StepStarted,
        StepFinished,
        StepAttempt,
        Mark,
        SteadyState,
        WaitStarted,
        WaitEnded,
        ReturnChecked,
        ManualAnswered,
        FailureInjected,
        StopTripped,
        SignalReceived,
        RollbackStarted,
        RollbackFinished,
        RpoMeasured,
        RpoUnmeasured,
        CanaryWritten,
        PageSent,
        PageAcked,
        AckRefused,
        ChainExhausted,
        WatchSegment,
        WatchStarted,
        WatchGap,
        WatchStopped,
        SlaAlert,
    )
}
_FIELDS: dict[type[Payload], frozenset[str]] = {
    cls: frozenset(f.name for f in fields(cls)) for cls in PAYLOAD_TYPES.values()
}


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What an emitter knows: the payload, its instant and its asset; the journal adds the rest."""

    payload: Payload
    mono_ns: Int
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One journal line, as written or read."""

    seq: Int
    prev: str
    mono_ns: Int
    utc: str
    payload: Payload
    asset: str | None = None

    @property
    def type(self) -> str:
        return self.payload.TYPE


class PayloadMismatch(ValueError):
    """Event data that does not match its type's dataclass (a bug when writing; bad evidence when reading)."""


_encode_sorted = msgspec.json.Encoder(order="sorted").encode  # compact, keys sorted: RFC 8785 for ASCII
_DECODERS = {cls: msgspec.json.Decoder(cls) for cls in PAYLOAD_TYPES.values()}
# Payloads holding free-form JSON (the raw playbook document): their values are not typed, so the
# journal checks them itself (integers only, within 2**53) and canonicalises them with rfc8785.
FREE_FORM: frozenset[type[Payload]] = frozenset({RunStarted})


def payload_builtins(payload: Payload) -> dict[str, object]:
    """The payload as plain data (dicts, lists, str, int, bool, None), not yet checked."""
    if type(payload) not in _FIELDS:
        raise PayloadMismatch(f"{type(payload).__name__} is not a journal event type")
    data: dict[str, object] = msgspec.to_builtins(payload)
    for name in getattr(payload, "OMIT_IF_NONE", ()):
        if data.get(name) is None:
            data.pop(name, None)
    return data


def checked_json(kind: type[Payload], data: Mapping[str, object]) -> bytes:
    """data as compact JSON with sorted keys, checked to read back as `kind`: every field of its
    type, integers exact (within 2**53). For ASCII text these are the RFC 8785 bytes."""
    body = _encode_sorted(data)
    try:
        _DECODERS[kind].decode(body)
    except msgspec.ValidationError as exc:
        raise PayloadMismatch(f"{kind.TYPE} event: {exc}") from None
    return body


def payload_data(payload: Payload) -> dict[str, object]:
    """The payload as JSON-ready data, checked against its own type so that it reads back."""
    data = payload_builtins(payload)
    checked_json(type(payload), data)
    return data


def decode_payload(kind: str, data: Mapping[str, object]) -> Payload:
    """The typed payload of a journal line; PayloadMismatch names what does not fit."""
    cls = PAYLOAD_TYPES.get(kind)
    if cls is None:
        raise PayloadMismatch(f"unknown event type {kind!r}")
    names = _FIELDS[cls]
    if not names.issuperset(data):
        extra = ", ".join(sorted(set(data) - names))
        raise PayloadMismatch(f"{kind} event: unknown field(s) {extra}")
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise PayloadMismatch(f"{kind} event: {exc}") from None


__all__ = [
    "FREE_FORM",
    "JOURNAL_FORMAT",
    "PAYLOAD_TYPES",
    "AckRefused",
    "AssetState",
    "CanaryWritten",
    "ChainExhausted",
    "Event",
    "EventDraft",
    "FailureInjected",
    "ManualAnswer",
    "ManualAnswered",
    "Mark",
    "PageAcked",
    "PageSent",
    "Payload",
    "PayloadMismatch",
    "PlaybookRef",
    "ProbeAbandoned",
    "ProbeObserved",
    "ProbeOverrun",
    "ProbeSites",
    "RollbackFinished",
    "RollbackStarted",
    "RpoMeasured",
    "RpoUnmeasured",
    "RunFinished",
    "RunOptionsRecord",
    "RunStarted",
    "RunStatus",
    "SignalReceived",
    "SiteDone",
    "SiteLost",
    "SiteSeen",
    "SiteState",
    "SlaAlert",
    "State",
    "SteadyState",
    "StepAttempt",
    "StepFinished",
    "StepStarted",
    "StepStatus",
    "StopTripped",
    "WatchGap",
    "WatchSegment",
    "WatchStarted",
    "WatchStopped",
    "checked_json",
    "decode_payload",
    "payload_builtins",
    "payload_data",
]
