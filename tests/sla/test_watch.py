"""`drill watch` as an operator runs it: a real process probing a real HTTP server on 127.0.0.1,
rotating on the real clock, killed with SIGKILL and restarted, stopped with SIGTERM.

Every wait polls a file or a process for a condition under a deadline; none sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.clock import parse_utc
from drill.evidence.events import (
    AssetState,
    Event,
    ProbeObserved,
    WatchGap,
    WatchSegment,
    WatchStarted,
    WatchStopped,
)
from drill.evidence.journal import file_sha256, read_events
from drill.playbook.validate import load_playbook
from drill.report.sign import generate_keypair, public_key_line
from drill.report.verify import parse_allowed_signers
from drill.sla.segments import NAMESPACE, GapRecord, Seal, read_seal, segment_name, verify_watch
from drill.sla.watch import WatchOptions, run_watch
from tests.conftest import SwitchableServer, serving

DRILL_FILES = str(Path(__file__).resolve().parents[2] / "drill" / "*")

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: watched, owner: tests}}
settings: {{interval: {interval}, timeout: 500ms, fall: 1, rise: 1}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
"""

# `python -m drill watch`, registering the command first if drill.cli.COMMANDS does not list it yet.
LAUNCH = (
    "import sys; from drill.cli import COMMANDS, main; "
    "COMMANDS.setdefault('watch', ('drill.cli.watch', 'watch', 'watch')); "
    "COMMANDS.setdefault('watch-verify', ('drill.cli.watch', 'watch_verify', 'verify')); "
    "sys.argv[0] = 'drill'; main()"
)


@pytest.fixture(scope="module")
def server() -> Iterator[SwitchableServer]:
    yield from serving(SwitchableServer())


def write_playbook(folder: Path, server: SwitchableServer, interval: str = "100ms") -> Path:
    path = folder / "watched.yaml"
    path.write_text(PLAYBOOK.format(url=server.url, interval=interval), encoding="utf-8")
    return path


