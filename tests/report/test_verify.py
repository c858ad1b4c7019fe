"""Verification: allowed_signers semantics, signatures, and a whole evidence folder against tampering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drill.clock import parse_utc
from drill.errors import UsageError, VerificationFailed
from drill.evidence.canonical import canonical_bytes
from drill.report.sign import countersign_report, load_private_key, sign_bytes, sign_report
from drill.report.verify import (
    load_revoked_keys,
    match_pattern_list,
    parse_allowed_signers,
    parse_revoked_keys,
    verify_report_dir,
    verify_signature,
)

from .signing_helpers import (
    SIGNED_AT,
    key_fingerprint,
    make_key,
    make_report_dir,
    pub_line,
    write_allowed_signers,
)

AT = datetime(2026, 11, 20, 9, 3, 46, tzinfo=UTC)

# ---------------------------------------------------------------- allowed_signers parsing


def test_allowed_signers_lines_with_options_quotes_and_comments(tmp_path: Path) -> None:
    key = pub_line(make_key(tmp_path, "k"))
    text = "\n".join(
        [
            "# auditor's trust list",
            "",
            f"lead {key}",
            f'"ana@example.com,lead" namespaces="drill-report-v1",valid-after="20260101Z" {key}',
            f'observer VALID-BEFORE="202612312359Z",cert-authority {key}',
            f'  op valid-after="20260101120030Z" {key} trailing comment words',
        ]
    )
    lead, ana, observer, op = parse_allowed_signers(text, source="signers")
    assert (lead.principals, lead.namespaces, lead.valid_after, lead.line) == ("lead", None, None, 3)
    assert ana.principals == "ana@example.com,lead" and ana.namespaces == "drill-report-v1"
    assert ana.valid_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert observer.valid_before == datetime(2026, 12, 31, 23, 59, tzinfo=UTC) and observer.cert_authority
    assert op.valid_after == datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    assert op.where == "signers:6" and op.key_type == "ssh-ed25519"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("lead", "expected: principals"),
        ("lead ssh-ed25519 !!notbase64", "missing or invalid public key"),
        ('lead frobnicate="x" KEY', "unknown or malformed option 'frobnicate=\"x\"'"),
        ("lead namespaces=drill-report-v1 KEY", "unknown or malformed option"),
        ('lead valid-after="2026-01-01" KEY', "bad timestamp '2026-01-01'"),
        ('lead valid-after="20261301Z" KEY', "bad timestamp '20261301Z'"),
        ('lead valid-after="20260101Z",valid-after="20260102Z" KEY', "given twice"),
    ],
)
def test_malformed_allowed_signers_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    key = pub_line(make_key(tmp_path, "k"))
    with pytest.raises(UsageError, match=r"^signers:2: ") as caught:  # bad input: exit 2
        parse_allowed_signers(f"# ok\n{line.replace('KEY', key)}\n", source="signers")
    assert message in str(caught.value) and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        ("lead", "lead", True),
        ("lead", "observer,lead", True),
        ("ana@example.com", "*@example.com", True),
        ("bob@example.com", "!bob@example.com,*@example.com", False),
        ("lead", "?ead", True),
        ("lead", "le", False),
        ("lead", "LEAD", False),  # case-sensitive, as ssh-keygen
        ("a.b", "a?b", True),
        ("axb", "a.b", False),  # '.' is literal, not a regex
    ],
)
def test_principal_pattern_lists_follow_openssh(name: str, patterns: str, expected: bool) -> None:
    assert match_pattern_list(name, patterns) is expected


def test_revoked_keys_file_lists_public_keys(tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    blobs = parse_revoked_keys(f"# revoked 2026-11\n\n{pub_line(key)}\n")
    assert len(blobs) == 1
    (tmp_path / "krl").write_bytes(b"SSHKRL\n\0rest")
    with pytest.raises(VerificationFailed, match="binary KRL"):
        load_revoked_keys(tmp_path / "krl")
    with pytest.raises(UsageError, match="revoked_keys:1: not a public key line"):
        parse_revoked_keys("nonsense here\n")


# ---------------------------------------------------------------- one signature


def _sig(tmp_path: Path, data: bytes, namespace: str = "drill-report-v1") -> tuple[str, str]:
    key = make_key(tmp_path, "k")
    return sign_bytes(data, load_private_key(key), namespace), pub_line(key)


def test_signature_accepted_names_signer_and_line(tmp_path: Path) -> None:
    sig, key = _sig(tmp_path, b"data")
    allowed = parse_allowed_signers(f"# x\nlead,observer {key}\n")
    info = verify_signature(b"data", sig, allowed, "observer", "drill-report-v1", AT)
    assert (info.principal, info.allowed_by) == ("observer", "allowed_signers:2")
    assert info.fingerprint == key_fingerprint(tmp_path / "k")


@pytest.mark.parametrize(
    ("options", "principal", "message"),
    [
        ("", "mallory", "is not allowed to sign as 'mallory' (listed for 'lead')"),
        ('namespaces="git,file"', "lead", "namespace 'drill-report-v1' not allowed by allowed_signers:1"),
        ('valid-before="20261120090345Z"', "lead", "expired at 2026-11-20T09:03:46+00:00"),
        ('valid-after="20261120090347Z"', "lead", "not yet valid at 2026-11-20T09:03:46+00:00"),
    ],
)
def test_signature_rejected_by_trust_policy(
    tmp_path: Path, options: str, principal: str, message: str
) -> None:
    sig, key = _sig(tmp_path, b"data")
    allowed = parse_allowed_signers(f"lead {options} {key}\n")
    with pytest.raises(VerificationFailed, match=r"^sig: ") as caught:
        verify_signature(b"data", sig, allowed, principal, "drill-report-v1", AT, source="sig")
    assert message in str(caught.value)


def test_validity_bounds_are_inclusive_at_whole_seconds(tmp_path: Path) -> None:
    sig, key = _sig(tmp_path, b"data")
    allowed = parse_allowed_signers(
        f'lead valid-after="20261120090346Z",valid-before="20261120090346Z" {key}\n'
    )
    at = AT.replace(microsecond=999_000)  # ssh-keygen compares whole seconds
    assert verify_signature(b"data", sig, allowed, "lead", "drill-report-v1", at).principal == "lead"


def test_key_rotation_old_key_still_verifies_reports_signed_while_valid(tmp_path: Path) -> None:
    sig, old = _sig(tmp_path, b"data")
    new = pub_line(make_key(tmp_path, "new"))
    allowed = parse_allowed_signers(
        f'lead valid-before="20261201Z" {old}\nlead valid-after="20261201Z" {new}\n'
    )
    assert (
        verify_signature(b"data", sig, allowed, "lead", "drill-report-v1", AT).allowed_by
        == "allowed_signers:1"
    )
    with pytest.raises(VerificationFailed, match="expired"):
        verify_signature(b"data", sig, allowed, "lead", "drill-report-v1", datetime(2027, 1, 1, tzinfo=UTC))


def test_wrong_namespace_revoked_key_and_altered_data_are_rejected(tmp_path: Path) -> None:
    sig, key = _sig(tmp_path, b"data", namespace="file")
    allowed = parse_allowed_signers(f"lead {key}\n")
    with pytest.raises(VerificationFailed, match="signed for namespace 'file', expected 'drill-report-v1'"):
        verify_signature(b"data", sig, allowed, "lead", "drill-report-v1", AT)
    good = sign_bytes(b"data", load_private_key(tmp_path / "k"))
    revoked = parse_revoked_keys(key)
    with pytest.raises(VerificationFailed, match="is revoked"):
        verify_signature(b"data", good, allowed, "lead", "drill-report-v1", AT, revoked=revoked)
    with pytest.raises(VerificationFailed, match="signature does not match"):
        verify_signature(b"datA", good, allowed, "lead", "drill-report-v1", AT)
    with pytest.raises(VerificationFailed, match="not an SSH signature"):
        verify_signature(b"data", good.replace("SSH SIGNATURE", "PGP SIGNATURE"), allowed, "lead", "x", AT)


def test_cert_authority_entries_are_reported_as_unsupported(tmp_path: Path) -> None:
    sig, key = _sig(tmp_path, b"data")
    allowed = parse_allowed_signers(f"lead cert-authority {key}\n")
    with pytest.raises(VerificationFailed, match="cert-authority entry, which drill verify does not support"):
        verify_signature(b"data", sig, allowed, "lead", "drill-report-v1", AT)


# ---------------------------------------------------------------- a whole evidence folder


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """An evidence folder signed by the operator and countersigned by the lead, and its allowed_signers."""
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = make_report_dir(tmp_path, signer=("operator", op))
    countersign_report(run, lead, "lead")
    allowed = write_allowed_signers(
        tmp_path / "allowed_signers",
        f'operator namespaces="drill-report-v1" {pub_line(op)}',
        'lead namespaces="drill-report-v1",valid-after="20260101Z",valid-before="20270101Z" '
        + pub_line(lead),
    )
    return run, allowed


def test_a_signed_evidence_folder_verifies(signed: tuple[Path, Path]) -> None:
    run, allowed = signed
    result = verify_report_dir(run, allowed, require=("lead", "operator"))
    assert [(s.principal, s.file) for s in result.signers] == [
        ("lead", "report.json.lead.sig"),
        ("operator", "report.json.operator.sig"),
    ]
    assert result.signers[1].fingerprint == key_fingerprint(run.parent / "op")
    report = json.loads((run / "report.json").read_bytes())
    assert result.report_id == report["report_id"] and result.signed_at == SIGNED_AT
    assert (result.journal.events, result.journal.head) == (1449, report["journal"]["head"])
    assert result.evidence == ("results.json",) and result.notes == ()


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, 1.0])
def test_any_changed_byte_of_the_report_fails(signed: tuple[Path, Path], fraction: float) -> None:
    run, allowed = signed
    data = bytearray((run / "report.json").read_bytes())
    position = min(int(len(data) * fraction), len(data) - 1)
    data[position] ^= 0x01
    (run / "report.json").write_bytes(bytes(data))
    with pytest.raises(
        VerificationFailed, match=r"^report\.json\.lead\.sig: signature does not match report\.json"
    ):
        verify_report_dir(run, allowed)


def _edit_lines(path: Path, edit: str) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    if edit == "edit":
        lines[9] = lines[9].replace(b'"utc":"2026', b'"utc":"2027', 1)
    elif edit == "delete":
        del lines[4]
    elif edit == "reorder":
        lines[6], lines[7] = lines[7], lines[6]
    elif edit == "insert":
        lines.insert(3, lines[2])
    elif edit == "drop-last":
        del lines[-1]
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("edit", "journal.jsonl: line 11: prev hash does not match line 10"),
        ("delete", "journal.jsonl: line 5: seq 6 expected 5"),
        ("reorder", "journal.jsonl: line 7: seq 8 expected 7"),
        ("insert", "journal.jsonl: line 4: seq 3 expected 4"),
        (
            "drop-last",
            "journal.jsonl: 1448 events, the signed report says 1449 (lines after 1448 are missing)",
        ),
    ],
)
def test_a_tampered_journal_fails_and_names_the_line(
    signed: tuple[Path, Path], edit: str, message: str
) -> None:
    run, allowed = signed
    _edit_lines(run / "journal.jsonl", edit)
    with pytest.raises(VerificationFailed) as caught:
        verify_report_dir(run, allowed)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_changed_or_missing_evidence_file_fails(signed: tuple[Path, Path]) -> None:
    run, allowed = signed
    (run / "results.json").write_bytes(b'{"verdict": "pass"}\n')
    with pytest.raises(
        VerificationFailed, match=r"^results\.json: SHA-256 [0-9a-f]{64} differs from the signed"
    ):
        verify_report_dir(run, allowed)
    (run / "results.json").unlink()
    with pytest.raises(
        VerificationFailed, match=r"evidence file results\.json listed in the signed report is missing"
    ):
        verify_report_dir(run, allowed)


def test_required_signers_revocation_and_unknown_signers(signed: tuple[Path, Path], tmp_path: Path) -> None:
    run, allowed = signed
    with pytest.raises(
        VerificationFailed, match=r"required signer 'observer' has not signed \(signed by: lead, operator\)"
    ):
        verify_report_dir(run, allowed, require=("lead", "observer"))
    revoked = tmp_path / "revoked_keys"
    revoked.write_text(pub_line(tmp_path / "lead") + "\n")
    with pytest.raises(VerificationFailed, match=r"^report\.json\.lead\.sig: key SHA256:\S+ is revoked"):
        verify_report_dir(run, allowed, revoked_path=revoked)
    stranger = make_key(tmp_path, "stranger")
    countersign_report(run, stranger, "observer")
    # An extra signature by a key nobody trusts is reported, not fatal ...
    result = verify_report_dir(run, allowed)
    assert [(s.principal, s.note.split(":")[0]) for s in result.untrusted] == [("observer", "untrusted")]
    # ... unless it is required, or every signature must be trusted.
    untrusted = r"^report\.json\.observer\.sig: key \S+ is not allowed to sign as 'observer' \("
    with pytest.raises(VerificationFailed, match=untrusted + "required signer 'observer'"):
        verify_report_dir(run, allowed, require=("observer",))
    with pytest.raises(VerificationFailed, match=untrusted + "untrusted; --strict"):
        verify_report_dir(run, allowed, strict=True)


def test_key_validity_is_checked_at_the_reports_signing_time(
    signed: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = signed
    lead, op = pub_line(tmp_path / "lead"), pub_line(tmp_path / "op")
    expired = write_allowed_signers(
        tmp_path / "expired", f"operator {op}", f'lead valid-before="20261120090345Z" {lead}'
    )
    with pytest.raises(
        VerificationFailed, match=r"^report\.json\.lead\.sig: key .* expired at 2026-11-20T09:03:46"
    ):
        verify_report_dir(run, expired, require=("lead",))
    assert parse_utc(SIGNED_AT) == AT.replace(microsecond=0)


def test_a_report_naming_a_preparer_needs_that_signature(tmp_path: Path) -> None:
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = make_report_dir(tmp_path, signer=("operator", op))
    (run / "report.json.operator.sig").unlink()
    sign_report(run, lead, "lead")
    allowed = write_allowed_signers(
        tmp_path / "allowed", f"operator {pub_line(op)}", f"lead {pub_line(lead)}"
    )
    with pytest.raises(
        VerificationFailed, match=r"names 'operator' .* as preparer, but has no signature by that key"
    ):
        verify_report_dir(run, allowed)


def test_a_signed_report_that_breaks_the_schema_fails(tmp_path: Path) -> None:
    op = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path)
    report = json.loads((run / "report.json").read_bytes())
    report["verdict"] = 7
    (run / "report.json").write_bytes(canonical_bytes(report))
    sign_report(run, op, "operator")
    allowed = write_allowed_signers(tmp_path / "allowed", f"operator {pub_line(op)}")
    with pytest.raises(VerificationFailed, match=r"report.json does not match its schema at \$.verdict"):
        verify_report_dir(run, allowed)


def test_a_folder_without_signatures_fails(tmp_path: Path) -> None:
    run = make_report_dir(tmp_path)
    allowed = write_allowed_signers(tmp_path / "allowed", "# nobody")
    with pytest.raises(VerificationFailed, match=r"no signatures \(report.json.\*.sig\)"):
        verify_report_dir(run, allowed)


# ---------------------------------------------------------------- command line


def test_cli_sign_countersign_and_verify(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from drill.cli import cli

    runner = CliRunner()
    (tmp_path / "pass").write_text("s3cret phrase\n")
    made = runner.invoke(cli, ["keygen", str(tmp_path / "lead"), "--passphrase-file", str(tmp_path / "pass")])
    assert made.exit_code == 0, made.output
    assert "fingerprint: SHA256:" in made.output
    again = runner.invoke(cli, ["keygen", str(tmp_path / "lead")])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    op = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path)
    signed = runner.invoke(cli, ["report", "sign", str(run), "--key", str(op), "--signer", "operator"])
    assert signed.exit_code == 0, signed.output
    countersign = [
        "report",
        "countersign",
        str(run),
        "--key",
        str(tmp_path / "lead"),
        "--signer",
        "lead",
        "--yes",
    ]
    locked = runner.invoke(cli, countersign)
    assert locked.exit_code == 2 and "protected by a passphrase" in locked.output
    counter = runner.invoke(
        cli,
        [*countersign, "--passphrase-file", str(tmp_path / "pass")],
    )
    assert counter.exit_code == 0, counter.output
    allowed = write_allowed_signers(
        tmp_path / "allowed", f"operator {pub_line(op)}", f"lead {pub_line(tmp_path / 'lead')}"
    )
    ok = runner.invoke(
        cli, ["verify", str(run), "--allowed-signers", str(allowed), "--require", "lead,operator"]
    )
    assert ok.exit_code == 0, ok.output
    assert f"  operator: countersigned\n    key:          {key_fingerprint(op)}\n" in ok.output
    missing = runner.invoke(
        cli, ["verify", str(run), "--allowed-signers", str(allowed), "--require", "observer"]
    )
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        "drill: NOT VERIFIED: required signer 'observer' has not signed (signed by: lead, operator)"
    ]


def test_schema_check_is_skipped_with_a_note_when_no_schema_is_shipped(
    signed: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import drill.resources

    run, allowed = signed
    monkeypatch.setattr(drill.resources, "schema_dir", lambda: tmp_path / "no-schemas")
    result = verify_report_dir(run, allowed)
    assert result.notes == ("schema check skipped: report.schema.json is not shipped with this drill",)
