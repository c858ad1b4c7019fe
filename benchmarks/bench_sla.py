"""`drill sla report` for a month of 1-second probes of 100 services: compute and render time.

    .venv/bin/python benchmarks/bench_sla.py [--services 100] [--flap-minutes 10] [--repeats 3]

The contract is examples/sla-lab.yaml (99.9 % per calendar month in Europe/Berlin, 1-minute
slices, Sunday maintenance windows, credits, burn-rate alerts) with its two services replaced by
N. Each service's timeline for March 2026 is built here as the journals of a 1-second probe
would give it (drill.sla.sources merges consecutive observations of the same health into one
span): up, with outages at 1-second resolution drawn from a fixed seed (a few down stretches of
1 s to 20 min, a partial one, a no-data gap of a restart) and a flapping stretch of
`--flap-minutes` minutes where the health changes every second (one span per second, the worst
case for the counting).

Measured, best of `--repeats`, wall and CPU:
  reference  building the spans and one pass over every span (what any consumer pays)
  compute    build_report: every figure of every service, 31 daily figures each (calendar and
             burn-down), the period's burn rate and the six burn-rate windows at its end
  render     RFC 8785 JSON + Markdown + CSV + HTML + the text summary

Goal: none imposed (issue 15 asks for the figure).
"""

from __future__ import annotations

import argparse
import random
import resource
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from drill.sla.calendar import period_of
from drill.sla.load import load_sla
from drill.sla.model import Health, Service, Sla, Span, Timeline
from drill.sla.render import render_csv, render_html, render_markdown, render_text
from drill.sla.report import SlaReport, SourceInfo, build_report, report_json_bytes

if TYPE_CHECKING:
    from benchmarks._timing import timed
else:  # run as a script (`make bench`): benchmarks/ is first on sys.path
    from _timing import timed

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
S = 1000  # ms per probe (1-second probes)


Kind = Literal["down", "partial", "gap", "flap"]


def _outages(rng: random.Random, seconds: int, flap_s: int) -> list[tuple[int, int, Kind]]:
    """(start s, length s, kind), not overlapping nor touching, sorted."""
    chosen: list[tuple[int, int, Kind]] = []
    wanted: list[tuple[int, Kind]] = [(rng.randint(1, 1200), "down") for _ in range(4)]
    wanted += [(rng.randint(60, 1800), "partial"), (rng.randint(30, 300), "gap")]
    if flap_s:
        wanted.append((flap_s, "flap"))
    for length, kind in wanted:
        for _ in range(100):
            start = rng.randrange(0, seconds - length)
            if all(start + length + 1 < a or a + n + 1 < start for a, n, _ in chosen):
                chosen.append((start, length, kind))
                break
    return sorted(chosen)


def _timeline(name: str, start_ms: int, seconds: int, rng: random.Random, flap_s: int) -> Timeline:
    """Spans as 1-second probes' journals make them: runs of one health merged, gaps left open."""
    spans: list[Span] = []
    cursor = 0
    source = f"journal watch/{name}/segment.jsonl"
    for at, length, kind in _outages(rng, seconds, flap_s):
        if at > cursor:
            spans.append(Span(start_ms + cursor * S, start_ms + at * S, "up", source))
        if kind == "flap":  # the health changes every second: one span per probe
            for k in range(length):
                health: Health = "down" if k % 2 else "up"
                spans.append(Span(start_ms + (at + k) * S, start_ms + (at + k + 1) * S, health, source))
        elif kind != "gap":  # a gap is no span at all: the timeline says no data there
            spans.append(Span(start_ms + at * S, start_ms + (at + length) * S, kind, source))
        cursor = at + length
    if cursor < seconds:
        spans.append(Span(start_ms + cursor * S, start_ms + seconds * S, "up", source))
    return Timeline(name, tuple(spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--flap-minutes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    base = load_sla(ROOT / "examples" / "sla-lab.yaml")
    services = tuple(Service(f"svc-{i:03d}", (f"svc-{i:03d}/health",)) for i in range(args.services))
    sla: Sla = replace(base, services=services)
    period = period_of(sla.window, 1_773_000_000_000)  # March 2026 in Europe/Berlin
    seconds = period.duration_ms // S
    flap_s = args.flap_minutes * 60

    def build() -> list[Timeline]:
        rng = random.Random(15)
        return [_timeline(s.name, period.start_ms, seconds, rng, flap_s) for s in services]

    def reference() -> int:
        timelines = build()
        return sum(span.end_ms - span.start_ms for t in timelines for span in t.spans)

    def compute(timelines: list[Timeline]) -> SlaReport:
        source = SourceInfo("journals", ("synthetic",), "benchmark timelines")
        return build_report(sla, timelines, [period], [source], generated_utc="2026-04-01T06:00:00.000+00:00")

    def render(report: SlaReport) -> int:
        views = [report_json_bytes(report)] + [
            r(report).encode() for r in (render_markdown, render_csv, render_html, render_text)
        ]
        return sum(len(v) for v in views)

    timelines = build()
    spans = sum(len(t.spans) for t in timelines)
    best: dict[str, tuple[float, float]] = {}

    def keep(name: str, wall: float, cpu: float) -> None:
        if name not in best or wall < best[name][0]:
            best[name] = (wall, cpu)

    for _ in range(args.repeats):
        wall, cpu, _total = timed(reference)
        keep("reference", wall, cpu)
        wall, cpu, report = timed(lambda: compute(timelines))
        keep("compute", wall, cpu)
        wall, cpu, size = timed(partial(render, report))
        keep("render", wall, cpu)
    statuses: dict[str, int] = {}
    for row in report.services:
        statuses[row.figures.status] = statuses.get(row.figures.status, 0) + 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"period:     {period.label} ({period.start_local} to {period.end_local}), {seconds:,} one-second probes "
        f"per service"
    )
    print(
        f"services:   {args.services}, {spans:,} spans in all ({args.flap_minutes} min flapping each), "
        f"slices {sla.slices.slice_ms // 1000} s; statuses {statuses}"
    )
    for name in ("reference", "compute", "render"):
        wall, cpu = best[name]
        print(
            f"{name:<10}  {wall * 1000:9.1f} ms wall  {cpu * 1000:9.1f} ms CPU  ({wall * 1000 / args.services:.2f} ms/service)"
        )
    total = best["compute"][0] + best["render"][0]
    print(
        f"report:     {total:.2f} s compute + render ({total / best['reference'][0]:.1f}x the reference); "
        f"views {size / 1024:.0f} KiB; peak RSS {peak:.0f} MiB; best of {args.repeats}"
    )


if __name__ == "__main__":
    main()
