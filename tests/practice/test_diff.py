"""`drill diff` over the practice's real evidence: the regression of q2 (an added pause step)
and its fix in q3, the changed probe of q4, a run against itself, tampered and unsigned sides
flagged, run ids through a history index, machine output, 80 columns, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import DrillGroup
from drill.cli.diff import diff
from drill.evidence.canonical import canonical_bytes
from drill.practice.diff import RunDiff, RunSide, checked_side, diff_runs, diff_text, moved
from drill.practice.history import add_folders, evidence_folders
from drill.practice.records import RunRecord
from drill.report.build import load_report
from drill.units import human_ms
from tests.practice.conftest import PLAYBOOK_NAME, Practice, demo_text, one_line_error

# `diff` under a `drill` group of its own: the DrillGroup that shows a DrillError as one line
# and exits with its code, whether or not COMMANDS lists `diff` at the moment.
DRILL = DrillGroup("drill")
DRILL.add_command(diff)

HELD_UP_STEP = "scenario: the promotion is held up"


def drill(*args: str | Path) -> Result:
    return CliRunner().invoke(DRILL, [str(a) for a in args])


@pytest.fixture(scope="module")
def sides(practice: Practice) -> dict[str, RunSide]:
    """Every practice drill read as a side, verified now against the practice's trust file."""
    labels = ("q1", "q2", "q3", "q4", "tampered", "unsigned")
    return {label: checked_side(practice.runs[label], practice.allowed_signers) for label in labels}


