"""The pure fold from events to results: timings, uncertainty, verdicts, order violations."""

from __future__ import annotations

from typing import Any

from drill import events as ev
from drill.events import Event
from drill.results import fold_results

MS = 1_000_000
DOC: dict[str, Any] = {
    "metadata": {"name": "t", "owner": "o"},
    "settings": {"interval": "100ms"},
    "tiers": [{"name": "tier-0", "rto": "2s", "rpo": "0"}, {"name": "tier-1", "rto": "10s"}],
    "assets": [
        {"id": "db", "tier": "tier-0", "probes": [{"name": "p", "tcp": {}, "interval": "200ms"}]},
        {"id": "api", "tier": "tier-1", "depends_on": ["db"], "probes": [{"name": "p", "http": {}}]},
    ],
}


class _Events:
    def __init__(self) -> None:
        self.items: list[Event] = []

    def add(
        self, kind: str, at_ms: int, data: dict[str, Any] | None = None, asset: str | None = None
    ) -> None:
        seq = len(self.items) + 1
        utc = f"2026-01-01T00:00:{at_ms // 1000:02d}.{at_ms % 1000:03d}+00:00"
        self.items.append(Event(seq, "0" * 64, at_ms * MS, utc, kind, data or {}, asset))

    def state(self, asset: str, state: str, at_ms: int) -> None:
        self.add(ev.ASSET_STATE, at_ms, {"state": state, "at_mono_ns": at_ms * MS}, asset)

    def probe(self, asset: str, ok: bool, at_ms: int, reason: str = "") -> None:
        self.add(ev.PROBE_OBSERVED, at_ms, {"probe": "p", "ok": ok, "reason": reason}, asset)


def _drill(api_recovers_ms: int = 2500) -> _Events:
    e = _Events()
    e.add(
        ev.RUN_STARTED,
        0,
        {"run_id": "r1", "playbook": {"name": "t", "sha256": "ab", "path": "t.yaml", "document": DOC}},
    )
    e.state("db", "up", 100)
    e.state("api", "up", 100)
    e.probe("db", True, 100)
    e.probe("api", True, 100)
    e.add(ev.INJECTED, 1000, {"step": "kill"})
    e.probe("db", False, 1200, "refused")
    e.state("db", "down", 1200)
    e.state("api", "down", 1300)
    e.probe("api", False, 1300, "503")
    e.state("db", "up", 2000)
    e.probe("db", True, 2000)
    e.state("api", "up", api_recovers_ms)
    e.probe("api", True, api_recovers_ms)
    e.add(ev.RUN_FINISHED, 4000, {"status": "completed"})
    return e


def test_timings_follow_design_semantics() -> None:
    data = fold_results(_drill().items).data
    db, api = data["assets"]
    assert (db["detection_ms"], db["switchover_ms"], db["rto_ms"], db["uncertainty_ms"]) == (
        200,
        800,
        1000,
        200,
    )
    assert (api["detection_ms"], api["switchover_ms"], api["rto_ms"], api["uncertainty_ms"]) == (
        300,
        1200,
        1500,
        100,
    )
    assert db["availability_bp"] == 6666 and db["probe_errors"] == [
        {"probe": "p", "reason": "refused", "count": 1, "first_seq": 7}
    ]
    assert data["verdict"] == "pass" and data["order_violations"] == []


def test_missed_rto_fails_the_asset_with_a_reason() -> None:
    data = fold_results(_drill(api_recovers_ms=12_000).items).data
    api = data["assets"][1]
    assert api["verdict"] == "fail"
    assert api["reasons"] == ["RTO 11000 ms exceeds target 10000 ms"]
    assert data["verdict"] == "fail"


def test_asset_up_before_its_dependency_is_an_order_violation() -> None:
    data = fold_results(_drill(api_recovers_ms=1800).items).data
    assert [(v["asset"], v["depends_on"]) for v in data["order_violations"]] == [("api", "db")]


def test_journal_without_run_finished_is_reported_aborted() -> None:
    items = _drill().items[:-1]
    data = fold_results(items).data
    assert (data["status"], data["verdict"]) == ("aborted", "aborted")
    assert data["reason"] == "the journal ends before run.finished"
