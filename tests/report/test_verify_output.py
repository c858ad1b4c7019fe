"""`drill verify` speaks to an auditor (issue 13, bullet 3): which drill, its verdict, each
signature with role, key, trusting line and time, in text and JSON; untrusted extra signatures
are reported (fatal with --strict); bad input exits 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import cli
from drill.report.build import load_report
from drill.report.evidence import render_views, rerender_views
from drill.report.sign import countersign_report, load_private_key, sign_bytes, sign_report
from drill.report.verify import verify_report_dir

from .signing_helpers import (
    SIGNED_AT,
    key_fingerprint,
    make_key,
    make_report_dir,
    pub_line,
    ssh_keygen,
    write_allowed_signers,
)

REASON = "a scenario step failed: purge CDN cache"  # the fixture journal's drill failed


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runs/run prepared by operator, countersigned by lead, views rendered; both keys trusted by
    ./allowed_signers (the working directory is tmp_path, so paths stay short)."""
    monkeypatch.chdir(tmp_path)
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = make_report_dir(tmp_path, signer=("operator", op))
    countersign_report(run, lead, "lead")
    render_views(load_report(run), run)
    write_allowed_signers(
        tmp_path / "allowed_signers",
        "# the auditor's trust list",
        f'operator namespaces="drill-report-v1" {pub_line(op)}',
        f'lead namespaces="drill-report-v1" {pub_line(lead)}',
    )
    return run


def verify(*args: str) -> Result:
    return CliRunner().invoke(cli, ["verify", "run", "--allowed-signers", "allowed_signers", *args])


def one_error_line(result: Result, code: int, *needles: str) -> str:
    """The single `drill: NOT VERIFIED: ...` line on stderr, after checking the exit code."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drill: NOT VERIFIED: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def add_stranger(tmp_path: Path, run: Path, principal: str = "observer") -> Path:
    """A valid countersignature by a key the auditor's allowed_signers does not list."""
    stranger = make_key(tmp_path, "stranger")
    countersign_report(run, stranger, principal)
    rerender_views(load_report(run), run)  # as `drill report countersign` does: views list the signers
    return stranger


def test_text_names_the_drill_its_verdict_and_each_signature(folder: Path, tmp_path: Path) -> None:
    result = verify()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    report = json.loads((folder / "report.json").read_bytes())
    assert lines[:5] == [
        f"verified: report {report['report_id']}, verdict: FAIL",
        "  drill:    payments-q4, quarter 2026-Q4, full-scale test",
        "  run:      20261120T090000Z-payments-q4",
        f"  verdict:  FAIL ({REASON})",
        "  note:     verified means the evidence is authentic, not that the drill passed",
    ]
    signatures = lines[lines.index("signatures: 2 trusted") + 1 :][:10]
    assert signatures == [
        "  operator: prepared the report",
        f"    key:          {key_fingerprint(tmp_path / 'op')}",
        "    trusted by:   allowed_signers:2",
        f"    when:         report generated {SIGNED_AT}",
        "    file:         report.json.operator.sig",
        "  lead: countersigned",
        f"    key:          {key_fingerprint(tmp_path / 'lead')}",
        "    trusted by:   allowed_signers:3",
        "    when:         time not recorded in the signature",
        "    file:         report.json.lead.sig",
    ]
    journal = report["journal"]
    assert f"journal: journal.jsonl, {journal['events']} events, hash chain intact" in lines
    assert f"  head:     {journal['head']}" in lines and f"  sha256:   {journal['sha256']}" in lines
    assert "evidence files checked (SHA-256 as signed): results.json" in lines
    assert lines[-1].startswith("covered: signatures, schema, journal chain and digest, evidence digests")
    assert all(len(line) <= 80 for line in lines[:-1]), [line for line in lines if len(line) > 80]


