"""`drill trend` over the practice's real, signed drills (tests/practice/conftest.py): q2 is named
a regression of q1 and q3 its fix; tampered and unsigned evidence never counts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.practice.history import History, add_folders
from drill.practice.records import RunRecord
from drill.practice.trend import CONTACTS_ONLY, FOR_ACK, FOR_DRILL, SCOPE_DRILL, Trend, compute_trend
from tests.practice.conftest import PLAYBOOK_NAME, Practice


@pytest.fixture(scope="module")
def index(practice: Practice, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trend") / "history.sqlite"
    add_folders(path, list(practice.runs.values()), practice.allowed_signers)
    return path


@pytest.fixture(scope="module")
def records(index: Path) -> list[RunRecord]:
    with History.open(index, create=False) as history:
        return history.records()


@pytest.fixture(scope="module")
def trend(records: list[RunRecord]) -> Trend:
    return compute_trend(records)


def _folder(practice: Practice, label: str) -> str:
    return str(practice.runs[label].resolve())


def test_q2_is_named_a_regression_of_q1_and_q3_its_fix(practice: Practice, trend: Trend) -> None:
    ids = practice.run_ids
    assert [(p.key, p.run_id) for p in trend.periods] == [
        ("2026-Q1", ids["q1"]),
        ("2026-Q2", ids["q2"]),
        ("2026-Q3", ids["q3"]),
        ("2026-Q4", ids["q4"]),
    ]
    regressions = [(c.asset, c.objective, c.basis, c.before_run, c.after_run) for c in trend.regressions]
    assert ("orders-kv", "RTO", "target", ids["q1"], ids["q2"]) in regressions
    fixes = [(c.asset, c.objective, c.before_run, c.after_run) for c in trend.fixes]
    assert ("orders-kv", "RTO", ids["q2"], ids["q3"]) in fixes
    regression = next(c for c in trend.regressions if c.asset == "orders-kv" and c.objective == "RTO")
    assert regression.words == "issue discovered"
    assert regression.before_ms is not None and regression.after_ms is not None
    assert regression.after_target_ms is not None and regression.before_ms <= regression.after_target_ms
    assert regression.after_ms > regression.after_target_ms  # the figures say why


def test_tampered_and_unsigned_evidence_is_never_used(practice: Practice, trend: Trend) -> None:
    bad = {_folder(practice, "tampered"), _folder(practice, "unsigned")}
    assert not bad & {u.folder for u in trend.used}
    reasons = {e.folder: (e.reason, e.scope) for e in trend.excluded}
    assert reasons[_folder(practice, "tampered")] == ("tampered", "all")
    assert reasons[_folder(practice, "unsigned")] == ("unsigned", "all")
    tampered = next(e for e in trend.excluded if e.folder == _folder(practice, "tampered"))
    assert "does not match report.json" in tampered.detail  # the record's problem, as verify said it
    # q3 and its tampered copy share a run id: q3 counts, from its own folder
    q3 = next(u for u in trend.used if u.run_id == practice.run_ids["q3"])
    assert (q3.folder, q3.counts_for[0]) == (_folder(practice, "q3"), FOR_DRILL)


def test_the_contact_test_counts_for_time_to_ack_only(practice: Practice, trend: Trend) -> None:
    contacts = _folder(practice, "contacts")
    used = next(u for u in trend.used if u.folder == contacts)
    assert used.counts_for == (FOR_ACK,) and used.period == "2026-Q4" and used.chains
    excluded = next(e for e in trend.excluded if e.folder == contacts)
    assert (excluded.reason, excluded.scope) == (CONTACTS_ONLY, SCOPE_DRILL)
    assert trend.periods[-1].run_id == practice.run_ids["q4"]  # the contact test represents no quarter
    chain = next(c for c in trend.chains if c.chain == used.chains[0])
    q4 = chain.cells[-1]
    assert q4 is not None
    samples = {s.run_id: s for s in q4.samples}
    assert set(samples) == {practice.run_ids["q4"], practice.run_ids["contacts"]}
    test = samples[practice.run_ids["contacts"]]
    # the lab's pager acknowledges after 700 ms
    assert test.mode == "contacts" and test.ack_ms is not None and test.ack_ms >= 700
    slowest = max(samples.values(), key=lambda s: s.ack_ms if s.ack_ms is not None else 10**12)
    assert (q4.run_id, q4.ack_ms) == (slowest.run_id, slowest.ack_ms)  # the slowest sample is shown


def test_the_changed_playbook_of_q4_is_shown(trend: Trend) -> None:
    assert [bool(p.changes) for p in trend.periods] == [False, False, False, True]
    assert trend.periods[-1].changes == ("web: definition changed",)
    web = next(a for a in trend.assets if a.asset == "web")
    assert [c.definition_changed if c else None for c in web.cells] == [False, False, False, True]


def test_cli_json_lists_used_and_excluded_runs_with_reasons(practice: Practice, index: Path) -> None:
    done = CliRunner().invoke(cli, ["trend", "--index", str(index), "--format", "json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["playbook"] == PLAYBOOK_NAME and data["margin_pct"] == 20
    assert [p["key"] for p in data["periods"]] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert {u["folder"] for u in data["used"]} == {
        _folder(practice, label) for label in ("q1", "q2", "q3", "q4", "contacts")
    }
    assert {(e["folder"], e["reason"]) for e in data["excluded"]} >= {
        (_folder(practice, "tampered"), "tampered"),
        (_folder(practice, "unsigned"), "unsigned"),
    }
    assert all(e["detail"] for e in data["excluded"])
    assert any(r["asset"] == "orders-kv" and r["after"] == "2026-Q2" for r in data["regressions"])


def test_cli_text_fits_80_columns_and_names_the_regression(practice: Practice, index: Path) -> None:
    done = CliRunner().invoke(cli, ["trend", "--index", str(index)])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith(f"Trend of {PLAYBOOK_NAME} by quarter: 4 quarters, 5 runs used")
    text = done.stdout
    assert "orders-kv RTO: met in 2026-Q1" in text and "missed in 2026-Q2" in text
    assert "more than 20 % and more than 1 s slower" in " ".join(text.split())
    assert "tampered: " in text and practice.run_ids["q3"] in text


def test_cli_csv_and_html_outputs(tmp_path: Path, index: Path) -> None:
    done = CliRunner().invoke(
        cli, ["trend", "--index", str(index), "--format", "csv", "--asset", "orders-kv"]
    )
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["asset"], r["period"], r["rto_state"]) for r in rows] == [
        ("orders-kv", "2026-Q1", "met"),
        ("orders-kv", "2026-Q2", "missed"),
        ("orders-kv", "2026-Q3", "met"),
        ("orders-kv", "2026-Q4", "met"),
    ]
    page = tmp_path / "page.html"
    done = CliRunner().invoke(cli, ["trend", "--index", str(index), "--format", "html", "-o", str(page)])
    assert done.exit_code == 0, done.output
    html = page.read_text(encoding="utf-8")
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="trend"') == len(
        compute_trend(_records(index)).assets
    )
    assert "issue discovered" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def _records(index: Path) -> list[RunRecord]:
    with History.open(index, create=False) as history:
        return history.records()


def test_cli_html_defaults_to_trend_html_in_the_current_folder(
    index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(cli, ["trend", "--index", str(index), "--format", "html"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "trend.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "wrote trend.html" in done.stderr


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["--playbook", "payroll"], "no run of playbook 'payroll' in the history", PLAYBOOK_NAME),
        (["--asset", "nope"], "no asset 'nope' in the history", "orders-kv"),
        (["--tier", "tier-9"], "no tier 'tier-9' in the history", "known tiers: "),
    ],
)
def test_cli_unknown_names_exit_2_with_a_hint(index: Path, args: list[str], message: str, hint: str) -> None:
    done = CliRunner().invoke(cli, ["trend", "--index", str(index), *args])
    assert done.exit_code == 2
    assert done.stdout == ""
    first, second = done.stderr.splitlines()
    assert first == f"drill: {message}"
    assert second.startswith("  hint: known ") and hint in second
    assert "Traceback" not in done.stderr
