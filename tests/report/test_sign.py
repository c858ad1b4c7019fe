"""Keys and SSHSIG signatures written in Python: key files, signature format, sign/countersign rules."""

from __future__ import annotations

import base64
import stat
import struct
from pathlib import Path

import pytest

from drill.errors import KeyProblem, UsageError
from drill.evidence.canonical import FloatInReport, canonical_bytes, is_canonical
from drill.report.sign import (
    countersign_report,
    fingerprint,
    generate_keypair,
    key_is_encrypted,
    load_private_key,
    parse_signature,
    sign_bytes,
    sign_report,
    signature_matches,
)


def test_keygen_writes_0600_private_key_and_pub_line(tmp_path: Path) -> None:
    public = generate_keypair(tmp_path / "k", comment="ana@example.com")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    kind, body, comment = (tmp_path / "k.pub").read_text().split()
    assert (kind, comment) == ("ssh-ed25519", "ana@example.com")
    assert load_private_key(tmp_path / "k").public_key() == public
    assert fingerprint(public) == fingerprint(base64.b64decode(body))
    assert not key_is_encrypted(tmp_path / "k")


@pytest.mark.parametrize("existing", ["k", "k.pub"])
def test_keygen_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(KeyProblem, match="already exists"):
        generate_keypair(tmp_path / "k")
    assert (tmp_path / existing).read_text() == "precious"


def test_passphrase_protected_key_needs_the_right_passphrase(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k", passphrase="correct horse")
    assert key_is_encrypted(tmp_path / "k")
    assert load_private_key(tmp_path / "k", "correct horse") is not None
    with pytest.raises(KeyProblem, match="protected by a passphrase"):
        load_private_key(tmp_path / "k")
    with pytest.raises(KeyProblem, match="wrong passphrase"):
        load_private_key(tmp_path / "k", "battery staple")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("ssh-ed25519 AAAA comment\n", "not an OpenSSH private key"),
        ("-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n", "not an OpenSSH private key"),
    ],
)
def test_unusable_key_files_give_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "k").write_text(content)
    with pytest.raises(KeyProblem, match=message):
        load_private_key(tmp_path / "k")


def test_signature_has_the_sshsig_layout(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    key = load_private_key(tmp_path / "k")
    armored = sign_bytes(b"report bytes", key)
    lines = armored.splitlines()
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----" and lines[-1] == "-----END SSH SIGNATURE-----"
    assert all(len(line) <= 70 for line in lines[1:-1]) and armored.endswith("\n")
    blob = base64.b64decode("".join(lines[1:-1]))
    assert blob[:6] == b"SSHSIG" and struct.unpack(">I", blob[6:10]) == (1,)
    parsed = parse_signature(armored)
    assert (parsed.namespace, parsed.hash_alg, parsed.key_type) == (
        "drill-report-v1",
        "sha512",
        "ssh-ed25519",
    )
    assert parsed.fingerprint == fingerprint(key.public_key())
    assert signature_matches(b"report bytes", parsed)
    assert not signature_matches(b"report bytez", parsed)
    assert sign_bytes(b"report bytes", key) == armored  # Ed25519 is deterministic


def _report(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "report.json").write_bytes(canonical_bytes({"report_id": "rpt-1", "b": [1, 2], "a": "é"}))
    return directory


def test_sign_report_covers_the_stored_bytes(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    directory = _report(tmp_path)
    path = sign_report(directory, tmp_path / "k", "operator")
    assert path.name == "report.json.operator.sig"
    assert signature_matches((directory / "report.json").read_bytes(), parse_signature(path.read_text()))
    assert sign_report(directory, tmp_path / "k", "operator") == path  # same key again: a no-op


def test_sign_report_refuses_a_second_different_signature_by_the_same_principal(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k1")
    generate_keypair(tmp_path / "k2")
    directory = _report(tmp_path)
    first = sign_report(directory, tmp_path / "k1", "operator").read_text()
    with pytest.raises(UsageError, match="already exists"):
        sign_report(directory, tmp_path / "k2", "operator")
    assert (directory / "report.json.operator.sig").read_text() == first


def test_sign_report_refuses_a_hand_edited_non_canonical_report(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k")
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "report.json").write_text('{\n  "report_id": "rpt-1"\n}\n')
    with pytest.raises(UsageError, match="not RFC 8785 canonical"):
        sign_report(directory, tmp_path / "k", "operator")
    assert not list(directory.glob("*.sig"))


@pytest.mark.parametrize("principal", ["../x", "a b", "a,b", "*", "", ".hidden", "a/b"])
def test_principal_must_be_a_safe_file_name_token(tmp_path: Path, principal: str) -> None:
    generate_keypair(tmp_path / "k")
    with pytest.raises(UsageError, match="cannot be used"):
        sign_report(_report(tmp_path), tmp_path / "k", principal)


def test_countersign_needs_someone_elses_intact_signature(tmp_path: Path) -> None:
    for name in ("op", "lead"):
        generate_keypair(tmp_path / name)
    directory = _report(tmp_path)
    with pytest.raises(UsageError, match="no signature by anyone else"):
        countersign_report(directory, tmp_path / "lead", "lead")
    sign_report(directory, tmp_path / "op", "operator")
    with pytest.raises(UsageError, match="no signature by anyone else"):
        countersign_report(directory, tmp_path / "op", "operator")
    path = countersign_report(directory, tmp_path / "lead", "lead")
    assert path.name == "report.json.lead.sig"


def test_countersign_refuses_a_report_changed_after_the_first_signature(tmp_path: Path) -> None:
    for name in ("op", "lead"):
        generate_keypair(tmp_path / name)
    directory = _report(tmp_path)
    sign_report(directory, tmp_path / "op", "operator")
    (directory / "report.json").write_bytes(canonical_bytes({"report_id": "rpt-2"}))
    with pytest.raises(UsageError, match="changed after operator signed"):
        countersign_report(directory, tmp_path / "lead", "lead")
    assert not (directory / "report.json.lead.sig").exists()


def test_canonical_bytes_refuses_floats_and_is_one_sorted_line() -> None:
    assert canonical_bytes({"b": 1, "a": ["x", None, True]}) == b'{"a":["x",null,true],"b":1}'
    with pytest.raises(FloatInReport, match=r"\$\.assets\[0\]\.rto_ms"):
        canonical_bytes({"assets": [{"rto_ms": 1.5}]})
    assert is_canonical(b'{"a":1}') and not is_canonical(b'{"a": 1}') and not is_canonical(b"{]")


def test_signing_as_the_named_preparer_needs_the_preparers_key(tmp_path: Path) -> None:
    right = generate_keypair(tmp_path / "right")
    generate_keypair(tmp_path / "wrong")
    directory = tmp_path / "run"
    directory.mkdir()
    report = {"prepared_by": {"principal": "operator", "fingerprint": fingerprint(right)}, "report_id": "r"}
    (directory / "report.json").write_bytes(canonical_bytes(report))
    with pytest.raises(KeyProblem, match=r"names 'operator' .* as preparer; this key is SHA256:"):
        sign_report(directory, tmp_path / "wrong", "operator")
    assert sign_report(directory, tmp_path / "wrong", "lead").name == "report.json.lead.sig"
    assert sign_report(directory, tmp_path / "right", "operator").name == "report.json.operator.sig"
