"""What one journal says for an SLA report, in the compact form a segment's seal carries.

A `SegmentDigest` holds, per probe, its observations already turned into their reach (drill.sla.
sources states the rules: an observation holds from its start to the next one's, at most two
probe intervals past its completion), adjacent stretches of one answer merged into one piece
that names the journal lines behind it; the last observation is kept as it was, because how far
it reaches depends on the segment after it. Beside them: the journal's first and last instant,
the probes it knows, the pages and acknowledgements of the contact chains, and the round trips
of the probes a delay KPI watches (`tracked`), one by one.

`DigestBuilder` makes one from a journal's events in their order. The live watch feeds it as it
journals (so sealing a segment costs no re-reading), a restart feeds it the segment a crash left
open, and `drill sla report` feeds it every line it verifies: the seal's digest and a full
re-reading come out of the same code, and agree by construction. Memory is bounded by the
probes' changes of answer, not by their observations (a probe whose interval the journal does
not state is the exception: its observations wait for the end, as the interval comes from their
ticks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from drill.clock import ms_of
from drill.evidence.events import Event, PageAcked, PageSent, ProbeObserved, RunStarted, WatchSegment
from drill.evidence.snapshot import Plan

__all__ = ["DigestBuilder", "Obs", "PageRecord", "Piece", "ProbeDigest", "SegmentDigest", "Trip", "UtcMs"]


@dataclass(frozen=True, slots=True)
class Piece:
    """[start_ms, end_ms) where the probe's answer was `ok`, from journal lines lo..hi."""

    start_ms: int
    end_ms: int
    ok: bool
    lo: int
    hi: int


@dataclass(frozen=True, slots=True)
class Obs:
    """One observation as journalled: started, completed (at least 1 ms later), its answer, line."""

    start_ms: int
    done_ms: int
    ok: bool
    seq: int


@dataclass(frozen=True, slots=True)
class ProbeDigest:
    interval_ms: int | None  # the plan's, else what the ticks showed; None: neither told
    first_start_ms: int | None  # the first observation's start (a rotation carries up to it)
    pieces: tuple[Piece, ...]  # every observation but the last, merged
    last: Obs | None

    def reach(self, bound_ms: int) -> tuple[Piece, ...]:
        """Every piece, the last observation's reaching at most to `bound_ms` (the journal's last
        event, or the first observation of the segment a rotation continued this one with)."""
        piece = _reach(self.last, self.interval_ms, bound_ms) if self.last is not None else None
        if piece is None:
            return self.pieces
        pieces = list(self.pieces)
        _append(pieces, piece)
        return tuple(pieces)


@dataclass(frozen=True, slots=True)
class PageRecord:
    """A page of a contact chain: when it was sent, its id, its chain(s), the trigger it answers
    (a decimal string: a monotonic instant in ns, too large for an exact JSON number)."""

    sent_ms: int
    page_id: str
    chain: str
    chains: tuple[str, ...]
    trigger: str


@dataclass(frozen=True, slots=True)
class Trip:
    """A round trip of a tracked probe: when it started, whether it completed, its latency."""

    at_ms: int
    ok: bool
    latency_ms: int


