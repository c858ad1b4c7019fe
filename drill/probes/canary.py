"""RPO canaries shared by the redis, postgres and kv probes.

A canary writer records (sequence, UTC) on the primary at every tick and remembers, with a
monotonic stamp, every write the server acknowledged. After the switchover the reader lists the
sequences that survived on the new primary. DESIGN §2: RPO is the time between an acknowledged
write that was lost and the last write that survived before it; the count of lost acknowledged
writes is reported too. Arithmetic uses the monotonic stamps only; the UTC texts are for people.
"""

from __future__ import annotations

import secrets
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from drill.clock import utc_iso, utc_iso_ms, utc_ms, wall_now
from drill.evidence.events import CanaryWritten, EventDraft, RpoMeasured, RpoUnmeasured
from drill.probes.base import ProbeContext

_STATE = "canary"


@dataclass(frozen=True, slots=True)
class Write:
    """One acknowledged canary write."""

    seq: int
    mono_ns: int
    utc: str


class AckLog(Mapping[int, Write]):
    """Every acknowledged write, 24 bytes each (three int64 columns, not one object per write):
    a canary written every second under `drill watch` for a month is 2.6 million writes."""

    __slots__ = ("_mono_ns", "_seq", "_utc_ms")

    def __init__(self) -> None:
        self._seq = array("q")
        self._mono_ns = array("q")
        self._utc_ms = array("q")

    def add(self, write: Write) -> None:
        """Remember a write; sequences normally arrive in order, so this is an append."""
        at = len(self._seq)
        if at and self._seq[-1] >= write.seq:
            at = bisect_left(self._seq, write.seq)
            if at < len(self._seq) and self._seq[at] == write.seq:
                return  # acknowledged twice: the first stamp stands
        self._seq.insert(at, write.seq)
        self._mono_ns.insert(at, write.mono_ns)
        self._utc_ms.insert(at, utc_ms(write.utc))

    def __getitem__(self, seq: int) -> Write:
        at = bisect_left(self._seq, seq)
        if at == len(self._seq) or self._seq[at] != seq:
            raise KeyError(seq)
        return Write(seq=seq, mono_ns=self._mono_ns[at], utc=utc_iso_ms(self._utc_ms[at]))

    def __iter__(self) -> Iterator[int]:
        return iter(self._seq)

    def __len__(self) -> int:
        return len(self._seq)


@dataclass(slots=True)
class CanaryState:
    """What one canary probe remembers between ticks (lives in ProbeContext.memory)."""

    run: str = field(default_factory=lambda: secrets.token_hex(6))
    next_seq: int = 1
    acked: AckLog = field(default_factory=AckLog)
    last_acked: Write | None = None
    failing: bool = False  # the previous write failed: the next ack starts a new streak
    at_risk: int = 0  # writes the server accepted but too few replicas confirmed (never in `acked`)
    keeps_acks: bool = True  # False where no RPO is measured (drill watch): memory stays flat

    def claim(self) -> tuple[int, str]:
        """The next sequence number and the UTC text to store with it."""
        seq = self.next_seq
        self.next_seq += 1
        return seq, utc_iso(wall_now())


def state(ctx: ProbeContext) -> CanaryState:
    """The canary state of this probe, created on first use."""
    current = ctx.memory.get(_STATE)
    if not isinstance(current, CanaryState):
        current = CanaryState()
        ctx.memory[_STATE] = current
    return current


def without_rpo(ctx: ProbeContext) -> None:
    """This probe's canary measures no RPO (a watch: it runs no scenario and never compares
    survivors), so no acknowledged write is kept; the writes still tell whether it is up."""
    state(ctx).keeps_acks = False


def record_ack(ctx: ProbeContext, seq: int, utc: str) -> None:
    """Remember an acknowledged write (and journal the first write and each first after failures)."""
    st = state(ctx)
    write = Write(seq=seq, mono_ns=ctx.monotonic_ns(), utc=utc)
    if st.keeps_acks:
        st.acked.add(write)
    first = st.last_acked is None
    if st.last_acked is None or seq > st.last_acked.seq:
        st.last_acked = write
    if first or st.failing:
        _emit_written(ctx, write)
    st.failing = False


