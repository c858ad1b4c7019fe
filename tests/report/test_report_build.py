"""The report builder: complete, deterministic, schema-valid, secret-free, rebuilt from the journal alone."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from drill.errors import JournalInvalid, UsageError
from drill.report import build
from drill.report.build import (
    build_report,
    build_report_from_journal,
    load_report,
    report_id_for,
    write_report,
)
from drill.report.canonical import canonical_bytes
from drill.resources import load_schema
from drill.run.journal import file_sha256, read_events, verify_journal

from .conftest import JOURNAL, SIGNER, load_generator


def _validator() -> jsonschema.Draft202012Validator:
    schema = load_schema("report.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_fixture_journal_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = load_generator().write_fixture_journal(tmp_path / "journal.jsonl")
    assert fresh.read_bytes() == JOURNAL.read_bytes(), "run tests/report/fixtures/make_journal.py"


def test_rebuild_is_byte_identical_and_ids_are_derived(report: dict[str, Any]) -> None:
    again = build_report_from_journal(JOURNAL, signer=SIGNER)
    assert canonical_bytes(again) == canonical_bytes(report)
    summary = verify_journal(JOURNAL)
    assert report["report_id"] == report_id_for(report["run_id"], summary.head)
    assert report["journal"] == {
        "file": "journal.jsonl",
        "sha256": file_sha256(JOURNAL),
        "events": summary.count,
        "head": summary.head,
    }
    finished = [e for e in read_events(JOURNAL) if e.type == "run.finished"][-1]
    assert report["generated_utc"] == finished.utc
    assert report["tool"] == {"name": "drill", "version": "0.0.0-test"}


def test_report_matches_its_schema(report: dict[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(report), key=str)
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("assets", 0, "rto_ms"), 1.5),  # floats would make canonical JSON ambiguous
        (("journal", "sha256"), "XYZ"),
        (("verdict",), "maybe"),
        (("prepared_by", "fingerprint"), "MD5:aa"),
        (("evidence",), [{"file": "../etc/passwd", "sha256": "0" * 64}]),
    ],
)
def test_schema_rejects_wrong_values(report: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(report)
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(_validator().iter_errors(broken)), f"schema accepted {path}={value!r}"


def test_builder_refuses_floats(report: dict[str, Any]) -> None:
    results = {"run_id": "r", "verdict": "pass", "assets": [{"id": "a", "uptime": 0.5}]}
    with pytest.raises(TypeError, match=r"float in report at report\.assets\[0\]\.uptime"):
        build_report(
            results, verify_journal(JOURNAL), {}, report_id="rpt-x", generated_utc="", tool_version="1"
        )


def test_auditor_fields_are_filled(report: dict[str, Any]) -> None:
    assert report["playbook"] == {
        "name": "payments-q4",
        "version": "3",
        "quarter": "2026-Q4",
        "owner": "dr-team@example.com",
        "description": "Regional failover of the payments platform",
        "sha256": "ab" * 32,
        "path": "playbooks/payments-q4.yaml",
    }
    run = report["run"]
    assert run["operator"] == "bo@drill-runner-1"
    assert run["planned_start_utc"] == "2026-11-20T09:00:00.000+00:00"
    assert run["planned_end_utc"] == "2026-11-20T09:30:00.000+00:00"
    assert (run["status"], run["pass_tiers"]) == ("completed", ["tier-0", "tier-1"])
    assert report["exercise"]["test_type"] == "full-scale"
    assert report["scope"]["exclusions"] == ["Batch settlement jobs"]
    assert [p["role"] for p in report["participants"]] == ["drill-lead", "independent-observer", "operator"]
    assert report["prepared_by"] == {"principal": "ana", "fingerprint": SIGNER[1]}
    assert report["cleanup"] == {"confirmed": True, "basis": "confirmed by ana at 'confirm normal service'"}
    scenario = report["exercise"]["scenario"]
    assert scenario[0] == {
        "name": "declare disaster",
        "kind": "mark",
        "phase": "scenario",
        "parent": "",
        "inject": True,
        "detail": "mark disaster",
    }
    assert report["contact_chains"][0]["contacts"][1] == {
        "name": "Cy Park",
        "role": "",
        "via": "slack",
        "ack_within_ms": 60_000,
    }
    assert [len(report["people"]["pages"]), len(report["people"]["chains"])] == [3, 2]


def test_no_secret_or_parameter_leaks_into_the_report(report: dict[str, Any]) -> None:
    text = canonical_bytes(report).decode()
    for needle in ("${env:", "PG_DSN", "SLACK_URL", "127.0.0.1:9000", "systemctl", "bo@example.com/"):
        assert needle not in text


def test_findings_cover_every_problem_with_severity_and_evidence(report: dict[str, Any]) -> None:
    got = [(f["severity"], f["title"]) for f in report["findings"]]
    assert got[:8] == [
        ("critical", "payments-db missed its RPO"),
        ("critical", "reports missed its RTO"),
        ("high", "Scenario step failed: purge CDN cache"),
        ("high", "ledger: nobody acknowledged the page"),
        ("high", "Contact chain exhausted: ledger-oncall"),
        ("medium", "Recovery order violated: payments-api before payments-db"),
        ("medium", "Page to Cy Park via slack failed"),
        ("low", "Scenario step skipped: warm search cache"),
    ]
    assert got[-1] == ("info", "Manual step answered automatically: confirm DR banner")
    assert sum(1 for _, t in got if t.startswith("Probe ")) == 4
    assert [f["id"] for f in report["findings"]] == [f"F-{n:03d}" for n in range(1, len(got) + 1)]
    by_title = {f["title"]: f for f in report["findings"]}
    seqs = {e.seq: e for e in read_events(JOURNAL)}
    failed = by_title["Scenario step failed: purge CDN cache"]
    assert seqs[failed["evidence_seqs"][0]].data["step"] == "purge CDN cache"
    rto = by_title["reports missed its RTO"]
    assert rto["detail"] == "achieved 2 min 30 s ± 1.0 s, target 2 min"
    assert {seqs[s].type for s in rto["evidence_seqs"]} == {"asset.state", "failure.injected"}
    assert report["summary"]["findings"] == {"critical": 2, "high": 3, "medium": 2, "low": 5, "info": 1}


def test_summary_counts(report: dict[str, Any]) -> None:
    s = report["summary"]
    assert (s["assets_total"], s["assets_passed"], s["assets_failed"], s["assets_not_measured"]) == (
        5,
        2,
        3,
        0,
    )
    assert (s["order_violations"], s["pages_sent"], s["pages_acked"]) == (1, 3, 1)
    assert report["verdict"] == "fail"


def _results(report: dict[str, Any]) -> dict[str, Any]:
    """A results dict rebuilt from the fixed journal (the lead's fold), for pure build_report tests."""
    from drill.results import fold_results, results_to_dict

    return copy.deepcopy(results_to_dict(fold_results(read_events(JOURNAL))))


def _pure(results: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("report_id", "rpt-" + "0" * 24)
    kw.setdefault("generated_utc", "2026-11-20T10:00:00.000+00:00")
    kw.setdefault("tool_version", "9")
    return build_report(results, verify_journal(JOURNAL), {}, **kw)


def test_aborted_run_and_stop_condition_are_findings(report: dict[str, Any]) -> None:
    results = _results(report)
    results.update(status="aborted", reason="stop condition", verdict="aborted")
    results["stops"] = [
        {
            "condition": "ledger down too long",
            "reason": "down for 20m",
            "utc": "2026-11-20T09:20:00.000+00:00",
            "seq": 7,
        }
    ]
    out = _pure(results)
    assert out["findings"][0]["severity"] == "critical"
    stop = next(f for f in out["findings"] if f["title"].startswith("Stop condition"))
    assert (stop["severity"], stop["evidence_seqs"]) == ("high", [7])
    results["stops"] = []
    out = _pure(results)
    assert any(f["title"] == "Drill aborted" and f["detail"] == "stop condition" for f in out["findings"])
    assert out["prepared_by"] is None
    assert (
        out["exercise"]["scenario"] == [] and out["contact_chains"] == []
    )  # no document: empty, not a crash


@pytest.mark.parametrize(
    ("rollback", "manual", "expected"),
    [
        ({"ran": True, "status": "ok"}, None, (True, "rollback completed")),
        ({"ran": True, "status": "failed"}, None, (False, "rollback failed")),
        ({"ran": False, "status": "not-run"}, None, (False, "no rollback ran")),
        (
            {"ran": True, "status": "failed"},
            {"answer": "done", "who": "olu", "auto": False},
            (True, "confirmed by olu at 'x'"),
        ),
        (
            {"ran": True, "status": "failed"},
            {"answer": "done", "who": "", "auto": True},
            (False, "rollback failed"),
        ),
    ],
)
def test_cleanup_confirmation(
    report: dict[str, Any],
    rollback: dict[str, Any],
    manual: dict[str, Any] | None,
    expected: tuple[bool, str],
) -> None:
    results = _results(report)
    results["rollback"] = rollback
    results["steps"] = [
        {
            "name": "x",
            "kind": "manual",
            "phase": "rollback",
            "status": "ok",
            "started_utc": None,
            "finished_utc": None,
            "duration_ms": 0,
            "reason": "",
            "attempts": 1,
            "manual": manual,
            "seq": 3,
        },
    ]
    cleanup = _pure(results)["cleanup"]
    assert (cleanup["confirmed"], cleanup["basis"]) == expected


def test_evidence_files_are_hashed_and_sorted(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(JOURNAL.read_bytes())
    (tmp_path / "playbook.yaml").write_bytes(b"kind: Playbook\n")
    (tmp_path / "results.json").write_bytes(b"{}\n")
    out = build_report_from_journal(
        journal, evidence_files=[tmp_path / "results.json", tmp_path / "playbook.yaml"]
    )
    assert out["evidence"] == [
        {"file": "playbook.yaml", "sha256": hashlib.sha256(b"kind: Playbook\n").hexdigest()},
        {"file": "results.json", "sha256": hashlib.sha256(b"{}\n").hexdigest()},
    ]


def test_broken_journal_is_refused_naming_the_line(tmp_path: Path) -> None:
    lines = JOURNAL.read_bytes().splitlines(keepends=True)
    edited = tmp_path / "journal.jsonl"
    edited.write_bytes(b"".join([*lines[:40], lines[40].replace(b'"ok":true', b'"ok":false'), *lines[41:]]))
    with pytest.raises(JournalInvalid, match="line 42: prev hash"):
        build_report_from_journal(edited)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(JOURNAL.read_bytes()[:-20])
    with pytest.raises(JournalInvalid, match="incomplete last line"):
        build_report_from_journal(torn)
    prefix = build_report_from_journal(torn, allow_torn_tail=True)  # a crash: report the intact prefix
    assert prefix["journal"]["events"] == len(lines) - 1
    assert prefix["journal"]["sha256"] == file_sha256(torn)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(JournalInvalid, match="empty"):
        build_report_from_journal(empty)


def test_write_report_stores_canonical_bytes_and_load_report_reads_them(
    tmp_path: Path, report: dict[str, Any]
) -> None:
    path = write_report(report, tmp_path / "run")
    assert path.name == "report.json"
    assert path.read_bytes() == canonical_bytes(report)
    assert json.loads(path.read_bytes()) == report
    assert load_report(tmp_path / "run") == report
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_load_report_explains_what_is_wrong(tmp_path: Path, report: dict[str, Any]) -> None:
    bad = tmp_path / "report.json"
    broken = copy.deepcopy(report)
    del broken["journal"]["head"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(
        UsageError, match=r"not a valid drill report at \.journal: 'head' is a required property"
    ):
        load_report(bad)
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="not a JSON report"):
        load_report(bad)
    with pytest.raises(UsageError, match="cannot read report"):
        load_report(tmp_path / "missing.json")


def test_tool_version_is_a_string() -> None:
    assert build.REPORT_FORMAT == "drill-report/v1"
    assert isinstance(build.tool_version(), str)
