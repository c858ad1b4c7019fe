"""Build, sign, render and verify the report of a drill with 1,000 assets and 1,000,000 journal events.

    python benchmarks/bench_report.py [--assets 1000] [--events 1000000] [--keep DIR]

The journal is generated in a child process (so the parent's peak RSS covers only the measured
pipeline), then each stage is timed. Goal: under 10 s in total, memory bounded (the journal is
streamed). The reference, measured in the same run, is the floor any reader pays: one pass of
json.loads plus SHA-256 over every line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from drill.evidence.events import Payload
    from drill.evidence.snapshot import Plan

GOAL_S = 10.0
S = 1_000_000_000
EPOCH = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
P = ParamSpec("P")
T = TypeVar("T")


# ---------------------------------------------------------------- generating the journal (child process)


def _document(n_assets: int) -> dict[str, object]:
    tiers = [{"name": f"tier-{i}", "rto": f"{(i + 1) * 5}m", "rpo": "30s"} for i in range(10)]
    assets = []
    for i in range(n_assets):
        assets.append(
            {
                "id": f"svc-{i:04d}",
                "tier": f"tier-{i % 10}",
                "owner": f"team-{i % 37}",
                "depends_on": [f"svc-{i - 10:04d}"] if i >= 10 else [],
                "contact_chain": f"chain-{i % 20}",
                "probes": [{"name": "health", "http": {"url": f"http://127.0.0.1/{i}"}, "interval": "1s"}],
            }
        )
    chains = {
        f"chain-{c}": {
            "respond_within": "15m",
            "contacts": [
                {"name": f"person-{c}", "via": "webhook", "url": "http://127.0.0.1/page", "ack_within": "5m"}
            ],
        }
        for c in range(20)
    }
    return {
        "apiVersion": "drill/v1",
        "kind": "Playbook",
        "metadata": {"name": "bench", "owner": "bench", "quarter": "2026-Q4", "planned_duration": "2h"},
        "settings": {"interval": "1s"},
        "tiers": tiers,
        "contacts": {"chains": chains},
        "assets": assets,
        "scenario": [
            {"name": "declare", "mark": "disaster"},
            {"name": "recover", "wait_for": {"all_assets": True, "state": "up", "within": "1h"}},
        ],
    }


class _Gen:
    """Writes canonical journal lines directly (fast path), checked against the journal's own encoder."""

    def __init__(self, path: Path) -> None:
        self.out = path.open("wb", buffering=1 << 20)
        self.prev = "0" * 64
        self.seq = 0
        self.base_mono = 5 * S

    def utc(self, mono_ns: int) -> str:
        moment = EPOCH + timedelta(microseconds=(mono_ns - self.base_mono) // 1000)
        return moment.isoformat(timespec="milliseconds")

    def emit(self, line: str) -> None:
        raw = line.encode()
        self.out.write(raw + b"\n")
        self.prev = hashlib.sha256(raw).hexdigest()

    def general(self, mono_ns: int, payload: Payload, asset: str | None = None) -> None:
        from drill.evidence.events import Event
        from drill.evidence.journal import canonical_line

        self.seq += 1
        event = Event(self.seq, self.prev, mono_ns, self.utc(mono_ns), payload, asset)
        self.emit(canonical_line(event).decode())

    def observed(self, mono_ns: int, asset: str, ok: bool, tick: int) -> None:
        """A probe.observed line (on schedule: no jitter), formatted by hand: the bulk of the journal."""
        self.seq += 1
        reason = "" if ok else "connection refused"
        self.emit(
            f'{{"asset":"{asset}","data":{{"jitter_us":0,"latency_us":900,"ok":{"true" if ok else "false"},'
            f'"probe":"health","reason":"{reason}","scheduled_mono_ns":{mono_ns},"tick":{tick}}},'
            f'"mono_ns":{mono_ns},"prev":"{self.prev}","seq":{self.seq},'
            f'"type":"probe.observed","utc":"{self.utc(mono_ns)}"}}'
        )


def _plan(doc: dict[str, object]) -> Plan:
    """The plan `drill run` journals for doc: the same loader, validator and planner."""
    from drill.plan import build_plan
    from drill.playbook.load import parse_document
    from drill.playbook.validate import check_document

    playbook, diagnostics = check_document(parse_document(json.dumps(doc).encode(), "bench.yaml"))
    if playbook is None:
        raise SystemExit("; ".join(str(d) for d in diagnostics if d.severity == "error"))
    return build_plan(playbook)


def generate(path: Path, n_assets: int, n_events: int) -> None:
    """A drill: probes every second, each asset down from t0+2s for a few seconds, then up."""
    from drill.evidence.events import (
        JOURNAL_FORMAT,
        AssetState,
        Event,
        FailureInjected,
        PageAcked,
        PageSent,
        PlaybookRef,
        RunFinished,
        RunStarted,
        RunStatus,
        StepFinished,
        StepStarted,
        StepStatus,
        decode_payload,
    )
    from drill.evidence.journal import canonical_line
    from drill.evidence.snapshot import StepKind

    gen = _Gen(path)
    t0 = gen.base_mono + 60 * S
    doc = _document(n_assets)
    plan = _plan(doc)
    started = RunStarted(
        run_id="bench-run",
        playbook=PlaybookRef("bench", plan.sha256, "bench.yaml", doc),
        user="bench",
        host="localhost",
        tool_version="bench",
        started_utc=gen.utc(gen.base_mono),
        plan=plan,
        format=JOURNAL_FORMAT,
    )
    gen.general(gen.base_mono, started)
    ticks = max(1, (n_events - 10 - 2 * n_assets) // n_assets)
    first_tick = -3
    for k in range(first_tick, first_tick + ticks):
        mono = t0 + k * S
        if k == 0:
            gen.general(mono, StepStarted("declare", StepKind.MARK))
            gen.general(mono, FailureInjected("declare"))
            gen.general(mono, StepFinished("declare", StepKind.MARK, StepStatus.OK, attempts=1))
            sent = PageSent(
                "p1",
                "chain-0",
                "person-0",
                "webhook",
                ("svc-0000",),
                True,
                "",
                1,
                300_000,
                trigger_mono_ns=mono,
            )
            gen.general(mono, sent)
        if k == 30:
            gen.general(
                mono, PageAcked("p1", "chain-0", "person-0", "webhook", "x", 30_000, 300_000, True, 30_000)
            )
        for i in range(n_assets):
            asset = f"svc-{i:04d}"
            down_at, up_at = 2 + i % 3, 6 + i % 40
            ok = not (down_at <= k < up_at)
            gen.observed(mono + i * 1000, asset, ok, k - first_tick)
            if k == down_at + 1 or k == up_at + 1:
                at = t0 + (k - 1) * S + i * 1000
                state = AssetState("down" if k == down_at + 1 else "up", at, at - S, "health", 2)
                gen.general(mono + i * 1000, state, asset)
    end = t0 + (first_tick + ticks + 1) * S
    gen.general(end, StepStarted("recover", StepKind.WAIT_FOR))
    gen.general(end, StepFinished("recover", StepKind.WAIT_FOR, StepStatus.OK, attempts=1))
    gen.general(end, RunFinished(RunStatus.COMPLETED))
    gen.out.close()
    # The fast path must write exactly what the journal's encoder would, and read back typed.
    with path.open("rb") as fh:
        for _ in range(3):
            line = fh.readline().rstrip(b"\n")
        raw = json.loads(line)
        payload = decode_payload(raw["type"], raw["data"])
        event = Event(raw["seq"], raw["prev"], raw["mono_ns"], raw["utc"], payload, raw.get("asset"))
        assert canonical_line(event) == line, "generator line differs from canonical_line"


# ---------------------------------------------------------------- measuring (parent process)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(
    label: str, timings: list[tuple[str, float]], fn: Callable[P, T], *args: P.args, **kw: P.kwargs
) -> T:
    start = time.perf_counter()
    value = fn(*args, **kw)
    timings.append((label, time.perf_counter() - start))
    print(f"  {label:<38} {timings[-1][1]:7.2f} s   peak RSS {_peak_rss_mb():7.1f} MB", flush=True)
    return value


def _reference(path: Path) -> int:
    count = 0
    prev = "0" * 64
    with path.open("rb") as fh:
        for raw in fh:
            line = raw[:-1]
            json.loads(line)
            prev = hashlib.sha256(line).hexdigest()
            count += 1
    assert prev
    return count


def _verify(run_dir: Path, public_line: str | None) -> None:
    """drill verify's own check when signing is available (signature, schema, journal, evidence)."""
    if public_line is not None:
        from drill.report.sign import NAMESPACE
        from drill.report.verify import verify_report_dir

        allowed = run_dir / "allowed_signers"
        allowed.write_text(f'bench namespaces="{NAMESPACE}" {public_line}\n')
        verify_report_dir(run_dir, allowed, require=["bench"])
        return
    from drill.evidence.journal import verify_journal
    from drill.report.build import load_report

    report = load_report(run_dir)  # JSON + schema
    summary = verify_journal(run_dir / report.journal.file)
    got = (summary.sha256, summary.count, summary.head)
    want = (report.journal.sha256, report.journal.events, report.journal.head)
    assert got == want, "journal does not match the report"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="reuse/keep the generated journal in this folder")
    parser.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.assets, args.events)
        return 0

    with tempfile.TemporaryDirectory(prefix="drill-bench-report-") as tmp:
        run_dir = args.keep or Path(tmp)
        run_dir.mkdir(parents=True, exist_ok=True)
        journal = run_dir / "journal.jsonl"
        start = time.perf_counter()
        if not journal.exists():
            cmd = [
                sys.executable,
                __file__,
                "--assets",
                str(args.assets),
                "--events",
                str(args.events),
                "--generate-only",
                str(journal),
            ]
            subprocess.run(cmd, check=True)
        size_mb = journal.stat().st_size / 1e6
        print(
            f"journal: {sum(1 for _ in journal.open('rb')):,} events, {size_mb:.0f} MB, "
            f"{args.assets} assets (ready in {time.perf_counter() - start:.1f} s, not counted)"
        )
        return _measure(run_dir, journal)