@pytest.fixture(scope="module")
def index(practice: Practice, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every practice run added to a history index (the tampered and unsigned ones flagged)."""
    path = tmp_path_factory.mktemp("diff-history") / "drill-history.sqlite"
    add_folders(path, evidence_folders([practice.runs_dir]), practice.allowed_signers)
    return path


def compared(sides: dict[str, RunSide], a: str, b: str) -> RunDiff:
    return diff_runs(sides[a], sides[b])


def asset_rto(practice: Practice, label: str, asset: str) -> int:
    """The achieved RTO the signed report of a practice run states for an asset."""
    rto = next(x for x in load_report(practice.runs[label]).assets if x.id == asset).rto_ms
    assert rto is not None
    return rto


def results_lines(lines: list[str], asset: str) -> list[str]:
    """The results lines of one asset (its heading, then its figures, up to the next asset)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {asset} ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return lines[start:end]


# ---------------------------------------------------------------- the practice, quarter by quarter


def test_q1_to_q2_shows_the_added_step_and_the_regression(
    practice: Practice, sides: dict[str, RunSide]
) -> None:
    result = compared(sides, "q1", "q2")
    steps = [c for c in result.plan_changes if c.section == "step"]
    assert [(c.subject, c.kind) for c in steps] == [(HELD_UP_STEP, "added")]
    assert steps[0].a is None and "pause 6 s" in str(steps[0].b)
    held = next(s for s in result.b.plan.steps if s.name == "the promotion is held up")
    assert (str(held.kind), held.bound_ms) == ("pause", 6000)
    # only the scenario differs: no asset, probe or tier changed (q2's definitions are q1's)
    assert {c.section for c in result.plan_changes} == {"playbook", "step"}

    assert (result.a.verdict, result.b.verdict, result.verdict_move) == ("pass", "fail", "regressed")
    kv = next(c for c in result.assets if c.asset == "orders-kv")
    assert kv.a is not None and kv.b is not None
    assert (kv.a.rto_state, kv.b.rto_state, kv.move("rto")) == ("met", "missed", "regressed")
    q2_rto = asset_rto(practice, "q2", "orders-kv")
    assert kv.b.rto_ms == q2_rto and q2_rto > 5000 >= asset_rto(practice, "q1", "orders-kv")
    assert kv.move("verdict") == "regressed"
    assert "orders-kv rto" in moved(result, "regressed")

    lines = diff_text(result)
    assert f"  + step {HELD_UP_STEP} (added in B)" in lines
    rto_line = next(line for line in results_lines(lines, "orders-kv") if line.lstrip().startswith("RTO"))
    assert f"{human_ms(q2_rto)} MISSED" in rto_line and rto_line.endswith("REGRESSED")
    verdict_line = next(line for line in lines if line.startswith("  drill verdict"))
    assert verdict_line.split() == ["drill", "verdict", "PASS", "FAIL", "REGRESSED"]


def test_q2_to_q3_shows_the_fix(practice: Practice, sides: dict[str, RunSide]) -> None:
    result = compared(sides, "q2", "q3")
    assert [(c.subject, c.kind) for c in result.plan_changes if c.section == "step"] == [
        (HELD_UP_STEP, "removed")
    ]
    assert result.verdict_move == "fixed"
    kv = next(c for c in result.assets if c.asset == "orders-kv")
    assert kv.move("rto") == "fixed" and kv.b is not None and kv.b.rto_state == "met"
    assert kv.b.rto_ms == asset_rto(practice, "q3", "orders-kv")
    assert moved(result, "regressed") == []
    lines = diff_text(result)
    assert f"  - step {HELD_UP_STEP} (removed in B)" in lines
    assert next(line for line in lines if line.startswith("  drill verdict")).endswith("fixed")


def test_q3_to_q4_shows_the_changed_probe_and_invents_no_regression(
    sides: dict[str, RunSide], index: Path, practice: Practice
) -> None:
    result = compared(sides, "q3", "q4")
    changes = {(c.section, c.subject, c.field): (c.a, c.b) for c in result.plan_changes}
    assert changes[("probe", "web/front", "interval_ms")] == (200, 250)
    before, after = changes[("asset", "web", "definition_sha256")]
    assert before != after
    # the same definitions `drill due` compares, as the history index recorded them
    from drill.practice.history import History

    with History.open(index, create=False) as history:
        records = {r.folder: r for r in history.records()}

    def web_definition(label: str) -> str:
        record: RunRecord = records[str(practice.runs[label].resolve())]
        return next(a.definition_sha256 for a in record.assets if a.asset == "web")

    assert (before, after) == (web_definition("q3"), web_definition("q4"))
    assert not any(s == "orders-kv" or s == "reports" for (_, s, _) in changes)  # only web changed
    assert (result.a.verdict, result.b.verdict, result.verdict_move) == ("pass", "pass", "same")
    assert moved(result, "regressed") == [] and moved(result, "fixed") == []
    lines = diff_text(result)
    assert "  probe web/front" in lines
    assert next(line for line in lines if line.lstrip().startswith("interval")).split() == [
        "interval",
        "200",
        "ms",
        "250",
        "ms",
    ]
    assert "REGRESSED" not in "\n".join(lines)


def test_a_run_against_itself_says_no_change(sides: dict[str, RunSide]) -> None:
    result = compared(sides, "q1", "q1")
    assert result.plan_changes == ()
    assert all(move == "same" for c in result.assets for _, move in c.moves)
    lines = diff_text(result)
    assert "No change: no playbook change, the same results." in lines
    assert "Playbook: no change in the plan (same SHA-256)." in lines


def test_a_contact_test_compares_only_time_to_ack(practice: Practice) -> None:
    """A contact test recovers nothing: its absent recovery figures are no regression."""
    contacts = checked_side(practice.runs["contacts"], practice.allowed_signers)
    result = diff_runs(checked_side(practice.runs["q4"], practice.allowed_signers), contacts)
    assert (contacts.mode, result.verdict_move) == ("contacts", "not compared")
    assert moved(result, "regressed") == [] and moved(result, "fixed") == []
    for comparison in result.assets:
        assert {f for f, m in comparison.moves if m != "not compared"} == {"ack_ms"}
    lines = diff_text(result)
    assert lines[1].startswith("B is a contact test (people only, nothing recovered)")
    assert "REGRESSED" not in "\n".join(lines)


# ---------------------------------------------------------------- trust, said first


def test_a_tampered_side_is_flagged_first_and_exits_1(practice: Practice) -> None:
    result = drill(
        "diff", practice.runs["q3"], practice.runs["tampered"], "--allowed-signers", practice.allowed_signers
    )
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("!! B is TAMPERED:"), lines[:4]
    evidence = [line.strip() for line in lines if line.strip().startswith("evidence:")]
    assert evidence[0].startswith("evidence: verified, signed by ")
    assert evidence[1].startswith("evidence: TAMPERED: ") and "does not match" in evidence[1]
    assert "B is TAMPERED" in one_line_error(result, 1)
    # the tampered report claims web recovered in half the time: shown, but under the flag
    tampered = next(a for a in load_report(practice.runs["tampered"]).assets if a.id == "web").rto_ms
    assert tampered == asset_rto(practice, "q3", "web") // 2


def test_a_tampered_side_that_cannot_be_read_exits_1_in_one_line(practice: Practice, tmp_path: Path) -> None:
    copy = tmp_path / practice.runs["q1"].name
    shutil.copytree(practice.runs["q1"], copy, symlinks=True)
    journal = copy / "journal.jsonl"
    journal.write_bytes(b"garbage\n" + journal.read_bytes())  # no run.started: no plan to compare
    result = drill("diff", practice.runs["q1"], copy, "--allowed-signers", practice.allowed_signers)
    line = one_line_error(result, 1)
    assert line.startswith(f"drill: {copy} is TAMPERED: journal.jsonl: line 1: ") and line.endswith(
        "it cannot be read to compare"
    )
    assert result.stdout == ""


def test_tampered_and_unsigned_as_the_index_knows_them(practice: Practice, index: Path) -> None:
    """Without a trust file, a folder the index holds gets the index's status."""
    result = drill(
        "diff", practice.run_ids["q3"], practice.runs["tampered"], "--index", index, "--format", "json"
    )
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["a"]["evidence"]["status"] == "verified"  # the run id names the verified folder
    assert data["a"]["folder"] == str(practice.runs["q3"].resolve())
    assert data["a"]["evidence"]["basis"].endswith(
        "the index also holds 1 other folder of this run id, not verified"
    )
    assert data["b"]["evidence"]["status"] == "tampered" and data["b"]["evidence"]["verified"] is False
    assert data["verified"] is False
    unsigned = drill("diff", practice.runs["q1"], practice.runs["unsigned"], "--index", index)
    assert unsigned.exit_code == 1
    assert unsigned.stdout.splitlines()[1].startswith("!! B is UNSIGNED:")


def test_an_unchecked_side_says_so(practice: Practice, tmp_path: Path) -> None:
    result = drill("diff", practice.runs["q1"], practice.runs["q2"], "--index", tmp_path / "none.sqlite")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("!! A was NOT VERIFIED") and lines[2].startswith("!! B was NOT VERIFIED")
    assert sum(1 for line in lines if "evidence: NOT CHECKED" in line) == 2


# ---------------------------------------------------------------- the command


def test_json_has_integer_ms_and_lists_the_changes(practice: Practice) -> None:
    result = drill(
        "diff",
        practice.runs["q1"],
        practice.runs["q2"],
        "--allowed-signers",
        practice.allowed_signers,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verified"] is True and data["same_playbook"] is False and data["same_playbook_name"] is True
    step = next(c for c in data["playbook_changes"] if c["section"] == "step")
    assert (step["subject"], step["field"], step["change"], step["a"]) == (HELD_UP_STEP, None, "added", None)
    assert "pause 6 s" in step["b"]
    kv = next(a for a in data["results"]["assets"] if a["asset"] == "orders-kv")
    assert kv["b"]["rto_ms"] == asset_rto(practice, "q2", "orders-kv") and type(kv["b"]["rto_ms"]) is int
    assert kv["a"]["rto_target_ms"] == 5000 and kv["changes"]["rto"] == "regressed"
    assert all(
        type(v) is int
        for a in data["results"]["assets"]
        for side in (a["a"], a["b"])
        for k, v in side.items()
        if k.endswith("_ms") and v is not None
    )
    assert data["results"]["verdict"] == {"a": "pass", "b": "fail", "change": "regressed"}
    assert "orders-kv rto" in data["summary"]["regressed"]
    probe = drill(
        "diff", practice.runs["q3"], practice.runs["q4"], "--format", "json", "--index", "/nonexistent.sqlite"
    )
    changes = json.loads(probe.stdout)["playbook_changes"]
    assert {
        "section": "probe",
        "subject": "web/front",
        "field": "interval_ms",
        "change": "changed",
        "a": 200,
        "b": 250,
    } in changes


@pytest.mark.parametrize(
    ("a", "b"), [("q1", "q2"), ("q2", "q3"), ("q3", "q4"), ("q3", "tampered"), ("q1", "unsigned")]
)
def test_text_fits_80_columns(practice: Practice, a: str, b: str) -> None:
    result = drill("diff", practice.runs[a], practice.runs[b], "--allowed-signers", practice.allowed_signers)
    assert result.exit_code in (0, 1), result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) > 30
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]


