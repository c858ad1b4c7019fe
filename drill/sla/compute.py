"""The SLA figures of one service in one contract period: exact integers, every rounding stated.

What customers and providers fight over is the counting method, so the method is computed here
in one place and written out in words (`PeriodFigures.method_text`) for the signed report.

Counting by time slices (the default): the period is cut into slices of `sla.slices.slice_ms`
aligned to the period's start (the last one is shorter when the period is not a whole number of
slices). Planned exclusions (maintenance windows, drill windows) are cut out of the period to the
millisecond and leave the denominator. In what remains of each slice, a slice is *bad* when it was
down for at least `bad_after_ms` (0: any down time), or for all of its remaining time when that is
shorter; it is *partial* when it is not bad but down-or-partial time reaches the same mark. A bad
slice counts as downtime with its whole remaining time, a partial slice with `partial_weight` of
it. Time without data is always reported on its own, and counts as the contract's `no_data`
policy says: as down, as up, or excluded (then it leaves the denominator too).

Rounding, done once, at the end, after exact integer arithmetic: each figure is rounded so that
comparing it with a contract edge gives the same answer as the exact value would, and where no
comparison is involved, against the provider:

- weighted downtime up to a whole millisecond (the only step that can have a fraction: partial
  time × 30 %); every figure below is derived from that integer;
- availability down to 0.001 % (the contract's tiers, targets and thresholds are on that grid, so
  `floor(a) >= edge` exactly when `a >= edge`: 98.9999 % is never shown as 99.000 %, and a
  customer is never moved to a smaller credit by rounding);
- downtime share up to 0.001 %, so availability + downtime share is exactly 100 %;
- allowed downtime down to a millisecond; budget remaining = allowed − weighted downtime, negative
  exactly when availability is below target;
- budget consumed up to 0.001 % (above 100.000 % exactly when the budget is overspent);
- burn rate down to 0.001x (compared with `factor >=`, exact by the same argument);
- money (credit, cost) up to the minor unit; the minimum credit is compared before rounding.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Literal

from drill.errors import UsageError
from drill.sla.calendar import (
    ExclusionSpan,
    Period,
    exclusion_spans,
    merge_spans,
    rolling_period,
)
from drill.sla.model import (
    FULL,
    BurnRateAlert,
    CreditTier,
    PctMilli,
    Sla,
    Status,
    Timeline,
    Window,
)
from drill.units import human_ms

# More no-data than this share of the measurable (non-excluded) time makes the period
# "insufficient-data": whatever the policy makes of it, a tenth of the period unobserved is too
# much to call the figure a measurement. Exactly 10 % is still sufficient.
NO_DATA_LIMIT: PctMilli = 10_000

DRILL = "drill"  # the name (and key in excluded_ms) of a drill window taken from the history

_MINUTE_MS = 60_000

IncidentHealth = Literal["down", "partial"]


@dataclass(frozen=True, slots=True)
class Incident:
    """A run of consecutive down/partial spans (no gap between them), clipped to the period.

    `health` is "down" if any span of it was down. `excluded_ms` is how much of it fell in planned
    exclusions (and therefore did not count). `sources` are the spans' evidence, in order, once each.
    """

    start_ms: int
    end_ms: int
    health: IncidentHealth
    sources: tuple[str, ...]
    excluded_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class CreditResult:
    """The credit the period earns: the matched `[lower, upper)` tier, the share of the fee after
    the cap, and the amount in minor units (0 when below the minimum; None when availability was
    not measured). `note` says why in words."""

    tier: CreditTier | None
    share: PctMilli | None
    amount_minor: int | None
    currency: str
    note: str


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Everything the SLA report says about one service in one period. None is "not measured"."""

    service: str
    period: Period
    counting: str
    total_ms: int
    excluded: tuple[ExclusionSpan, ...]  # the excluded stretches, disjoint, in the period
    excluded_ms: tuple[tuple[str, int], ...]  # by exclusion name ("drill" for drills), first seen first
    eligible_ms: int  # the denominator
    no_data_ms: int  # outside exclusions, whatever the policy
    no_data_policy: str
    no_data_intervals: tuple[tuple[int, int], ...]
    bad_ms: int  # time of bad slices (timeslices) or of down spans (occurrences)
    partial_ms: int  # time of partial slices, before weighting
    downtime_raw_ms: int  # bad + partial, unweighted
    downtime_weighted_ms: int  # bad + partial × weight, rounded up to a ms
    availability: PctMilli | None
    downtime_share: PctMilli | None
    allowed_downtime_ms: int | None
    budget_remaining_ms: int | None
    budget_consumed: PctMilli | None
    status: Status
    thresholds_crossed: tuple[str, ...]
    credit: CreditResult | None  # None: the SLA has no credit schedule
    cost_minor: int | None  # None: the SLA has no cost model
    incidents: tuple[Incident, ...]
    events_good: int | None  # occurrences only: good spans (partial ones weighted), rounded down
    events_total: int | None
    method_text: str

    @property
    def excluded_total_ms(self) -> int:
        return sum(ms for _, ms in self.excluded_ms)


