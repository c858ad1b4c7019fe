"""The delay KPI: in the SLA report from drill journals, and as the watch's three-level alert.

The report is checked on a journal written here with the real journal writer and a fake clock
(exact, hand-computed figures), on a real demo drill's journal against the embedded lab (the
figures recomputed from its own probe.observed events), and on a source without round trips.
The alert evaluator is driven with synthetic observations (no process: it needs none).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from drill.cli import cli
from drill.clock import FakeClock
from drill.evidence.events import EventDraft, Mark, ProbeObserved
from drill.evidence.journal import JournalWriter, read_events
from drill.sla.alerts import AlertEvaluator, Edge
from drill.sla.calendar import period_of
from drill.sla.load import load_sla
from drill.sla.model import DelayKpi, Sla, Timeline, Window
from drill.sla.report import KpiResult, build_report
from drill.sla.sources import journal_digests
from tests.sla.test_sources import Journals, journals  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
SLA_FILE = ROOT / "examples" / "sla-lab.yaml"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PROBE = "orders-kv/canary"
# within 300 ms; levels given out of order on purpose: they are used sorted by delay
KPI = DelayKpi("rt", PROBE, 300, ((900, "legal"), (300, "oncall"), (600, "managers")))


def sla_with(kpi: DelayKpi) -> Sla:
    """The lab's SLA with only this KPI (no response KPI, no burn or threshold alert to interfere)."""
    return replace(load_sla(SLA_FILE), delays=(kpi,), response=(), thresholds=(), burn_rates=())


