"""`drill keygen`, `drill verify`, and the `drill report` group (sign, countersign; render and
rebuild come from drill/cli/report_build.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from drill.errors import UsageError, VerificationFailed
from drill.evidence.inputs import InputRejected
from drill.report.sign import (
    NAMESPACE,
    REPORT_FILE,
    countersign_report,
    fingerprint,
    generate_keypair,
    key_is_encrypted,
    parse_signature,
    public_key_line,
    sign_report,
)
from drill.report.verify import Verification, verify_report_dir

try:  # render/rebuild live in their own module; this group works without them
    from drill.cli import report_build as _build
except ModuleNotFoundError as exc:  # pragma: no cover - only while report_build is absent
    if exc.name != "drill.cli.report_build":
        raise
    _build = None  # type: ignore[assignment]

_GroupClass: type[click.Group] = _build.JournalDefaultGroup if _build is not None else click.Group

_key_option = click.option(
    "--key", required=True, type=click.Path(dir_okay=False, path_type=Path), help="OpenSSH private key file."
)
_passphrase_option = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the key's passphrase (first line). Prompted for on a terminal when needed.",
)


def read_passphrase_file(path: Path | None) -> str | None:
    """The passphrase in a file: its first line exactly (no stripping beyond the line end)."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise UsageError(f"passphrase file {path} is empty")
    return lines[0]


def _passphrase_for(key: Path, passphrase_file: Path | None) -> str | None:
    """The passphrase from a file, else a prompt when the key is encrypted and we are on a terminal."""
    given = read_passphrase_file(passphrase_file)
    if given is not None:
        return given
    if key_is_encrypted(key) and sys.stdin.isatty():
        answer: str = click.prompt(f"Passphrase for {key}", hide_input=True, type=str)
        return answer
    return None  # load_private_key explains that a passphrase is needed


@click.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_passphrase_option
@click.option("--comment", default="", help="Comment for the public key line (e.g. ana@example.com).")
def keygen(path: Path, passphrase_file: Path | None, comment: str) -> None:
    """Write an OpenSSH Ed25519 key pair: PATH (mode 0600) and PATH.pub. Never overwrites."""
    public = generate_keypair(path, passphrase=read_passphrase_file(passphrase_file), comment=comment)
    click.echo(f"wrote {path} and {path}.pub")
    click.echo(f"fingerprint: {fingerprint(public)}")
    line = public_key_line(public, comment)
    click.echo(f'allowed_signers line: PRINCIPAL namespaces="{NAMESPACE}" {line}')


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


@click.group("report", cls=_GroupClass)
def report() -> None:
    """Signed drill reports: sign, countersign, render, rebuild (`drill report JOURNAL`)."""


def _signing_command(name: str, signer_help: str) -> Callable[[Callable[..., None]], click.Command]:
    """`drill report NAME REPORT_DIR --key KEY --signer NAME [--passphrase-file F]`."""

    def decorate(func: Callable[..., None]) -> click.Command:
        func = _passphrase_option(func)
        func = click.option("--signer", required=True, help=signer_help)(func)
        key_type = click.Path(dir_okay=False, path_type=Path)
        func = click.option("--key", "key", required=True, type=key_type, help="Private key.")(func)
        func = click.argument("report_dir", type=click.Path(file_okay=False, path_type=Path))(func)
        return report.command(name)(func)

    return decorate


@_signing_command("sign", "Your principal, as in the auditor's allowed_signers file.")
def sign_cmd(report_dir: Path, key: Path, signer: str, passphrase_file: Path | None) -> None:
    """Sign REPORT_DIR/report.json: writes report.json.SIGNER.sig."""
    path = sign_report(report_dir, key, signer, _passphrase_for(key, passphrase_file))
    click.echo(f"signed as {signer} ({_fingerprint_of(path)}): {path}")


@_signing_command("countersign", "Your principal (e.g. lead, observer).")
def countersign_cmd(report_dir: Path, key: Path, signer: str, passphrase_file: Path | None) -> None:
    """Add a sign-off to a report someone else already signed (same bytes, one more .sig)."""
    path = countersign_report(report_dir, key, signer, _passphrase_for(key, passphrase_file))
    click.echo(f"countersigned as {signer} ({_fingerprint_of(path)}): {path}")


def _fingerprint_of(sig_path: Path) -> str:
    return parse_signature(sig_path.read_text(encoding="ascii")).fingerprint


if _build is not None:
    report.add_command(_build.render_cmd, "render")
    report.add_command(_build.rebuild_cmd, "rebuild")