@dataclass(frozen=True, slots=True)
class SegmentDigest:
    first_ms: int
    last_ms: int
    continues: str  # the file a watch rotation continued with this one ('' after a start or restart)
    seen: tuple[str, ...]  # every "asset/probe" the journal knows (plan or observation)
    probes: Mapping[str, ProbeDigest]
    pages: tuple[PageRecord, ...] = ()  # first page.sent of each page id, in journal order
    acks: Mapping[str, int] = field(default_factory=dict)  # page id -> first ack, ms since trigger
    tracked: tuple[str, ...] = ()  # the probes whose round trips are kept
    trips: Mapping[str, tuple[Trip, ...]] = field(default_factory=dict)

    def to_data(self) -> dict[str, object]:
        """The JSON form a seal stores: arrays for the many small records."""
        return {
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "continues": self.continues,
            "seen": list(self.seen),
            "probes": {name: _probe_data(p) for name, p in self.probes.items()},
            "pages": [[p.sent_ms, p.page_id, p.chain, list(p.chains), p.trigger] for p in self.pages],
            "acks": dict(self.acks),
            "tracked": list(self.tracked),
            "trips": {name: [[t.at_ms, t.ok, t.latency_ms] for t in ts] for name, ts in self.trips.items()},
        }

    @classmethod
    def from_data(cls, data: object) -> SegmentDigest:
        """ValueError (or TypeError/KeyError, which a caller treats alike) for anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("the digest is not an object")
        probes = data["probes"]
        if not isinstance(probes, dict):
            raise ValueError("digest probes is not an object")
        trips = data["trips"]
        if not isinstance(trips, dict):
            raise ValueError("digest trips is not an object")
        return cls(
            first_ms=_int(data["first_ms"]),
            last_ms=_int(data["last_ms"]),
            continues=_str(data["continues"]),
            seen=tuple(_str(s) for s in data["seen"]),
            probes={_str(name): _probe_of(p) for name, p in probes.items()},
            pages=tuple(
                PageRecord(_int(a), _str(b), _str(c), tuple(_str(x) for x in d), _str(e))
                for a, b, c, d, e in data["pages"]
            ),
            acks={_str(k): _int(v) for k, v in data["acks"].items()},
            tracked=tuple(_str(s) for s in data["tracked"]),
            trips={
                _str(n): tuple(Trip(_int(a), _bool(b), _int(c)) for a, b, c in ts) for n, ts in trips.items()
            },
        )


def _probe_data(p: ProbeDigest) -> dict[str, object]:
    last = p.last
    return {
        "interval_ms": p.interval_ms,
        "first_start_ms": p.first_start_ms,
        "pieces": [[x.start_ms, x.end_ms, x.ok, x.lo, x.hi] for x in p.pieces],
        "last": None if last is None else [last.start_ms, last.done_ms, last.ok, last.seq],
    }


def _probe_of(data: object) -> ProbeDigest:
    if not isinstance(data, dict):
        raise ValueError("a digest probe is not an object")
    last = data["last"]
    return ProbeDigest(
        interval_ms=None if data["interval_ms"] is None else _int(data["interval_ms"]),
        first_start_ms=None if data["first_start_ms"] is None else _int(data["first_start_ms"]),
        pieces=tuple(Piece(_int(a), _int(b), _bool(c), _int(d), _int(e)) for a, b, c, d, e in data["pieces"]),
        last=None if last is None else Obs(_int(last[0]), _int(last[1]), _bool(last[2]), _int(last[3])),
    )


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _reach(obs: Obs, interval_ms: int | None, next_ms: int) -> Piece | None:
    """An observation's piece: to `next_ms` (the next start, or a bound), at most two intervals past
    its completion (its completion when no interval is known); None when that leaves it no time
    (an observation that starts earlier than the one before it leaves that one none)."""
    limit = obs.done_ms + 2 * interval_ms if interval_ms is not None else obs.done_ms
    end = min(next_ms, limit)
    return Piece(obs.start_ms, end, obs.ok, obs.seq, obs.seq) if end > obs.start_ms else None


def _append(pieces: list[Piece], piece: Piece) -> None:
    """Add `piece`, merged into the last one when it continues it with the same answer."""
    before = pieces[-1] if pieces else None
    if before is not None and before.end_ms == piece.start_ms and before.ok == piece.ok:
        pieces[-1] = Piece(before.start_ms, piece.end_ms, piece.ok, before.lo, piece.hi)
    else:
        pieces.append(piece)


class UtcMs:
    """A journal's `utc` text as epoch ms, parsing each second once: drill writes
    "YYYY-MM-DDTHH:MM:SS.mmm+00:00" and events come many per second; any other form is parsed
    in full."""

    __slots__ = ("_second", "_second_ms")

    def __init__(self) -> None:
        self._second = ""
        self._second_ms = 0

    def __call__(self, utc: str) -> int:
        if len(utc) != 29 or utc[19] != "." or not utc.endswith("+00:00") or not utc[20:23].isdigit():
            return ms_of(datetime.fromisoformat(utc))
        second = utc[:19]
        if second != self._second:
            self._second, self._second_ms = second, ms_of(datetime.fromisoformat(second + "+00:00"))
        return self._second_ms + int(utc[20:23])


@dataclass(slots=True)
class _Waiting:
    """An observation of a probe whose interval is not known yet (kept whole until the end)."""

    obs: Obs
    tick: int
    scheduled_ns: int


@dataclass(slots=True)
class _ProbeState:
    interval_ms: int | None = None  # pinned at the first observation when the plan gave one
    first_start_ms: int | None = None
    pieces: list[Piece] = field(default_factory=list)
    pending: Obs | None = None  # the latest observation: its reach ends at the next one's start
    waiting: list[_Waiting] | None = None  # observations kept whole: the plan gave no interval

    def close_pending(self, next_start_ms: int) -> None:
        """The pending observation's piece, reaching the next start (see _reach), merged on."""
        piece = _reach(self.pending, self.interval_ms, next_start_ms) if self.pending is not None else None
        if piece is not None:
            _append(self.pieces, piece)