def test_json_is_one_document_with_the_verdict_and_every_signature(folder: Path, tmp_path: Path) -> None:
    result = verify("--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    report = json.loads((folder / "report.json").read_bytes())
    assert (doc["verified"], doc["verdict"], doc["verdict_reason"]) == (True, "fail", REASON)
    assert doc["drill"] == {
        "name": "payments-q4",
        "quarter": "2026-Q4",
        "test_type": "full-scale",
        "run_id": report["run_id"],
        "report_id": report["report_id"],
        "generated_utc": SIGNED_AT,
    }
    assert doc["signatures"] == [
        {
            "principal": "operator",
            "role": "prepared the report",
            "fingerprint": key_fingerprint(tmp_path / "op"),
            "trusted": True,
            "trusted_by": "allowed_signers:2",
            "file": "report.json.operator.sig",
            "time": f"report generated {SIGNED_AT}",
            "note": "",
        },
        {
            "principal": "lead",
            "role": "countersigned",
            "fingerprint": key_fingerprint(tmp_path / "lead"),
            "trusted": True,
            "trusted_by": "allowed_signers:3",
            "file": "report.json.lead.sig",
            "time": "time not recorded in the signature",
            "note": "",
        },
    ]
    assert doc["journal"] == report["journal"]
    assert (doc["evidence"], doc["views"], doc["not_checked"]) == (
        ["results.json"],
        ["report.html", "report.md", "report.junit.xml"],
        [],
    )
    assert doc["covered"] == [
        "signatures",
        "schema",
        "journal chain and digest",
        "evidence digests",
        "report = journal fold",
        "views",
    ]


def test_an_untrusted_extra_signature_is_reported_and_fatal_only_with_strict(
    folder: Path, tmp_path: Path
) -> None:
    stranger = add_stranger(tmp_path, folder)
    why = f"key {key_fingerprint(stranger)} is not allowed to sign as 'observer'"
    ok = verify("--require", "operator,lead")
    assert ok.exit_code == 0, ok.output
    assert "signatures: 2 trusted, 1 not trusted (reported; --strict refuses them)" in ok.stdout
    block = ok.stdout.split("  observer: countersigned\n", 1)[1].splitlines()
    assert block[0] == f"    key:          {key_fingerprint(stranger)}"
    assert " ".join(block[1:3]).split() == ["untrusted:", *why.split()]
    doc = json.loads(verify("--require", "operator,lead", "--format", "json").stdout)
    observer = [s for s in doc["signatures"] if s["principal"] == "observer"]
    assert observer == [
        {
            "principal": "observer",
            "role": "countersigned",
            "fingerprint": key_fingerprint(stranger),
            "trusted": False,
            "trusted_by": "",
            "file": "report.json.observer.sig",
            "time": "time not recorded in the signature",
            "note": f"untrusted: {why}",
        }
    ]
    strict = verify("--require", "operator,lead", "--strict")
    line = one_error_line(strict, 1, f"report.json.observer.sig: {why}", "--strict")
    assert strict.stdout == "", line
    strict_json = verify("--strict", "--format", "json")
    assert strict_json.exit_code == 1
    assert json.loads(strict_json.stdout) == {
        "verified": False,
        "error": line.removeprefix("drill: NOT VERIFIED: "),
        "report_dir": "run",
    }


def test_an_untrusted_required_or_preparer_signature_is_fatal(folder: Path, tmp_path: Path) -> None:
    add_stranger(tmp_path, folder)
    one_error_line(verify("--require", "observer"), 1, "report.json.observer.sig: key", "required signer")
    only_lead = write_allowed_signers(tmp_path / "only_lead", f"lead {pub_line(tmp_path / 'lead')}")
    result = CliRunner().invoke(cli, ["verify", "run", "--allowed-signers", str(only_lead)])
    one_error_line(result, 1, "report.json.operator.sig: key", "preparer must be trusted")


def test_a_report_without_a_preparer_needs_one_trusted_signature(tmp_path: Path) -> None:
    op = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path)  # built without a signer: no prepared_by
    sign_report(run, op, "operator")
    nobody = write_allowed_signers(tmp_path / "nobody", "# nobody yet")
    result = CliRunner().invoke(cli, ["verify", str(run), "--allowed-signers", str(nobody)])
    one_error_line(result, 1, "report.json.operator.sig: key", "(no signature is trusted)")
    trusted = write_allowed_signers(tmp_path / "trusted", f"operator {pub_line(op)}")
    outcome = verify_report_dir(run, trusted)
    assert [(s.role, s.time) for s in outcome.signatures] == [
        ("countersigned", "time not recorded in the signature")
    ]


