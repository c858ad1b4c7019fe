"""The history index over the practice's real evidence: verified on the way in, bad evidence
flagged and never counted, filters, machine output, rebuild, idempotence, and bad input."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import DrillGroup
from drill.cli.history import history
from drill.errors import UsageError
from drill.evidence.canonical import canonical_bytes
from drill.practice.history import (
    SCHEMA_VERSION,
    History,
    add_folders,
    evidence_folders,
    read_record,
    rebuild,
)
from drill.practice.records import TAMPERED, UNREADABLE, UNSIGNED, VERIFIED, RunRecord
from drill.report.sign import generate_keypair, sign_report
from tests.practice.conftest import PLAYBOOK_NAME, Practice, one_line_error

# The history group under a `drill` group of its own: the same DrillGroup that shows a DrillError
# as one line and exits with its code, whether or not COMMANDS lists `history` at the moment.
DRILL = DrillGroup("drill")
DRILL.add_command(history)


def drill(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(DRILL, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def indexed(
    practice: Practice, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, RunRecord]]:
    """Every practice run added once to an index (read-only for the tests that use it)."""
    index = tmp_path_factory.mktemp("history") / "drill-history.sqlite"
    records = add_folders(index, evidence_folders([practice.runs_dir]), practice.allowed_signers)
    by_folder = {Path(r.folder): r for r in records}
    return index, {label: by_folder[folder.resolve()] for label, folder in practice.runs.items()}


def copy_run(practice: Practice, label: str, where: Path) -> Path:
    target = where / practice.runs[label].name
    shutil.copytree(practice.runs[label], target, symlinks=True)
    return target


# ---------------------------------------------------------------- records of the practice


@pytest.mark.parametrize(
    ("label", "status", "mode", "quarter", "verdict"),
    [
        ("q1", VERIFIED, "drill", "2026-Q1", "pass"),
        ("q2", VERIFIED, "drill", "2026-Q2", "fail"),
        ("q3", VERIFIED, "drill", "2026-Q3", "pass"),
        ("q4", VERIFIED, "drill", "2026-Q4", "pass"),
        ("contacts", VERIFIED, "contacts", "2026-Q4", "pass"),
        ("unsigned", UNSIGNED, "drill", "2026-Q1", "pass"),
        ("tampered", TAMPERED, "drill", "", ""),
    ],
)
def test_each_practice_run_is_indexed_with_its_status(
    indexed: tuple[Path, dict[str, RunRecord]], label: str, status: str, mode: str, quarter: str, verdict: str
) -> None:
    record = indexed[1][label]
    assert (record.status, record.mode, record.quarter, record.verdict) == (status, mode, quarter, verdict)
    assert record.countable == (status == VERIFIED)
    assert record.playbook == PLAYBOOK_NAME
    assert (record.problem == "") == (status == VERIFIED)
    assert record.signers == (("lead", "operator") if status == VERIFIED else ())


def test_tampered_keeps_only_what_identifies_it(
    practice: Practice, indexed: tuple[Path, dict[str, RunRecord]]
) -> None:
    tampered, q3 = indexed[1]["tampered"], indexed[1]["q3"]
    assert "signature does not match report.json" in tampered.problem
    assert tampered.run_id == q3.run_id == practice.run_ids["q3"]
    assert tampered.report_sha256 != q3.report_sha256  # its report.json really was altered
    assert (tampered.assets, tampered.pages, tampered.generated_utc, tampered.playbook_sha256) == (
        (),
        (),
        "",
        "",
    )


def test_unsigned_says_what_its_report_claims_but_never_counts(
    indexed: tuple[Path, dict[str, RunRecord]],
) -> None:
    unsigned = indexed[1]["unsigned"]
    assert unsigned.problem.startswith("no signatures (report.json.*.sig)")
    assert [a.asset for a in unsigned.assets] == ["orders-kv", "web", "reports"]
    assert not unsigned.countable


def test_figures_come_from_the_signed_report(indexed: tuple[Path, dict[str, RunRecord]]) -> None:
    q1, q2 = indexed[1]["q1"], indexed[1]["q2"]
    kv1, kv2 = q1.assets[0], q2.assets[0]
    assert (kv1.asset, kv1.tier, kv1.rto_target_ms, kv1.rpo_target_ms) == ("orders-kv", "data", 5000, 2000)
    assert (kv1.rto_state, kv2.rto_state, kv2.verdict) == ("met", "missed", "fail")
    assert kv1.rto_ms is not None and kv2.rto_ms is not None and kv2.rto_ms > 5000 > kv1.rto_ms
    assert kv1.lost_writes is not None and kv1.lost_writes > 0 and kv1.rpo_state == "met"
    assert kv1.chain == "lab-oncall" and kv1.ack_ms is not None
    assert [(p.chain, p.via, p.delivered, p.acked) for p in q1.pages] == [
        ("lab-oncall", "webhook", True, True)
    ]
    assert q2.verdict_reason == "objectives missed: orders-kv"


def test_definition_changes_only_where_the_playbook_changed(
    indexed: tuple[Path, dict[str, RunRecord]],
) -> None:
    def definitions(label: str) -> dict[str, str]:
        return {a.asset: a.definition_sha256 for a in indexed[1][label].assets}

    q1, q2, q3, q4 = (definitions(label) for label in ("q1", "q2", "q3", "q4"))
    assert q1 == q2 == q3  # q2's scenario changed, not its assets
    assert q4["web"] != q1["web"]  # its probe interval changed
    assert {k: v for k, v in q4.items() if k != "web"} == {k: v for k, v in q1.items() if k != "web"}
    assert all(len(v) == 64 for v in q1.values())


# ---------------------------------------------------------------- the index


def test_records_come_back_equal_oldest_first(indexed: tuple[Path, dict[str, RunRecord]]) -> None:
    index, by_label = indexed
    with History.open(index) as opened:
        records = opened.records()
    assert sorted(records, key=lambda r: r.folder) == sorted(by_label.values(), key=lambda r: r.folder)
    assert [(r.generated_utc, r.run_id) for r in records] == sorted(
        (r.generated_utc, r.run_id) for r in records
    )
    quarters = [r.quarter for r in records if r.mode == "drill" and r.countable]
    assert quarters == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]


@pytest.mark.parametrize(
    ("filters", "labels"),
    [
        ({"quarter": "2026-Q1"}, {"q1", "unsigned"}),
        ({"verdict": "fail"}, {"q2"}),
        ({"status": "tampered"}, {"tampered"}),
        ({"status": "unsigned"}, {"unsigned"}),
        ({"playbook": PLAYBOOK_NAME, "quarter": "2026-Q4"}, {"q4", "contacts"}),
        ({"playbook": "no-such-playbook"}, set()),
        ({"asset": "orders-kv", "status": "verified"}, {"q1", "q2", "q3", "q4", "contacts"}),
        ({"asset": "orders-kv"}, {"q1", "q2", "q3", "q4", "contacts", "unsigned"}),  # tampered: no assets
        ({"tier": "internal", "verdict": "fail"}, {"q2"}),
        ({"tier": "no-such-tier"}, set()),
        ({"asset": "web", "quarter": "2026-Q3"}, {"q3"}),
    ],
)
def test_filters(
    indexed: tuple[Path, dict[str, RunRecord]], filters: dict[str, str], labels: set[str]
) -> None:
    index, by_label = indexed
    with History.open(index) as opened:
        found = {r.folder for r in opened.records(**filters)}
    assert found == {by_label[label].folder for label in labels}


def test_re_adding_is_idempotent_and_latest_is_no_duplicate(practice: Practice, tmp_path: Path) -> None:
    index = tmp_path / "h.sqlite"
    latest = practice.runs_dir / "latest"
    assert latest.is_symlink()
    folders = evidence_folders([practice.runs_dir, latest, practice.runs["q1"]])
    assert len(folders) == len(practice.runs)  # latest and q1 named again: still once each
    first = add_folders(index, folders, practice.allowed_signers)
    add_folders(index, [latest], practice.allowed_signers)
    again = add_folders(index, evidence_folders([practice.runs_dir]), practice.allowed_signers)
    with History.open(index) as opened:
        records = opened.records()
    assert len(records) == len(practice.runs)
    assert sorted(records, key=lambda r: r.folder) == sorted(first, key=lambda r: r.folder)
    assert sorted(again, key=lambda r: r.folder) == sorted(first, key=lambda r: r.folder)
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (len(practice.runs),)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_moved_verified_run_is_one_entry_a_bad_copy_is_listed_beside_it(
    practice: Practice, tmp_path: Path
) -> None:
    index = tmp_path / "h.sqlite"
    add_folders(index, [practice.runs["q1"]], practice.allowed_signers)
    moved = copy_run(practice, "q1", tmp_path / "moved")
    add_folders(index, [moved], practice.allowed_signers)
    with History.open(index) as opened:
        assert [(r.folder, r.status) for r in opened.records()] == [(str(moved), VERIFIED)]
    unsigned = copy_run(practice, "q1", tmp_path / "stripped")
    for sig in unsigned.glob("report.json.*.sig"):
        sig.unlink()
    add_folders(index, [unsigned], practice.allowed_signers)
    with History.open(index) as opened:
        records = opened.records(run_id=practice.run_ids["q1"])
    assert sorted((r.folder, r.status) for r in records) == sorted(
        [(str(moved), VERIFIED), (str(unsigned), UNSIGNED)]
    )
    assert len({r.report_sha256 for r in records}) == 1  # the same bytes: only the signatures went


def test_a_folder_tampered_after_it_was_indexed_replaces_its_entry(
    practice: Practice, tmp_path: Path
) -> None:
    index = tmp_path / "h.sqlite"
    folder = copy_run(practice, "q1", tmp_path)
    assert add_folders(index, [folder], practice.allowed_signers)[0].status == VERIFIED
    report = json.loads((folder / "report.json").read_bytes())
    report["verdict"] = "fail"
    (folder / "report.json").write_bytes(canonical_bytes(report))
    add_folders(index, [folder], practice.allowed_signers)
    with History.open(index) as opened:
        assert [(r.folder, r.status, r.countable) for r in opened.records()] == [
            (str(folder), TAMPERED, False)
        ]


# ---------------------------------------------------------------- each way a folder can fail


def test_an_edited_journal_is_tampered(practice: Practice, tmp_path: Path) -> None:
    folder = copy_run(practice, "q1", tmp_path)
    journal = folder / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    at = next(
        i for i, line in enumerate(lines) if b'"type":"probe.observed"' in line and b'"ok":true' in line
    )
    lines[at] = lines[at].replace(b'"ok":true', b'"ok":false', 1)  # a probe that saw the service up, now down
    journal.write_bytes(b"".join(lines))
    record = read_record(folder, practice.allowed_signers)
    assert record.status == TAMPERED and "journal.jsonl" in record.problem
    assert record.run_id == practice.run_ids["q1"] and record.playbook == PLAYBOOK_NAME


def test_signed_by_nobody_trusted_is_unsigned(practice: Practice, tmp_path: Path) -> None:
    folder = copy_run(practice, "q1", tmp_path)
    for sig in folder.glob("report.json.*.sig"):
        sig.unlink()
    key = tmp_path / "mallory"
    generate_keypair(key)
    sign_report(folder, key, "mallory")
    record = read_record(folder, practice.allowed_signers)
    assert (record.status, record.signers) == (UNSIGNED, ())
    assert "no signature is trusted" in record.problem


def test_a_revoked_key_is_unsigned(practice: Practice, tmp_path: Path) -> None:
    revoked = tmp_path / "revoked_keys"
    revoked.write_text(Path(f"{practice.keys['operator']}.pub").read_text())
    record = read_record(practice.runs["q3"], practice.allowed_signers, revoked)
    assert record.status == UNSIGNED and "is revoked" in record.problem
    assert read_record(practice.runs["q3"], practice.allowed_signers).status == VERIFIED


def test_missing_files_and_refused_input_are_unreadable(practice: Practice, tmp_path: Path) -> None:
    no_journal = copy_run(practice, "q1", tmp_path / "a")
    (no_journal / "journal.jsonl").unlink()
    record = read_record(no_journal, practice.allowed_signers)
    assert record.status == UNREADABLE and "is missing" in record.problem
    assert record.run_id == practice.run_ids["q1"]  # from report.json, read as plain JSON

    no_report = copy_run(practice, "q2", tmp_path / "b")
    (no_report / "report.json").unlink()
    record = read_record(no_report, practice.allowed_signers)
    assert record.status == UNREADABLE and "report.json" in record.problem
    assert (record.run_id, record.playbook) == (practice.run_ids["q2"], PLAYBOOK_NAME)  # from the journal

    fifo = copy_run(practice, "q3", tmp_path / "c")
    (fifo / "report.json").unlink()
    os.mkfifo(fifo / "report.json")  # a read would never return: refused, not read
    assert read_record(fifo, practice.allowed_signers).status == UNREADABLE


def test_strings_of_bad_evidence_are_made_printable(practice: Practice, tmp_path: Path) -> None:
    folder = copy_run(practice, "q1", tmp_path)
    report = json.loads((folder / "report.json").read_bytes())
    report["run_id"] = "evil\x1b[2J" + "x" * 500
    (folder / "report.json").write_bytes(canonical_bytes(report))
    record = read_record(folder, practice.allowed_signers)
    assert record.status == TAMPERED
    assert "\x1b" not in record.run_id and record.run_id.startswith("evil\\x1b[2J")
    assert len(record.run_id) <= 200


def test_a_trust_file_that_cannot_be_used_is_bad_input(practice: Practice, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_record(practice.runs["q1"], tmp_path / "nope")
    with pytest.raises(UsageError):
        add_folders(tmp_path / "h.sqlite", [practice.runs["q1"]], practice.allowed_signers, tmp_path / "nope")


def test_rebuild_gives_the_same_records(
    practice: Practice, indexed: tuple[Path, dict[str, RunRecord]], tmp_path: Path
) -> None:
    index = tmp_path / "h.sqlite"
    shutil.copy(indexed[0], index)
    with History.open(index) as opened:
        before = opened.records()
        opened.add(dataclasses.replace(before[0], folder="/gone", status=UNREADABLE))
        assert len(opened.records()) == len(before) + 1
    rebuild(index, evidence_folders([practice.runs_dir]), practice.allowed_signers)
    with History.open(index) as opened:
        assert opened.records() == before  # the stale entry went with the old file
    assert [p.name for p in tmp_path.iterdir()] == ["h.sqlite"]  # nothing left beside it


def test_an_index_drill_cannot_read_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(UsageError, match="not a drill history index"), History.open(garbage):
        pass
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(UsageError, match="not a drill history index"), History.open(other):
        pass
    newer = tmp_path / "newer.sqlite"
    with History.open(newer):
        pass
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match="schema version"), History.open(newer):
        pass
    with pytest.raises(UsageError, match="does not exist"), History.open(tmp_path / "none", create=False):
        pass


# ---------------------------------------------------------------- the command line


def test_cli_add_flags_bad_evidence_and_exits_1(practice: Practice, tmp_path: Path) -> None:
    index = tmp_path / "h.sqlite"
    result = drill(
        "history", "add", practice.runs_dir, "--allowed-signers", practice.allowed_signers, "--index", index
    )
    assert one_line_error(result, 1) == (
        "drill: 2 of 7 folders did not verify (indexed with their status; never counted)"
    )
    out = result.stdout
    assert out.count("\nverified ") + out.startswith("verified ") == 5
    assert "TAMPERED" in out and "UNSIGNED" in out and "signature does not match report.json" in out
    assert out.rstrip().endswith(f"indexed 7 folders in {index}: 5 verified, 1 TAMPERED, 1 UNSIGNED")
    ok = drill(
        "history", "add", practice.runs["q1"], "--allowed-signers", practice.allowed_signers, "--index", index
    )
    assert ok.exit_code == 0, ok.stderr
    with History.open(index) as opened:
        assert len(opened.records()) == 7


def test_cli_list_text_fits_80_columns_and_shouts_bad_evidence(
    practice: Practice, indexed: tuple[Path, dict[str, RunRecord]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(practice.root)  # folders shown relative to here
    result = drill("history", "list", "--index", indexed[0])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{PLAYBOOK_NAME}: 7 runs, 5 verified"
    assert all(len(line) <= 80 for line in lines if str(practice.root) not in line)
    q2 = next(i for i, line in enumerate(lines) if practice.run_ids["q2"] in line)
    assert lines[q2].split() == ["2026-Q2", practice.run_ids["q2"], "FAIL", "verified", "lead,", "operator"]
    assert "orders-kv 6." in lines[q2 + 1] and "(missed)" in result.stdout
    tampered = next(i for i, line in enumerate(lines) if "TAMPERED" in line)
    assert "signature does not match report.json" in " ".join(lines[tampered + 1 : tampered + 3])
    assert f"folder: runs/{practice.runs['tampered'].name}" in result.stdout
    assert "contact test: 1 page, 1 acknowledged" in result.stdout


def test_cli_list_json_and_csv_parse(practice: Practice, indexed: tuple[Path, dict[str, RunRecord]]) -> None:
    index, by_label = indexed
    result = drill("history", "list", "--index", index, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["count"] == 7 and data["filters"] == {}
    runs = {run["folder"]: run for run in data["runs"]}
    assert runs[by_label["tampered"].folder]["countable"] is False
    assert runs[by_label["q2"].folder]["assets"][0]["rto_state"] == "missed"
    assert isinstance(runs[by_label["q1"].folder]["assets"][0]["rto_ms"], int)

    filtered = json.loads(
        drill("history", "list", "--index", index, "--format", "json", "--quarter", "2026-Q1").stdout
    )
    assert filtered["filters"] == {"quarter": "2026-Q1"}
    assert sorted(r["status"] for r in filtered["runs"]) == ["unsigned", "verified"]

    result = drill("history", "list", "--index", index, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6 * 3 + 1  # six runs of three assets, the tampered one without
    tampered = [r for r in rows if r["status"] == "tampered"]
    assert len(tampered) == 1 and tampered[0]["asset"] == "" and tampered[0]["countable"] == "false"
    kv = next(r for r in rows if r["run_id"] == practice.run_ids["q2"] and r["asset"] == "orders-kv")
    assert (kv["asset_verdict"], kv["rto_state"], kv["rto_target_ms"]) == ("fail", "missed", "5000")


def test_cli_show(practice: Practice, indexed: tuple[Path, dict[str, RunRecord]]) -> None:
    index = indexed[0]
    q3 = practice.run_ids["q3"]
    result = drill("history", "show", q3, "--index", index)
    assert result.exit_code == 0, result.stderr
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 2  # the verified run, then the tampered copy of it
    assert blocks[0].startswith(f"run {q3}: {PLAYBOOK_NAME} 2026-Q3, verdict pass")
    assert "RTO " in blocks[0] and "acknowledged after" in blocks[0]
    assert "TAMPERED (never counted)" in blocks[1]
    shown = json.loads(drill("history", "show", q3[:20], "--index", index, "--format", "json").stdout)
    assert sorted(r["status"] for r in shown["runs"]) == ["tampered", "verified"]


def test_cli_index_from_the_environment(practice: Practice, tmp_path: Path) -> None:
    index = tmp_path / "env.sqlite"
    added = drill(
        "history",
        "add",
        practice.runs["q4"],
        "--allowed-signers",
        practice.allowed_signers,
        env={"DRILL_HISTORY": str(index)},
    )
    assert added.exit_code == 0 and index.is_file()
    listed = drill("history", "list", "--format", "json", env={"DRILL_HISTORY": str(index)})
    assert [r["quarter"] for r in json.loads(listed.stdout)["runs"]] == ["2026-Q4"]


def test_cli_rebuild(practice: Practice, tmp_path: Path) -> None:
    index = tmp_path / "h.sqlite"
    index.write_bytes(b"")  # an empty file is an empty database: rebuilt in place
    result = drill(
        "history",
        "rebuild",
        practice.runs_dir,
        "--allowed-signers",
        practice.allowed_signers,
        "--index",
        index,
    )
    one_line_error(result, 1)
    assert "rebuilt 7 folders in" in result.stdout
    with History.open(index) as opened:
        assert len(opened.records(status="verified")) == 5


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "{tmp}/nope", "--allowed-signers", "{trust}"], "does not exist"),
        (["add", "{runs}", "--allowed-signers", "{tmp}/nope"], "does not exist"),
        (["add", "{tmp}/empty", "--allowed-signers", "{trust}"], "holds no evidence folder"),
        (["add", "{tmp}/file", "--allowed-signers", "{trust}"], "is not a folder"),
        (["list", "--index", "{tmp}/none.sqlite"], "does not exist"),
        (["list", "--index", "{tmp}/file"], "not a drill history index"),
        (["show", "nosuchrun", "--index", "{index}"], "no run 'nosuchrun'"),
        (["show", "2", "--index", "{index}"], "is the start of"),
        (["rebuild", "{tmp}/nope", "--allowed-signers", "{trust}"], "does not exist"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    practice: Practice, indexed: tuple[Path, dict[str, RunRecord]], tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes").mkdir()  # a sub-folder that is no run
    (tmp_path / "file").write_text("not an index\n")
    values = {
        "tmp": str(tmp_path),
        "trust": str(practice.allowed_signers),
        "runs": str(practice.runs_dir),
        "index": str(indexed[0]),
    }
    argv = [a.format(**values) for a in args]
    if "--index" not in argv:
        argv += ["--index", str(tmp_path / "h.sqlite")]
    line = one_line_error(drill("history", *argv), 2)
    assert says in line
    assert not (tmp_path / "h.sqlite").exists()  # nothing was written


def test_cli_help() -> None:
    for sub in ("add", "list", "show", "rebuild"):
        result = drill("history", sub, "--help")
        assert result.exit_code == 0 and "--index" in result.stdout
