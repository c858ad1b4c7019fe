"""The `drill report` group: sign, countersign; render and rebuild come from
drill/cli/report_build.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from drill.cli.keys import passphrase_for, passphrase_option
from drill.cli.report_build import JournalDefaultGroup, rebuild_cmd, render_cmd
from drill.report.sign import countersign_report, parse_signature, sign_report


@click.group("report", cls=JournalDefaultGroup)
def report() -> None:
    """Signed drill reports: sign, countersign, render, rebuild (`drill report JOURNAL`)."""


def _signing_command(name: str, signer_help: str) -> Callable[[Callable[..., None]], click.Command]:
    """`drill report NAME REPORT_DIR --key KEY --signer NAME [--passphrase-file F]`."""

    def decorate(func: Callable[..., None]) -> click.Command:
        func = passphrase_option(func)
        func = click.option("--signer", required=True, help=signer_help)(func)
        key_type = click.Path(dir_okay=False, path_type=Path)
        func = click.option("--key", "key", required=True, type=key_type, help="Private key.")(func)
        func = click.argument("report_dir", type=click.Path(file_okay=False, path_type=Path))(func)
        return report.command(name)(func)

    return decorate


@_signing_command("sign", "Your principal, as in the auditor's allowed_signers file.")
def sign_cmd(report_dir: Path, key: Path, signer: str, passphrase_file: Path | None) -> None:
    """Sign REPORT_DIR/report.json: writes report.json.SIGNER.sig."""
    path = sign_report(report_dir, key, signer, passphrase_for(key, passphrase_file))
    click.echo(f"signed as {signer} ({_fingerprint_of(path)}): {path}")


@_signing_command("countersign", "Your principal (e.g. lead, observer).")
def countersign_cmd(report_dir: Path, key: Path, signer: str, passphrase_file: Path | None) -> None:
    """Add a sign-off to a report someone else already signed (same bytes, one more .sig)."""
    path = countersign_report(report_dir, key, signer, passphrase_for(key, passphrase_file))
    click.echo(f"countersigned as {signer} ({_fingerprint_of(path)}): {path}")


def _fingerprint_of(sig_path: Path) -> str:
    return parse_signature(sig_path.read_text(encoding="ascii")).fingerprint


report.add_command(render_cmd, "render")
report.add_command(rebuild_cmd, "rebuild")