def _measure(run_dir: Path, journal: Path) -> int:
    from drill.report.build import build_report_from_journal, report_bytes, write_report
    from drill.report.model import Signer
    from drill.report.render_html import render_html
    from drill.report.render_junit import render_junit
    from drill.report.render_md import render_markdown

    timings: list[tuple[str, float]] = []
    print(f"baseline peak RSS {_peak_rss_mb():.1f} MB")
    ref_timings: list[tuple[str, float]] = []  # the reference is not part of the total
    events = _timed("reference: json.loads + sha256 / line", ref_timings, _reference, journal)
    reference_s = ref_timings[0][1]

    signer = None
    key: Ed25519PrivateKey | None = None
    public_line = None
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from drill.report.sign import fingerprint, public_key_line, sign_bytes

        key = Ed25519PrivateKey.generate()
        signer = Signer("bench", fingerprint(key.public_key()))
        public_line = public_key_line(key.public_key())
    except ImportError:
        print("  (drill.report.sign not available: signing and signature check skipped)")

    report = _timed(
        "build (stream journal + fold + report)", timings, build_report_from_journal, journal, signer=signer
    )
    path = _timed("write report.json (RFC 8785)", timings, write_report, report, run_dir)
    if key is not None:
        signature = _timed("sign (SSHSIG Ed25519)", timings, sign_bytes, path.read_bytes(), key)
        (run_dir / "report.json.bench.sig").write_text(signature)
    html = _timed("render html", timings, render_html, report)
    md = _timed("render md", timings, render_markdown, report)
    junit = _timed("render junit", timings, render_junit, report)
    for name, text in (("report.html", html), ("report.md", md), ("report.junit.xml", junit)):
        (run_dir / name).write_text(text, encoding="utf-8")  # not timed: for looking at
    _timed("verify (drill verify: sig, schema, journal)", timings, _verify, run_dir, public_line)
    total = sum(t for _, t in timings)
    print(
        f"report.json {len(report_bytes(report)) / 1e6:.1f} MB, html {len(html) / 1e6:.1f} MB, "
        f"md {len(md) / 1e6:.1f} MB, junit {len(junit) / 1e6:.1f} MB; {len(report.findings)} findings"
    )
    print(
        f"events {events:,}; reference pass {reference_s:.2f} s; total {total:.2f} s "
        f"({total / reference_s:.1f}x reference); peak RSS {_peak_rss_mb():.0f} MB; goal < {GOAL_S:.0f} s: "
        f"{'MET' if total < GOAL_S else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