def test_run_ids_through_the_index(practice: Practice, index: Path) -> None:
    by_id = drill("diff", practice.run_ids["q1"], practice.run_ids["q2"][:-2], "--index", index)
    assert by_id.exit_code == 0, by_id.stderr
    by_folder = drill(
        "diff", practice.runs["q1"], practice.runs["q2"], "--allowed-signers", practice.allowed_signers
    )
    assert by_folder.exit_code == 0
    head = by_id.stdout.splitlines()[0]
    assert head == f"drill diff: A {practice.run_ids['q1']} → B {practice.run_ids['q2']}"
    evidence = [line for line in by_id.stdout.splitlines() if "evidence:" in line]
    assert all(line.strip().startswith("evidence: verified, signed by ") for line in evidence)
    # the same comparison whichever way the runs are named (only the evidence lines differ)
    results = by_id.stdout[by_id.stdout.index("\nSummary") :]
    assert results == by_folder.stdout[by_folder.stdout.index("\nSummary") :]


def test_different_playbooks_are_compared_and_said(practice: Practice, tmp_path: Path) -> None:
    other = practice.make_run(
        "other", demo_text("2026-Q4").replace(f"name: {PLAYBOOK_NAME}", "name: other-site", 1)
    )
    result = drill("diff", practice.runs["q4"], other, "--allowed-signers", practice.allowed_signers)
    assert result.exit_code == 0, result.stderr
    assert f"Different playbooks: A is {PLAYBOOK_NAME}, B is other-site." in result.stdout.splitlines()
    assert ["name", PLAYBOOK_NAME, "other-site"] in [line.split() for line in result.stdout.splitlines()]