def record_failure(ctx: ProbeContext) -> None:
    """A write failed: journal the last acknowledged one once, at the start of the failure streak."""
    st = state(ctx)
    if not st.failing and st.last_acked is not None:
        _emit_written(ctx, st.last_acked)
    st.failing = True


def record_at_risk(ctx: ProbeContext) -> None:
    """The server accepted a write but fewer replicas than required confirmed it: the write is not
    acknowledged (durability was not met), so it counts as a failed write, and it is counted."""
    state(ctx).at_risk += 1
    record_failure(ctx)


def _emit_written(ctx: ProbeContext, write: Write) -> None:
    ctx.emit(EventDraft(CanaryWritten(ctx.probe, write.seq, write.utc), write.mono_ns, ctx.asset))


@dataclass(frozen=True, slots=True)
class RpoResult:
    """The outcome of comparing acknowledged writes with the surviving ones."""

    last_acked_seq: int
    last_acked_utc: str | None
    last_surviving_seq: int
    surviving_utc: str | None
    lost_writes: int
    rpo_ms: int
    at_risk_writes: int = 0

    def event(self, probe: str) -> RpoMeasured:
        return RpoMeasured(
            probe=probe,
            last_acked_seq=self.last_acked_seq,
            last_acked_utc=self.last_acked_utc,
            last_surviving_seq=self.last_surviving_seq,
            surviving_utc=self.surviving_utc,
            lost_writes=self.lost_writes,
            rpo_ms=self.rpo_ms,
            at_risk_writes=self.at_risk_writes,
        )


def compute_rpo(acked: Mapping[int, Write], surviving: Iterable[int], *, at_risk: int = 0) -> RpoResult:
    """Lost = acknowledged but not surviving; RPO = the widest gap between a lost write and the
    surviving write just before it (the first acknowledged write stands in when none survived).
    `at_risk` (writes accepted but not confirmed by enough replicas) is carried through as is."""
    alive = set(surviving)
    order = sorted(acked)
    lost = [seq for seq in order if seq not in alive]
    last_acked = acked[order[-1]] if order else None
    survivors = [seq for seq in order if seq in alive]
    last_surviving = acked[survivors[-1]] if survivors else None
    rpo_ns = 0
    previous: Write | None = None
    for seq in order:
        write = acked[seq]
        if seq in alive:
            previous = write
            continue
        base = previous if previous is not None else acked[order[0]]
        rpo_ns = max(rpo_ns, write.mono_ns - base.mono_ns)
    # The surviving write just before the last loss is what a restore would give back.
    anchor = last_surviving
    if lost:
        before = [seq for seq in survivors if seq < lost[-1]]
        anchor = acked[before[-1]] if before else None
    return RpoResult(
        last_acked_seq=(lost[-1] if lost else last_acked.seq) if last_acked else 0,
        last_acked_utc=(acked[lost[-1]].utc if lost else last_acked.utc) if last_acked else None,
        last_surviving_seq=anchor.seq if anchor else 0,
        surviving_utc=anchor.utc if anchor else None,
        lost_writes=len(lost),
        rpo_ms=rpo_ns // 1_000_000,
        at_risk_writes=at_risk,
    )


def emit_rpo(ctx: ProbeContext, surviving: Iterable[int]) -> RpoResult:
    """Compare what this probe saw acknowledged with what survived, and journal rpo.measured."""
    st = state(ctx)
    result = compute_rpo(st.acked, surviving, at_risk=st.at_risk)
    ctx.emit(EventDraft(result.event(ctx.probe), ctx.monotonic_ns(), ctx.asset))
    return result


def emit_unmeasured(ctx: ProbeContext, reason: str) -> None:
    """Journal that the surviving writes could not be read: RPO stays null in results, with the reason."""
    st = state(ctx)
    last = st.last_acked
    unmeasured = RpoUnmeasured(ctx.probe, reason, last.seq if last else 0, last.utc if last else None)
    ctx.emit(EventDraft(unmeasured, ctx.monotonic_ns(), ctx.asset))