def test_a_signature_over_other_bytes_is_fatal_even_without_strict(folder: Path, tmp_path: Path) -> None:
    stranger = make_key(tmp_path, "stranger")
    forged = sign_bytes(b'{"verdict":"pass"}', load_private_key(stranger))
    (folder / "report.json.observer.sig").write_text(forged, encoding="ascii")
    one_error_line(verify(), 1, "report.json.observer.sig: signature does not match report.json")
    (folder / "report.json.observer.sig").write_text("not a signature\n", encoding="ascii")
    one_error_line(verify(), 1, "report.json.observer.sig: not an SSH signature")


def test_a_revoked_extra_signature_is_fatal_even_without_strict(folder: Path, tmp_path: Path) -> None:
    stranger = add_stranger(tmp_path, folder)
    (tmp_path / "revoked").write_text(pub_line(stranger) + "\n")
    one_error_line(verify("--revoked", "revoked"), 1, "report.json.observer.sig: key", "is revoked")


def test_a_signature_drill_cannot_check_is_reported_as_unverifiable(folder: Path, tmp_path: Path) -> None:
    keygen = ssh_keygen()
    key = tmp_path / "ecdsa"
    made = subprocess.run(
        [keygen, "-q", "-t", "ecdsa", "-N", "", "-f", str(key)], capture_output=True, timeout=60, check=False
    )
    assert made.returncode == 0, made.stderr
    signed = subprocess.run(
        [keygen, "-Y", "sign", "-n", "drill-report-v1", "-f", str(key), str(folder / "report.json")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    (folder / "report.json.sig").rename(folder / "report.json.observer.sig")
    rerender_views(load_report(folder), folder)
    result = verify("--format", "json")
    assert result.exit_code == 0, result.output
    (observer,) = [s for s in json.loads(result.stdout)["signatures"] if s["principal"] == "observer"]
    assert observer["trusted"] is False
    assert observer["note"].startswith("unverifiable: made with a key of type ecdsa-sha2-nistp256;")
    one_error_line(verify("--strict"), 1, "report.json.observer.sig: made with a key of type ecdsa")


def test_a_verified_fail_report_exits_0_and_says_fail(folder: Path) -> None:
    result = verify()
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("verified: report rpt-") and first.endswith(", verdict: FAIL")
    outcome = verify_report_dir(folder, "allowed_signers")
    assert (outcome.verdict, outcome.verdict_reason) == ("fail", REASON)
    assert (outcome.playbook, outcome.quarter, outcome.test_type) == ("payments-q4", "2026-Q4", "full-scale")
    assert [(s.principal, s.role) for s in outcome.signatures] == [
        ("operator", "prepared the report"),
        ("lead", "countersigned"),
    ]


def test_a_failed_verification_in_json_says_so_on_stdout(folder: Path) -> None:
    (folder / "results.json").write_bytes(b'{"verdict": "pass"}\n')
    result = verify("--format", "json")
    line = one_error_line(result, 1, "results.json: SHA-256")
    doc = json.loads(result.stdout)
    assert doc == {
        "verified": False,
        "error": line.removeprefix("drill: NOT VERIFIED: "),
        "report_dir": "run",
    }


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing", "allowed signers file nope does not exist"),
        ("directory", "allowed signers file nope is a directory"),
        ("fifo", "allowed signers file nope is a FIFO"),
    ],
)
def test_a_missing_or_unreadable_trust_file_exits_2(folder: Path, kind: str, needle: str) -> None:
    if kind == "directory":
        Path("nope").mkdir()  # tests run as root, so chmod 000 would not stop the read
    elif kind == "fifo":
        os.mkfifo("nope")  # a read would block forever: it must be refused, not opened
    for option in ("--allowed-signers", "--revoked"):
        argv = ["verify", "run", "--allowed-signers", "allowed_signers", option, "nope"]
        result = CliRunner().invoke(cli, argv)
        expected = (
            needle if option == "--allowed-signers" else needle.replace("allowed signers", "revoked keys")
        )
        one_error_line(result, 2, expected)
        assert result.stdout == ""


def test_a_missing_report_folder_or_report_json_exits_2(folder: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "elsewhere", "--allowed-signers", "allowed_signers"])
    one_error_line(result, 2, "report folder elsewhere does not exist")
    (folder / "report.json").unlink()
    result = verify("--format", "json")
    one_error_line(result, 2, "run/report.json is missing")
    assert result.stdout == ""  # refused input: no document, the error is on stderr
