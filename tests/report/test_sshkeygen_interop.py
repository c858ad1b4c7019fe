"""The auditor's recipe without drill: `ssh-keygen -Y verify ... < report.json` and `sha256sum`.

Runs the README's exact commands against reports drill signed (and tampered copies), and checks
that keys and signatures cross between drill and ssh-keygen in both directions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from drill.report.sign import load_private_key, sign_report
from drill.report.verify import verify_report_dir
from tests.conftest import require_binary

from .signing_helpers import (
    SIGNED_AT,
    key_fingerprint,
    make_key,
    make_report_dir,
    pub_line,
    ssh_keygen,
    ssh_verify,
    write_allowed_signers,
)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(evidence folder signed by drill as operator, allowed_signers, operator key)."""
    ssh_keygen()
    key = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path, signer=("operator", key))
    allowed = write_allowed_signers(
        tmp_path / "allowed_signers", f'operator namespaces="drill-report-v1" {pub_line(key)}'
    )
    return run, allowed, key


def test_ssh_keygen_verifies_a_drill_signature(evidence: tuple[Path, Path, Path]) -> None:
    run, allowed, key = evidence
    done = ssh_verify(run, allowed, "operator")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert f'Good "drill-report-v1" signature for operator with ED25519 key {key_fingerprint(key)}' in out


def test_drill_signature_is_byte_identical_to_ssh_keygen_sign(evidence: tuple[Path, Path, Path]) -> None:
    run, _, key = evidence
    copy = run.parent / "copy.json"
    copy.write_bytes((run / "report.json").read_bytes())
    done = _run(ssh_keygen(), "-Y", "sign", "-f", str(key), "-n", "drill-report-v1", str(copy))
    assert done.returncode == 0, done.stderr
    assert Path(f"{copy}.sig").read_bytes() == (run / "report.json.operator.sig").read_bytes()


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_ssh_keygen_rejects_a_tampered_report(evidence: tuple[Path, Path, Path], fraction: float) -> None:
    run, allowed, _ = evidence
    data = bytearray((run / "report.json").read_bytes())
    data[min(int(len(data) * fraction), len(data) - 1)] ^= 0x20
    (run / "report.json").write_bytes(bytes(data))
    done = ssh_verify(run, allowed, "operator")
    assert done.returncode != 0
    assert b"Good" not in done.stdout


def test_ssh_keygen_rejects_a_wrong_namespace(evidence: tuple[Path, Path, Path]) -> None:
    run, allowed, key = evidence
    assert ssh_verify(run, allowed, "operator", namespace="file").returncode != 0
    git_only = write_allowed_signers(run.parent / "git_only", f'operator namespaces="git" {pub_line(key)}')
    assert ssh_verify(run, git_only, "operator").returncode != 0


def test_ssh_keygen_rejects_an_expired_key_and_accepts_it_at_the_signing_time(
    evidence: tuple[Path, Path, Path],
) -> None:
    run, _, key = evidence
    # Valid until one second after the report was made, so expired by now.
    expired = write_allowed_signers(
        run.parent / "expired", f'operator valid-before="20261120090347Z" {pub_line(key)}'
    )
    done = ssh_verify(run, expired, "operator")
    assert done.returncode != 0 and b"Good" not in done.stdout
    # The README's recipe for rotated keys: check the window at the report's generated_utc.
    signed_at = json.loads((run / "report.json").read_bytes())["generated_utc"]
    assert signed_at == SIGNED_AT
    at_signing = ssh_verify(run, expired, "operator", "-Overify-time=20261120090346Z")
    assert at_signing.returncode == 0, at_signing.stderr
    assert verify_report_dir(run, expired).signers[0].principal == "operator"  # drill agrees


def test_ssh_keygen_rejects_a_revoked_key(evidence: tuple[Path, Path, Path]) -> None:
    run, allowed, key = evidence
    revoked = run.parent / "revoked_keys"
    revoked.write_text(pub_line(key) + "\n")
    done = ssh_verify(run, allowed, "operator", "-r", str(revoked))
    assert done.returncode != 0 and b"Good" not in done.stdout
    other = run.parent / "other_revoked"
    other.write_text(pub_line(make_key(run.parent, "someone-else")) + "\n")
    assert ssh_verify(run, allowed, "operator", "-r", str(other)).returncode == 0


def test_sha256sum_of_the_journal_matches_the_signed_report(evidence: tuple[Path, Path, Path]) -> None:
    run, _, _ = evidence
    done = _run(require_binary("sha256sum"), str(run / "journal.jsonl"))
    assert done.returncode == 0
    digest = done.stdout.split()[0]
    assert digest == json.loads((run / "report.json").read_bytes())["journal"]["sha256"]


def test_a_passphrase_protected_ssh_keygen_key_signs_via_drill(tmp_path: Path) -> None:
    keygen = ssh_keygen()
    key = tmp_path / "id_ed25519"
    made = _run(keygen, "-q", "-t", "ed25519", "-N", "open sesame", "-C", "lead@example.com", "-f", str(key))
    assert made.returncode == 0, made.stderr
    listed = _run(keygen, "-lf", str(key))
    assert listed.stdout.split()[1] == key_fingerprint_of(key, "open sesame")
    run = make_report_dir(tmp_path, signer=("operator", make_key(tmp_path, "op")))
    sign_report(run, key, "lead", passphrase="open sesame")
    allowed = write_allowed_signers(tmp_path / "allowed", f"lead {pub_line(key)}")
    done = ssh_verify(run, allowed, "lead")
    assert done.returncode == 0, done.stderr
    theirs = _run(
        keygen,
        "-Y",
        "sign",
        "-f",
        str(key),
        "-P",
        "open sesame",
        "-n",
        "drill-report-v1",
        str(run / "report.json"),
    )
    assert theirs.returncode == 0, theirs.stderr
    assert (run / "report.json.sig").read_bytes() == (run / "report.json.lead.sig").read_bytes()


