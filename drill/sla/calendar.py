"""Contract periods and planned exclusions, in the contract's time zone, as exact UTC milliseconds.

An SLA's month is the customer's month: March 2026 in Europe/Berlin runs from local midnight on
1 March (UTC+01:00) to local midnight on 1 April (UTC+02:00), so it is one hour short: 44,580
minutes, not 44,640. Periods are therefore computed from local midnights through `zoneinfo`, never
by adding days to a UTC instant, and kept as half-open UTC epoch-millisecond intervals
[start_ms, end_ms) so that adjacent periods share a boundary and no millisecond is counted twice.

Local times that do not exist (the skipped hour of a spring change) or exist twice (the repeated
hour of an autumn change) are read the way RFC 5545 (iCalendar, section 3.3.5) says a DATE-TIME
is read, which is also what `zoneinfo` does with `fold=0`:

- a nonexistent local time uses the UTC offset from *before* the gap, so it lands after the gap
  by the gap's length: Sunday 29 March 2026 02:00 in Europe/Berlin is 03:00 CEST (01:00 UTC);
- an ambiguous local time is its *first* occurrence: Sunday 25 October 2026 02:00 in
  Europe/Berlin is 02:00 CEST (00:00 UTC), not the repeated 02:00 CET an hour later.

An exclusion's duration is elapsed time, not wall-clock time: a 2 h maintenance window lasts
7,200,000 ms whatever the clocks do during it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rruleset, rrulestr

from drill.clock import instant, ms_of, utc_iso_ms
from drill.durations import format_duration_ms
from drill.errors import UsageError
from drill.sla.model import Exclusion, Window


@dataclass(frozen=True, slots=True)
class Period:
    """One contract period: [start_ms, end_ms) in UTC epoch ms, with its local boundaries.

    `label` is "2026-03" (month), "2026-Q1" (quarter), "2026" (year), or for a rolling window
    "rolling 30d to 2026-03-15T00:00:00.000+00:00". `start_local`/`end_local` are ISO 8601 with
    the zone's offset at that instant, e.g. "2026-03-01T00:00:00+01:00".
    """

    label: str
    start_ms: int
    end_ms: int
    start_local: str
    end_local: str
    zone: str

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def start_utc(self) -> str:
        return utc_iso_ms(self.start_ms)

    @property
    def end_utc(self) -> str:
        return utc_iso_ms(self.end_ms)


class ExclusionSpan(NamedTuple):
    """Excluded time inside a period: [start_ms, end_ms), and whose exclusion it is.

    Where exclusions overlap, the overlapping stretch carries every name, reason and approver,
    joined with " + " in the order the exclusions were given, so no millisecond is excluded twice
    and none loses its justification.
    """

    start_ms: int
    end_ms: int
    name: str
    reason: str
    approver: str


# ---------------------------------------------------------------- zones and instants


@lru_cache(maxsize=64)
def zone_of(name: str) -> ZoneInfo:
    """The IANA zone, or a one-line UsageError naming it (never the machine's local zone)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(
            f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Berlin"
        ) from exc


def local_iso(ms: int, zone: str) -> str:
    """ISO 8601 in the contract's zone, with that instant's offset; milliseconds only if any."""
    moment = instant(ms).astimezone(zone_of(zone))
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def local_to_ms(wall: datetime, zone: str) -> int:
    """A naive local wall time in `zone` to epoch ms, by RFC 5545's reading (fold=0, see above)."""
    return ms_of(wall.replace(tzinfo=zone_of(zone), fold=0))


# ---------------------------------------------------------------- calendar periods


def period_of(window: Window, instant_ms: int) -> Period:
    """The period of `window` that contains `instant_ms` (for rolling: the window ending there)."""
    if window.kind == "rolling":
        return rolling_period(window, instant_ms)
    local = instant(instant_ms).astimezone(zone_of(window.time_zone))
    year, month = local.year, local.month
    if window.kind == "month":
        return _calendar_period(window.time_zone, year, month, 1, f"{year:04d}-{month:02d}")
    if window.kind == "quarter":
        quarter = (month - 1) // 3 + 1
        return _calendar_period(window.time_zone, year, 3 * quarter - 2, 3, f"{year:04d}-Q{quarter}")
    if window.kind == "year":
        return _calendar_period(window.time_zone, year, 1, 12, f"{year:04d}")
    raise UsageError(f"unknown window kind {window.kind!r}", hint="use month, quarter, year or rolling")