# ---------------------------------------------------------------- bad input


def test_an_unknown_run_id_exits_2_in_one_line(practice: Practice, index: Path) -> None:
    result = drill("diff", "20990101T000000Z-nope", practice.run_ids["q1"], "--index", index)
    line = one_line_error(result, 2)
    assert (
        line == f"drill: RUN_A '20990101T000000Z-nope' is neither an evidence folder nor a run id in {index}"
    )
    assert result.stdout == ""


def test_other_bad_input_exits_2(practice: Practice, index: Path, tmp_path: Path) -> None:
    q1 = practice.runs["q1"]
    assert "is the start of" in one_line_error(drill("diff", "2", q1, "--index", index), 2)
    assert "not an evidence folder" in one_line_error(drill("diff", q1, tmp_path, "--index", index), 2)
    assert "no history index" in one_line_error(drill("diff", "q1", q1, "--index", tmp_path / "no.sqlite"), 2)
    missing = one_line_error(drill("diff", q1, q1, "--allowed-signers", tmp_path / "nobody"), 2)
    assert "nobody" in missing


def test_a_folder_changed_since_it_was_indexed_is_refused(practice: Practice, tmp_path: Path) -> None:
    """The index's status stands only for the bytes it verified: an edited report.json or
    journal makes the run id refused (exit 2), not silently shown as verified."""
    copy = tmp_path / "runs" / practice.runs["q1"].name
    shutil.copytree(practice.runs["q1"], copy, symlinks=True)
    index = tmp_path / "h.sqlite"
    add_folders(index, [copy], practice.allowed_signers)
    run_id = practice.run_ids["q1"]
    assert drill("diff", run_id, run_id, "--index", index).exit_code == 0
    journal = copy / "journal.jsonl"
    journal.write_bytes(journal.read_bytes() + b"\n")
    assert "no longer the journal" in one_line_error(drill("diff", run_id, run_id, "--index", index), 2)
    report = json.loads((copy / "report.json").read_bytes())
    web = next(a for a in report["assets"] if a["id"] == "web")
    web["rto_ms"] = web["rto_ms"] // 2
    (copy / "report.json").write_bytes(canonical_bytes(report))
    assert "no longer the report" in one_line_error(drill("diff", run_id, copy, "--index", index), 2)
