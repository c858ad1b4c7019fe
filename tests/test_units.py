"""drill.units: how people read durations, latencies and counts."""

from __future__ import annotations

import pytest

from drill.units import NOT_MEASURED, human_bp, human_count, human_ms, human_pm, human_us


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (250, "250 ms"),
        (999, "999 ms"),
        (1_000, "1 s"),
        (1_500, "1.5 s"),
        (1_449, "1.4 s"),
        (59_949, "59.9 s"),
        (59_950, "1 min"),  # rounds up into the next unit, never "60 s"
        (245_000, "4 min 5 s"),
        (900_000, "15 min"),  # the reported "900000 ms"
        (300_000, "5 min"),  # the reported "300.00s"
        (9_000_000, "2 h 30 min"),
        (183_600_000, "2 d 3 h"),
        (-1_500, "-1.5 s"),
        (None, NOT_MEASURED),
    ],
)
def test_human_ms_reads_as_people_say_it(ms: int | None, text: str) -> None:
    assert human_ms(ms) == text


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0 ms"),
        (49, "0 ms"),
        (400, "0.4 ms"),
        (2_149, "2.1 ms"),
        (2_000, "2 ms"),
        (9_949, "9.9 ms"),
        (9_950, "10 ms"),  # from 10 ms on, as human_ms: no decimals
        (35_499, "35 ms"),
        (35_500, "36 ms"),
        (1_500_000, "1.5 s"),
        (None, NOT_MEASURED),
    ],
)
def test_human_us_shows_a_latency_with_the_precision_it_deserves(us: int | None, text: str) -> None:
    assert human_us(us) == text


def test_human_count_says_one_page_and_two_pages() -> None:
    assert [human_count(n, "page") for n in (0, 1, 2)] == ["0 pages", "1 page", "2 pages"]
    assert human_count(3, "acknowledged write") == "3 acknowledged writes"
    assert human_count(2, "person", "people") == "2 people"


def test_human_pm_and_human_bp() -> None:
    assert human_pm(2_300, 250) == "2.3 s ± 250 ms"
    assert human_pm(2_300, 0) == "2.3 s"
    assert human_pm(None, 250) == NOT_MEASURED
    assert human_bp(9_987) == "99.87 %"
    assert human_bp(None) == NOT_MEASURED