def delay_kpis(sla: Sla, paths: list[Path]) -> list[KpiResult]:
    base = FakeClock(now_ns=0).epoch
    period = period_of(Window("month", sla.window.time_zone), (base - EPOCH) // timedelta(milliseconds=1))
    report = build_report(
        sla,
        [Timeline(s.name, ()) for s in sla.services],
        [period],
        (),
        generated_utc="2026-03-01T00:00:00.000+00:00",
        journals=journal_digests(paths, (), [kpi.probe for kpi in sla.delays]),
    )
    return [k for k in report.kpis if k.kind == "delay"]


def write_journal(path: Path, trips: list[tuple[int, bool, int]]) -> None:
    """(tick in s, ok, latency ms) observations of orders-kv/canary, one second apart."""
    clock = FakeClock(now_ns=0)
    with JournalWriter.create(path, clock) as journal:
        for tick, ok, latency_ms in trips:
            start_ns = tick * 1_000_000_000
            observed = ProbeObserved("canary", ok, latency_ms * 1000, tick, start_ns, 0)
            journal.append(EventDraft(observed, start_ns, "orders-kv"))
            # another probe of the same asset, very slow: not a round trip of this KPI
            journal.append(
                EventDraft(ProbeObserved("other", True, 9_000_000, tick, start_ns, 0), start_ns, "orders-kv")
            )
        journal.append(EventDraft(Mark("end"), 10_000_000_000))


def test_round_trips_of_a_journal_are_counted_exactly(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    # 100 ms, 400 ms (over 300: level 1), failed twice (the second one not back after
    # 3 s + 500 ms - 2 s = 1500 ms: level 3), 200 ms
    write_journal(path, [(0, True, 100), (1, True, 400), (2, False, 500), (3, False, 500), (4, True, 200)])
    (kpi,) = delay_kpis(sla_with(KPI), [path])
    assert (kpi.verdict, kpi.count, kpi.met, kpi.over_limit, kpi.worst_ms, kpi.level) == (
        "missed", 5, 2, 3, 400, 3
    )  # fmt: skip
    assert "2 did not complete" in kpi.note and "counted as over the limit" in kpi.note


def test_all_fast_is_met_at_level_zero(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    write_journal(path, [(0, True, 100), (1, True, 300)])  # 300 is not over 300
    (kpi,) = delay_kpis(sla_with(KPI), [path])
    assert (kpi.verdict, kpi.count, kpi.met, kpi.over_limit, kpi.worst_ms, kpi.level) == (
        "met",
        2,
        2,
        0,
        300,
        0,
    )


def test_only_failures_have_no_worst_delay(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    write_journal(path, [(0, False, 200)])  # failed, 200 ms: below every level, still level 1
    (kpi,) = delay_kpis(sla_with(KPI), [path])
    assert (kpi.verdict, kpi.count, kpi.met, kpi.over_limit, kpi.worst_ms, kpi.level) == (
        "missed", 1, 0, 1, None, 1
    )  # fmt: skip
    assert "no worst delay" in kpi.note


def test_a_journal_without_the_probe_is_not_measured(tmp_path: Path) -> None:
    path = tmp_path / "segment.jsonl"
    write_journal(path, [])
    (kpi,) = delay_kpis(sla_with(KPI), [path])
    assert (kpi.verdict, kpi.count, kpi.worst_ms, kpi.level) == ("not measured", None, None, None)


def test_sources_without_round_trips_are_not_measured() -> None:
    (kpi,) = delay_kpis(sla_with(KPI), [])
    assert (kpi.verdict, kpi.count, kpi.met, kpi.worst_ms, kpi.over_limit) == (
        "not measured", None, None, None, None
    )  # fmt: skip
    assert kpi.note == "not measured: these sources carry no round-trip times"


def test_a_real_drill_journal(journals: Journals, tmp_path: Path) -> None:  # noqa: F811
    """The demo drill's canary round trips, recomputed here from the journal's own events."""
    events = [
        e
        for e in read_events(journals.demo)
        if isinstance(e.payload, ProbeObserved) and e.asset == "orders-kv" and e.payload.probe == "canary"
    ]
    observed = [e.payload for e in events if isinstance(e.payload, ProbeObserved)]
    assert observed, "the demo drill observes orders-kv/canary"
    sla = load_sla(SLA_FILE)
    first = int(datetime.fromisoformat(events[0].utc).timestamp() * 1000)
    month = period_of(Window("month", sla.window.time_zone), first).label
    result = CliRunner().invoke(
        cli,
        ["sla", "report", str(SLA_FILE), "--period", month, "--journal", str(journals.demo.parent),
         "--out", str(tmp_path / "out"), "--format", "json"],
    )  # fmt: skip
    data = json.loads(result.output)
    (kpi,) = [k for k in data["kpis"] if k["kind"] == "delay"]
    within = 5 * 60_000
    failed = sum(not o.ok for o in observed)
    slow = sum(o.ok and o.latency_us // 1000 > within for o in observed)
    done = [o.latency_us // 1000 for o in observed if o.ok]
    assert (kpi["count"], kpi["over_limit"], kpi["met"]) == (
        len(observed),
        failed + slow,
        len(observed) - failed - slow,
    )
    assert kpi["worst_ms"] == (max(done) if done else None)
    assert kpi["verdict"] == ("met" if failed + slow == 0 else "missed")
    assert kpi["level"] is not None and (kpi["level"] >= 1) == (failed + slow > 0)


# ---------------------------------------------------------------- the watch's alerts


def states(edges: list[Edge]) -> list[tuple[str, str, str]]:
    return [(e.event.name, e.event.state, e.event.chain) for e in edges]


def test_levels_fire_in_order_once_each_and_resolve() -> None:
    evaluator = AlertEvaluator(sla_with(KPI))
    t0 = 1_800_000_000_000

    def trip(at_s: int, ok: bool, latency_ms: int) -> list[tuple[str, str, str]]:
        evaluator.observe(PROBE, ok, t0 + at_s * 1000, latency_ms * 1000)
        edges = evaluator.evaluate(t0 + at_s * 1000 + 500)
        assert all(e.event.kind == "delay" and e.event.service == PROBE for e in edges)
        return states(edges)

    assert trip(0, True, 300) == []  # not over level 1 (300 ms)
    assert trip(1, True, 301) == [("rt level 1", "firing", "oncall")]
    assert trip(2, True, 350) == []  # still over level 1: paged once per episode
    assert trip(3, True, 601) == [("rt level 2", "firing", "managers")]
    assert trip(4, True, 901) == [("rt level 3", "firing", "legal")]
    assert trip(5, True, 2000) == []
    assert trip(6, True, 700) == [("rt level 3", "resolved", "legal")]  # under 900, over 600
    assert trip(7, True, 50) == [("rt level 1", "resolved", "oncall"), ("rt level 2", "resolved", "managers")]
    assert evaluator.evaluate(t0 + 60_000) == []  # handed out once


def test_a_failure_fires_level_one_then_higher_as_it_lasts() -> None:
    evaluator = AlertEvaluator(sla_with(KPI))
    t0 = 1_800_000_000_000
    evaluator.observe(PROBE, False, t0, 100_000)  # failed after 100 ms: not back, level 1
    (first,) = evaluator.evaluate(t0 + 1)
    assert states([first]) == [("rt level 1", "firing", "oncall")]
    assert "not back after at least 100 ms" in first.detail and first.event.window_ms is None
    evaluator.observe(PROBE, False, t0 + 500, 100_000)  # not back after 600 ms: not over 600
    assert evaluator.evaluate(t0 + 501) == []
    evaluator.observe(PROBE, False, t0 + 1000, 100_000)  # 1100 ms: levels 2 and 3
    assert states(evaluator.evaluate(t0 + 1001)) == [
        ("rt level 2", "firing", "managers"),
        ("rt level 3", "firing", "legal"),
    ]
    evaluator.observe(PROBE, True, t0 + 2000, 10_000)  # back: 10 ms
    assert [s for _, s, _ in states(evaluator.evaluate(t0 + 2001))] == ["resolved"] * 3
    evaluator.observe("web/front", True, t0 + 3000, 5_000_000)  # another probe: no delay KPI on it
    assert evaluator.evaluate(t0 + 3001) == []
