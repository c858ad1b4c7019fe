"""The pure fold from events to results: timings, uncertainty, verdicts, order violations."""

from __future__ import annotations

import json

import pytest

from drill.evidence.events import (
    JOURNAL_FORMAT,
    AssetState,
    Event,
    FailureInjected,
    Payload,
    PlaybookRef,
    ProbeObserved,
    RunFinished,
    RunStarted,
    RunStatus,
    State,
)
from drill.evidence.snapshot import Plan
from drill.plan import build_plan
from drill.playbook.load import parse_document
from drill.playbook.validate import check_document
from drill.results import ProbeError, Results, fold_results

MS = 1_000_000
DOC: dict[str, object] = {
    "apiVersion": "drill/v1",
    "kind": "Playbook",
    "metadata": {"name": "t", "owner": "o"},
    "settings": {"interval": "100ms"},
    "tiers": [{"name": "tier-0", "rto": "2s"}, {"name": "tier-1", "rto": "10s"}],
    "assets": [
        {
            "id": "db",
            "tier": "tier-0",
            "probes": [{"name": "p", "tcp": {"host": "127.0.0.1", "port": 5432}, "interval": "200ms"}],
        },
        {
            "id": "api",
            "tier": "tier-1",
            "depends_on": ["db"],
            "probes": [{"name": "p", "http": {"url": "http://127.0.0.1:1/health"}}],
        },
    ],
    "scenario": [{"name": "kill", "mark": "disaster"}],
}


def _plan(doc: dict[str, object] = DOC) -> Plan:
    playbook, diagnostics = check_document(parse_document(json.dumps(doc).encode(), "t.yaml"))
    assert playbook is not None, diagnostics
    return build_plan(playbook)


class _Events:
    def __init__(self, *, upper: bool = True) -> None:
        self.items: list[Event] = []
        self.ticks = 0
        self.upper = upper  # format 1 journals have no upper bound on a transition

    def add(self, payload: Payload, at_ms: int, asset: str | None = None) -> None:
        seq = len(self.items) + 1
        utc = f"2026-01-01T00:00:{at_ms // 1000:02d}.{at_ms % 1000:03d}+00:00"
        self.items.append(Event(seq, "0" * 64, at_ms * MS, utc, payload, asset))

    def state(
        self, asset: str, state: State, at_ms: int, lower_ms: int | None = None, upper_ms: int = 0
    ) -> None:
        """A transition at at_ms, true change within [lower_ms, upper_ms] (defaults: 100 ms before, at)."""
        lower = (at_ms - 100 if lower_ms is None else lower_ms) * MS
        upper = (upper_ms or at_ms) * MS if self.upper else None
        self.add(AssetState(state, at_ms * MS, lower, "p", 2, upper_mono_ns=upper), at_ms, asset)

    def probe(self, asset: str, ok: bool, at_ms: int, reason: str = "") -> None:
        self.ticks += 1
        self.add(ProbeObserved("p", ok, 900, self.ticks, at_ms * MS, 0, reason), at_ms, asset)


def _drill(
    api_recovers_ms: int = 2500, *, journalled_plan: bool = True, doc: dict[str, object] = DOC
) -> _Events:
    """A run: both assets up, a disaster at 1 s, db down 1.2-2 s, api down 1.3 s to api_recovers_ms.

    journalled_plan=False makes a format-1 journal (drill 0.1.0): no plan in run.started, so the
    fold rebuilds it from the journalled document.
    """
    e = _Events(upper=journalled_plan)
    e.add(
        RunStarted(
            run_id="r1",
            playbook=PlaybookRef("t", "ab", "t.yaml", doc),
            user="tester@host",
            host="host",
            tool_version="0.0.0",
            started_utc="2026-01-01T00:00:00.000+00:00",
            plan=_plan(doc) if journalled_plan else None,
            format=JOURNAL_FORMAT if journalled_plan else 1,
        ),
        0,
    )
    e.state("db", "up", 100)
    e.state("api", "up", 100)
    e.probe("db", True, 100)
    e.probe("api", True, 100)
    e.add(FailureInjected("kill"), 1000)
    e.probe("db", False, 1200, "refused")
    e.state(
        "db", "down", 1200, lower_ms=1000, upper_ms=1230
    )  # last ok probe started at 1 s; the failing one ended at 1.23 s
    e.state("api", "down", 1300, lower_ms=1200, upper_ms=1310)
    e.probe("api", False, 1300, "503")
    e.state("db", "up", 2000, lower_ms=1750)  # the last failing probe started at 1.75 s
    e.probe("db", True, 2000)
    e.state("api", "up", api_recovers_ms)
    e.probe("api", True, api_recovers_ms)
    e.add(RunFinished(RunStatus.COMPLETED), 4000)
    return e


def _fold(events: _Events) -> Results:
    return fold_results(events.items)


@pytest.mark.parametrize("journalled_plan", [True, False], ids=["format-2", "format-1"])
def test_timings_follow_design_semantics(journalled_plan: bool) -> None:
    results = _fold(_drill(journalled_plan=journalled_plan))
    db, api = results.assets
    assert (db.detection_ms, db.switchover_ms, db.rto_ms) == (200, 800, 1000)
    assert (api.detection_ms, api.switchover_ms, api.rto_ms) == (300, 1200, 1500)
    # The uncertainty is the recorded window of each change: [lower, upper], or [lower, at] in format 1.
    assert (db.detect_window_ms, db.recover_window_ms) == ((230, 250) if journalled_plan else (200, 250))
    assert (api.detect_window_ms, api.recover_window_ms) == ((110, 100) if journalled_plan else (100, 100))
    assert (db.uncertainty_ms, api.uncertainty_ms) == (250, 100)  # of the RTO: the recovery's window
    assert db.availability_bp == 6666 and db.probe_errors == (ProbeError("p", "refused", 1, 7),)
    assert results.verdict == "pass" and results.order_violations == ()


