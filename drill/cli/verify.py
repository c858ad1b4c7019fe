"""`drill verify`: an evidence folder checked the way an auditor needs it, and said so."""

from __future__ import annotations

from pathlib import Path

import click

from drill.errors import VerificationFailed
from drill.evidence.inputs import InputRejected
from drill.report.sign import REPORT_FILE
from drill.report.verify import Verification, verify_report_dir


@click.command("verify")
@click.argument("report_dir", type=click.Path(path_type=Path))
@click.option(
    "--allowed-signers",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH allowed_signers file: who may sign, with which key, and when.",
)
@click.option("--require", default="", help="Principals that must all have signed, comma-separated.")
@click.option(
    "--revoked",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Revoked public keys, one per line.",
)
def verify(report_dir: Path, allowed_signers: Path, require: str, revoked: Path | None) -> None:
    """Verify REPORT_DIR: signatures, schema, journal chain and evidence digests, report.json against
    the journal's fold, and each view present against a re-rendering. Exit 0 verified, 1 not, 2 when an
    input is refused (not a regular file, too large, nested too deeply)."""
    required = tuple(p.strip() for p in require.split(",") if p.strip())
    if report_dir.name == "report.json" and report_dir.is_file():
        report_dir = report_dir.parent
    try:
        result = verify_report_dir(report_dir, allowed_signers, require=required, revoked_path=revoked)
    except VerificationFailed as exc:
        raise VerificationFailed(f"NOT VERIFIED: {exc.message}") from None
    except InputRejected as exc:
        raise InputRejected(f"NOT VERIFIED: {exc.message}", hint=exc.hint) from None
    _show(result)


def _show(result: Verification) -> None:
    click.echo(f"verified: report {result.report_id} (signed as of {result.signed_at})")
    for signer in result.signers:
        trusted = f"{signer.file}, trusted by {signer.allowed_by}"
        click.echo(f"  signed by {signer.principal}  {signer.fingerprint}  ({trusted})")
    journal = result.journal
    click.echo(f"  journal {journal.file}: {journal.events} events, chain intact, sha256 {journal.sha256}")
    if result.evidence:
        click.echo(f"  evidence digests match: {', '.join(result.evidence)}")
    if result.folded:
        click.echo(f"  {REPORT_FILE} is what {journal.file} folds to (rebuilt and compared)")
    if result.views:
        click.echo(f"  views match a re-rendering of {REPORT_FILE}: {', '.join(result.views)}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    for skipped in result.not_checked:
        click.echo(f"  not checked: {skipped}")
    click.echo(f"  {result.covered}")
