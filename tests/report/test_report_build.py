"""The report builder: complete, deterministic, schema-valid, secret-free, rebuilt from the journal alone."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import cast

import jsonschema
import pytest

from drill.errors import JournalInvalid, UsageError
from drill.evidence.canonical import FloatInReport
from drill.evidence.events import ManualAnswer, RunStatus, StepStarted, StepStatus
from drill.evidence.journal import file_sha256, read_events, verify_journal
from drill.evidence.snapshot import Phase, StepKind
from drill.report import build
from drill.report.build import (
    build_report,
    build_report_from_journal,
    load_report,
    report_bytes,
    report_id_for,
    write_report,
)
from drill.report.model import (
    REPORT_FORMAT,
    Cleanup,
    ContactRow,
    EvidenceFile,
    FindingCounts,
    JournalBlock,
    PlannedStep,
    PlaybookSection,
    Report,
    Severity,
    Tool,
    report_data,
    report_from_data,
)
from drill.resources import load_schema
from drill.results import FoldedRun, ManualRecord, RollbackResult, StepResult, StopRecord, fold_journal

from .conftest import JOURNAL, SIGNER, load_generator


def _validator() -> jsonschema.Draft202012Validator:
    schema = load_schema("report.schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_fixture_journal_is_what_the_generator_writes(tmp_path: Path) -> None:
    fresh = load_generator().write_fixture_journal(tmp_path / "journal.jsonl")
    assert fresh.read_bytes() == JOURNAL.read_bytes(), "run tests/report/fixtures/make_journal.py"


def test_rebuild_is_byte_identical_and_ids_are_derived(report: Report) -> None:
    again = build_report_from_journal(JOURNAL, signer=SIGNER)
    assert report_bytes(again) == report_bytes(report)
    summary = verify_journal(JOURNAL)
    assert report.report_id == report_id_for(report.run_id, summary.head)
    assert report.journal == JournalBlock(
        file="journal.jsonl", sha256=file_sha256(JOURNAL), events=summary.count, head=summary.head
    )
    finished = [e for e in read_events(JOURNAL) if e.type == "run.finished"][-1]
    assert report.generated_utc == finished.utc
    assert report.tool == Tool("drill", "0.0.0-test")


def test_report_matches_its_schema(report: Report) -> None:
    errors = sorted(_validator().iter_errors(json.loads(report_bytes(report))), key=str)
    assert errors == []


def _child(node: object, key: str | int) -> object:
    """node[key] for parsed JSON (a dict by name, a list by index)."""
    if isinstance(node, dict):
        return node[key]
    assert isinstance(node, list) and isinstance(key, int), (node, key)
    return node[key]


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
def test_schema_rejects_wrong_values(report: Report, path: tuple[str | int, ...], value: object) -> None:
    broken: dict[str, object] = json.loads(report_bytes(report))
    target: object = broken
    for key in path[:-1]:
        target = _child(target, key)
    assert isinstance(target, dict)
    target[path[-1]] = value
    assert list(_validator().iter_errors(broken)), f"schema accepted {path}={value!r}"


def _folded() -> FoldedRun:
    """The fixed journal folded (results + journalled plan), for pure build_report tests."""
    return fold_journal(read_events(JOURNAL))


def _pure(folded: FoldedRun, **kw: str) -> Report:
    return build_report(
        folded,
        verify_journal(JOURNAL),
        report_id=kw.get("report_id", "rpt-" + "0" * 24),
        generated_utc=kw.get("generated_utc", "2026-11-20T10:00:00.000+00:00"),
        tool_version=kw.get("tool_version", "9"),
    )


def test_a_float_in_the_results_is_refused_before_any_byte_is_written(tmp_path: Path) -> None:
    folded = _folded()
    results = folded.results
    # A fold bug slipping a float through (dataclasses do not check types at runtime):
    asset = replace(results.assets[0], rto_ms=cast(int, 1.5))
    report = _pure(replace(folded, results=replace(results, assets=(asset, *results.assets[1:]))))
    with pytest.raises(FloatInReport, match=r"float in report at \$\.assets\[0\]\.rto_ms"):
        report_bytes(report)
    with pytest.raises(TypeError, match="float in report"):
        write_report(report, tmp_path / "run")
    assert not (tmp_path / "run" / "report.json").exists()


def test_auditor_fields_are_filled(report: Report) -> None:
    assert report.playbook == PlaybookSection(
        name="payments-q4",
        version="3",
        quarter="2026-Q4",
        owner="dr-team@example.com",
        description="Regional failover of the payments platform",
        sha256="ab" * 32,
        path="playbooks/payments-q4.yaml",
    )
    run = report.run
    assert run.operator == "bo@drill-runner-1"
    assert run.planned_start_utc == "2026-11-20T09:00:00.000+00:00"
    assert run.planned_end_utc == "2026-11-20T09:30:00.000+00:00"
    assert (run.status, run.pass_tiers) == ("completed", ("tier-0", "tier-1"))
    assert report.exercise.test_type == "full-scale"
    assert report.scope.exclusions == ("Batch settlement jobs",)
    assert [t.description for t in report.scope.tiers] == [
        "Card authorisation path",
        "Ledger and reporting",
        "Nice to have",
    ]
    assert [p.role for p in report.participants] == ["drill-lead", "independent-observer", "operator"]
    assert report.prepared_by == SIGNER
    assert report.cleanup == Cleanup(True, "confirmed by ana at 'confirm normal service'")
    scenario = report.exercise.scenario
    assert scenario[0] == PlannedStep(
        name="declare disaster",
        kind=StepKind.MARK,
        phase=Phase.SCENARIO,
        parent="",
        inject=True,
        detail="mark disaster (t_inject at its start)",  # the plan's step summary
    )
    assert [s.detail for s in scenario[2:4]] == [
        "wait for asset payments-api down within 2 min",
        "http action, timeout 1 min, 3 attempts",
    ]
    assert report.contact_chains[0].contacts[1] == ContactRow(
        name="Cy Park", role="", via="slack", ack_within_ms=60_000
    )
    db = report.assets[0]
    assert (db.id, db.description, db.probes) == ("payments-db", "Primary payments database", ("canary",))
    assert [len(report.people.pages), len(report.people.chains)] == [3, 2]


def test_no_secret_or_parameter_leaks_into_the_report(report: Report) -> None:
    text = report_bytes(report).decode()
    for needle in ("${env:", "PG_DSN", "SLACK_URL", "127.0.0.1:9000", "systemctl", "bo@example.com/"):
        assert needle not in text
    assert "${env:PG_DSN}" in JOURNAL.read_text()  # control: the journalled document does hold them


def test_findings_cover_every_problem_with_severity_and_evidence(report: Report) -> None:
    got = [(f.severity, f.title) for f in report.findings]
    assert got[:8] == [
        ("critical", "payments-db missed its RPO"),
        ("critical", "reports missed its RTO"),
        ("high", "Scenario step failed: purge CDN cache"),
        ("high", "ledger: nobody acknowledged the page"),
        ("high", "ledger: RPO not measured"),  # tier-1 has an RPO target; no canary writes to ledger
        ("high", "reports: RPO not measured"),
        ("high", "Contact chain exhausted: ledger-oncall"),
        ("medium", "Recovery order violated: payments-api before payments-db"),
    ]
    assert got[-2:] == [
        ("info", "Manual step answered automatically: confirm DR banner"),
        ("info", "payments-api: RPO waived"),  # with the playbook's reason
    ]
    waived = next(f for f in report.findings if f.title == "payments-api: RPO waived")
    assert waived.detail.startswith("stateless: its data lives in payments-db")
    assert sum(1 for _, t in got if t.startswith("Probe ")) == 4
    assert [f.id for f in report.findings] == [f"F-{n:03d}" for n in range(1, len(got) + 1)]
    by_title = {f.title: f for f in report.findings}
    seqs = {e.seq: e for e in read_events(JOURNAL)}
    failed = seqs[by_title["Scenario step failed: purge CDN cache"].evidence_seqs[0]].payload
    assert isinstance(failed, StepStarted) and failed.step == "purge CDN cache"
    rto = by_title["reports missed its RTO"]
    assert rto.detail == "achieved 2 min 30 s ± 1 s, target 2 min"
    assert {seqs[s].type for s in rto.evidence_seqs} == {"asset.state", "failure.injected"}
    assert report.summary.findings == FindingCounts(critical=2, high=5, medium=2, low=5, info=2)


def test_summary_counts(report: Report) -> None:
    s = report.summary
    # search never went down: unaffected, not a pass; payments-api passed with its RPO waived
    assert (s.assets_total, s.assets_passed, s.assets_failed, s.assets_not_measured) == (5, 1, 3, 0)
    assert [a.verdict for a in report.assets] == ["fail", "pass", "fail", "fail", "unaffected"]
    assert (s.order_violations, s.pages_sent, s.pages_acked) == (1, 3, 1)
    assert report.verdict == "fail"


def test_aborted_run_and_stop_condition_are_findings() -> None:
    folded = _folded()
    stop = StopRecord(
        condition="ledger down too long",
        reason="ledger down for 20 min (limit 20 min)",
        utc="2026-11-20T09:20:00.000+00:00",
        seq=7,
    )
    aborted = replace(
        folded.results, status=RunStatus.ABORTED, reason="stop condition", verdict="aborted", stops=(stop,)
    )
    out = _pure(replace(folded, results=aborted))
    assert out.findings[0].severity == Severity.CRITICAL
    tripped = next(f for f in out.findings if f.title.startswith("Stop condition"))
    assert (tripped.severity, tripped.evidence_seqs) == (Severity.HIGH, (7,))
    out = _pure(replace(folded, results=replace(aborted, stops=())))
    assert any(f.title == "Drill aborted" and f.detail == "stop condition" for f in out.findings)
    assert out.prepared_by is None
    # A plan without steps or chains gives empty sections, not a crash.
    bare = replace(folded, results=aborted, plan=replace(folded.plan, steps=(), chains=()))
    out = _pure(bare)
    assert out.exercise.scenario == () and out.exercise.rollback_plan == () and out.contact_chains == ()


@pytest.mark.parametrize(
    ("rollback", "manual", "expected"),
    [
        (RollbackResult(True, "ok"), None, (True, "rollback completed")),
        (RollbackResult(True, "failed"), None, (False, "rollback failed")),
        (RollbackResult(False, "not-run"), None, (False, "no rollback ran")),
        (
            RollbackResult(True, "failed"),
            ManualRecord(ManualAnswer.DONE, "olu", False),
            (True, "confirmed by olu at 'x'"),
        ),
        (
            RollbackResult(True, "failed"),
            ManualRecord(ManualAnswer.DONE, "", True),
            (False, "rollback failed"),
        ),
    ],
)
def test_cleanup_confirmation(
    rollback: RollbackResult, manual: ManualRecord | None, expected: tuple[bool, str]
) -> None:
    folded = _folded()
    step = StepResult(
        name="x",
        kind=StepKind.MANUAL,
        phase=Phase.ROLLBACK,
        status=StepStatus.OK,
        started_utc="",
        finished_utc=None,
        duration_ms=0,
        reason="",
        attempts=1,
        manual=manual,
        seq=3,
    )
    results = replace(folded.results, rollback=rollback, steps=(step,))
    cleanup = _pure(replace(folded, results=results)).cleanup
    assert (cleanup.confirmed, cleanup.basis) == expected


def test_evidence_files_are_hashed_and_sorted(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(JOURNAL.read_bytes())
    (tmp_path / "playbook.yaml").write_bytes(b"kind: Playbook\n")
    (tmp_path / "results.json").write_bytes(b"{}\n")
    out = build_report_from_journal(
        journal, evidence_files=[tmp_path / "results.json", tmp_path / "playbook.yaml"]
    )
    assert out.evidence == (
        EvidenceFile("playbook.yaml", hashlib.sha256(b"kind: Playbook\n").hexdigest()),
        EvidenceFile("results.json", hashlib.sha256(b"{}\n").hexdigest()),
    )


def test_broken_journal_is_refused_naming_the_line(tmp_path: Path) -> None:
    lines = JOURNAL.read_bytes().splitlines(keepends=True)
    assert b'"ok":true' in lines[40]
    edited = tmp_path / "journal.jsonl"
    edited.write_bytes(b"".join([*lines[:40], lines[40].replace(b'"ok":true', b'"ok":false'), *lines[41:]]))
    with pytest.raises(JournalInvalid, match="line 42: prev hash"):
        build_report_from_journal(edited)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(JOURNAL.read_bytes()[:-20])
    with pytest.raises(JournalInvalid, match="incomplete last line"):
        build_report_from_journal(torn)
    prefix = build_report_from_journal(torn, allow_torn_tail=True)  # a crash: report the intact prefix
    assert prefix.journal.events == len(lines) - 1
    assert prefix.journal.sha256 == file_sha256(torn)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(JournalInvalid, match="empty"):
        build_report_from_journal(empty)


def test_write_report_stores_canonical_bytes_and_load_report_reads_them(
    tmp_path: Path, report: Report
) -> None:
    path = write_report(report, tmp_path / "run")
    assert path.name == "report.json"
    assert path.read_bytes() == report_bytes(report)
    assert report_from_data(json.loads(path.read_bytes())) == report
    assert load_report(tmp_path / "run") == report
    assert load_report(path) == report
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_load_report_explains_what_is_wrong(tmp_path: Path, report: Report) -> None:
    bad = tmp_path / "report.json"
    broken = copy.deepcopy(report_data(report))
    journal = broken["journal"]
    assert isinstance(journal, dict)
    del journal["head"]
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
    assert REPORT_FORMAT == "drill-report/v1"
    assert isinstance(build.tool_version(), str)
