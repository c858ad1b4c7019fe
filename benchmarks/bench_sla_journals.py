"""`drill sla report` from watch journal segments: every line verified against the signed seals' digests.

    .venv/bin/python benchmarks/bench_sla_journals.py [--services 100] [--hours 2] [--tracked 1] [--repeats 2]

The data, built in a temporary folder (setup, not measured, its time printed): a watch folder of
`--hours` hourly segments of `--services` 1-second probes (asset s000, s001 ... each with one
probe `health`, interval 1s in the plan), written by JournalWriter with a fake clock as
`drill watch` writes them: each segment opens with watch.segment (reason start, then rotation,
chained to the segment before it: file, head, event count; the plan), then one probe.observed
per probe per second, spread over the second as the scheduler spreads them, all ok but a few
outages drawn from random.Random(1). Each segment is then sealed as a watch restart seals it
(scan_segment, seal_of, write_seal), signed by an Ed25519 key generated for the run, trusted by
an allowed_signers line for namespace drill-watch-segment-v1. `--tracked` probes (default 1, as
examples/sla-lab.yaml's one delay KPI) have every round trip kept in the digests.

Measured, best of `--repeats`, wall and CPU, in this process, the files warm in the page cache:
  full       journal_digests(paths, wanted, tracked): every line read and verified (form, hash
             chain), then timelines_from_digests: what `drill sla report --journal ...` does
  fast       the same with SealReader(allowed_signers entries): each segment taken from its signed
             seal's digest (the seal's signature checked, the file's SHA-256 compared with it):
             `drill sla report --journal ... --trust-seals allowed_signers`
  sha256     the reference: hashlib.sha256 over every segment's bytes (the floor of `fast`)
  seal scan  scan_segment(path, allow_torn_tail=False, tracked=...) per segment (lines checked
             and digested): what sealing costs a restart
             (the live watch builds the digest as it writes, so rotation re-reads nothing)

Checked: `full` and `fast` give identical timelines. The month figures (744 hours, 31 days, of 100
probes) are an extrapolation, linear in hours and in services, not a measurement; on a cold cache
the month's segments (tens of GB) are read from disk at least once by `full` and by `fast` alike.

Goal: none imposed (the figure asked for: a month of 1-second probes of 100 services).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drill.clock import FakeClock, utc_iso
from drill.evidence.events import EventDraft, ProbeObserved, WatchSegment
from drill.evidence.journal import GENESIS, JournalWriter
from drill.evidence.snapshot import Plan
from drill.plan import build_plan
from drill.playbook.validate import load_playbook
from drill.report.sign import public_key_line
from drill.report.verify import parse_allowed_signers
from drill.sla.model import Timeline
from drill.sla.segments import (
    NAMESPACE,
    SealedHow,
    SealReader,
    SegmentSigner,
    scan_segment,
    seal_of,
    segment_name,
    write_seal,
)
from drill.sla.sources import JournalDigest, journal_digests, timelines_from_digests

if TYPE_CHECKING:
    from benchmarks._timing import timed
else:  # run as a script (`make bench`): benchmarks/ is first on sys.path
    from _timing import timed

T = TypeVar("T")
SECOND_NS = 1_000_000_000
HOUR_S = 3600
HOUR_MS = HOUR_S * 1000
MONTH_HOURS = 744  # 31 days
MONTH_SERVICES = 100
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)  # mono 0 is 2026-03-01T00:00:00Z
START_NS = SECOND_NS  # the watch starts at 00:00:01

PLAYBOOK_HEAD = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: bench-sla-journals, owner: benchmarks}
settings: {interval: 1s, timeout: 800ms, fall: 2, rise: 2}
tiers: [{name: tier-0, rto: 5m}]
scenario:
  - {name: declare, mark: disaster}
assets:
"""
ASSET = """\
  - id: s{i:03d}
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "http://127.0.0.1:8080/{i}"}}}}
"""


def _plan(folder: Path, services: int) -> Plan:
    path = folder / "playbook.yaml"
    path.write_text(PLAYBOOK_HEAD + "".join(ASSET.format(i=i) for i in range(services)), encoding="utf-8")
    return build_plan(load_playbook(path))