@dataclass(frozen=True, slots=True)
class BurnEvaluation:
    """One multi-window burn-rate rule at an instant: both burn rates (milli-x, None when not
    measurable) and whether it fires (both at least the factor)."""

    alert: BurnRateAlert
    long_milli: int | None
    short_milli: int | None
    firing: bool


# ---------------------------------------------------------------- the tally


@dataclass(frozen=True, slots=True)
class _Tally:
    """The exact integers every figure is derived from."""

    total_ms: int
    excluded: tuple[ExclusionSpan, ...]
    no_data_ms: int
    no_data_intervals: tuple[tuple[int, int], ...]
    eligible_ms: int
    bad_ms: int
    partial_ms: int
    weighted_ms: int
    denominator: int  # eligible ms (timeslices) or counted spans (occurrences)
    bad_num: int  # the bad share numerator, in FULL units: bad_num / (denominator × FULL)
    events_good: int | None
    events_total: int | None


def _validate(sla: Sla) -> None:
    rule = sla.slices
    if rule.slice_ms <= 0:
        raise UsageError(f"SLA {sla.name!r}: the slice length must be above zero")
    if not 0 <= rule.bad_after_ms <= rule.slice_ms:
        raise UsageError(
            f"SLA {sla.name!r}: bad_after ({human_ms(rule.bad_after_ms)}) must be between 0 and the slice "
            f"length ({human_ms(rule.slice_ms)})"
        )
    if not 0 <= sla.partial_weight <= FULL:
        raise UsageError(f"SLA {sla.name!r}: the partial weight must be between 0 % and 100 %")
    if not 0 < sla.target <= FULL:
        raise UsageError(f"SLA {sla.name!r}: the target must be above 0 % and at most 100 %")


def _segments(timeline: Timeline, start: int, end: int) -> list[tuple[int, int, str]]:
    """The timeline clipped to [start, end) as a partition: gaps filled with no-data, adjacent
    segments of the same health joined. Spans must be sorted and not overlap."""
    spans = timeline.spans
    first = bisect_right(spans, start, key=lambda s: s.end_ms)
    out: list[tuple[int, int, str]] = []
    cursor = start
    previous_end = spans[first - 1].end_ms if first else None
    for i in range(first, len(spans)):
        span = spans[i]
        if span.start_ms >= end:
            break
        if span.end_ms < span.start_ms or (previous_end is not None and span.start_ms < previous_end):
            raise UsageError(
                f"timeline {timeline.service!r}: spans overlap or are out of order at span {i} ({span.source or 'no source'})"
            )
        previous_end = span.end_ms
        lo, hi = max(span.start_ms, start), min(span.end_ms, end)
        if lo > cursor:
            _append(out, cursor, lo, "no-data")
        if hi > lo:
            _append(out, lo, hi, span.health)
            cursor = hi
    if cursor < end:
        _append(out, cursor, end, "no-data")
    return out


def _append(out: list[tuple[int, int, str]], lo: int, hi: int, health: str) -> None:
    if out and out[-1][1] == lo and out[-1][2] == health:
        out[-1] = (out[-1][0], hi, health)
    else:
        out.append((lo, hi, health))


def _overlay(
    segments: list[tuple[int, int, str]], excluded: Sequence[ExclusionSpan]
) -> list[tuple[int, int, str]]:
    """Cut the excluded stretches (disjoint, sorted) out of the partition: they become 'excluded'."""
    out: list[tuple[int, int, str]] = []
    j = 0
    for lo, hi, health in segments:
        cursor = lo
        while j < len(excluded) and excluded[j].end_ms <= cursor:
            j += 1
        k = j
        while cursor < hi:
            if k < len(excluded) and excluded[k].start_ms < hi:
                ex = excluded[k]
                if ex.start_ms > cursor:
                    out.append((cursor, ex.start_ms, health))
                    cursor = ex.start_ms
                stop = min(ex.end_ms, hi)
                out.append((cursor, stop, "excluded"))
                cursor = stop
                if ex.end_ms <= hi:
                    k += 1
            else:
                out.append((cursor, hi, health))
                cursor = hi
        j = k
    return out


