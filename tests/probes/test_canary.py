"""RPO arithmetic of the canary (DESIGN §2): lost acknowledged writes and the widest loss window."""

from __future__ import annotations

import tracemalloc

from drill.clock import utc_iso_ms
from drill.evidence.events import CanaryWritten
from drill.probes import canary
from drill.probes.canary import AckLog, Write, compute_rpo
from drill.testing import FakeContext

MS = 1_000_000


def _acked(*seqs: int) -> dict[int, Write]:
    return {s: Write(seq=s, mono_ns=s * 100 * MS, utc=f"t{s}") for s in seqs}


def test_nothing_lost_is_rpo_zero() -> None:
    result = compute_rpo(_acked(1, 2, 3), [1, 2, 3, 4])  # 4 survived but was never acknowledged
    assert (result.lost_writes, result.rpo_ms, result.last_acked_seq, result.last_surviving_seq) == (
        0,
        0,
        3,
        3,
    )


def test_gap_then_writes_on_the_new_primary() -> None:
    # 1-3 replicated, 4-6 acknowledged by the old primary and lost, 7-8 written after the switchover.
    result = compute_rpo(_acked(1, 2, 3, 4, 5, 6, 7, 8), [1, 2, 3, 7, 8])
    assert result.lost_writes == 3
    assert result.rpo_ms == 300  # last lost (6) minus last surviving before it (3): 3 ticks of 100 ms
    assert (result.last_acked_seq, result.last_acked_utc) == (6, "t6")
    assert (result.last_surviving_seq, result.surviving_utc) == (3, "t3")


def test_nothing_survived_measures_from_the_first_write() -> None:
    result = compute_rpo(_acked(1, 2, 3), [])
    assert (result.lost_writes, result.rpo_ms, result.last_surviving_seq, result.surviving_utc) == (
        3,
        200,
        0,
        None,
    )


def test_two_lost_writes_after_one_survivor_span_two_ticks_not_one() -> None:
    # The lab's failover (400 ms lag, 200 ms canary): 5 replicated, 6 and 7 dropped, 8 on the new
    # primary. RPO runs from the survivor (5) to the last lost write (7): 2 ticks; the span of the
    # lost writes alone (7 - 6, 1 tick) is not the RPO.
    result = compute_rpo(_acked(*range(1, 9)), [1, 2, 3, 4, 5, 8])
    assert (result.lost_writes, result.rpo_ms, result.last_acked_seq, result.last_surviving_seq) == (
        2,
        200,
        7,
        5,
    )


def test_two_lost_writes_apart_give_the_widest_single_gap() -> None:
    # Two lost writes, each right after a survivor: one tick each; the widest gap, not their sum.
    result = compute_rpo(_acked(1, 2, 3, 4, 5), [1, 3, 5])
    assert (result.lost_writes, result.rpo_ms, result.last_acked_seq, result.last_surviving_seq) == (
        2,
        100,
        4,
        3,
    )


def _log(*seqs: int) -> AckLog:
    log = AckLog()
    for s in seqs:
        log.add(Write(seq=s, mono_ns=s * 100 * MS, utc=utc_iso_ms(1_796_000_000_000 + s)))
    return log


def test_ack_log_is_the_same_mapping_as_a_dict_in_and_out_of_order() -> None:
    log = _log(1, 2, 5, 3, 9, 4)
    log.add(Write(seq=3, mono_ns=1, utc=utc_iso_ms(0)))  # a second ack of 3: the first stands
    assert list(log) == [1, 2, 3, 4, 5, 9]
    assert log[3] == Write(seq=3, mono_ns=300 * MS, utc=utc_iso_ms(1_796_000_000_003))
    assert 6 not in log and len(log) == 6
    same = {s: log[s] for s in log}
    assert compute_rpo(log, [1, 2, 9]) == compute_rpo(same, [1, 2, 9])


def test_ack_log_holds_a_write_in_at_most_32_bytes() -> None:
    """A month of 1 s canary writes under drill watch must not cost an object per write."""
    writes = [Write(seq=s, mono_ns=s * MS, utc=utc_iso_ms(1_796_000_000_000 + s)) for s in range(1, 100_001)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        log = AckLog()
        for write in writes:
            log.add(write)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(log) == 100_000
    assert held <= 32 * 100_000, f"{held / 100_000:.1f} bytes per write"


def test_a_canary_without_rpo_keeps_no_acknowledged_write_but_still_journals_its_streaks() -> None:
    """drill watch measures no RPO: its canaries' memory must not grow with every write (a 1 s
    canary is 2.6 million writes a month). A drill's canary keeps every one (the RPO needs them)."""
    watched, drilled = FakeContext(), FakeContext()
    canary.without_rpo(watched)
    for ctx in (watched, drilled):
        for _ in range(1_000):
            seq, utc = canary.state(ctx).claim()
            canary.record_ack(ctx, seq, utc)
        canary.record_failure(ctx)
        seq, utc = canary.state(ctx).claim()
        canary.record_ack(ctx, seq, utc)
    assert len(canary.state(watched).acked) == 0 and len(canary.state(drilled).acked) == 1_001
    for ctx in (watched, drilled):
        last = canary.state(ctx).last_acked
        assert last is not None and last.seq == 1_001
        written = [e.payload.seq for e in ctx.events if isinstance(e.payload, CanaryWritten)]
        assert written == [1, 1_000, 1_001]  # the first, the last before the failure, the first after
