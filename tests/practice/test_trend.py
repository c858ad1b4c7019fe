"""compute_trend and its views over synthetic RunRecords: what counts, regressions, fixes, gaps."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import replace

import pytest

from drill.errors import UsageError
from drill.practice.records import AssetRecord, PageRecord, RunMode, RunRecord, Status
from drill.practice.trend import (
    CONTACTS_ONLY,
    FIX,
    FOR_ACK,
    FOR_DRILL,
    NOT_RUN,
    OTHER_PLAYBOOK,
    REGRESSION,
    SCOPE_ALL,
    SCOPE_DRILL,
    SUPERSEDED,
    AssetCell,
    Trend,
    compute_trend,
    render_trend_html,
    trend_csv,
    trend_data,
)
from tests.practice.records_builders import run_record

PLAYBOOK = "payments"


def asset(
    name: str = "web",
    *,
    tier: str = "tier-0",
    rto_ms: int | None = 1000,
    rto_target_ms: int | None = 5000,
    rpo_ms: int | None = 0,
    rpo_target_ms: int | None = 2000,
    verdict: str | None = None,
    chain: str = "",
    ack_ms: int | None = None,
    definition: str = "def-1",
) -> AssetRecord:
    """An asset whose objective states follow from its figures (None: not measured)."""

    def state(ms: int | None, target: int | None) -> str | None:
        if target is None:
            return None
        if ms is None:
            return "not-measured"
        return "met" if ms <= target else "missed"

    rto_state, rpo_state = state(rto_ms, rto_target_ms), state(rpo_ms, rpo_target_ms)
    if verdict is None:
        states = {rto_state, rpo_state}
        verdict = "fail" if "missed" in states else ("not-measured" if "not-measured" in states else "pass")
    return AssetRecord(
        asset=name,
        tier=tier,
        verdict=verdict,
        detection_ms=400 if rto_ms is not None else None,
        switchover_ms=600 if rto_ms is not None else None,
        rto_ms=rto_ms,
        rto_target_ms=rto_target_ms,
        rto_state=rto_state,
        rpo_ms=rpo_ms,
        rpo_target_ms=rpo_target_ms,
        rpo_state=rpo_state,
        lost_writes=0 if rpo_ms is not None else None,
        availability_bp=9950 if rto_ms is not None else None,
        chain=chain,
        ack_ms=ack_ms,
        definition_sha256=definition,
    )


def run(
    run_id: str,
    quarter: str,
    *assets: AssetRecord,
    started: str = "",
    status: Status = "verified",
    problem: str = "",
    mode: RunMode = "drill",
    playbook: str = PLAYBOOK,
    verdict: str = "",
    pages: tuple[PageRecord, ...] = (),
    playbook_sha256: str = "pb-1",
) -> RunRecord:
    if not verdict:
        verdict = "fail" if any(a.verdict == "fail" for a in assets) else "pass"
    started = started or f"2026-{int(quarter[-1]) * 3 if quarter else 1:02d}-10T10:00:00+00:00"
    return run_record(
        run_id,
        started,
        assets=assets,
        pages=pages,
        mode=mode,
        status=status,
        problem=problem,
        playbook=playbook,
        playbook_sha256=playbook_sha256,
        quarter=quarter,
        verdict=verdict,
        report_sha256="0" * 64,
    )


def page(chain: str, sent: str, ack_ms: int | None, contact: str = "ana") -> PageRecord:
    return PageRecord(chain, contact, "webhook", sent, True, "", ack_ms is not None, ack_ms)


def cells(trend: Trend, name: str) -> dict[str, AssetCell | None]:
    found = next(a for a in trend.assets if a.asset == name)
    return {p.key: c for p, c in zip(trend.periods, found.cells, strict=True)}


def cell_of(trend: Trend, name: str, period: str) -> AssetCell:
    found = cells(trend, name)[period]
    assert found is not None, f"{name} has no figures in {period}"
    return found


def test_a_target_met_last_quarter_and_missed_now_is_a_regression_with_its_figures() -> None:
    records = [
        run("r1", "2026-Q1", asset("kv", rpo_ms=400)),
        run("r2", "2026-Q2", asset("kv", rpo_ms=2600)),
    ]
    trend = compute_trend(records)
    assert [p.key for p in trend.periods] == ["2026-Q1", "2026-Q2"]
    (change,) = trend.regressions
    assert (change.kind, change.words, change.asset, change.objective, change.basis) == (
        REGRESSION,
        "issue discovered",
        "kv",
        "RPO",
        "target",
    )
    assert (change.before, change.before_run, change.after, change.after_run) == (
        "2026-Q1",
        "r1",
        "2026-Q2",
        "r2",
    )
    assert (change.before_ms, change.after_ms, change.after_target_ms) == (400, 2600, 2000)
    assert (change.before_state, change.after_state) == ("met", "missed")
    assert change.text == "kv RPO: met in 2026-Q1 (400 ms, target 2 s), missed in 2026-Q2 (2.6 s, target 2 s)"
    assert trend.fixes == ()


def test_an_rto_slower_by_more_than_the_margin_is_a_regression_and_the_margin_is_stated() -> None:
    records = [
        run("r1", "2026-Q1", asset(rto_ms=4000, rto_target_ms=9000)),
        run("r2", "2026-Q2", asset(rto_ms=5200, rto_target_ms=9000)),
    ]
    trend = compute_trend(records, margin_pct=20)
    (change,) = trend.regressions
    assert (change.objective, change.basis, change.before_ms, change.after_ms) == (
        "RTO",
        "margin",
        4000,
        5200,
    )
    assert change.text == "web RTO: 4 s in 2026-Q1, 5.2 s in 2026-Q2: 30 % slower (margin 20 %)"
    assert "more than 20 % and more than 1 s slower" in trend.rule
    assert trend_data(trend)["margin_pct"] == 20
    assert compute_trend(records, margin_pct=30).regressions == ()  # 30 % is not more than 30 %
    assert compute_trend(records, margin_pct=29).regressions[0].basis == "margin"
    within = [run("r1", "2026-Q1", asset(rto_ms=1000)), run("r2", "2026-Q2", asset(rto_ms=1200))]
    assert compute_trend(within, margin_pct=20).changes == ()  # exactly 20 %: not more


def test_a_missed_rto_is_named_once_by_its_target_not_again_by_the_margin() -> None:
    records = [run("r1", "2026-Q1", asset(rto_ms=1000)), run("r2", "2026-Q2", asset(rto_ms=9000))]
    (change,) = compute_trend(records).changes
    assert (change.objective, change.basis, change.before_state, change.after_state) == (
        "RTO",
        "target",
        "met",
        "missed",
    )


def test_a_target_missed_last_time_and_met_now_is_a_fix() -> None:
    records = [
        run("r1", "2026-Q1", asset("kv", rpo_ms=400)),
        run("r2", "2026-Q2", asset("kv", rpo_ms=2600)),
        run("r3", "2026-Q3", asset("kv", rpo_ms=450)),
    ]
    trend = compute_trend(records)
    assert [(c.kind, c.before, c.after) for c in trend.changes] == [
        (REGRESSION, "2026-Q1", "2026-Q2"),
        (FIX, "2026-Q2", "2026-Q3"),
    ]
    (fix,) = trend.fixes
    assert (fix.words, fix.objective, fix.before_ms, fix.after_ms) == ("issue fixed", "RPO", 2600, 450)


def test_not_measured_is_a_gap_never_a_zero_and_last_time_is_the_last_measured() -> None:
    records = [
        run("r1", "2026-Q1", asset(rto_ms=1000)),
        run("r2", "2026-Q2", asset(rto_ms=None)),
        run("r3", "2026-Q3", asset(rto_ms=9000)),
    ]
    trend = compute_trend(records)
    gap = cell_of(trend, "web", "2026-Q2")
    assert gap.rto_ms is None and gap.rto_state == "not-measured"
    (change,) = trend.regressions  # Q1 met, Q3 missed: the gap is skipped, not compared as 0
    assert (change.before, change.after, change.objective) == ("2026-Q1", "2026-Q3", "RTO")
    data = json.loads(json.dumps(trend_data(trend)))  # JSON-ready
    q2 = data["assets"][0]["periods"][1]
    assert (q2["period"], q2["rto_ms"], q2["availability_bp"]) == ("2026-Q2", None, None)
    rows = list(csv.DictReader(io.StringIO(trend_csv(trend))))
    assert [(r["period"], r["rto_ms"]) for r in rows] == [
        ("2026-Q1", "1000"),
        ("2026-Q2", ""),
        ("2026-Q3", "9000"),
    ]
    html = render_trend_html(trend)
    assert html.count(">not measured</text>") == 1
    assert html.count("<circle ") == 2  # two measured quarters, no point for the gap


def test_tampered_unsigned_and_unreadable_runs_are_excluded_with_the_records_problem() -> None:
    good = run("r1", "2026-Q1", asset(rto_ms=1000))
    tampered = replace(
        run("r2", "2026-Q2", asset(rto_ms=100), status="tampered"),
        problem="report.json.operator.sig: signature does not match report.json",
    )
    unsigned = run("r3", "2026-Q2", asset(rto_ms=100), status="unsigned", problem="no signatures")
    unreadable = run("r4", "", status="unreadable", problem="report.json: missing", playbook="")
    trend = compute_trend([good, tampered, unsigned, unreadable])
    assert [u.run_id for u in trend.used] == ["r1"]
    assert {(e.run_id, e.reason, e.scope, e.detail) for e in trend.excluded} == {
        ("r2", "tampered", SCOPE_ALL, "report.json.operator.sig: signature does not match report.json"),
        ("r3", "unsigned", SCOPE_ALL, "no signatures"),
        ("r4", "unreadable", SCOPE_ALL, "report.json: missing"),
    }
    assert [p.key for p in trend.periods] == ["2026-Q1"]  # the tampered quarter is not a quarter at all
    excluded = trend_data(trend)["excluded"]
    assert isinstance(excluded, list)
    assert {"run_id": "r2", "folder": "/evidence/r2", "reason": "tampered"}.items() <= excluded[0].items()


def test_the_latest_verified_drill_represents_its_quarter_and_the_others_are_superseded() -> None:
    early = run("r1", "2026-Q1", asset(rto_ms=9000), started="2026-02-01T10:00:00+00:00")
    late = run("r2", "2026-Q1", asset(rto_ms=1000), started="2026-03-01T10:00:00+00:00")
    later_tampered = run(
        "r3", "2026-Q1", asset(rto_ms=10), started="2026-03-20T10:00:00+00:00", status="tampered"
    )
    shuffled = [later_tampered, late, early]
    trend = compute_trend(shuffled)
    (period,) = trend.periods
    assert (period.run_id, period.superseded) == ("r2", ("r1",))
    assert period.basis == "the latest verified drill of 2026-Q1 (of 2 verified drills)"
    assert [(u.run_id, u.counts_for) for u in trend.used] == [("r2", (FOR_DRILL,))]
    superseded = next(e for e in trend.excluded if e.run_id == "r1")
    assert (superseded.reason, superseded.detail) == (
        SUPERSEDED,
        "2026-Q1 is represented by its latest verified drill, r2",
    )
    assert cell_of(trend, "web", "2026-Q1").rto_ms == 1000
    assert trend.changes == ()  # runs within one quarter are not compared


def test_a_contact_test_counts_for_time_to_ack_only() -> None:
    drill = run("r1", "2026-Q4", asset(chain="oncall", ack_ms=4000), started="2026-11-01T10:00:00+00:00")
    contacts = run(
        "c1",
        "2026-Q4",
        asset(rto_ms=1, verdict="not-measured"),  # a contact test's assets never count
        mode="contacts",
        verdict="pass",
        started="2026-11-05T10:00:00+00:00",
        pages=(
            page("oncall", "2026-11-05T10:00:00+00:00", None, contact="ana"),
            page("oncall", "2026-11-05T10:00:05+00:00", 700, contact="ben"),  # escalated: 5.7 s in all
        ),
    )
    trend = compute_trend([contacts, drill])
    (period,) = trend.periods
    assert period.run_id == "r1"
    assert cell_of(trend, "web", "2026-Q4").rto_ms == 1000  # the drill's, not the contact test's 1 ms
    (chain,) = trend.chains
    cell = chain.cells[0]
    assert cell is not None
    assert [(s.run_id, s.mode, s.ack_ms) for s in cell.samples] == [
        ("r1", "drill", 4000),
        ("c1", "contacts", 5700),
    ]
    assert (cell.run_id, cell.ack_ms) == ("c1", 5700)  # the slowest of the quarter
    used = {u.run_id: u for u in trend.used}
    assert (used["c1"].counts_for, used["c1"].chains) == ((FOR_ACK,), ("oncall",))
    assert used["r1"].counts_for == (FOR_DRILL, FOR_ACK)
    (excluded,) = trend.excluded
    assert (excluded.run_id, excluded.reason, excluded.scope) == ("c1", CONTACTS_ONLY, SCOPE_DRILL)


def test_a_chain_nobody_acknowledged_is_the_slowest_sample_of_its_quarter() -> None:
    drill = run("r1", "2026-Q4", asset(chain="oncall", ack_ms=900))
    silent = run("c1", "2026-Q4", mode="contacts", pages=(page("oncall", "2026-11-05T10:00:00+00:00", None),))
    cell = compute_trend([drill, silent]).chains[0].cells[0]
    assert cell is not None and (cell.run_id, cell.ack_ms) == ("c1", None)
    assert "not acknowledged" in render_trend_html(compute_trend([drill, silent]))


def test_a_contact_test_in_a_quarter_without_a_drill_is_a_period_with_acks_only() -> None:
    contacts = run(
        "c1",
        "2026-Q2",
        mode="contacts",
        pages=(page("oncall", "2026-05-05T10:00:00+00:00", 1200),),
    )
    trend = compute_trend([run("r1", "2026-Q1", asset(chain="oncall", ack_ms=3000)), contacts])
    assert [(p.key, p.run_id) for p in trend.periods] == [("2026-Q1", "r1"), ("2026-Q2", "")]
    assert cells(trend, "web")["2026-Q2"] is None
    assert [c.ack_ms if c else None for c in trend.chains[0].cells] == [3000, 1200]
    assert "no drill in this period" in trend_csv(trend)


def test_a_drill_that_did_not_run_never_represents_a_quarter() -> None:
    real = run("r1", "2026-Q1", asset(rto_ms=1000), started="2026-02-01T10:00:00+00:00")
    nothing = run("r2", "2026-Q1", asset(rto_ms=None), verdict="not-run", started="2026-03-01T10:00:00+00:00")
    trend = compute_trend([real, nothing])
    assert trend.periods[0].run_id == "r1"
    assert [(e.run_id, e.reason) for e in trend.excluded] == [("r2", NOT_RUN)]


def test_runs_without_a_quarter_are_periods_of_their_own_in_time_order() -> None:
    records = [
        run("r2", "", asset(rto_ms=1000), started="2026-05-01T10:00:00+00:00"),
        run("r1", "2026-Q1", asset(rto_ms=1000)),
        run("r3", "2026-Q3", asset(rto_ms=1000)),
    ]
    trend = compute_trend(records)
    assert [(p.key, p.basis) for p in trend.periods] == [
        ("2026-Q1", "the only verified drill of 2026-Q1"),
        ("r2", "this run (it states no quarter)"),
        ("2026-Q3", "the only verified drill of 2026-Q3"),
    ]


def test_by_run_compares_every_verified_drill_in_turn() -> None:
    records = [
        run("r1", "2026-Q1", asset(rto_ms=1000), started="2026-02-01T10:00:00+00:00"),
        run("r2", "2026-Q1", asset(rto_ms=9000), started="2026-03-01T10:00:00+00:00"),
    ]
    trend = compute_trend(records, by="run")
    assert [p.key for p in trend.periods] == ["r1", "r2"]
    assert [(c.before, c.after, c.objective) for c in trend.regressions] == [("r1", "r2", "RTO")]
    assert not any(e.reason == SUPERSEDED for e in trend.excluded)


def test_an_asset_verdict_from_pass_to_fail_without_an_rto_or_rpo_change_is_named() -> None:
    records = [
        run("r1", "2026-Q1", asset(chain="oncall", ack_ms=1000)),
        run("r2", "2026-Q2", asset(chain="oncall", ack_ms=None, verdict="fail")),  # nobody acknowledged
    ]
    (change,) = compute_trend(records).regressions
    assert (change.objective, change.before_state, change.after_state) == ("verdict", "pass", "fail")


def test_per_tier_figures_and_a_changed_definition_are_shown() -> None:
    records = [
        run("r1", "2026-Q1", asset("db", rto_ms=2000), asset("api", rto_ms=1000)),
        run(
            "r2",
            "2026-Q2",
            asset("db", rto_ms=2100, definition="def-2"),
            asset("api", rto_ms=6000),
            playbook_sha256="pb-2",
        ),
    ]
    trend = compute_trend(records)
    (tier,) = trend.tiers
    q1, q2 = tier.cells
    assert q1 is not None and q2 is not None
    assert (q1.assets, q1.passed, q1.rto_met, q1.worst_rto_ms, q1.verdict) == (2, 2, 2, 2000, "pass")
    assert (q2.passed, q2.failed, q2.rto_missed, q2.worst_rto_ms, q2.verdict) == (1, 1, 1, 6000, "fail")
    assert [p.changes for p in trend.periods] == [(), ("db: definition changed",)]
    assert cell_of(trend, "db", "2026-Q2").definition_changed
    assert not cell_of(trend, "api", "2026-Q2").definition_changed


def test_filters_narrow_the_trend_and_other_playbooks_are_excluded_as_such() -> None:
    records = [
        run("r1", "2026-Q1", asset("db", tier="tier-0"), asset("batch", tier="tier-2")),
        run("o1", "2026-Q1", asset("mail"), playbook="mail"),
    ]
    trend = compute_trend(records, playbook=PLAYBOOK, tier="tier-2")
    assert [a.asset for a in trend.assets] == ["batch"]
    assert [(e.run_id, e.reason, e.detail) for e in trend.excluded] == [
        ("o1", OTHER_PLAYBOOK, "playbook 'mail', not 'payments'")
    ]
    assert [a.asset for a in compute_trend(records, playbook=PLAYBOOK, asset="db").assets] == ["db"]


def test_bad_filters_are_usage_errors_with_a_hint_naming_the_known_ones() -> None:
    records = [run("r1", "2026-Q1", asset("db")), run("o1", "2026-Q1", asset("mail"), playbook="mail")]
    with pytest.raises(UsageError, match="of 2 playbooks: mail, payments") as several:
        compute_trend(records)
    assert several.value.hint == "choose one with --playbook NAME"
    with pytest.raises(UsageError) as unknown:
        compute_trend(records, playbook="payroll")
    assert (unknown.value.message, unknown.value.hint) == (
        "no run of playbook 'payroll' in the history",
        "known playbooks: mail, payments",
    )
    with pytest.raises(UsageError, match="no asset 'mail'") as asset_error:
        compute_trend(records, playbook=PLAYBOOK, asset="mail")
    assert asset_error.value.hint == "known assets: db"
    with pytest.raises(UsageError, match="no tier"):
        compute_trend(records, playbook=PLAYBOOK, tier="tier-9")
    with pytest.raises(UsageError, match="group by"):
        compute_trend(records, playbook=PLAYBOOK, by="month")


def test_the_views_are_deterministic_whatever_the_order_of_the_records() -> None:
    records = [
        run("r1", "2026-Q1", asset("kv", rpo_ms=400), asset("web")),
        run("r2", "2026-Q2", asset("kv", rpo_ms=2600), asset("web", rto_ms=None)),
        run("r3", "2026-Q3", asset("kv", rpo_ms=450), asset("web", rto_ms=2000)),
        run("t1", "2026-Q3", asset("web", rto_ms=1), status="tampered", problem="signature does not match"),
    ]
    first = compute_trend(records)
    shuffled = list(records)
    random.Random(7).shuffle(shuffled)
    second = compute_trend(shuffled)
    assert second == first
    assert render_trend_html(second) == render_trend_html(first)
    assert trend_csv(second) == trend_csv(first)
    assert json.dumps(trend_data(second)) == json.dumps(trend_data(first))


def test_hostile_names_are_escaped_in_the_html_and_defused_in_the_csv() -> None:
    hostile = '<script>alert("x")</script>'
    records = [
        run("r1<b>", "2026-Q1", asset(hostile, tier="=cmd|' /C calc'!A0"), playbook="<i>pb</i>"),
        run("r2", "2026-Q2", asset(hostile, tier="=cmd|' /C calc'!A0", rto_ms=9000), playbook="<i>pb</i>"),
    ]
    trend = compute_trend(records)
    html = render_trend_html(trend)
    assert "<script" not in html and "<i>pb" not in html and "r1<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;i&gt;pb&lt;/i&gt;" in html
    rows = list(csv.reader(io.StringIO(trend_csv(trend))))
    assert all(not cell.startswith("=") for row in rows for cell in row)
    assert rows[1][1] == "'=cmd|' /C calc'!A0"


def test_an_index_of_bad_evidence_only_gives_an_empty_trend_that_says_why() -> None:
    trend = compute_trend([run("t1", "2026-Q1", asset(), status="tampered", problem="journal chain broken")])
    assert (trend.periods, trend.assets, trend.used) == ((), (), ())
    assert [(e.reason, e.detail) for e in trend.excluded] == [("tampered", "journal chain broken")]
    assert "journal chain broken" in render_trend_html(trend)


def test_a_slowdown_within_the_probes_resolution_is_no_regression_whatever_its_percent() -> None:
    # 300 ms -> 700 ms is 133 % slower but 400 ms: within two 200 ms probe intervals, noise
    records = [run("r1", "2026-Q1", asset(rto_ms=300)), run("r2", "2026-Q2", asset(rto_ms=700))]
    assert compute_trend(records, margin_pct=20).regressions == ()
    lowered = compute_trend(records, margin_pct=20, min_slower_ms=300)
    assert [(c.basis, c.before_ms, c.after_ms) for c in lowered.regressions] == [("margin", 300, 700)]
    assert trend_data(lowered)["min_slower_ms"] == 300
