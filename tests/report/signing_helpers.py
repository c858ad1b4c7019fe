"""Shared by the signing/verification tests: keys made per test, a real evidence folder, ssh-keygen."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from drill.report.build import build_report_from_journal, write_report
from drill.report.model import Signer
from drill.report.sign import fingerprint, generate_keypair, sign_report
from tests.conftest import require_binary

FIXTURE_JOURNAL = Path(__file__).parent / "fixtures" / "journal.jsonl"
# The fixture journal's run.finished time: the report's generated_utc, i.e. its signing time.
SIGNED_AT = "2026-11-20T09:03:46.000+00:00"


def make_key(directory: Path, name: str, passphrase: str | None = None) -> Path:
    """A fresh Ed25519 key pair directory/name (+ .pub), never committed anywhere."""
    path = directory / name
    generate_keypair(path, passphrase=passphrase, comment=f"{name}@test")
    return path


def pub_line(key: Path) -> str:
    """The public key line of a key pair (keytype base64 comment)."""
    return Path(f"{key}.pub").read_text(encoding="ascii").strip()


def key_fingerprint(key: Path) -> str:
    """SHA256:... of a key pair's public half."""
    from drill.report.sign import load_private_key

    return fingerprint(load_private_key(key).public_key())


def make_report_dir(
    directory: Path, *, signer: tuple[str, Path] | None = None, evidence: dict[str, bytes] | None = None
) -> Path:
    """A real evidence folder: the fixture journal, extra evidence files, report.json built from them.

    With signer=(principal, key) the report names that key as preparer and is signed by it.
    """
    run = directory / "run"
    run.mkdir()
    shutil.copyfile(FIXTURE_JOURNAL, run / "journal.jsonl")
    files = []
    for name, content in (evidence or {"results.json": b'{"verdict": "fail"}\n'}).items():
        (run / name).write_bytes(content)
        files.append(run / name)
    identity = Signer(signer[0], key_fingerprint(signer[1])) if signer else None
    report = build_report_from_journal(run / "journal.jsonl", signer=identity, evidence_files=files)
    write_report(report, run)
    if signer:
        sign_report(run, signer[1], signer[0])
    return run


def write_allowed_signers(path: Path, *lines: str) -> Path:
    """An allowed_signers file with the given lines."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ssh_keygen() -> str:
    """The ssh-keygen binary, or skip (fail under DRILL_REQUIRE_INTEGRATION=1) when it is absent."""
    return require_binary("ssh-keygen")


def ssh_verify(
    report_dir: Path, allowed: Path, principal: str, *extra: str, namespace: str = "drill-report-v1"
) -> subprocess.CompletedProcess[bytes]:
    """The auditor's recipe from the README, run exactly: ssh-keygen -Y verify ... < report.json."""
    sig = report_dir / f"report.json.{principal}.sig"
    argv = [
        ssh_keygen(),
        "-Y",
        "verify",
        "-f",
        str(allowed),
        "-I",
        principal,
        "-n",
        namespace,
        "-s",
        str(sig),
    ]
    with (report_dir / "report.json").open("rb") as stdin:
        return subprocess.run(
            [*argv, *extra],
            stdin=stdin,
            capture_output=True,
            timeout=30,
            check=False,
        )
