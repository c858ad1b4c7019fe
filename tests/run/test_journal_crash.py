"""SIGKILL a process mid-journal: what was appended survives, the chain verifies, nothing fsynced is lost."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drill.evidence.events import ProbeObserved
from drill.evidence.journal import read_events, verify_journal

REPO = Path(__file__).resolve().parents[2]

# The writer under test: appends forever, fsyncs every SYNC_EVERY events and says so on stdout
# only after the sync returned; some lines are large (300 kB) so a kill can land inside a write.
CHILD = """
import sys
from drill.clock import SystemClock
from drill.evidence.events import EventDraft, ProbeObserved
from drill.evidence.journal import JournalWriter

path, sync_every, big_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
clock = SystemClock()
writer = JournalWriter.create(path, clock)
i = 0
while True:
    i += 1
    pad = "x" * (300_000 if i % big_every == 0 else i % 200)
    sync = i % sync_every == 0
    now = clock.monotonic_ns()
    observed = ProbeObserved("health", True, 900, i, now, 0, reason=pad)
    writer.append(EventDraft(observed, now, "api"), sync=sync)
    if sync:
        print(f"synced {writer.synced}", flush=True)
    elif i % 7 == 0:
        print(f"written {writer.count}", flush=True)
"""


def _reported(line: str, reports: dict[str, int]) -> None:
    kind, _, count = line.strip().partition(" ")
    if count.isdigit():
        reports[kind] = max(reports.get(kind, 0), int(count))


def _kill_after(path: Path, synced_target: int) -> dict[str, int]:
    """Run the writer until it reports synced_target fsynced events, SIGKILL it, return its reports."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "25", "97"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    reports: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            _reported(line, reports)
            if reports.get("synced", 0) >= synced_target:
                proc.send_signal(signal.SIGKILL)
                break
        # Reports already in the pipe were printed after their appends returned: they count too.
        for line in proc.stdout:
            _reported(line, reports)
    finally:
        proc.kill()
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, stderr
    return reports


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_stream_loses_nothing_appended(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "journal.jsonl"
    target = random.Random(seed).randrange(100, 1500)
    reports = _kill_after(path, target)

    summary = verify_journal(path, allow_torn_tail=True)
    assert reports["synced"] >= target
    # Every fsynced event is there, and so is every event whose append returned before the kill:
    # the line was handed to the OS in one write, and the OS outlives the process.
    assert summary.count >= reports["synced"]
    assert summary.count >= reports.get("written", 0)
    seqs = [
        (event.seq, event.payload.tick)
        for event in read_events(path, allow_torn_tail=True)
        if isinstance(event.payload, ProbeObserved)
    ]
    assert seqs == [(n, n) for n in range(1, summary.count + 1)]
