"""SLA figures: the issue's known values exactly, the counting rules, and integer-only properties."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drill.clock import ms_of
from drill.errors import UsageError
from drill.sla.calendar import ExclusionSpan, Period, period_of
from drill.sla.compute import (
    DRILL,
    PeriodFigures,
    burn_alerts,
    burn_evaluations,
    burn_rate,
    compute_period,
)
from drill.sla.model import (
    FULL,
    BurnRateAlert,
    Credits,
    CreditTier,
    Exclusion,
    Health,
    Service,
    Sla,
    SliceRule,
    Span,
    Threshold,
    Timeline,
    Window,
)

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

# The cloud providers' table from the issue: [99.0, 99.9) 10 %, [95.0, 99.0) 25 %, [0, 95.0) 100 %.
TIERS = (
    CreditTier(99_000, 99_900, 10_000),
    CreditTier(95_000, 99_000, 25_000),
    CreditTier(0, 95_000, 100_000),
)
CREDITS = Credits(monthly_fee_minor=100_000, currency="EUR", tiers=TIERS)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return ms_of(datetime(year, month, day, hour, minute, tzinfo=UTC))


def make_sla(**changes: Any) -> Sla:
    base = Sla(
        name="web",
        playbook="pb.yaml",
        services=(Service("web", ("web/http",)),),
        target=99_900,
        window=Window("month", "UTC"),
    )
    return dataclasses.replace(base, **changes)


def timeline(start: int, end: int, *outages: tuple[int, int, Health], service: str = "web") -> Timeline:
    """Up over [start, end) except the outages (sorted, inside), each its own span with a source."""
    spans: list[Span] = []
    cursor = start
    for n, (lo, hi, health) in enumerate(outages):
        if lo > cursor:
            spans.append(Span(cursor, lo, "up", f"j#{n}a"))
        spans.append(Span(lo, hi, health, f"j#{n}"))
        cursor = hi
    if cursor < end:
        spans.append(Span(cursor, end, "up", "j#end"))
    return Timeline(service, tuple(spans))


def month(year: int, mon: int, zone: str = "UTC") -> Period:
    return period_of(Window("month", zone), ms_of(datetime(year, mon, 10, tzinfo=UTC)))


def figures(sla: Sla, period: Period, *outages: tuple[int, int, Health], **kw: Any) -> PeriodFigures:
    return compute_period(sla, timeline(period.start_ms, period.end_ms, *outages), period, **kw)


APRIL = month(2026, 4)  # 30 days
MARCH = month(2026, 3)  # 31 days


# ---------------------------------------------------------------- the known values


def test_999_of_a_30_day_month_allows_43_2_minutes() -> None:
    f = figures(make_sla(), APRIL)
    assert f.total_ms == f.eligible_ms == 30 * DAY
    assert f.allowed_downtime_ms == 2_592_000 == 43 * MIN + 12 * SEC
    assert f.budget_remaining_ms == 2_592_000
    assert (f.availability, f.status, f.budget_consumed) == (FULL, "ok", 0)


def test_999_of_a_31_day_month_allows_44_64_minutes() -> None:
    assert figures(make_sla(), MARCH).allowed_downtime_ms == 2_678_400 == 44 * MIN + 38_400


def test_999_of_a_year_allows_8_76_hours() -> None:
    year = period_of(Window("year", "UTC"), utc(2026, 6, 1))
    f = figures(make_sla(window=Window("year", "UTC")), year)
    assert f.allowed_downtime_ms == 31_536_000 == 8 * HOUR + 45 * MIN + 36 * SEC


def test_march_in_berlin_is_44580_minutes_and_allows_44_58() -> None:
    f = figures(make_sla(window=Window("month", "Europe/Berlin")), month(2026, 3, "Europe/Berlin"))
    assert f.total_ms == 44_580 * MIN
    assert f.allowed_downtime_ms == 44_580 * MIN // 1000  # 44.58 min


def test_exactly_99_percent_is_in_the_10_percent_tier_not_25() -> None:
    down = 30 * DAY // 100  # 1 % of April: 432 minutes, whole slices
    start = APRIL.start_ms + DAY
    f = figures(make_sla(credits=CREDITS), APRIL, (start, start + down, "down"))
    assert f.availability == 99_000
    assert f.status == "breached"
    assert f.credit is not None and f.credit.tier == TIERS[0]
    assert (f.credit.share, f.credit.amount_minor) == (10_000, 10_000)


def test_a_second_more_is_in_the_25_percent_tier() -> None:
    """432 min + 1 s of 30 days is 98.99996 %: rounded half up it would read 99.000 % and fall in the
    10 % tier; rounded down it stays in the 25 % tier, where it belongs."""
    down = 30 * DAY // 100 + 1  # one millisecond more: with 1 s slices, one more bad second
    start = APRIL.start_ms + DAY
    f = figures(
        make_sla(credits=CREDITS, slices=SliceRule(slice_ms=SEC)), APRIL, (start, start + down, "down")
    )
    assert f.downtime_weighted_ms == 432 * MIN + SEC
    assert f.availability == 98_999
    assert f.credit is not None and f.credit.tier == TIERS[1] and f.credit.amount_minor == 25_000


def test_excluded_minutes_leave_the_denominator() -> None:
    sla = make_sla(
        exclusions=(
            Exclusion(
                "patch", "DTSTART:20260405T020000\nRRULE:FREQ=WEEKLY;COUNT=1", 2 * HOUR, "patching", "cab"
            ),
        )
    )
    patch = utc(2026, 4, 5, 2)
    # down through the whole window and 10 minutes after it: only those 10 minutes count
    f = figures(sla, APRIL, (patch, patch + 2 * HOUR + 10 * MIN, "down"))
    assert f.excluded_ms == (("patch", 2 * HOUR),)
    assert f.eligible_ms == 30 * DAY - 2 * HOUR
    assert f.downtime_weighted_ms == 10 * MIN
    assert f.allowed_downtime_ms == (30 * DAY - 2 * HOUR) // 1000
    assert f.availability == (f.eligible_ms - 10 * MIN) * FULL // f.eligible_ms
    (incident,) = f.incidents
    assert (incident.duration_ms, incident.excluded_ms) == (2 * HOUR + 10 * MIN, 2 * HOUR)


def test_drill_windows_are_excluded_as_drill_unless_the_sla_says_not() -> None:
    drill = (utc(2026, 4, 8, 10), utc(2026, 4, 8, 11))
    outage: tuple[int, int, Health] = (drill[0], drill[1], "down")
    f = figures(make_sla(), APRIL, outage, drill_windows=[drill])
    assert (f.excluded_ms, f.downtime_weighted_ms) == (((DRILL, HOUR),), 0)
    g = figures(make_sla(exclude_drills=False), APRIL, outage, drill_windows=[drill])
    assert (g.excluded_ms, g.downtime_weighted_ms) == ((), HOUR)


def test_given_exclusions_are_used_as_they_are_and_merged_with_drills() -> None:
    given_spans = [ExclusionSpan(utc(2026, 4, 2), utc(2026, 4, 2, 2), "freeze", "release", "cto")]
    f = figures(
        make_sla(), APRIL, exclusions=given_spans, drill_windows=[(utc(2026, 4, 2, 1), utc(2026, 4, 2, 3))]
    )
    assert f.excluded_ms == (("freeze", HOUR), ("freeze + drill", HOUR), (DRILL, HOUR))
    assert f.eligible_ms == 30 * DAY - 3 * HOUR


# ---------------------------------------------------------------- no data


GAP = (utc(2026, 4, 10), utc(2026, 4, 10, 1))


def _with_gap(sla: Sla) -> PeriodFigures:
    tl = Timeline("web", (Span(APRIL.start_ms, GAP[0], "up"), Span(GAP[1], APRIL.end_ms, "up")))
    return compute_period(sla, tl, APRIL)


@pytest.mark.parametrize(
    ("policy", "eligible", "downtime"),
    [("down", 30 * DAY, HOUR), ("up", 30 * DAY, 0), ("excluded", 30 * DAY - HOUR, 0)],
)
def test_no_data_follows_the_policy_and_is_always_reported(policy: Any, eligible: int, downtime: int) -> None:
    f = _with_gap(make_sla(no_data=policy))
    assert f.no_data_ms == HOUR
    assert f.no_data_intervals == (GAP,)
    assert f.no_data_policy == policy
    assert (f.eligible_ms, f.downtime_weighted_ms) == (eligible, downtime)
    assert f.excluded_ms == ()  # no data is never reported as an exclusion
    assert f.incidents == ()
    assert "Time without data is reported separately" in f.method_text


def test_an_explicit_no_data_span_counts_like_a_gap() -> None:
    f = figures(make_sla(), APRIL, (GAP[0], GAP[1], "no-data"))
    assert (f.no_data_ms, f.downtime_weighted_ms) == (HOUR, HOUR)


def test_more_than_a_tenth_without_data_is_insufficient() -> None:
    three_days = figures(make_sla(no_data="up"), APRIL, (APRIL.start_ms, APRIL.start_ms + 3 * DAY, "no-data"))
    assert three_days.status == "ok"  # exactly 10 %: still a measurement
    more = figures(make_sla(no_data="up"), APRIL, (APRIL.start_ms, APRIL.start_ms + 3 * DAY + 1, "no-data"))
    assert more.status == "insufficient-data"
    assert more.availability == FULL  # the policy's figure is still shown


def test_nothing_measured_is_not_measured() -> None:
    f = compute_period(make_sla(no_data="excluded", credits=CREDITS), Timeline("web", ()), APRIL)
    assert (f.eligible_ms, f.no_data_ms) == (0, 30 * DAY)
    assert (f.availability, f.downtime_share, f.budget_consumed) == (None, None, None)
    assert f.status == "insufficient-data"
    assert f.credit is not None and f.credit.amount_minor is None and "not measured" in f.credit.note


# ---------------------------------------------------------------- slices, partial


def test_slices_are_aligned_to_the_period_start_in_its_zone() -> None:
    """Kolkata is UTC+05:30: hourly slices start at :30 UTC. A two-minute outage across 19:30 UTC
    touches two slices (it would touch one if slices were aligned to the UTC hour)."""
    kolkata = month(2026, 4, "Asia/Kolkata")
    assert kolkata.start_utc == "2026-03-31T18:30:00.000+00:00"
    sla = make_sla(window=Window("month", "Asia/Kolkata"), slices=SliceRule(slice_ms=HOUR))
    f = figures(sla, kolkata, (utc(2026, 4, 2, 19, 29), utc(2026, 4, 2, 19, 31), "down"))
    assert f.bad_ms == 2 * HOUR


def test_bad_after_needs_that_much_down_time_in_a_slice() -> None:
    sla = make_sla(slices=SliceRule(slice_ms=MIN, bad_after_ms=30 * SEC))
    t0 = utc(2026, 4, 3, 12)
    assert figures(sla, APRIL, (t0, t0 + 29_999, "down")).bad_ms == 0
    assert figures(sla, APRIL, (t0, t0 + 30 * SEC, "down")).bad_ms == MIN
    # 20 s + 20 s in one slice, two spans: 40 s of down in the slice, bad
    assert (
        figures(sla, APRIL, (t0, t0 + 20 * SEC, "down"), (t0 + 30 * SEC, t0 + 50 * SEC, "down")).bad_ms == MIN
    )


def test_any_down_time_makes_a_slice_bad_by_default() -> None:
    t0 = utc(2026, 4, 3, 12) + 59_999
    f = figures(make_sla(), APRIL, (t0, t0 + 2, "down"))  # 2 ms across a slice edge
    assert (f.bad_ms, f.downtime_weighted_ms) == (2 * MIN, 2 * MIN)


def test_partial_counts_at_30_percent() -> None:
    t0 = utc(2026, 4, 3, 12)
    f = figures(make_sla(credits=CREDITS, loss_per_minute_minor=5_000), APRIL, (t0, t0 + 10 * MIN, "partial"))
    assert (f.partial_ms, f.bad_ms) == (10 * MIN, 0)
    assert (f.downtime_raw_ms, f.downtime_weighted_ms) == (10 * MIN, 3 * MIN)
    assert f.cost_minor == 15_000  # 3 weighted minutes × 50.00
    (incident,) = f.incidents
    assert incident.health == "partial"


def test_weighted_partial_time_rounds_up_to_a_millisecond() -> None:
    sla = make_sla(slices=SliceRule(slice_ms=SEC), partial_weight=33_333)
    t0 = utc(2026, 4, 3, 12)
    assert figures(sla, APRIL, (t0, t0 + SEC, "partial")).downtime_weighted_ms == 334  # 333.33 ms


def test_a_slice_with_down_and_partial_is_bad() -> None:
    t0 = utc(2026, 4, 3, 12)
    f = figures(make_sla(), APRIL, (t0, t0 + 10 * SEC, "partial"), (t0 + 10 * SEC, t0 + 11 * SEC, "down"))
    assert (f.bad_ms, f.partial_ms) == (MIN, 0)
    (incident,) = f.incidents  # touching spans are one incident, down if any part was down
    assert (incident.health, incident.sources, incident.duration_ms) == ("down", ("j#0", "j#1"), 11 * SEC)


def test_a_partly_excluded_slice_counts_only_its_remaining_time() -> None:
    sla = make_sla(slices=SliceRule(slice_ms=MIN, bad_after_ms=30 * SEC))
    t0 = utc(2026, 4, 3, 12)
    exclusions = [ExclusionSpan(t0, t0 + 45 * SEC, "m", "r", "a")]
    f = figures(sla, APRIL, (t0 + 45 * SEC, t0 + MIN, "down"), exclusions=exclusions)
    # the 15 s left of the slice are all down: bad although shorter than bad_after; counts 15 s
    assert (f.bad_ms, f.eligible_ms) == (15 * SEC, 30 * DAY - 45 * SEC)


# ---------------------------------------------------------------- status, credits, cost


def test_warning_is_below_a_threshold_above_the_target() -> None:
    thresholds = (Threshold(95_000, "ops", "warning"), Threshold(90_000, "legal", "legal"))
    sla = make_sla(target=90_000, thresholds=thresholds, slices=SliceRule(slice_ms=DAY))
    f = figures(sla, MARCH, (MARCH.start_ms, MARCH.start_ms + 2 * DAY, "down"))  # 29/31 = 93.548 %
    assert (f.availability, f.status, f.thresholds_crossed) == (93_548, "warning", ("warning",))
    g = figures(sla, MARCH, (MARCH.start_ms, MARCH.start_ms + 4 * DAY, "down"))  # 87.096 %
    assert (g.status, g.thresholds_crossed) == ("breached", ("warning", "legal"))


def test_below_target_is_breached_and_the_budget_negative() -> None:
    t0 = utc(2026, 4, 3, 12)
    f = figures(make_sla(), APRIL, (t0, t0 + 44 * MIN, "down"))
    assert f.status == "breached"
    assert f.budget_remaining_ms == 2_592_000 - 44 * MIN < 0
    assert f.budget_consumed == 101_852  # 2_640_000 / 2_592_000 = 101.8518… %, rounded up
    at_budget = figures(make_sla(slices=SliceRule(slice_ms=SEC)), APRIL, (t0, t0 + 2_592_000, "down"))
    assert (at_budget.status, at_budget.budget_remaining_ms, at_budget.budget_consumed) == ("ok", 0, FULL)
    assert at_budget.availability == 99_900


def test_credit_cap_minimum_and_rounding() -> None:
    t0 = APRIL.start_ms
    down_98: tuple[int, int, Health] = (t0, t0 + 30 * DAY // 50, "down")  # exactly 98.0 %: 25 % tier
    capped = dataclasses.replace(CREDITS, cap=20_000)
    f = figures(make_sla(credits=capped), APRIL, down_98)
    assert f.credit is not None and (f.credit.share, f.credit.amount_minor) == (20_000, 20_000)
    assert "capped at 20.0 %" in f.credit.note
    high_minimum = dataclasses.replace(CREDITS, minimum_minor=25_001)
    g = figures(make_sla(credits=high_minimum), APRIL, down_98)
    assert g.credit is not None and g.credit.amount_minor == 0 and "below the minimum" in g.credit.note
    odd_fee = dataclasses.replace(CREDITS, monthly_fee_minor=12_345)
    h = figures(make_sla(credits=odd_fee), APRIL, down_98)
    assert h.credit is not None and h.credit.amount_minor == 3_087  # 3086.25 rounded up


def test_full_availability_earns_no_credit_and_no_cost_model_is_none() -> None:
    f = figures(make_sla(credits=CREDITS), APRIL)
    assert f.credit is not None and (f.credit.tier, f.credit.amount_minor) == (None, 0)
    assert f.cost_minor is None
    assert figures(make_sla(), APRIL).credit is None


def test_cost_is_loss_per_minute_times_weighted_minutes_rounded_up() -> None:
    t0 = utc(2026, 4, 3, 12)
    sla = make_sla(loss_per_minute_minor=1_000, slices=SliceRule(slice_ms=SEC))
    assert figures(sla, APRIL, (t0, t0 + 43 * MIN + 12 * SEC, "down")).cost_minor == 43_200
    assert figures(sla, APRIL, (t0, t0 + SEC, "down")).cost_minor == 17  # 16.67 rounded up


def test_occurrences_count_spans_and_say_so() -> None:
    t0 = APRIL.start_ms
    spans = [Span(t0 + i * HOUR, t0 + (i + 1) * HOUR, "up") for i in range(10)]
    spans[3] = Span(t0 + 3 * HOUR, t0 + 4 * HOUR, "down")
    spans[6] = Span(t0 + 6 * HOUR, t0 + 7 * HOUR, "partial")
    f = compute_period(
        make_sla(counting="occurrences", target=80_000, no_data="up"), Timeline("web", tuple(spans)), APRIL
    )
    assert (f.events_total, f.events_good, f.availability) == (10, 8, 87_000)  # 8 + 0.7 good of 10
    assert f.allowed_downtime_ms is None and f.budget_remaining_ms is None
    assert (f.bad_ms, f.partial_ms) == (HOUR, HOUR)
    assert "Counting by occurrences" in f.method_text
    assert f.status == "insufficient-data"  # the rest of April had no data


def test_occurrences_skip_excluded_spans_and_follow_the_no_data_policy() -> None:
    t0 = APRIL.start_ms
    healths: list[Health] = ["up", "down", "no-data", "up"]
    spans = tuple(Span(t0 + i * HOUR, t0 + (i + 1) * HOUR, h) for i, h in enumerate(healths))
    tl = Timeline("web", (*spans, Span(t0 + 4 * HOUR, APRIL.end_ms, "up")))
    maintenance = [ExclusionSpan(t0 + HOUR, t0 + 2 * HOUR, "m", "r", "a")]  # the down span starts in it
    down = compute_period(make_sla(counting="occurrences", no_data="down"), tl, APRIL, exclusions=maintenance)
    assert (down.events_total, down.events_good, down.availability) == (4, 3, 75_000)
    excluded = compute_period(
        make_sla(counting="occurrences", no_data="excluded"), tl, APRIL, exclusions=maintenance
    )
    assert (excluded.events_total, excluded.availability) == (3, FULL)


def test_method_text_states_the_rules() -> None:
    f = figures(make_sla(window=Window("month", "Europe/Berlin")), month(2026, 3, "Europe/Berlin"))
    text = f.method_text
    for words in (
        "2026-03-01T00:00:00+01:00",
        "time slices of 1 min",
        "any down time",
        "30.0 %",
        "[lower, upper)",
        "rounded down to 0.001 %",
        "99.9 %",
    ):
        assert words in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slices": SliceRule(slice_ms=0)}, "slice length"),
        ({"slices": SliceRule(slice_ms=MIN, bad_after_ms=2 * MIN)}, "bad_after"),
        ({"target": 0}, "target"),
        ({"partial_weight": FULL + 1}, "partial weight"),
        (
            {
                "credits": dataclasses.replace(
                    CREDITS, tiers=(CreditTier(0, 99_000, 1), CreditTier(98_000, 99_900, 1))
                )
            },
            "tiers overlap",
        ),
    ],
)
def test_bad_definitions_are_usage_errors(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        figures(make_sla(**changes), APRIL)


def test_overlapping_spans_are_a_usage_error() -> None:
    tl = Timeline(
        "web",
        (
            Span(APRIL.start_ms, APRIL.start_ms + HOUR, "up"),
            Span(APRIL.start_ms + 10, APRIL.end_ms, "up", "x#3"),
        ),
    )
    with pytest.raises(UsageError, match="overlap or are out of order at span 1 \\(x#3\\)"):
        compute_period(make_sla(), tl, APRIL)


# ---------------------------------------------------------------- burn rates (SRE workbook)

PAGE = BurnRateAlert("fast burn", factor_milli=14_400, long_ms=HOUR, short_ms=5 * MIN, chain="oncall")
PAGE_SLOW = BurnRateAlert(
    "slow burn", factor_milli=6_000, long_ms=6 * HOUR, short_ms=30 * MIN, chain="oncall"
)
NOW = utc(2026, 4, 10, 12)


def _burning(*outages: tuple[int, int, Health]) -> Timeline:
    return timeline(NOW - DAY, NOW + HOUR, *outages)


def test_one_bad_minute_in_the_last_hour_burns_16_6x() -> None:
    sla = make_sla(burn_rates=(PAGE,))
    tl = _burning((NOW - MIN, NOW, "down"))
    assert burn_rate(sla, tl, NOW, HOUR) == 16_666  # 1/60 of the hour over a 0.1 % budget
    assert burn_rate(sla, tl, NOW, 5 * MIN) == 200_000
    (fired,) = burn_alerts(sla, tl, NOW)
    assert (fired.alert, fired.long_milli, fired.short_milli, fired.firing) == (PAGE, 16_666, 200_000, True)


def test_14_4x_exactly_fires_and_just_below_does_not() -> None:
    """1.44 % of an hour is 51.84 s; with 10 ms slices the burn rate is exact."""
    sla = make_sla(burn_rates=(PAGE,), slices=SliceRule(slice_ms=10))
    exact = _burning((NOW - 51_840, NOW, "down"))
    assert burn_rate(sla, exact, NOW, HOUR) == 14_400
    assert len(burn_alerts(sla, exact, NOW)) == 1
    below = _burning((NOW - 51_830, NOW, "down"))
    assert burn_rate(sla, below, NOW, HOUR) == 14_397
    assert burn_alerts(sla, below, NOW) == []


def test_an_outage_that_ended_stops_paging_by_the_short_window() -> None:
    sla = make_sla(burn_rates=(PAGE, PAGE_SLOW))
    tl = _burning((NOW - 40 * MIN, NOW - 38 * MIN, "down"))
    (fast, slow) = burn_evaluations(sla, tl, NOW)
    assert (fast.long_milli, fast.short_milli, fast.firing) == (33_333, 0, False)
    assert (slow.long_milli, slow.short_milli, slow.firing) == (5_555, 0, False)
    assert burn_alerts(sla, tl, NOW) == []
    later = _burning((NOW - 40 * MIN, NOW, "down"))  # still down: both rules fire
    assert [e.alert.name for e in burn_alerts(sla, later, NOW)] == ["fast burn", "slow burn"]


def test_burn_rate_is_not_measured_without_budget_or_data() -> None:
    tl = _burning((NOW - MIN, NOW, "down"))
    assert burn_rate(make_sla(target=FULL), tl, NOW, HOUR) is None
    assert burn_rate(make_sla(no_data="excluded"), Timeline("web", ()), NOW, HOUR) is None
    with pytest.raises(UsageError, match="longer than zero"):
        burn_rate(make_sla(), tl, NOW, 0)


# ---------------------------------------------------------------- properties: exact integers

HEALTHS: list[Health] = ["up", "down", "partial", "no-data"]
pieces = st.lists(st.tuples(st.integers(1, 400), st.sampled_from([*HEALTHS, "gap"])), min_size=1, max_size=15)
cuts = st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)), max_size=3)


def _reference(
    sla: Sla, tl: Timeline, period: Period, excluded: list[tuple[int, int]]
) -> tuple[int, int, int]:
    """(eligible, bad, partial) by brute force, one millisecond at a time: the independent oracle."""
    state = {t: "no-data" for t in range(period.start_ms, period.end_ms)}
    for span in tl.spans:
        for t in range(max(span.start_ms, period.start_ms), min(span.end_ms, period.end_ms)):
            state[t] = span.health
    for lo, hi in excluded:
        for t in range(max(lo, period.start_ms), min(hi, period.end_ms)):
            state[t] = "excluded"
    eligible = bad = partial = 0
    size = sla.slices.slice_ms
    for s0 in range(period.start_ms, period.end_ms, size):
        ts = range(s0, min(s0 + size, period.end_ms))
        kinds = [
            state[t] if state[t] != "no-data" else ("excluded" if sla.no_data == "excluded" else sla.no_data)
            for t in ts
        ]
        remaining = sum(k != "excluded" for k in kinds)
        down, part = kinds.count("down"), kinds.count("partial")
        eligible += remaining
        mark = max(1, min(sla.slices.bad_after_ms, remaining))
        if remaining and down >= mark:
            bad += remaining
        elif remaining and down + part >= mark:
            partial += remaining
    return eligible, bad, partial


@settings(max_examples=150, deadline=None)
@given(
    pieces,
    cuts,
    st.integers(1, 300),
    st.integers(0, 300),
    st.sampled_from(["down", "up", "excluded"]),
    st.integers(90_000, FULL),
    st.integers(0, FULL),
)
def test_figures_match_a_brute_force_count_and_add_up_exactly(
    parts: list[tuple[int, str]],
    excluded: list[tuple[int, int]],
    slice_ms: int,
    bad_after: int,
    policy: Any,
    target: int,
    weight: int,
) -> None:
    sla = make_sla(
        slices=SliceRule(slice_ms=slice_ms, bad_after_ms=min(bad_after, slice_ms)),
        no_data=policy,
        target=target,
        partial_weight=weight,
        credits=CREDITS,
    )
    period = Period("p", 1000, 3000, "", "", "UTC")
    spans, cursor = [], 900
    for length, health in parts:
        if health != "gap":
            spans.append(Span(cursor, cursor + length, health))  # type: ignore[arg-type]
        cursor += length
    tl = Timeline("web", tuple(spans))
    given_spans = [ExclusionSpan(lo, lo + n, "m", "r", "a") for lo, n in excluded]
    f = compute_period(sla, tl, period, exclusions=given_spans)

    assert (f.eligible_ms, f.bad_ms, f.partial_ms) == _reference(
        sla, tl, period, [(lo, lo + n) for lo, n in excluded]
    )
    exact_weighted = f.bad_ms * FULL + f.partial_ms * weight
    assert (f.downtime_weighted_ms - 1) * FULL < exact_weighted <= f.downtime_weighted_ms * FULL
    assert (
        f.total_ms
        == 2000
        == f.excluded_total_ms + f.eligible_ms + (f.no_data_ms if policy == "excluded" else 0)
    )
    for value in (
        f.total_ms,
        f.eligible_ms,
        f.no_data_ms,
        f.downtime_weighted_ms,
        f.allowed_downtime_ms,
        f.budget_remaining_ms,
    ):
        assert type(value) is int  # never a float anywhere on the way
    if f.eligible_ms == 0:
        assert f.availability is None and f.status == "insufficient-data"
        return
    assert f.availability is not None and f.downtime_share is not None
    assert type(f.availability) is int and f.availability + f.downtime_share == FULL
    good = f.eligible_ms - f.downtime_weighted_ms
    assert f.availability * f.eligible_ms <= good * FULL < (f.availability + 1) * f.eligible_ms  # floor
    assert f.allowed_downtime_ms is not None and f.budget_remaining_ms is not None
    assert f.budget_remaining_ms == f.allowed_downtime_ms - f.downtime_weighted_ms
    assert (f.availability < target) == (f.budget_remaining_ms < 0)  # the edges agree, exactly
    if f.status != "insufficient-data":
        assert (f.status == "breached") == (f.availability < target)
    if f.budget_consumed is not None:
        assert (f.budget_consumed > FULL) == (f.budget_remaining_ms < 0)
    assert (f.credit is not None and f.credit.tier is not None) or f.availability >= 99_900
    if f.credit is not None and f.credit.tier is not None:
        assert f.credit.tier.lower <= f.availability < f.credit.tier.upper


# ---------------------------------------------------------------- speed


def test_a_month_of_one_second_resolution_is_fast() -> None:
    """A month of 1-second probes, coalesced into spans (a flap every ~10 minutes, 1-60 s long, at
    1-second resolution): well under a second. The uncoalesced worst case (2.6 million 1-second
    spans) is measured in the report, not asserted: it depends on the machine."""
    start = APRIL.start_ms
    outages: list[tuple[int, int, Health]] = []
    t = start + 7 * SEC
    n = 0
    while t < APRIL.end_ms - 2 * MIN:
        length = (n * 7919 % 60 + 1) * SEC
        outages.append((t, t + length, "partial" if n % 3 == 0 else "down"))
        t += 10 * MIN + (n * 104_729 % 97) * SEC
        n += 1
    tl = timeline(start, APRIL.end_ms, *outages)
    sla = make_sla(slices=SliceRule(slice_ms=SEC))
    began = time.perf_counter()
    f = compute_period(sla, tl, APRIL)
    elapsed = time.perf_counter() - began
    assert len(f.incidents) == len(outages) >= 4000
    assert f.downtime_raw_ms == sum(hi - lo for lo, hi, _ in outages)
    assert elapsed < 1.0, f"{elapsed:.3f} s"