def periods_between(window: Window, start_ms: int, end_ms: int) -> list[Period]:
    """Every period that overlaps [start_ms, end_ms), whole (not clipped), oldest first.

    Rolling windows are tiled backwards from `end_ms`: [end − r, end), [end − 2r, end − r), ...
    until one reaches back to `start_ms`, so the newest window is the one that ends at `end_ms`.
    """
    if end_ms < start_ms:
        raise UsageError(f"the range ends ({utc_iso_ms(end_ms)}) before it starts ({utc_iso_ms(start_ms)})")
    if end_ms == start_ms:
        return []
    if window.kind == "rolling":
        size = _rolling_size(window)
        count = -(-(end_ms - start_ms) // size)  # ceiling: the oldest window reaches start_ms
        return [rolling_period(window, end_ms - k * size) for k in range(count - 1, -1, -1)]
    periods = [period_of(window, start_ms)]
    while periods[-1].end_ms < end_ms:
        periods.append(period_of(window, periods[-1].end_ms))
    return periods


def period_days(period: Period) -> list[Period]:
    """The local calendar days of a period (for a calendar of daily availability), labelled
    "2026-03-29": from local midnight to local midnight, so a spring day is 23 h and an autumn one
    25 h; the first and last are clipped to the period (a rolling window starts mid-day)."""
    zone = period.zone
    day = instant(period.start_ms).astimezone(zone_of(zone)).date()
    days: list[Period] = []
    while True:
        start = max(local_to_ms(datetime(day.year, day.month, day.day), zone), period.start_ms)
        if start >= period.end_ms:
            return days
        following = day + timedelta(days=1)
        end = min(local_to_ms(datetime(following.year, following.month, following.day), zone), period.end_ms)
        days.append(Period(day.isoformat(), start, end, local_iso(start, zone), local_iso(end, zone), zone))
        day = following


def rolling_period(window: Window, end_ms: int) -> Period:
    """The rolling window [end_ms − rolling_ms, end_ms)."""
    size = _rolling_size(window)
    start = end_ms - size
    return Period(
        label=f"rolling {format_duration_ms(size)} to {utc_iso_ms(end_ms)}",
        start_ms=start,
        end_ms=end_ms,
        start_local=local_iso(start, window.time_zone),
        end_local=local_iso(end_ms, window.time_zone),
        zone=window.time_zone,
    )


def _rolling_size(window: Window) -> int:
    if window.rolling_ms <= 0:
        raise UsageError("a rolling window needs a length above zero", hint="e.g. rolling: 30d")
    return window.rolling_ms


def _calendar_period(zone: str, year: int, first_month: int, months: int, label: str) -> Period:
    """From local midnight on the 1st of `first_month` to local midnight `months` months later."""
    end_month_index = year * 12 + (first_month - 1) + months
    end_year, end_month = divmod(end_month_index, 12)
    start = local_to_ms(datetime(year, first_month, 1), zone)
    end = local_to_ms(datetime(end_year, end_month + 1, 1), zone)
    return Period(label, start, end, local_iso(start, zone), local_iso(end, zone), zone)


# ---------------------------------------------------------------- exclusions

_TZID = re.compile(r"DTSTART;TZID=", re.IGNORECASE)
_DTSTART = re.compile(r"DTSTART[:;]", re.IGNORECASE)
_DTSTART_UTC = re.compile(r"DTSTART:\d{8}T\d{6}Z", re.IGNORECASE)


def exclusion_spans(exclusions: Sequence[Exclusion], period: Period, zone: str) -> list[ExclusionSpan]:
    """Every occurrence of the exclusions that touches `period`, clipped to it, overlaps merged.

    DTSTART is a local wall time in `zone` (the contract's), read by RFC 5545's rule for gaps and
    overlaps (module docstring); a DTSTART ending in Z is a UTC instant. A DTSTART with TZID is
    refused: the contract has one zone, and a second one in a rule is a mistake waiting to happen.
    """
    raw: list[ExclusionSpan] = []
    for exclusion in exclusions:
        for start in _occurrence_starts(exclusion, period, zone):
            end = start + exclusion.duration_ms
            raw.append(ExclusionSpan(start, end, exclusion.name, exclusion.reason, exclusion.approver))
    return merge_spans(raw, period.start_ms, period.end_ms)


def _occurrence_starts(exclusion: Exclusion, period: Period, zone: str) -> list[int]:
    """Start instants (epoch ms) of the occurrences that may overlap the period."""
    if exclusion.duration_ms <= 0:
        raise UsageError(f"exclusion {exclusion.name!r}: the duration must be above zero")
    rules = _parse_rule(exclusion)
    utc = bool(_DTSTART_UTC.search(exclusion.rrule))
    # Search a little wider than the period in wall time (a day either side covers any offset
    # change), and back by the duration so an occurrence that started before the period counts.
    lo = instant(period.start_ms - exclusion.duration_ms) - timedelta(days=1)
    hi = instant(period.end_ms) + timedelta(days=1)
    if utc:
        walls = rules.between(lo, hi, inc=True)
        return [ms_of(w) for w in walls]
    tz = zone_of(zone)
    walls = rules.between(
        lo.astimezone(tz).replace(tzinfo=None), hi.astimezone(tz).replace(tzinfo=None), inc=True
    )
    return [local_to_ms(w, zone) for w in walls]


def _parse_rule(exclusion: Exclusion) -> rruleset:
    where = f"exclusion {exclusion.name!r}"
    if not _DTSTART.search(exclusion.rrule):
        raise UsageError(
            f"{where}: the rule has no DTSTART",
            hint="e.g. DTSTART:20260101T020000\\nRRULE:FREQ=WEEKLY;BYDAY=SU",
        )
    if _TZID.search(exclusion.rrule):
        raise UsageError(
            f"{where}: DTSTART with TZID is not accepted",
            hint="write DTSTART as a local time without TZID; it is read in the contract's time zone",
        )
    try:
        parsed = rrulestr(exclusion.rrule, forceset=True)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{where}: invalid RRULE: {exc}") from exc
    assert isinstance(parsed, rruleset)
    return parsed


def merge_spans(spans: Sequence[ExclusionSpan], start_ms: int, end_ms: int) -> list[ExclusionSpan]:
    """Clip to [start_ms, end_ms) and sweep into disjoint stretches, sorted.

    Each stretch is labelled by every span covering it (names, reasons and approvers joined with
    " + " in the order first given); adjacent stretches with the same label set are joined, so
    the weekly occurrences of one rule stay separate but two rules meeting end to start do not
    lose either name.
    """
    keys: dict[tuple[str, str, str], int] = {}
    events: list[tuple[int, int, int]] = []  # (time, -1 end / +1 start, label index)
    for span in spans:
        lo, hi = max(span.start_ms, start_ms), min(span.end_ms, end_ms)
        if lo >= hi:
            continue
        index = keys.setdefault((span.name, span.reason, span.approver), len(keys))
        events.append((lo, 1, index))
        events.append((hi, -1, index))
    events.sort()  # at one instant, ends (-1) come before starts (+1)
    labels = list(keys)
    active: dict[int, int] = {}
    pieces: list[tuple[int, int, tuple[int, ...]]] = []
    previous = 0
    for time, delta, index in events:
        if active and time > previous:
            label = tuple(sorted(active))
            if pieces and pieces[-1][1] == previous and pieces[-1][2] == label:
                pieces[-1] = (pieces[-1][0], time, label)
            else:
                pieces.append((previous, time, label))
        count = active.get(index, 0) + delta
        if count:
            active[index] = count
        else:
            active.pop(index, None)
        previous = time
    return [_labelled(lo, hi, [labels[i] for i in label]) for lo, hi, label in pieces]


def _labelled(start: int, end: int, chosen: list[tuple[str, str, str]]) -> ExclusionSpan:
    return ExclusionSpan(
        start,
        end,
        " + ".join(c[0] for c in chosen),
        " + ".join(c[1] for c in chosen),
        " + ".join(c[2] for c in chosen),
    )