def test_drill_key_files_are_readable_by_ssh_keygen(tmp_path: Path) -> None:
    keygen = ssh_keygen()
    key = make_key(tmp_path, "k")
    derived = _run(keygen, "-y", "-f", str(key))
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == pub_line(key).split()[:2]
    assert _run(keygen, "-lf", str(key)).stdout.split()[1] == key_fingerprint(key)


def key_fingerprint_of(key: Path, passphrase: str) -> str:
    """drill's fingerprint of a passphrase-protected key."""
    from drill.report.sign import fingerprint

    return fingerprint(load_private_key(key, passphrase).public_key())


CHAIN_CHECK = r"""
import hashlib, json, sys
prev, n = "0" * 64, 0
for n, line in enumerate(open(sys.argv[1], "rb"), 1):
    body = line.rstrip(b"\n")
    event = json.loads(body)
    if event["seq"] != n or event["prev"] != prev:
        sys.exit(f"line {n}: hash chain broken")
    prev = hashlib.sha256(body).hexdigest()
print(f"chain intact: {n} events, head {prev}")
"""


def test_readme_evidence_recipes_without_drill(evidence: tuple[Path, Path, Path]) -> None:
    run, _, key = evidence
    if shutil.which("jq") is None:
        pytest.skip("jq not installed: the README's optional jq recipes are not checked")
    report = json.loads((run / "report.json").read_bytes())
    for block in (".journal", ".evidence[]"):
        done = subprocess.run(
            ["bash", "-c", f"jq -r '{block} | \"\\(.sha256)  \\(.file)\"' report.json | sha256sum -c -"],
            cwd=run,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr
    chain = _run(require_binary("python3"), "-c", CHAIN_CHECK, str(run / "journal.jsonl"))
    assert (
        chain.stdout.strip()
        == f"chain intact: {report['journal']['events']} events, head {report['journal']['head']}"
    )
    lines = (run / "journal.jsonl").read_bytes().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    (run / "journal.jsonl").write_bytes(b"".join(lines))
    broken = _run(require_binary("python3"), "-c", CHAIN_CHECK, str(run / "journal.jsonl"))
    assert broken.returncode == 1 and broken.stderr.strip() == "line 3: hash chain broken"
    # The verify-time recipe, with an allowed_signers line aligned with extra spaces as in the README.
    expired = write_allowed_signers(
        run.parent / "aligned",
        f'operator      namespaces="drill-report-v1",valid-before="20261121Z"   {pub_line(key)}',
    )
    recipe = (
        'T=$(grep -o \'"generated_utc":"[^"]*"\' report.json | cut -d\'"\' -f4) && '
        f"ssh-keygen -Y verify -f {expired} -I operator -n drill-report-v1 "
        '-s report.json.operator.sig -Overify-time="$(date -u -d "$T" +%Y%m%d%H%M%SZ)" < report.json'
    )
    done = subprocess.run(
        ["bash", "-c", recipe], cwd=run, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith('Good "drill-report-v1" signature for operator')
    assert ssh_verify(run, expired, "operator").returncode != 0  # at today's date the key has expired


AGREEMENT_CASES = [
    # (principals, options, verify time, accepted): drill and ssh-keygen must both give `accepted`
    ("operator", 'valid-before="20261120Z"', "20261120000000Z", True),
    ("operator", 'valid-before="20261120Z"', "20261120000001Z", False),
    ("operator", 'valid-after="20261120090346Z"', "20261120090346Z", True),
    ("operator", 'valid-after="20261120090346Z"', "20261120090345Z", False),
    ("operator", 'valid-after="202611200903Z",valid-before="202611200904Z"', "20261120090330Z", True),
    ("operator", 'namespaces="drill-*"', "20261120090346Z", True),
    ("operator", 'namespaces="git,!drill-report-v1,*"', "20261120090346Z", False),
    ("*,!operator", "", "20261120090346Z", False),
    ("op*", "", "20261120090346Z", True),
    ('"lead,operator"', "", "20261120090346Z", True),
    ("OPERATOR", "", "20261120090346Z", False),
]


@pytest.mark.parametrize(("principals", "options", "when", "accepted"), AGREEMENT_CASES)
def test_drill_and_ssh_keygen_agree_on_trust_decisions(
    evidence: tuple[Path, Path, Path], principals: str, options: str, when: str, accepted: bool
) -> None:
    from datetime import UTC, datetime

    from drill.errors import VerificationFailed
    from drill.report.verify import load_allowed_signers, verify_signature

    run, _, key = evidence
    allowed = write_allowed_signers(run.parent / "case", f"{principals} {options} {pub_line(key)}")
    theirs = ssh_verify(run, allowed, "operator", f"-Overify-time={when}").returncode == 0
    at = datetime.strptime(when, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    sig = (run / "report.json.operator.sig").read_text()
    try:
        verify_signature(
            (run / "report.json").read_bytes(),
            sig,
            load_allowed_signers(allowed),
            "operator",
            "drill-report-v1",
            at,
        )
        ours = True
    except VerificationFailed:
        ours = False
    assert (ours, theirs) == (accepted, accepted)
