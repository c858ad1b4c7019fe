"""The SLA definition (a `kind: SLA` document, schemas/sla.schema.json), typed.

Every quantity is an integer: durations in milliseconds, percentages in thousandths of a percent
(`PctMilli`: 99.9 % is 99_900), money in the currency's minor unit (cents). Integers, so that a tier edge such as exactly 99.0 % falls on
the side the contract says, never on the side a float rounding happens to give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# A percentage in thousandths of a percent: 99.9 % is 99_900, 100 % is 100_000. Three decimals is
# what SLAs write (99.95 %, 99.999 %); a finer one is refused by the schema.
PctMilli = int
FULL: PctMilli = 100_000

WindowKind = Literal["month", "quarter", "year", "rolling"]
Counting = Literal["timeslices", "occurrences"]
NoDataPolicy = Literal["down", "up", "excluded"]
Status = Literal["ok", "warning", "breached", "insufficient-data"]


@dataclass(frozen=True, slots=True)
class Window:
    """The contract period: a calendar month, quarter or year in `time_zone` (half-open
    [start, end) intervals of local midnight), or a rolling window of `rolling_ms`."""

    kind: WindowKind
    time_zone: str  # IANA, e.g. Europe/Berlin: the contract's zone, never the machine's
    rolling_ms: int = 0  # only for kind "rolling"


@dataclass(frozen=True, slots=True)
class SliceRule:
    """Time slices: each slice of `slice_ms` is bad when the service was down for at least
    `bad_after_ms` of it (0: any down time at all makes it bad)."""

    slice_ms: int = 60_000
    bad_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A maintenance window, planned: an RFC 5545 RRULE (with DTSTART in the contract's zone)
    and a duration, a reason and who approved it."""

    name: str
    rrule: str  # e.g. "DTSTART:20260101T020000\nRRULE:FREQ=WEEKLY;BYDAY=SU"
    duration_ms: int
    reason: str
    approver: str


@dataclass(frozen=True, slots=True)
class CreditTier:
    """Availability in [lower, upper) earns `credit` of the monthly fee (all in PctMilli)."""

    lower: PctMilli
    upper: PctMilli
    credit: PctMilli


@dataclass(frozen=True, slots=True)
class Credits:
    monthly_fee_minor: int  # in the currency's minor unit (cents)
    currency: str  # ISO 4217, e.g. EUR
    tiers: tuple[CreditTier, ...]
    minimum_minor: int = 0  # a credit below this is not paid
    cap: PctMilli = FULL  # at most this share of the fee


@dataclass(frozen=True, slots=True)
class ResponseKpi:
    """A page of `severity` must be acknowledged within `within_ms` (from the contact-chain
    records: page sent to first acknowledgement)."""

    name: str
    severity: str  # e.g. P1
    chain: str
    within_ms: int


@dataclass(frozen=True, slots=True)
class DelayKpi:
    """A business round trip (a probe that sends and receives, e.g. a message through a core
    process) must complete within `within_ms`; beyond it, the alert levels escalate."""

    name: str
    probe: str  # "asset/probe" whose latency is the round trip
    within_ms: int
    levels: tuple[tuple[int, str], ...] = ()  # (delay_ms, chain): three-level alert


@dataclass(frozen=True, slots=True)
class Threshold:
    """Availability in the period below `below` pages `chain` (e.g. 95 % warning, 90 % legal)."""

    below: PctMilli
    chain: str
    name: str


@dataclass(frozen=True, slots=True)
class BurnRateAlert:
    """Google SRE workbook multi-window alert: fire when the burn rate over both the long and
    the short window is at least `factor_milli` / 1000 (14.4x is 14_400)."""

    name: str
    factor_milli: int
    long_ms: int
    short_ms: int
    chain: str
    severity: Literal["page", "ticket"] = "page"


@dataclass(frozen=True, slots=True)
class Service:
    """A service the SLA covers, defined by probes of the playbook's assets ("asset/probe")."""

    name: str
    probes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sla:
    name: str
    playbook: str  # the playbook whose assets and probes the services name (a path, as written)
    services: tuple[Service, ...]
    target: PctMilli  # e.g. 99_900
    window: Window
    counting: Counting = "timeslices"
    slices: SliceRule = SliceRule()
    partial_weight: PctMilli = 30_000  # a partial outage counts at 30 % (Statuspage)
    no_data: NoDataPolicy = "down"
    exclusions: tuple[Exclusion, ...] = ()
    exclude_drills: bool = True  # drill windows from the history are planned, excluded
    credits: Credits | None = None
    response: tuple[ResponseKpi, ...] = ()
    delays: tuple[DelayKpi, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    burn_rates: tuple[BurnRateAlert, ...] = ()
    loss_per_minute_minor: int = 0  # the cost model: loss per minute of downtime, minor units

    @property
    def service_probes(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(service, its "asset/probe" names) for each service, in order."""
        return tuple((s.name, s.probes) for s in self.services)

    @property
    def delay_probes(self) -> tuple[str, ...]:
        """The probes a delay KPI watches, once each (their round trips are kept for the report)."""
        return tuple(dict.fromkeys(kpi.probe for kpi in self.delays))


# ---------------------------------------------------------------- what was measured

Health = Literal["up", "down", "partial", "no-data"]


@dataclass(frozen=True, slots=True)
class Span:
    """One stretch of a service's health, [start_ms, end_ms) in UTC epoch milliseconds, with the
    evidence it came from (journal and the seqs of its first and last event, or another source)."""

    start_ms: int
    end_ms: int
    health: Health
    source: str = ""  # e.g. "watch/segment-0003.jsonl#41-97", "prometheus", "incidents.csv:7"


@dataclass(frozen=True, slots=True)
class Timeline:
    """A service's health over time: spans sorted, not overlapping; a gap between spans is no data."""

    service: str
    spans: tuple[Span, ...]