def _effective(health: str, policy: str) -> str:
    """What a piece counts as: down, partial, up, or removed (out of the denominator)."""
    if health == "excluded":
        return "removed"
    if health == "no-data":
        return "removed" if policy == "excluded" else policy
    return health


def _slice_counts(
    pieces: list[tuple[int, int, str]], policy: str, period: Period, slice_ms: int, bad_after: int
) -> tuple[int, int]:
    """(bad ms, partial ms): the remaining time of bad and of partial slices.

    Slices wholly inside one piece are counted in bulk (a month of one-second slices stays fast);
    the others collect their down, partial and removed time and are judged one by one.
    """
    p0, p1 = period.start_ms, period.end_ms
    bad = partial = 0
    mixed: dict[int, list[int]] = {}  # slice index -> [down, partial, removed]
    slot = {"down": 0, "partial": 1, "removed": 2}
    for lo, hi, health in pieces:
        code = _effective(health, policy)
        if code == "up":
            continue
        where = slot[code]
        k0, k1 = (lo - p0) // slice_ms, (hi - 1 - p0) // slice_ms
        if k0 == k1:
            mixed.setdefault(k0, [0, 0, 0])[where] += hi - lo
            continue
        mixed.setdefault(k0, [0, 0, 0])[where] += p0 + (k0 + 1) * slice_ms - lo
        mixed.setdefault(k1, [0, 0, 0])[where] += hi - (p0 + k1 * slice_ms)
        whole = (k1 - k0 - 1) * slice_ms  # full-length slices: only the last slice can be short
        if code == "down":
            bad += whole
        elif code == "partial":
            partial += whole  # all partial: down+partial = slice >= the mark, down = 0 < it
    for k, (down, part, removed) in mixed.items():
        length = min(p0 + (k + 1) * slice_ms, p1) - (p0 + k * slice_ms)
        remaining = length - removed
        if remaining <= 0:
            continue
        mark = max(1, min(bad_after, remaining))
        if down >= mark:
            bad += remaining
        elif down + part >= mark:
            partial += remaining
    return bad, partial


def _occurrence_counts(
    timeline: Timeline, period: Period, excluded: Sequence[ExclusionSpan], policy: str, weight: PctMilli
) -> tuple[int, int]:
    """(good numerator in FULL units, counted spans): each span starting in the period and not in an
    exclusion is one event; up is good, down bad, partial good at 100 % − weight, no-data per policy."""
    starts = [e.start_ms for e in excluded]
    good = total = 0
    value = {"up": FULL, "down": 0, "partial": FULL - weight}
    spans = timeline.spans
    for i in range(bisect_right(spans, period.start_ms - 1, key=lambda s: s.start_ms), len(spans)):
        span = spans[i]
        if span.start_ms >= period.end_ms:
            break
        before = bisect_right(starts, span.start_ms) - 1  # the last exclusion starting at or before it
        if before >= 0 and excluded[before].end_ms > span.start_ms:
            continue
        health: str = span.health
        if health == "no-data":
            if policy == "excluded":
                continue
            health = policy
        good += value[health]
        total += 1
    return good, total