def start_watch(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(cwd / "watch.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "--log-format", "json", "watch", *args],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def watching(cwd: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A watch process for the with-block: killed and reaped if still alive when the block ends."""
    process = start_watch(cwd, *args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stop_watch(process: subprocess.Popen[bytes], cwd: Path) -> None:
    """SIGTERM: the watch seals its segment and exits 0 (else the test fails showing its log)."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0, (cwd / "watch.log").read_text()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def lines_of(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def events(path: Path, *, torn: bool = False) -> list[Event]:
    return list(read_events(path, allow_torn_tail=torn))


def now_utc() -> datetime:
    return datetime.now(UTC)


def seal(folder: Path, number: int) -> Seal:
    found = read_seal(folder / segment_name(number))
    assert found is not None, f"segment {number} is not sealed"
    return found


@dataclass(frozen=True)
class Rotated:
    folder: Path
    segments: int
    allowed_signers: Path
    log: str


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory, server: SwitchableServer) -> Rotated:
    """A watch rotating every 2 s, signing its seals, stopped by SIGTERM once 4 segments are sealed;
    meanwhile a second watch on the same folder is refused (exit 3)."""
    root = tmp_path_factory.mktemp("rotated")
    playbook = write_playbook(root, server)
    public = generate_keypair(root / "key")
    allowed = root / "allowed_signers"
    allowed.write_text(f'operator namespaces="{NAMESPACE}" {public_key_line(public)}\n', encoding="utf-8")
    folder = root / "watch"
    process = start_watch(
        root, str(playbook), "--out", str(folder), "--rotate", "2s", "--sign-key", str(root / "key")
    )
    try:
        wait_for(
            lambda: (folder / "segment-000004.seal").exists() or process.poll() is not None, 15, "3 seals"
        )
        second = subprocess.run(
            [sys.executable, "-c", LAUNCH, "watch", str(playbook), "--out", str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 3 and "another drill watch (pid" in second.stderr, second.stderr
        wait_for(lambda: lines_of(folder / segment_name(5)) >= 3, 5, "segment 5 under way")
        assert process.poll() is None, (root / "watch.log").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, (root / "watch.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
    count = len(list(folder.glob("segment-*.jsonl")))
    return Rotated(folder, count, allowed, (root / "watch.log").read_text())


def test_rotation_writes_chained_sealed_signed_segments_and_sigterm_seals_the_last(rotated: Rotated) -> None:
    folder = rotated.folder
    assert rotated.segments >= 5
    for number in range(1, rotated.segments + 1):
        path = folder / segment_name(number)
        found = events(path)
        sealed = seal(folder, number)
        assert sealed.sealed == ("at stop" if number == rotated.segments else "at rotation")
        assert (sealed.events, sealed.sha256) == (len(found), file_sha256(path))
        assert (sealed.first_utc, sealed.last_utc) == (found[0].utc, found[-1].utc)
        opened = found[0].payload
        assert isinstance(opened, WatchSegment) and opened.segment == number
        if number == 1:
            assert (opened.reason, opened.previous_file) == ("start", "")
            assert isinstance(found[1].payload, WatchStarted)
        else:
            before = seal(folder, number - 1)
            assert opened.reason == "rotation"
            assert (opened.previous_file, opened.previous_head, opened.previous_events) == (
                before.file,
                before.head,
                before.events,
            )
            assert opened.states == {"web": "up"}  # carried over a rotation: the watch never stopped
            # a full segment covers its 2 s of UTC, boundaries at even seconds
            if number < rotated.segments:
                start = parse_utc(found[0].utc)
                assert start.second % 2 == 0 and start.microsecond < 200_000, found[0].utc
                observed = [e for e in found if isinstance(e.payload, ProbeObserved)]
                assert len(observed) >= 15 and all(e.payload.ok for e in observed)  # type: ignore[union-attr]
    last = events(folder / segment_name(rotated.segments))[-1].payload
    assert last == WatchStopped("SIGTERM received")
    result = verify_watch(folder, allowed_signers=parse_allowed_signers(rotated.allowed_signers.read_text()))
    assert result.ok, result.problems
    assert result.signatures_trusted and all(s.signed_by == ("operator",) for s in result.segments)
    assert [s.segment for s in result.segments] == list(range(1, rotated.segments + 1))
    assert result.gaps == ()


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_a_seal_signature_verifies_with_ssh_keygen(rotated: Rotated) -> None:
    seal_file = rotated.folder / "segment-000002.seal"
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(rotated.allowed_signers), "-I", "operator", "-n", NAMESPACE,
         "-s", f"{seal_file}.operator.sig"],
        input=seal_file.read_bytes(),
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_a_tampered_line_fails_verification_naming_file_and_line(rotated: Rotated, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(rotated.folder, folder)
    path = folder / "segment-000002.jsonl"
    lines = path.read_bytes().split(b"\n")
    target = next(i for i, line in enumerate(lines) if b'"ok":true' in line)
    lines[target] = lines[target].replace(b'"ok":true', b'"ok":false', 1)  # still canonical JSON
    path.write_bytes(b"\n".join(lines))
    result = verify_watch(folder)
    assert not result.ok
    named = {(p.file, p.line) for p in result.problems}
    assert ("segment-000002.jsonl", target + 2) in named  # the line after it no longer links
    assert any(
        p.file == "segment-000002.seal" and "changed after sealing" in p.message for p in result.problems
    )
    assert all(p.file.startswith("segment-000002") for p in result.problems), result.problems
    from drill.cli.watch import watch_verify

    out = CliRunner().invoke(watch_verify, [str(folder)])
    assert out.exit_code == 1
    assert f"segment-000002.jsonl:{target + 2}: prev hash does not match line {target + 1}" in out.output


def test_a_watch_refuses_to_resume_a_folder_whose_last_segment_was_altered(
    rotated: Rotated, tmp_path: Path, server: SwitchableServer
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(rotated.folder, folder)
    last = folder / segment_name(rotated.segments)
    last.write_bytes(last.read_bytes().replace(b'"ok":true', b'"ok":false', 1))
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, "watch", str(write_playbook(tmp_path, server)), "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert f"{last}: line" in done.stderr and "refusing to resume" in done.stderr
    assert not (folder / segment_name(rotated.segments + 1)).exists()


def test_sigkill_then_restart_seals_the_cut_segment_and_records_the_gap_as_no_data(
    tmp_path: Path, server: SwitchableServer
) -> None:
    playbook = write_playbook(tmp_path, server)
    folder = tmp_path / "watch"
    first = start_watch(tmp_path, str(playbook), "--out", str(folder))
    segment = folder / segment_name(1)
    try:
        wait_for(lambda: lines_of(segment) >= 8, 15, "eight events in segment 1")
    finally:
        first.kill()  # SIGKILL: no handler runs, nothing is sealed
    assert first.wait(timeout=10) == -signal.SIGKILL
    killed_at = now_utc()
    written = events(segment)
    last_before = written[-1].utc
    assert not (folder / "segment-000001.seal").exists()
    # A SIGKILL cannot tear a line (each is one write()); a power loss can. This stands in for it.
    torn = b'{"asset":"web","data":{"jitter_us":1'
    with open(segment, "ab") as out:
        out.write(torn)
    restarted_at = now_utc()
    second = subprocess.run(
        [sys.executable, "-c", LAUNCH, "watch", str(playbook), "--out", str(folder), "--duration", "1500ms"],
        cwd=tmp_path,
        capture_output=True,
        timeout=30,
        check=False,
    )
    ended_at = now_utc()
    assert second.returncode == 0, second.stderr

    cut = seal(folder, 1)
    assert cut.sealed == "after restart"
    assert (cut.events, cut.last_utc, cut.torn_bytes) == (len(written), last_before, len(torn))
    assert cut.sha256 == file_sha256(segment)  # the file as it is, torn bytes included
    assert restarted_at <= parse_utc(cut.sealed_utc) <= ended_at

    resumed = events(folder / segment_name(2))
    opened, started, gap = (e.payload for e in resumed[:3])
    assert isinstance(opened, WatchSegment) and isinstance(started, WatchStarted)
    assert (opened.reason, opened.previous_file, opened.previous_head, opened.previous_events) == (
        "restart",
        segment.name,
        cut.head,
        cut.events,
    )
    assert opened.states == {"web": "unknown"}  # nothing is carried over a gap
    assert isinstance(gap, WatchGap) and gap.health == "no-data"
    assert gap.from_utc == last_before and parse_utc(gap.from_utc) <= killed_at
    assert restarted_at <= parse_utc(gap.to_utc) <= ended_at
    gap_ms = (parse_utc(gap.to_utc) - parse_utc(gap.from_utc)) // timedelta(milliseconds=1)
    assert gap.duration_ms == gap_ms
    # nothing after the restart is dated inside the gap, and the first state is a fresh one
    assert all(parse_utc(e.utc) >= parse_utc(gap.to_utc) for e in resumed)
    first_state = next(e.payload for e in resumed if isinstance(e.payload, AssetState))
    assert first_state.initial and first_state.state == "up"
    assert isinstance(resumed[-1].payload, WatchStopped) and seal(folder, 2).sealed == "at stop"

    result = verify_watch(folder)
    assert result.ok, result.problems
    assert result.gaps == (GapRecord(segment_name(2), gap.from_utc, gap.to_utc, gap.duration_ms),)
    assert result.segments[0].torn_bytes == len(torn)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, server: SwitchableServer) -> None:
    from drill.cli import COMMANDS, cli

    COMMANDS.setdefault("watch", ("drill.cli.watch", "watch", "watch"))
    playbook = write_playbook(tmp_path, server)
    for args, words in (
        (["--rotate", "10ms"], "--rotate must be at least 100ms"),
        (["--rotate", "soon"], "--rotate: invalid duration 'soon'"),
        (["--duration", "0s"], "--duration: must be longer than 0"),
    ):
        out = CliRunner().invoke(cli, ["watch", str(playbook), "--out", str(tmp_path / "w"), *args])
        assert out.exit_code == 2, out.output
        assert words in out.output and "Traceback" not in out.output
    assert not (tmp_path / "w").exists()


def test_memory_stays_flat_over_many_rotations(tmp_path: Path, server: SwitchableServer) -> None:
    """In process, under tracemalloc: 10 probes every 50 ms, a new segment every 100 ms. The
    memory still allocated at a seal swings by tens of KiB with the requests in flight, so the
    lowest of seals 11-20 is compared with the lowest of seals 51-60: 40 segments and hundreds of
    observations later, nothing may have accumulated per observation or per segment."""
    text = PLAYBOOK.format(url=server.url, interval="50ms").replace(
        "      - {name: health",
        "".join(f'      - {{name: h{i}, http: {{url: "{server.url}/health"}}}}\n' for i in range(9))
        + "      - {name: health",
    )
    path = tmp_path / "many.yaml"
    path.write_text(text, encoding="utf-8")
    playbook = load_playbook(path)
    assert len(playbook.assets[0].probes) == 10
    sizes: list[int] = []  # all memory traced, at each seal
    drill_sizes: list[int] = []  # allocated by drill's own code and still alive

    async def main() -> None:
        stop = asyncio.Event()

        def sealed(_path: Path, _seal: Seal) -> None:
            with server.lock:  # the test server's own record of requests is not the watch's memory
                server.requests.clear()
                server.calls.clear()
            gc.collect()  # nor is garbage not yet collected
            sizes.append(tracemalloc.get_traced_memory()[0])
            if 10 <= len(sizes) < 20 or 50 <= len(sizes) < 60:
                snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, DRILL_FILES)])
                drill_sizes.append(sum(stat.size for stat in snapshot.statistics("filename")))
            if len(sizes) >= 60:
                stop.set()

        options = WatchOptions(out=tmp_path / "watch", rotate_ms=100)
        await run_watch(playbook, options, install_signal_handlers=False, on_sealed=sealed, stop=stop)

    tracemalloc.start()
    try:
        asyncio.run(main())
    finally:
        tracemalloc.stop()
    observed = sum(
        isinstance(e.payload, ProbeObserved) for p in (tmp_path / "watch").glob("*.jsonl") for e in events(p)
    )
    assert observed > 300  # the watch really probed meanwhile (tracemalloc slows it several times)
    drill_growth = min(drill_sizes[10:]) - min(drill_sizes[:10])
    assert drill_growth < 16 * 1024, f"drill's own memory grew {drill_growth} bytes over 40 segments"
    # everything traced (the HTTP client, the test's server threads) swings by ~100 KiB with the
    # requests in flight: a loose bound, that still catches a leak per observation
    growth = min(sizes[50:60]) - min(sizes[10:20])
    assert growth < 512 * 1024, f"{growth} bytes more after 40 more segments: {sizes[::10]}"
    assert verify_watch(tmp_path / "watch").ok


def test_a_missing_segment_breaks_the_folder_chain(rotated: Rotated, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(rotated.folder, folder)
    (folder / "segment-000003.jsonl").unlink()
    (folder / "segment-000003.seal").unlink()
    result = verify_watch(folder)
    assert not result.ok
    assert [str(p) for p in result.problems] == [
        "segment-000003.jsonl: missing: the segments are not numbered 1, 2, 3 ..."
    ]


def test_a_segment_cut_short_while_opening_is_sealed_empty_and_the_gap_starts_before_it(
    tmp_path: Path, server: SwitchableServer
) -> None:
    """In process: a watch that stops, then a segment file created but killed before its first
    line (what a SIGKILL between create and write leaves), then a restart."""
    playbook = load_playbook(write_playbook(tmp_path, server))
    folder = tmp_path / "watch"
    options = WatchOptions(out=folder, duration_ms=300)
    asyncio.run(run_watch(playbook, options, install_signal_handlers=False))
    first = seal(folder, 1)
    (folder / segment_name(2)).touch()
    outcome = asyncio.run(run_watch(playbook, options, install_signal_handlers=False))
    empty = seal(folder, 2)
    assert (empty.sealed, empty.events, empty.first_utc, empty.head) == ("after restart", 0, "", "0" * 64)
    assert outcome.gap is not None and outcome.gap.from_utc == first.last_utc
    assert outcome.gap.previous_file == segment_name(1)
    opened = events(folder / segment_name(3))[0].payload
    assert isinstance(opened, WatchSegment)
    assert (opened.previous_file, opened.previous_head, opened.previous_events) == (
        segment_name(2),
        "0" * 64,
        0,
    )
    result = verify_watch(folder)
    assert result.ok, result.problems
    assert [g.from_utc for g in result.gaps] == [first.last_utc]


def test_a_rotated_folder_is_one_seamless_timeline_and_only_a_restart_leaves_no_data(
    rotated: Rotated, tmp_path: Path, server: SwitchableServer
) -> None:
    """The SLA source reads a watch folder: a rotation (same process) continues the segment before
    it, so no sliver of no data appears at a boundary; the time a restart records is no data."""
    from drill.sla.sources import timeline_from_journals

    segments = sorted(rotated.folder.glob("segment-*.jsonl"))
    timeline = timeline_from_journals(segments, "web", ["web/health"])
    assert len(segments) >= 5
    spans = timeline.spans
    assert {s.health for s in spans} == {"up"}, spans  # the server never failed
    assert all(a.end_ms == b.start_ms for a, b in pairwise(spans))  # no sliver
    assert len({s.source.split("#")[0] for s in spans}) == len(segments)  # each names its own lines
    # a stop, then a restart: the time between is a no-data span, nothing up inside it
    playbook = load_playbook(write_playbook(tmp_path, server))
    folder = tmp_path / "watch"
    asyncio.run(run_watch(playbook, WatchOptions(out=folder, duration_ms=400), install_signal_handlers=False))
    stopped = seal(folder, 1)
    outcome = asyncio.run(
        run_watch(playbook, WatchOptions(out=folder, duration_ms=400), install_signal_handlers=False)
    )
    assert outcome.gap is not None
    spans = timeline_from_journals(sorted(folder.glob("*.jsonl")), "web", ["web/health"]).spans
    healths = [h for i, h in enumerate(s.health for s in spans) if i == 0 or spans[i - 1].health != h]
    assert healths == ["up", "no-data", "up"]
    gap = next(
        s
        for s in timeline_from_journals(sorted(folder.glob("*.jsonl")), "web", ["web/health"]).spans
        if s.health == "no-data"
    )
    last_before_ms = int(parse_utc(stopped.last_utc).timestamp() * 1000)
    assert gap.start_ms <= last_before_ms + 1  # it starts no later than the last event before the stop
