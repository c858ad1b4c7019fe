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
    "tiers": [{"name": "tier-0", "rto": "2s", "rpo": "0"}, {"name": "tier-1", "rto": "10s"}],
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


def _plan() -> Plan:
    playbook, diagnostics = check_document(parse_document(json.dumps(DOC).encode(), "t.yaml"))
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


def _drill(api_recovers_ms: int = 2500, *, journalled_plan: bool = True) -> _Events:
    """A run: both assets up, a disaster at 1 s, db down 1.2-2 s, api down 1.3 s to api_recovers_ms.

    journalled_plan=False makes a format-1 journal (drill 0.1.0): no plan in run.started, so the
    fold rebuilds it from the journalled document.
    """
    e = _Events(upper=journalled_plan)
    e.add(
        RunStarted(
            run_id="r1",
            playbook=PlaybookRef("t", "ab", "t.yaml", DOC),
            user="tester@host",
            host="host",
            tool_version="0.0.0",
            started_utc="2026-01-01T00:00:00.000+00:00",
            plan=_plan() if journalled_plan else None,
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
