"""Contract periods in the contract's zone, and maintenance RRULEs across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drill.clock import ms_of, utc_iso_ms
from drill.errors import UsageError
from drill.sla.calendar import (
    ExclusionSpan,
    Period,
    exclusion_spans,
    local_iso,
    local_to_ms,
    merge_spans,
    period_days,
    period_of,
    periods_between,
)
from drill.sla.model import Exclusion, Window

MIN = 60_000
HOUR = 60 * MIN
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return ms_of(datetime(year, month, day, hour, minute, tzinfo=UTC))


SUNDAY_PATCHING = Exclusion(
    name="sunday patching",
    rrule="DTSTART:20260104T020000\nRRULE:FREQ=WEEKLY;BYDAY=SU",
    duration_ms=2 * HOUR,
    reason="OS patching",
    approver="change board CAB-12",
)


# ---------------------------------------------------------------- months, quarters, years


def test_march_2026_in_berlin_has_44580_minutes() -> None:
    period = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    assert period.label == "2026-03"
    assert period.duration_ms == 44_580 * MIN
    assert period.start_local == "2026-03-01T00:00:00+01:00"
    assert period.end_local == "2026-04-01T00:00:00+02:00"
    assert period.start_utc == "2026-02-28T23:00:00.000+00:00"
    assert period.end_utc == "2026-03-31T22:00:00.000+00:00"


def test_october_2026_in_berlin_has_an_hour_more() -> None:
    period = period_of(Window("month", BERLIN), utc(2026, 10, 15))
    assert period.duration_ms == (44_640 + 60) * MIN
    assert (period.start_local, period.end_local) == (
        "2026-10-01T00:00:00+02:00",
        "2026-11-01T00:00:00+01:00",
    )


def test_the_same_utc_instant_is_in_the_zones_month_not_utcs() -> None:
    # 23:30 UTC on 31 March is already 1 April in Berlin.
    assert period_of(Window("month", BERLIN), utc(2026, 3, 31, 23, 30)).label == "2026-04"
    assert period_of(Window("month", "UTC"), utc(2026, 3, 31, 23, 30)).label == "2026-03"


def test_boundaries_are_half_open() -> None:
    window = Window("month", BERLIN)
    march = period_of(window, utc(2026, 3, 15))
    assert period_of(window, march.start_ms) == march
    assert period_of(window, march.end_ms - 1) == march
    assert period_of(window, march.end_ms).label == "2026-04"
    assert period_of(window, march.start_ms - 1).label == "2026-02"


def test_a_quarter_in_new_york() -> None:
    q1 = period_of(Window("quarter", NEW_YORK), utc(2026, 2, 10))
    assert q1.label == "2026-Q1"
    assert (q1.start_local, q1.end_local) == ("2026-01-01T00:00:00-05:00", "2026-04-01T00:00:00-04:00")
    assert q1.duration_ms == (90 * 24 - 1) * HOUR  # 8 March 2026 springs forward
    q4 = period_of(Window("quarter", NEW_YORK), utc(2026, 12, 1))
    assert q4.label == "2026-Q4"
    assert q4.duration_ms == (92 * 24 + 1) * HOUR  # 1 November 2026 falls back


def test_a_year_in_new_york() -> None:
    year = period_of(Window("year", NEW_YORK), utc(2026, 7, 4))
    assert year.label == "2026"
    assert year.start_utc == "2026-01-01T05:00:00.000+00:00"
    assert year.end_utc == "2027-01-01T05:00:00.000+00:00"
    assert year.duration_ms == 365 * 24 * HOUR  # the spring hour comes back in the autumn
    # three in the morning UTC on New Year's Day is still the old year in New York
    assert period_of(Window("year", NEW_YORK), utc(2026, 1, 1, 3)).label == "2025"


def test_periods_between_tile_the_range_without_gaps() -> None:
    months = periods_between(Window("month", NEW_YORK), utc(2026, 1, 1, 5), utc(2027, 1, 1, 5))
    assert [p.label for p in months] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert all(a.end_ms == b.start_ms for a, b in pairwise(months))
    assert sum(p.duration_ms for p in months) == 365 * 24 * HOUR
    quarters = periods_between(Window("quarter", NEW_YORK), utc(2026, 1, 1), utc(2026, 7, 1))
    assert [q.label for q in quarters] == ["2025-Q4", "2026-Q1", "2026-Q2"]  # 00:00 UTC is still 2025 there


def test_periods_between_an_empty_or_reversed_range() -> None:
    assert periods_between(Window("month", BERLIN), utc(2026, 3, 1), utc(2026, 3, 1)) == []
    with pytest.raises(UsageError, match=r"ends .* before it starts"):
        periods_between(Window("month", BERLIN), utc(2026, 3, 2), utc(2026, 3, 1))


def test_a_rolling_window_ends_at_the_instant() -> None:
    window = Window("rolling", BERLIN, rolling_ms=30 * 24 * HOUR)
    now = utc(2026, 3, 31, 12)
    period = period_of(window, now)
    assert (period.start_ms, period.end_ms) == (now - 30 * 24 * HOUR, now)
    assert period.label == "rolling 30d to 2026-03-31T12:00:00.000+00:00"
    assert period.end_local == "2026-03-31T14:00:00+02:00"
    tiles = periods_between(window, now - 45 * 24 * HOUR, now)
    assert [p.end_ms for p in tiles] == [now - 30 * 24 * HOUR, now]
    with pytest.raises(UsageError, match="rolling window needs a length"):
        period_of(Window("rolling", BERLIN), now)


def test_the_days_of_a_period_are_local_days() -> None:
    march = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    days = period_days(march)
    assert len(days) == 31
    assert (days[0].label, days[0].start_local, days[-1].label) == (
        "2026-03-01",
        "2026-03-01T00:00:00+01:00",
        "2026-03-31",
    )
    assert [d.duration_ms for d in days].count(24 * HOUR) == 30
    assert days[28].label == "2026-03-29" and days[28].duration_ms == 23 * HOUR
    assert all(a.end_ms == b.start_ms for a, b in pairwise(days))
    assert (days[0].start_ms, days[-1].end_ms) == (march.start_ms, march.end_ms)
    rolling = period_of(Window("rolling", BERLIN, rolling_ms=36 * HOUR), utc(2026, 3, 10, 12))
    parts = period_days(rolling)  # 00:00 UTC on the 9th is 01:00 local; 12:00 UTC on the 10th is 13:00
    assert [(d.label, d.duration_ms) for d in parts] == [("2026-03-09", 23 * HOUR), ("2026-03-10", 13 * HOUR)]


def test_an_unknown_zone_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown time zone 'Europe/Atlantis'"):
        period_of(Window("month", "Europe/Atlantis"), 0)


def test_local_times_in_a_gap_and_an_overlap_read_as_rfc_5545_says() -> None:
    # 02:30 on 29 March 2026 does not exist in Berlin: the offset before the gap (+01:00) applies
    gap = local_to_ms(datetime(2026, 3, 29, 2, 30), BERLIN)
    assert utc_iso_ms(gap) == "2026-03-29T01:30:00.000+00:00"
    assert local_iso(gap, BERLIN) == "2026-03-29T03:30:00+02:00"
    # 02:30 on 25 October 2026 happens twice: the first one (CEST)
    overlap = local_to_ms(datetime(2026, 10, 25, 2, 30), BERLIN)
    assert local_iso(overlap, BERLIN) == "2026-10-25T02:30:00+02:00"


# ---------------------------------------------------------------- exclusions


def _local(spans: list[ExclusionSpan]) -> list[tuple[str, str]]:
    return [(local_iso(s.start_ms, BERLIN), local_iso(s.end_ms, BERLIN)) for s in spans]


def test_weekly_sunday_maintenance_across_the_spring_change() -> None:
    """Decision: 02:00 on 29 March 2026 does not exist; the window starts at 03:00 CEST (the RFC 5545
    reading) and lasts its full 2 h of elapsed time, to 05:00 CEST."""
    march = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    spans = exclusion_spans([SUNDAY_PATCHING], march, BERLIN)
    assert _local(spans) == [
        ("2026-03-01T02:00:00+01:00", "2026-03-01T04:00:00+01:00"),
        ("2026-03-08T02:00:00+01:00", "2026-03-08T04:00:00+01:00"),
        ("2026-03-15T02:00:00+01:00", "2026-03-15T04:00:00+01:00"),
        ("2026-03-22T02:00:00+01:00", "2026-03-22T04:00:00+01:00"),
        ("2026-03-29T03:00:00+02:00", "2026-03-29T05:00:00+02:00"),
    ]
    assert all(s.end_ms - s.start_ms == 2 * HOUR for s in spans)
    assert utc_iso_ms(spans[-1].start_ms) == "2026-03-29T01:00:00.000+00:00"
    assert {(s.name, s.reason, s.approver) for s in spans} == {
        ("sunday patching", "OS patching", "change board CAB-12")
    }


def test_weekly_sunday_maintenance_across_the_autumn_change() -> None:
    """Decision: 02:00 on 25 October 2026 happens twice; the window starts at the first (CEST) and
    lasts 2 h of elapsed time: to 03:00 CET, which is one hour of wall clock later."""
    october = period_of(Window("month", BERLIN), utc(2026, 10, 15))
    spans = exclusion_spans([SUNDAY_PATCHING], october, BERLIN)
    assert _local(spans)[-1] == ("2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00")
    assert spans[-1].end_ms - spans[-1].start_ms == 2 * HOUR
    assert len(spans) == 4


def test_occurrences_are_clipped_to_the_period() -> None:
    nightly = Exclusion("nightly", "DTSTART:20260101T230000\nRRULE:FREQ=DAILY", 2 * HOUR, "backup", "ops")
    march = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    spans = exclusion_spans([nightly], march, BERLIN)
    # the 28 February occurrence reaches an hour into March; the 31 March one is cut at midnight
    assert _local(spans)[0] == ("2026-03-01T00:00:00+01:00", "2026-03-01T01:00:00+01:00")
    assert _local(spans)[-1] == ("2026-03-31T23:00:00+02:00", "2026-04-01T00:00:00+02:00")
    assert sum(s.end_ms - s.start_ms for s in spans) == 30 * 2 * HOUR + 2 * HOUR  # 30 full + 2 halves


def test_overlapping_exclusions_merge_and_keep_both_names() -> None:
    day = Period("d", utc(2026, 3, 1), utc(2026, 3, 2), "", "", "UTC")
    a = Exclusion("a", "DTSTART:20260301T010000\nRRULE:FREQ=DAILY;COUNT=1", 2 * HOUR, "ra", "pa")
    b = Exclusion("b", "DTSTART:20260301T020000\nRRULE:FREQ=DAILY;COUNT=1", 2 * HOUR, "rb", "pb")
    spans = exclusion_spans([a, b], day, "UTC")
    assert [(s.start_ms - day.start_ms, s.end_ms - day.start_ms, s.name) for s in spans] == [
        (1 * HOUR, 2 * HOUR, "a"),
        (2 * HOUR, 3 * HOUR, "a + b"),
        (3 * HOUR, 4 * HOUR, "b"),
    ]
    assert spans[1].reason == "ra + rb" and spans[1].approver == "pa + pb"


def test_a_utc_dtstart_is_an_instant() -> None:
    rule = Exclusion("utc", "DTSTART:20260329T010000Z\nRRULE:FREQ=DAILY;COUNT=1", HOUR, "r", "p")
    march = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    (span,) = exclusion_spans([rule], march, BERLIN)
    assert span.start_ms == utc(2026, 3, 29, 1)


@pytest.mark.parametrize(
    ("rrule", "duration", "message"),
    [
        ("RRULE:FREQ=WEEKLY;BYDAY=SU", HOUR, "has no DTSTART"),
        ("DTSTART;TZID=Europe/Berlin:20260101T020000\nRRULE:FREQ=WEEKLY", HOUR, "TZID is not accepted"),
        ("DTSTART:20260101T020000\nRRULE:FREQ=SOMETIMES", HOUR, "invalid RRULE"),
        ("DTSTART:20260101T020000\nRRULE:FREQ=WEEKLY", 0, "duration must be above zero"),
    ],
)
def test_bad_rules_are_usage_errors(rrule: str, duration: int, message: str) -> None:
    march = period_of(Window("month", BERLIN), utc(2026, 3, 15))
    with pytest.raises(UsageError, match=message):
        exclusion_spans([Exclusion("x", rrule, duration, "r", "p")], march, BERLIN)


intervals = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(1, 300), st.sampled_from(["a", "b", "c"])), max_size=12
)


@given(intervals)
def test_merged_spans_cover_exactly_the_union(raw: list[tuple[int, int, str]]) -> None:
    spans = [ExclusionSpan(lo, lo + size, name, name, name) for lo, size, name in raw]
    merged = merge_spans(spans, 100, 900)
    covered = {t for lo, size, _ in raw for t in range(max(lo, 100), min(lo + size, 900))}
    assert sum(s.end_ms - s.start_ms for s in merged) == len(covered)
    assert all(a.end_ms <= b.start_ms for a, b in pairwise(merged))
    for s in merged:  # each stretch names exactly the spans covering its first millisecond
        names = {name for lo, size, name in raw if lo <= s.start_ms < lo + size}
        assert set(s.name.split(" + ")) == names