def test_missed_rto_fails_the_asset_with_a_reason() -> None:
    results = _fold(_drill(api_recovers_ms=12_000))
    api = results.assets[1]
    assert api.verdict == "fail"
    assert api.reasons == ("RTO 11 s exceeds target 10 s",)
    assert results.verdict == "fail"


def test_asset_up_before_its_dependency_is_an_order_violation() -> None:
    results = _fold(_drill(api_recovers_ms=1800))
    assert [(v.asset, v.depends_on) for v in results.order_violations] == [("api", "db")]


def test_journal_without_run_finished_is_reported_aborted() -> None:
    events = _drill()
    events.items.pop()
    results = _fold(events)
    assert (results.status, results.verdict) == (RunStatus.ABORTED, "aborted")
    assert results.reason == "the journal ends before run.finished"


def test_an_asset_no_probe_ever_answered_has_no_availability_not_zero() -> None:
    events = _drill()
    events.items = [
        e for e in events.items if not (e.asset == "api" and isinstance(e.payload, ProbeObserved))
    ]
    api = _fold(events).assets[1]
    assert (api.probes_total, api.availability_bp) == (0, None)  # not measured: never "0.00 %"


# -- objectives: met, missed, not measured, unaffected ------------------------------------------


def _with_tier0(**fields: object) -> dict[str, object]:
    tiers = [{"name": "tier-0", "rto": "2s", **fields}, {"name": "tier-1", "rto": "10s"}]
    return {**DOC, "tiers": tiers}


def test_an_rpo_target_no_canary_measured_leaves_the_drill_incomplete_never_pass() -> None:
    results = _fold(_drill(doc=_with_tier0(rpo="0")))
    db = results.assets[0]
    rpo = db.objective("rpo")
    assert rpo is not None and (rpo.state, rpo.achieved_ms, rpo.waived) == ("not-measured", None, "")
    assert rpo.reason == "no canary probe writes to it"
    assert db.reasons == ("RPO not measured: no canary probe writes to it",)
    assert (db.verdict, results.verdict) == ("incomplete", "incomplete")
    assert "not measured" in results.verdict_reason and "db" in results.verdict_reason


def test_a_waived_objective_is_shown_with_its_reason_and_does_not_block_a_pass() -> None:
    waive = {"rpo": "no canary can write to this store; proven by the restore test"}
    results = _fold(_drill(doc=_with_tier0(rpo="0", waive=waive)))
    rpo = results.assets[0].objective("rpo")
    assert rpo is not None and (rpo.state, rpo.waived) == ("not-measured", waive["rpo"])
    assert (results.assets[0].verdict, results.verdict) == ("pass", "pass")


def test_an_asset_the_outage_never_reached_is_unaffected_not_rto_0() -> None:
    events = _drill()
    # api never goes down: drop its down/up transitions and failing probe
    events.items = [e for e in events.items if not (e.asset == "api" and e.seq > 6)]
    results = _fold(events)
    db, api = results.assets
    rto = api.objective("rto")
    assert rto is not None and rto.state == "unaffected" and api.rto_ms is None
    assert api.verdict == "unaffected" and db.verdict == "pass"
    assert results.verdict == "pass"  # db's recovery was demonstrated; api was not touched


def test_a_drill_whose_outage_reached_no_deciding_asset_is_incomplete() -> None:
    events = _drill()
    # neither asset goes down: keep only the states journalled before the injection (seq 6)
    events.items = [e for e in events.items if not (isinstance(e.payload, AssetState) and e.seq > 6)]
    results = _fold(events)
    assert {a.verdict for a in results.assets} == {"unaffected"}
    assert results.verdict == "incomplete" and "no recovery was demonstrated" in results.verdict_reason


def test_an_asset_down_before_the_injection_is_never_rto_0() -> None:
    events = _drill()
    injected = next(e for e in events.items if isinstance(e.payload, FailureInjected))
    e = _Events()
    e.items = [x for x in events.items if x.seq < injected.seq]
    e.state("db", "down", 900)  # down before the failure was injected
    e.add(injected.payload, 1000)
    e.state("db", "up", 2000)
    e.add(RunFinished(RunStatus.COMPLETED), 4000)
    db = _fold(e).assets[0]
    rto = db.objective("rto")
    assert rto is not None and rto.state == "not-measured" and "already down" in rto.reason
    assert db.rto_ms is None and db.verdict == "incomplete"


@pytest.mark.parametrize(("ends_ms", "state"), [(2500, "not-measured"), (3500, "missed")])
def test_still_down_at_the_end_is_missed_only_once_the_target_elapsed(ends_ms: int, state: str) -> None:
    """db's RTO target is 2 s from the injection at 1 s: at 2.5 s it was not yet missed."""
    events = _drill()
    e = _Events()
    e.items = [
        x
        for x in events.items
        if not (x.asset == "db" and x.mono_ns >= 2000 * MS) and not isinstance(x.payload, RunFinished)
    ]
    e.add(RunFinished(RunStatus.COMPLETED), ends_ms)
    rto = _fold(e).assets[0].objective("rto")
    assert rto is not None and rto.state == state and rto.achieved_ms is None
