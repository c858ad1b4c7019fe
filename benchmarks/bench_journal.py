"""Journal throughput: hashed, canonical events/s of JournalWriter against plain JSON lines, same run.

Every writer appends the same realistic event mix (typed payloads, drill.evidence.events: mostly
probe results, some state changes and step events) to a fresh file on the same file system:
  drill         JournalWriter.append: RFC 8785 line, SHA-256 chain, one write() per event (no fsync)
  reference     json.dumps + write to a buffered file: no canonical form, no hash, no flush, UTC
                strings and data dicts precomputed (the floor a JSON-lines logger can reach)
  ref+flush     the same with one os.write per line: drill's crash guarantee, without the chain
  naive         msgspec.to_builtins + rfc8785.dumps + sha256 + os.write: the obvious implementation
                drill replaced (checked to write the same bytes as drill)
  drill+fsync   JournalWriter.append(sync=True): what fsync at every event would cost

Goal (issue 3): drill >= 50,000 hashed events/s. Run: .venv/bin/python benchmarks/bench_journal.py
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import rfc8785

from drill.clock import SystemClock, utc_iso
from drill.evidence.events import AssetState, EventDraft, Payload, ProbeObserved, StepFinished, StepStatus
from drill.evidence.journal import JournalWriter, verify_journal
from drill.evidence.snapshot import StepKind
from drill.jsontypes import JsonValue

GOAL = 50_000
N = 60_000
N_FSYNC = 300
REPEATS = 3


def _drafts(clock: SystemClock, n: int) -> list[EventDraft]:
    start = clock.monotonic_ns()
    drafts = []
    for i in range(n):
        at = start + i * 1_000_000
        if i % 50 == 0:
            state = AssetState("down", at, at - 500_000_000, "health", 2)
            drafts.append(EventDraft(state, at, asset="payments-api"))
        elif i % 97 == 0:
            drafts.append(
                EventDraft(StepFinished("fail over", StepKind.ACTION, StepStatus.OK, attempts=1), at)
            )
        else:
            observed = ProbeObserved(
                probe="health",
                ok=i % 7 != 0,
                latency_us=800 + i % 400,
                tick=i,
                scheduled_mono_ns=at,
                jitter_us=i % 90,
                reason="" if i % 7 else "connection refused",
            )
            drafts.append(EventDraft(observed, at, asset=f"asset-{i % 20}"))
    return drafts


@dataclass(frozen=True)
class Workload:
    """The same events for every writer: typed drafts, plus (for the references, untimed) their
    UTC strings and data dicts, so that the references time JSON and I/O alone."""

    drafts: list[EventDraft]
    utcs: list[str] = field(default_factory=list)
    datas: list[dict[str, JsonValue]] = field(default_factory=list)

    def __getitem__(self, part: slice) -> Workload:
        return Workload(self.drafts[part], self.utcs[part], self.datas[part])

    def __len__(self) -> int:
        return len(self.drafts)


def _drill(path: Path, clock: SystemClock, work: Workload) -> None:
    with JournalWriter.create(path, clock) as writer:
        append = writer.append
        for draft in work.drafts:
            append(draft)


def _drill_fsync(path: Path, clock: SystemClock, work: Workload) -> None:
    with JournalWriter.create(path, clock) as writer:
        for draft in work.drafts:
            writer.append(draft, sync=True)


def _data(payload: Payload) -> dict[str, JsonValue]:
    """A payload as the dict a journal line holds (drill checks it reads back; this does not)."""
    data: dict[str, JsonValue] = msgspec.to_builtins(payload)
    return data


def _record(seq: int, utc: str, draft: EventDraft, data: dict[str, JsonValue]) -> dict[str, JsonValue]:
    record: dict[str, JsonValue] = {
        "seq": seq,
        "mono_ns": draft.mono_ns,
        "utc": utc,
        "type": draft.payload.TYPE,
        "data": data,
    }
    if draft.asset is not None:
        record["asset"] = draft.asset
    return record


# The references get their UTC strings and data dicts precomputed, so they time JSON and I/O alone.
def _reference(path: Path, clock: SystemClock, work: Workload) -> None:
    with open(path, "w", encoding="utf-8") as stream:
        for seq, (draft, utc, data) in enumerate(zip(work.drafts, work.utcs, work.datas, strict=True), 1):
            stream.write(json.dumps(_record(seq, utc, draft, data)) + "\n")


def _reference_flush(path: Path, clock: SystemClock, work: Workload) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for seq, (draft, utc, data) in enumerate(zip(work.drafts, work.utcs, work.datas, strict=True), 1):
            os.write(fd, (json.dumps(_record(seq, utc, draft, data)) + "\n").encode())
    finally:
        os.close(fd)


def _naive(path: Path, clock: SystemClock, work: Workload) -> None:
    """The obvious writer of typed events: to_builtins + rfc8785 + sha256 + os.write per event."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    prev = "0" * 64
    try:
        for seq, draft in enumerate(work.drafts, start=1):
            record = _record(seq, utc_iso(clock.utc_at(draft.mono_ns)), draft, _data(draft.payload))
            record["prev"] = prev
            line = rfc8785.dumps(record)
            os.write(fd, line + b"\n")
            prev = hashlib.sha256(line).hexdigest()
    finally:
        os.close(fd)