def _tally(sla: Sla, timeline: Timeline, period: Period, excluded: list[ExclusionSpan]) -> _Tally:
    policy = sla.no_data
    pieces = _overlay(_segments(timeline, period.start_ms, period.end_ms), excluded)
    excluded_ms = sum(e.end_ms - e.start_ms for e in excluded)
    gaps: list[tuple[int, int]] = []
    for lo, hi, health in pieces:
        if health == "no-data":
            if gaps and gaps[-1][1] == lo:
                gaps[-1] = (gaps[-1][0], hi)
            else:
                gaps.append((lo, hi))
    no_data = sum(hi - lo for lo, hi in gaps)
    total = period.duration_ms
    eligible = total - excluded_ms - (no_data if policy == "excluded" else 0)
    occurrences = sla.counting == "occurrences"
    slice_ms, bad_after = (1, 0) if occurrences else (sla.slices.slice_ms, sla.slices.bad_after_ms)
    bad, partial = _slice_counts(pieces, policy, period, slice_ms, bad_after)
    weighted = -(-(bad * FULL + partial * sla.partial_weight) // FULL)
    tally = _Tally(
        total_ms=total,
        excluded=tuple(excluded),
        no_data_ms=no_data,
        no_data_intervals=tuple(gaps),
        eligible_ms=eligible,
        bad_ms=bad,
        partial_ms=partial,
        weighted_ms=weighted,
        denominator=eligible,
        bad_num=weighted * FULL,
        events_good=None,
        events_total=None,
    )
    if not occurrences:
        return tally
    good_num, events = _occurrence_counts(timeline, period, excluded, policy, sla.partial_weight)
    return replace(
        tally,
        denominator=events,
        bad_num=events * FULL - good_num,
        events_good=good_num // FULL,
        events_total=events,
    )


def period_exclusions(
    sla: Sla, period: Period, drill_windows: Sequence[tuple[int, int]] = ()
) -> list[ExclusionSpan]:
    """The SLA's maintenance windows in the period, plus the drill windows when the SLA excludes
    drills, merged into disjoint labelled stretches."""
    spans = exclusion_spans(sla.exclusions, period, sla.window.time_zone)
    if sla.exclude_drills:
        spans += [
            ExclusionSpan(lo, hi, DRILL, "planned drill (from the history)", "") for lo, hi in drill_windows
        ]
    return merge_spans(spans, period.start_ms, period.end_ms)


# ---------------------------------------------------------------- the figures


def compute_period(
    sla: Sla,
    timeline: Timeline,
    period: Period,
    *,
    exclusions: Sequence[ExclusionSpan] | None = None,
    drill_windows: Sequence[tuple[int, int]] = (),
) -> PeriodFigures:
    """The figures of `timeline` in `period` under `sla`.

    `exclusions` None expands the SLA's own maintenance RRULEs for the period; given, they are
    used as they are (and the drill windows added). Drill windows count only when the SLA says
    `exclude_drills`.
    """
    _validate(sla)
    if exclusions is None:
        excluded = period_exclusions(sla, period, drill_windows)
    else:
        extra = [
            ExclusionSpan(lo, hi, DRILL, "planned drill (from the history)", "") for lo, hi in drill_windows
        ]
        excluded = merge_spans(
            [*exclusions, *(extra if sla.exclude_drills else [])], period.start_ms, period.end_ms
        )
    t = _tally(sla, timeline, period, excluded)
    availability = None if t.denominator == 0 else (t.denominator * FULL - t.bad_num) // t.denominator
    allowed = remaining = consumed = None
    if sla.counting == "timeslices":
        allowed = t.eligible_ms * (FULL - sla.target) // FULL
        remaining = allowed - t.weighted_ms
        if allowed > 0:
            consumed = -(-t.weighted_ms * FULL // allowed)
    crossed = tuple(th.name for th in sla.thresholds if availability is not None and availability < th.below)
    return PeriodFigures(
        service=timeline.service,
        period=period,
        counting=sla.counting,
        total_ms=t.total_ms,
        excluded=t.excluded,
        excluded_ms=_by_name(t.excluded),
        eligible_ms=t.eligible_ms,
        no_data_ms=t.no_data_ms,
        no_data_policy=sla.no_data,
        no_data_intervals=t.no_data_intervals,
        bad_ms=t.bad_ms,
        partial_ms=t.partial_ms,
        downtime_raw_ms=t.bad_ms + t.partial_ms,
        downtime_weighted_ms=t.weighted_ms,
        availability=availability,
        downtime_share=None if availability is None else FULL - availability,
        allowed_downtime_ms=allowed,
        budget_remaining_ms=remaining,
        budget_consumed=consumed,
        status=_status(sla, t, availability, crossed),
        thresholds_crossed=crossed,
        credit=credit_for(sla, availability),
        cost_minor=cost_of(sla, t.weighted_ms),
        incidents=tuple(incidents_in(timeline, period, excluded)),
        events_good=t.events_good,
        events_total=t.events_total,
        method_text=method_text(sla, period),
    )


def _by_name(excluded: Sequence[ExclusionSpan]) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for e in excluded:
        totals[e.name] = totals.get(e.name, 0) + e.end_ms - e.start_ms
    return tuple(totals.items())


def _status(sla: Sla, t: _Tally, availability: PctMilli | None, crossed: tuple[str, ...]) -> Status:
    """insufficient-data, then breached (below target), then warning (below a threshold), else ok."""
    measurable = t.total_ms - sum(e.end_ms - e.start_ms for e in t.excluded)
    if availability is None or t.no_data_ms * FULL > NO_DATA_LIMIT * measurable:
        return "insufficient-data"
    if availability < sla.target:
        return "breached"
    return "warning" if crossed else "ok"


def credit_for(sla: Sla, availability: PctMilli | None) -> CreditResult | None:
    """The tier with lower <= availability < upper, its share capped, the amount rounded up to the
    minor unit; below the minimum (compared exactly) nothing is paid."""
    credits = sla.credits
    if credits is None:
        return None
    tiers = sorted(credits.tiers, key=lambda t: t.lower)
    for before, after in pairwise(tiers):
        if after.lower < before.upper:
            raise UsageError(
                f"SLA {sla.name!r}: credit tiers overlap ({_pct(before.lower)}–{_pct(before.upper)} and {_pct(after.lower)}–{_pct(after.upper)})"
            )
    if availability is None:
        return CreditResult(
            None, None, None, credits.currency, "availability not measured: no credit determined"
        )
    tier = next((t for t in tiers if t.lower <= availability < t.upper), None)
    if tier is None:
        return CreditResult(
            None, 0, 0, credits.currency, f"availability {_pct(availability)} is in no credit tier"
        )
    share = min(tier.credit, credits.cap)
    exact = credits.monthly_fee_minor * share  # in minor units × FULL
    where = f"availability {_pct(availability)} is in [{_pct(tier.lower)}, {_pct(tier.upper)}): {_pct(tier.credit)} of the fee"
    if share < tier.credit:
        where += f", capped at {_pct(credits.cap)}"
    if exact < credits.minimum_minor * FULL:
        return CreditResult(
            tier,
            share,
            0,
            credits.currency,
            f"{where}; below the minimum credit of {credits.minimum_minor} minor units, not paid",
        )
    return CreditResult(tier, share, -(-exact // FULL), credits.currency, where)


def cost_of(sla: Sla, weighted_ms: int) -> int | None:
    """Loss per minute × weighted downtime in minutes (prorated to the ms), rounded up to the minor
    unit; None when the SLA has no cost model."""
    if sla.loss_per_minute_minor <= 0:
        return None
    return -(-sla.loss_per_minute_minor * weighted_ms // _MINUTE_MS)


def incidents_in(timeline: Timeline, period: Period, excluded: Sequence[ExclusionSpan]) -> list[Incident]:
    """Runs of touching down/partial spans, clipped to the period, with their excluded share."""
    runs: list[tuple[int, int, bool, list[str]]] = []  # (start, end, any down, sources)
    spans = timeline.spans
    for i in range(bisect_right(spans, period.start_ms, key=lambda s: s.end_ms), len(spans)):
        span = spans[i]
        if span.start_ms >= period.end_ms:
            break
        if span.health not in ("down", "partial"):
            continue
        lo, hi = max(span.start_ms, period.start_ms), min(span.end_ms, period.end_ms)
        if runs and runs[-1][1] == lo:
            start, _, down, sources = runs[-1]
            runs[-1] = (start, hi, down or span.health == "down", sources)
        else:
            runs.append((lo, hi, span.health == "down", []))
        if span.source and span.source not in runs[-1][3]:
            runs[-1][3].append(span.source)
    return [
        Incident(lo, hi, "down" if down else "partial", tuple(sources), _overlap(lo, hi, excluded))
        for lo, hi, down, sources in runs
    ]


def _overlap(lo: int, hi: int, excluded: Sequence[ExclusionSpan]) -> int:
    return sum(max(0, min(hi, e.end_ms) - max(lo, e.start_ms)) for e in excluded)


# ---------------------------------------------------------------- burn rates


def burn_rate(
    sla: Sla,
    timeline: Timeline,
    end_ms: int,
    window_ms: int,
    *,
    drill_windows: Sequence[tuple[int, int]] = (),
) -> int | None:
    """Burn rate over [end − window, end) in milli-x: the bad share over the window divided by the
    error budget share (100 % − target), × 1000, rounded down. 1000 spends the budget exactly at
    the pace that empties it at the end of the period; 14_400 empties a 30-day budget in 2 days.

    None when it cannot be measured: nothing eligible in the window, or a 100 % target (no budget).
    Exclusions apply as in the period figures.
    """
    _validate(sla)
    if window_ms <= 0:
        raise UsageError("a burn-rate window must be longer than zero")
    budget = FULL - sla.target
    window = rolling_period(Window("rolling", sla.window.time_zone, window_ms), end_ms)
    t = _tally(sla, timeline, window, period_exclusions(sla, window, drill_windows))
    if t.denominator == 0 or budget == 0:
        return None
    return 1000 * t.bad_num // (t.denominator * budget)


def burn_evaluations(
    sla: Sla, timeline: Timeline, now_ms: int, *, drill_windows: Sequence[tuple[int, int]] = ()
) -> list[BurnEvaluation]:
    """Every burn-rate rule of the SLA at `now_ms`: fires when both windows burn at least the factor."""
    out = []
    for alert in sla.burn_rates:
        long = burn_rate(sla, timeline, now_ms, alert.long_ms, drill_windows=drill_windows)
        short = burn_rate(sla, timeline, now_ms, alert.short_ms, drill_windows=drill_windows)
        firing = (
            long is not None
            and short is not None
            and long >= alert.factor_milli
            and short >= alert.factor_milli
        )
        out.append(BurnEvaluation(alert, long, short, firing))
    return out


def burn_alerts(
    sla: Sla, timeline: Timeline, now_ms: int, *, drill_windows: Sequence[tuple[int, int]] = ()
) -> list[BurnEvaluation]:
    """The burn-rate rules that fire at `now_ms` (the multi-window rule of the SRE workbook)."""
    return [e for e in burn_evaluations(sla, timeline, now_ms, drill_windows=drill_windows) if e.firing]


# ---------------------------------------------------------------- the method in words


def _pct(value: PctMilli) -> str:
    """99_900 -> "99.9 %", 99_000 -> "99.0 %", 99_950 -> "99.95 %" (exact, no float)."""
    whole, frac = divmod(value, 1000)
    digits = f"{frac:03d}".rstrip("0") or "0"
    return f"{whole}.{digits} %"


def method_text(sla: Sla, period: Period) -> str:
    """The counting method in words, for the report (the part the two sides of a contract argue about)."""
    no_data = {
        "down": "counted as down",
        "up": "counted as up",
        "excluded": "excluded from the eligible time",
    }[sla.no_data]
    head = (
        f"Period {period.label}: {period.start_local} to {period.end_local} ({period.zone}), "
        f"half-open, {human_ms(period.duration_ms)}. "
        "Planned exclusions (maintenance windows"
        + (" and drill windows from the drill history" if sla.exclude_drills else "")
        + ") are cut out to the millisecond and leave the eligible time. "
        f"Time without data is reported separately and {no_data}. "
    )
    tail = (
        f" Status: insufficient-data when nothing is eligible or more than {_pct(NO_DATA_LIMIT)} of the "
        f"non-excluded time has no data; else breached below the {_pct(sla.target)} target; else warning "
        "below an alert threshold; else ok. Credit tiers are half-open, [lower, upper): availability equal "
        "to a tier's lower edge is in that tier. Credit and cost are rounded up to the currency's minor unit; "
        "the minimum credit is compared before rounding."
    )
    if sla.counting == "occurrences":
        return (
            head + "Counting by occurrences: each recorded health span that starts in the period outside an "
            f"exclusion is one event; up is good, down is bad, partial is bad at {_pct(sla.partial_weight)}. "
            "Availability = good events / events, rounded down to 0.001 %. The error budget is not "
            "expressed in time under this method; downtime is shown as the time of the down and partial spans."
            + tail
        )
    rule = sla.slices
    bad_rule = (
        "any down time in it"
        if rule.bad_after_ms == 0
        else f"at least {human_ms(rule.bad_after_ms)} of down time in it (or all of its remaining time, if shorter)"
    )
    return (
        head
        + f"Counting by time slices of {human_ms(rule.slice_ms)} of elapsed time, aligned to the period start "
        f"(the last slice may be shorter). A slice is bad with {bad_rule}; it is partial when not bad but down "
        "or partial time reaches the same mark. A bad slice counts its eligible time as downtime, a partial "
        f"slice {_pct(sla.partial_weight)} of it; weighted downtime is rounded up to the millisecond. "
        "Availability = (eligible − weighted downtime) / eligible, rounded down to 0.001 %, so rounding "
        f"never lifts it over a tier edge or the {_pct(sla.target)} target. Allowed downtime = eligible × "
        f"(100 % − {_pct(sla.target)}), rounded down to the millisecond; budget remaining = allowed − weighted "
        "downtime; budget consumed is rounded up to 0.001 %." + tail
    )
