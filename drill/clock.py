"""The only clock: monotonic nanoseconds for arithmetic, UTC for display.

UTC timestamps are derived from one (wall, monotonic) anchor taken at start-up, so a
wall-clock step during a drill can never distort a measured duration or reorder events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

# Monotonic time counts from shortly before this process started, not from boot: after 104 days
# of uptime nanoseconds since boot pass 2**53, which RFC 8785 canonical JSON cannot carry.
_ORIGIN_NS = time.monotonic_ns() - 1_000_000_000


def monotonic_ns() -> int:
    """The process's monotonic clock in nanoseconds: the one source of every duration."""
    return time.monotonic_ns() - _ORIGIN_NS


class Clock(Protocol):
    """What the runner needs of time; tests inject a FakeClock."""

    def monotonic_ns(self) -> int: ...

    def utc_at(self, mono_ns: int) -> datetime: ...

    async def sleep_until(self, mono_ns: int) -> None: ...


def wall_utc_now() -> datetime:
    """The wall clock now, in UTC: for stamping log lines, never for a duration."""
    return datetime.now(UTC)


def utc_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and an explicit offset."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp written by utc_iso (or any offset-aware one)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return moment.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def ms_of(moment: datetime) -> int:
    """Exact epoch milliseconds of an aware datetime (no float on the way)."""
    return (moment - _EPOCH) // _MS


_US = timedelta(microseconds=1)


def ns_of(moment: datetime) -> int:
    """Exact epoch nanoseconds of an aware datetime (microsecond resolution, as datetime keeps)."""
    return (moment - _EPOCH) // _US * 1000


def wall_ns() -> int:
    """The wall clock now, in epoch nanoseconds: what a site's agent reports of its own clock."""
    return time.time_ns()


def instant(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds, exactly."""
    return _EPOCH + timedelta(milliseconds=ms)


def utc_iso_ms(ms: int) -> str:
    """UTC ISO 8601 with milliseconds and an explicit offset, as drill writes every time."""
    return instant(ms).isoformat(timespec="milliseconds")


def utc_ms(text: str) -> int:
    """Exact epoch milliseconds of an offset-aware ISO 8601 stamp (ValueError otherwise)."""
    return ms_of(parse_utc(text))


@dataclass(slots=True)
class SystemClock:
    """Real time: monotonic for durations, one anchored wall reading for UTC."""

    anchor_wall_ns: int = 0
    anchor_mono_ns: int = 0

    def __post_init__(self) -> None:
        if not self.anchor_mono_ns:
            self.anchor_mono_ns = monotonic_ns()
            self.anchor_wall_ns = time.time_ns()

    def monotonic_ns(self) -> int:
        return monotonic_ns()

    def utc_at(self, mono_ns: int) -> datetime:
        wall_ns = self.anchor_wall_ns + (mono_ns - self.anchor_mono_ns)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=wall_ns // 1000)

    def utc_now(self) -> datetime:
        return self.utc_at(self.monotonic_ns())

    async def sleep_until(self, mono_ns: int) -> None:
        delay = (mono_ns - monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(slots=True)
class FakeClock:
    """A clock tests move by hand; sleep_until advances it instead of waiting."""

    now_ns: int = 1_000_000_000
    epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic_ns(self) -> int:
        return self.now_ns

    def utc_at(self, mono_ns: int) -> datetime:
        return self.epoch + timedelta(microseconds=mono_ns // 1000)

    def advance(self, delta_ns: int) -> None:
        self.now_ns += delta_ns

    async def sleep_until(self, mono_ns: int) -> None:
        self.now_ns = max(self.now_ns, mono_ns)
        await asyncio.sleep(0)


def wall_now() -> datetime:
    """The current UTC time, for stamps outside a run (report signing time, key files)."""
    return datetime.now(UTC)