class DigestBuilder:
    """Feed it a journal's events in order (`take`), then `finish`. `wanted` limits the probes
    whose pieces are kept (None: every probe); `tracked` names those whose round trips are kept."""

    def __init__(self, wanted: Iterable[str] | None = None, tracked: Iterable[str] = ()) -> None:
        self.wanted = frozenset(wanted) if wanted is not None else None
        self.tracked = tuple(dict.fromkeys(tracked))
        self.utc_ms = UtcMs()
        self.count = 0
        self.first_ms = 0
        self.last_ms = 0
        self.continues = ""
        self.seen: dict[str, None] = {}
        self.planned: dict[str, int] = {}
        self.probes: dict[str, _ProbeState] = {}
        self.pages: dict[str, PageRecord] = {}
        self.acks: dict[str, int] = {}
        self.trips: dict[str, list[Trip]] = {name: [] for name in self.tracked}

    def take(self, event: Event) -> None:
        at_ms = self.utc_ms(event.utc)
        if self.count == 0:
            self.first_ms = self.last_ms = at_ms
        self.first_ms = min(self.first_ms, at_ms)
        self.last_ms = max(self.last_ms, at_ms)
        self.count += 1
        payload = event.payload
        if isinstance(payload, ProbeObserved):
            self._observed(f"{event.asset}/{payload.probe}", payload, event.seq, at_ms)
        elif isinstance(payload, PageSent):
            trigger = str(payload.trigger_mono_ns) if payload.trigger_mono_ns else f"at {at_ms}"
            record = PageRecord(at_ms, payload.page_id, payload.chain, payload.chains, trigger)
            self.pages.setdefault(payload.page_id, record)
        elif isinstance(payload, PageAcked):
            self.acks.setdefault(payload.page_id, payload.since_trigger_ms)
        elif isinstance(payload, RunStarted) and payload.plan is not None:
            self._plan(payload.plan)
        elif isinstance(payload, WatchSegment):
            self._plan(payload.plan)
            if payload.reason == "rotation" and self.count == 1:
                self.continues = payload.previous_file

    def _plan(self, plan: Plan) -> None:
        for asset in plan.assets:
            for probe in asset.probes:
                name = f"{asset.id}/{probe.name}"
                self.seen.setdefault(name)
                if probe.interval_ms:
                    self.planned[name] = probe.interval_ms

    def _observed(self, name: str, payload: ProbeObserved, seq: int, at_ms: int) -> None:
        self.seen.setdefault(name)
        trips = self.trips.get(name)
        if trips is not None:
            trips.append(Trip(at_ms, payload.ok, payload.latency_us // 1000))
        if self.wanted is not None and name not in self.wanted:
            return
        state = self.probes.get(name)
        if state is None:
            state = self.probes[name] = _ProbeState(first_start_ms=at_ms)
            state.interval_ms = self.planned.get(name)
            if state.interval_ms is None:
                state.waiting = []
        obs = Obs(at_ms, at_ms + max(payload.latency_us // 1000, 1), payload.ok, seq)
        if state.waiting is not None:
            state.waiting.append(_Waiting(obs, payload.tick, payload.scheduled_mono_ns))
            return
        state.close_pending(at_ms)
        state.pending = obs

    def finish(self) -> SegmentDigest:
        probes = {name: self._finished(name, state) for name, state in self.probes.items()}
        return SegmentDigest(
            first_ms=self.first_ms,
            last_ms=self.last_ms,
            continues=self.continues,
            seen=tuple(self.seen),
            probes=probes,
            pages=tuple(self.pages.values()),
            acks=dict(self.acks),
            tracked=self.tracked,
            trips={name: tuple(ts) for name, ts in self.trips.items()},
        )

    def _finished(self, name: str, state: _ProbeState) -> ProbeDigest:
        if state.waiting is None:
            return ProbeDigest(state.interval_ms, state.first_start_ms, tuple(state.pieces), state.pending)
        waiting = sorted(state.waiting, key=lambda w: (w.obs.start_ms, w.obs.seq))
        done = _ProbeState(interval_ms=self.planned.get(name) or _interval_by_ticks(waiting))
        for w in waiting:
            done.close_pending(w.obs.start_ms)
            done.pending = w.obs
        first = waiting[0].obs.start_ms if waiting else None
        return ProbeDigest(done.interval_ms, first, tuple(done.pieces), done.pending)


def _interval_by_ticks(waiting: list[_Waiting]) -> int | None:
    """What consecutive ticks show: the scheduled instants' spacing per tick."""
    by_tick = sorted(waiting, key=lambda w: w.tick)
    for a, b in pairwise(by_tick):
        if b.tick > a.tick:
            return max((b.scheduled_ns - a.scheduled_ns) // (b.tick - a.tick) // 1_000_000, 1)
    return None