def _outages(rng: random.Random, services: int, seconds: int) -> dict[int, list[tuple[int, int]]]:
    """Per service, failing stretches [from s, to s) of the whole watch: about two an hour in all,
    1 s to 10 min each (some touching the hour, so a rotation falls inside one)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(max(1, 2 * seconds // HOUR_S)):
        service = rng.randrange(services)
        length = rng.choice((1, 2, 5, 30, 90, 600))
        start = rng.randrange(0, max(1, seconds - length))
        out.setdefault(service, []).append((start, start + length))
    return out


def _failing(stretches: list[tuple[int, int]] | None, second: int) -> bool:
    return stretches is not None and any(a <= second < b for a, b in stretches)


def _write_segments(folder: Path, plan: Plan, services: int, hours: int) -> tuple[list[Path], int, FakeClock]:
    """The segments as a watch writes them (one fake clock for the process); returns the paths,
    the events written, and the clock (at the watch's stop)."""
    clock = FakeClock(now_ns=START_NS, epoch=EPOCH)
    rng = random.Random(1)
    outages = _outages(rng, services, hours * HOUR_S)
    spread_ns = SECOND_NS // services
    paths: list[Path] = []
    previous = ("", GENESIS, 0)
    events = 0
    for h in range(hours):
        path = folder / segment_name(h + 1)
        opened_ns = START_NS + h * HOUR_S * SECOND_NS
        states = {a.id: "unknown" if h == 0 else "up" for a in plan.assets}
        reason: Literal["start", "rotation"] = "start" if h == 0 else "rotation"
        opened = WatchSegment(h + 1, *previous, reason, HOUR_MS, plan, states)
        with JournalWriter.create(path, clock) as journal:
            journal.append(EventDraft(opened, opened_ns))
            for k in range(HOUR_S):
                tick = h * HOUR_S + k
                second_ns = opened_ns + k * SECOND_NS
                for i in range(services):
                    scheduled = second_ns + i * spread_ns + 1_000_000
                    jitter_us = 50 + (i * 37 + k) % 400
                    if _failing(outages.get(i), tick):
                        observed = ProbeObserved(
                            "health", False, 3_000, tick, scheduled, jitter_us, "HTTP 503"
                        )
                    else:
                        observed = ProbeObserved(
                            "health", True, 1_500 + (i * 13 + k) % 2_500, tick, scheduled, jitter_us
                        )
                    journal.append(EventDraft(observed, scheduled + jitter_us * 1000, f"s{i:03d}"))
            previous = (path.name, journal.head, journal.count)
            events += journal.count
        clock.now_ns = opened_ns + HOUR_S * SECOND_NS
        paths.append(path)
    return paths, events, clock


def _seal(paths: list[Path], tracked: tuple[str, ...], signer: SegmentSigner, clock: FakeClock) -> int:
    """Seal and sign every segment as a restart does; returns the seals' bytes."""
    size = 0
    for number, path in enumerate(paths, start=1):
        scan = scan_segment(path, allow_torn_tail=False, tracked=tracked)
        how: SealedHow = "at stop" if number == len(paths) else "at rotation"
        sealed_ns = START_NS + number * HOUR_S * SECOND_NS
        seal = seal_of(path, number, scan, how, utc_iso(clock.utc_at(sealed_ns)))
        size += write_seal(path, seal, signer).stat().st_size
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=100, help="1-second probes, one per asset")
    parser.add_argument("--hours", type=int, default=2, help="hourly segments")
    parser.add_argument("--tracked", type=int, default=1, help="probes whose round trips the digests keep")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    services, hours, repeats = args.services, args.hours, args.repeats
    if services < 1 or hours < 1 or repeats < 1 or not 0 <= args.tracked <= services:
        parser.error("--services, --hours and --repeats must be at least 1, --tracked within 0..services")

    wanted = tuple(f"s{i:03d}/health" for i in range(services))
    tracked = wanted[: args.tracked]
    specs: list[tuple[str, tuple[str, ...]]] = [(f"svc-{i:03d}", (p,)) for i, p in enumerate(wanted)]

    with tempfile.TemporaryDirectory(prefix="bench-sla-journals-") as tmp:
        folder = Path(tmp) / "watch"
        folder.mkdir()
        plan = _plan(Path(tmp), services)
        write_wall, write_cpu, (paths, events, clock) = timed(
            lambda: _write_segments(folder, plan, services, hours)
        )
        key = Ed25519PrivateKey.generate()
        signer = SegmentSigner(key, "bench")
        allowed = parse_allowed_signers(
            f'bench namespaces="{NAMESPACE}" {public_key_line(key.public_key(), "bench")}\n'
        )
        seal_wall, _, seal_bytes = timed(lambda: _seal(paths, tracked, signer, clock))
        journal_bytes = sum(p.stat().st_size for p in paths)

        def full() -> tuple[list[JournalDigest], list[Timeline]]:
            digests = journal_digests(paths, wanted, tracked)
            return digests, timelines_from_digests(digests, specs)

        def fast() -> tuple[list[JournalDigest], list[Timeline]]:
            digests = journal_digests(paths, wanted, tracked, SealReader(allowed))
            return digests, timelines_from_digests(digests, specs)

        def reference() -> list[str]:
            out = []
            for path in paths:
                with path.open("rb") as stream:
                    out.append(hashlib.file_digest(stream, "sha256").hexdigest())
            return out

        def seal_scan() -> int:
            return sum(scan_segment(p, allow_torn_tail=False, tracked=tracked).events for p in paths)

        best: dict[str, tuple[float, float]] = {}
        only_timelines: dict[str, float] = {}

        def keep(name: str, wall: float, cpu: float) -> None:
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)

        full_timelines: list[Timeline] = []
        fast_timelines: list[Timeline] = []
        for _ in range(repeats):
            wall, cpu, (digests, full_timelines) = timed(full)
            assert all(d.how == "read" for d in digests)
            keep("full", wall, cpu)
            wall, cpu, (digests, fast_timelines) = timed(fast)
            assert all(d.how == "seal" for d in digests), "a segment was read instead of taken from its seal"
            keep("fast", wall, cpu)
            t_wall, _, _ = timed(partial(timelines_from_digests, digests, specs))
            only_timelines["fast"] = min(only_timelines.get("fast", t_wall), t_wall)
            wall, cpu, _hashes = timed(reference)
            keep("sha256", wall, cpu)
            wall, cpu, scanned = timed(seal_scan)
            assert scanned == events
            keep("seal scan", wall, cpu)
        assert full_timelines == fast_timelines, "the seals' digests do not give the lines' timelines"
        spans = sum(len(t.spans) for t in full_timelines)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scale = (MONTH_HOURS / hours) * (MONTH_SERVICES / services)
    month_events = events * scale
    print(
        f"data:       {services} probes x {hours} h of 1-s observations in {hours} hourly segments: "
        f"{events:,} events, {journal_bytes / 2**20:.1f} MiB ({journal_bytes / events:.0f} B/event), "
        f"seals {seal_bytes / 1024:.0f} KiB, {spans:,} spans, {len(tracked)} probe(s) tracked"
    )
    print(
        f"setup:      writing {write_wall:.1f} s wall ({write_cpu:.1f} s CPU, {events / write_wall:,.0f} events/s), "
        f"sealing + signing {seal_wall:.1f} s (not measured below)"
    )
    print(f"fast == full: {'yes' if full_timelines == fast_timelines else 'NO'}")
    print(
        f"{'way':<10}  {'wall s':>8}  {'CPU s':>8}  {'events/s':>12}  "
        f"month (744 h x 100 probes, {month_events / 1e6:,.0f} M events) extrapolated"
    )
    for name in ("full", "fast", "sha256", "seal scan"):
        wall, cpu = best[name]
        month = wall * scale
        print(
            f"{name:<10}  {wall:8.3f}  {cpu:8.3f}  {events / wall:12,.0f}  "
            f"{month:9,.1f} s wall = {month / 60:6.1f} min"
        )
    ratio = best["full"][0] / best["fast"][0]
    print(
        f"fast:       {ratio:.1f}x faster than full, {best['fast'][0] / best['sha256'][0]:.2f}x the sha256 floor "
        f"(of it timelines_from_digests {only_timelines['fast'] * 1000:.0f} ms); "
        f"seal scan per hourly segment {best['seal scan'][0] / hours:.2f} s; peak RSS {peak:.0f} MiB; "
        f"best of {repeats}; month figures are a linear extrapolation, not a measurement"
    )


if __name__ == "__main__":
    main()