Writer = Callable[[Path, SystemClock, Workload], None]


@dataclass
class Measure:
    """Best wall and CPU time of one writer over the interleaved rounds."""

    writer: Writer
    work: Workload
    wall_s: float = float("inf")
    cpu_s: float = float("inf")

    def run(self, folder: Path, clock: SystemClock, attempt: int) -> None:
        path = folder / f"{self.writer.__name__}-{attempt}.jsonl"
        wall, cpu = time.perf_counter(), time.process_time()
        self.writer(path, clock, self.work)
        self.cpu_s = min(self.cpu_s, time.process_time() - cpu)
        self.wall_s = min(self.wall_s, time.perf_counter() - wall)
        path.unlink()

    @property
    def wall_rate(self) -> float:
        return len(self.work) / self.wall_s

    @property
    def cpu_rate(self) -> float:
        return len(self.work) / max(self.cpu_s, 1e-9)


def main() -> int:
    clock = SystemClock()
    drafts = _drafts(clock, N)
    utcs = [utc_iso(clock.utc_at(draft.mono_ns)) for draft in drafts]
    work = Workload(drafts, utcs, [_data(draft.payload) for draft in drafts])
    # The input events are fixture, not workload: keep the cyclic GC from rescanning them.
    gc.collect()
    gc.freeze()
    measures = {
        "drill": Measure(_drill, work),
        "reference": Measure(_reference, work),
        "ref+flush": Measure(_reference_flush, work),
        "naive": Measure(_naive, work[: N // 10]),
        "drill+fsync": Measure(_drill_fsync, work[:N_FSYNC]),
    }
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as name:
        folder = Path(name)
        # The journal written here must verify: a fast writer of broken chains is worth nothing.
        _drill(folder / "check.jsonl", clock, work[:1000])
        assert verify_journal(folder / "check.jsonl").count == 1000
        # The naive writer must write the very same lines, or it is not a fair comparison.
        _naive(folder / "naive.jsonl", clock, work[:1000])
        assert (folder / "naive.jsonl").read_bytes() == (folder / "check.jsonl").read_bytes()
        # Rounds interleave the writers so that load from other processes hits them alike.
        for attempt in range(REPEATS):
            for measure in measures.values():
                measure.run(folder, clock, attempt)
        path = _write_for_verify(folder, clock, work)
        wall, cpu = time.perf_counter(), time.process_time()
        count = verify_journal(path).count
        verify = (count / (time.perf_counter() - wall), count / (time.process_time() - cpu))

    drill = measures["drill"]
    print(
        f"journal throughput, {N:,} events, python {sys.version.split()[0]}, "
        f"best of {REPEATS} interleaved rounds"
    )
    print("  (cpu = events per CPU-second of this process, unaffected by other load; wall = elapsed)")
    print(f"  {'writer':12s} {'wall ev/s':>12s} {'cpu ev/s':>12s}   drill/writer (cpu)")
    for label, m in measures.items():
        print(
            f"  {label:12s} {m.wall_rate:>12,.0f} {m.cpu_rate:>12,.0f}   {drill.cpu_rate / m.cpu_rate:6.2f}x"
        )
    print(f"  {'verify':12s} {verify[0]:>12,.0f} {verify[1]:>12,.0f}   (verify_journal, 1 pass)")
    verdict = "met" if drill.cpu_rate >= GOAL else "MISSED"
    print(
        f"goal >= {GOAL:,} hashed events/s (cpu): {verdict} "
        f"({drill.cpu_rate:,.0f}; wall {drill.wall_rate:,.0f})"
    )
    return 0


def _write_for_verify(folder: Path, clock: SystemClock, work: Workload) -> Path:
    path = folder / "verify.jsonl"
    _drill(path, clock, work)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
