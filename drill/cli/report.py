"""The `drill report` group: sign, countersign; render and rebuild come from
drill/cli/report_build.py.

Both signing commands re-render the views already in the folder (report.html, report.md,
report.junit.xml) afterwards, so their sign-off block lists the new signature and `drill verify`
still finds each view equal to a re-rendering. `countersign` first shows what is being signed
and asks on a terminal; `--yes` answers for scripts, and without a terminal it refuses.
"""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

import click

from drill.cli.keys import passphrase_for, passphrase_option
from drill.cli.report_build import JournalDefaultGroup, rebuild_cmd, render_cmd
from drill.errors import DrillError, UsageError
from drill.report.build import load_report, read_report_file
from drill.report.evidence import rerender_views
from drill.report.model import SEVERITIES, Report
from drill.report.sign import (
    SignatureMalformed,
    check_countersignable,
    countersign_report,
    parse_signature,
    sign_report,
    signature_matches,
    signature_path,
)
from drill.report.signoff import sign_offs_in

_SHOWN_FINDINGS = 25  # critical and high findings listed before "... and N more"


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
    """Sign REPORT_DIR/report.json: writes report.json.SIGNER.sig, then re-renders the views present."""
    target = signature_path(report_dir, signer)
    data, typed = _read(report_dir)
    path = _signed(
        data,
        target,
        lambda: sign_report(report_dir, key, signer, passphrase_for(key, passphrase_file)),
    )
    click.echo(f"signed as {signer} ({_fingerprint_of(path)}): {path}")
    for view in rerender_views(typed, report_dir):
        click.echo(str(view))


@_signing_command("countersign", "Your principal (e.g. lead, observer).")
@click.option("--yes", "-y", "yes", is_flag=True, help="Countersign without asking (scripts).")
def countersign_cmd(
    report_dir: Path, key: Path, signer: str, passphrase_file: Path | None, yes: bool
) -> None:
    """Add a sign-off to a report someone else already signed (same bytes, one more .sig).

    Shows what is being signed (drill, run, verdict, findings, the signatures present) and asks
    on a terminal; --yes answers for scripts. Then re-renders the views present.
    """
    if not yes and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            "countersigning needs a yes: this is not a terminal, so nobody can confirm it",
            hint="pass --yes to countersign from a script",
        )
    target = signature_path(report_dir, signer)  # a principal that cannot be used is refused first
    data, typed = _read(report_dir)
    check_countersignable(report_dir, data, signer)  # refused before asking, not after
    click.echo(_what_is_signed(report_dir, data, typed, signer), err=True)
    if not yes and not click.confirm(
        f"Countersign this report as {_printable(signer)}?", default=False, err=True
    ):
        raise DrillError("not confirmed: nothing was signed")
    path = _signed(
        data,
        target,
        lambda: countersign_report(report_dir, key, signer, passphrase_for(key, passphrase_file)),
    )
    click.echo(f"countersigned as {signer} ({_fingerprint_of(path)}): {path}")
    for view in rerender_views(typed, report_dir):
        click.echo(str(view))


def _read(report_dir: Path) -> tuple[bytes, Report]:
    """report.json's bytes and the report they hold (bounded, schema-checked), before anything is
    signed: a file that is no drill report is refused before a signature is made."""
    return read_report_file(report_dir), load_report(report_dir)


def _signed(shown: bytes, target: Path, sign: Callable[[], Path]) -> Path:
    """Sign, then make sure the signature covers the bytes that were shown and rendered: a
    report.json replaced in between is refused, and a signature made of it is taken back."""
    existed = target.exists()
    path = sign()
    try:
        covers = signature_matches(shown, parse_signature(path.read_bytes()))
    except (OSError, SignatureMalformed):
        covers = False
    if not covers:
        if not existed:
            path.unlink(missing_ok=True)
        raise UsageError(
            f"{path.parent / 'report.json'} changed while it was being signed; nothing was signed",
            hint="run the command again and check what it shows",
        )
    return path


def _what_is_signed(report_dir: Path, data: bytes, r: Report, signer: str) -> str:
    """What a countersigner confirms, for the terminal (control characters shown escaped)."""
    pb, s = r.playbook, r.summary
    counts = ", ".join(f"{getattr(s.findings, sev)} {sev}" for sev in SEVERITIES if getattr(s.findings, sev))
    reason = r.run.verdict_reason or r.run.reason
    lines = [
        f"Countersigning {report_dir / 'report.json'} (SHA-256 {hashlib.sha256(data).hexdigest()})",
        f"  drill:    {pb.name}" + (f" ({pb.quarter})" if pb.quarter else ""),
        f"  run:      {r.run_id}",
        f"  report:   {r.report_id}",
        f"  verdict:  {r.verdict.upper()}" + (f": {reason}" if reason else ""),
        f"  assets:   {s.assets_total} ({s.assets_passed} pass, {s.assets_failed} fail, "
        f"{s.assets_not_measured} not measured)",
        f"  findings: {counts or 'none'}",
    ]
    serious = [f for f in r.findings if f.severity in ("critical", "high")]
    if serious:
        lines.append("  critical and high findings:")
        lines += [f"    {f.id} {f.severity}: {f.title}" for f in serious[:_SHOWN_FINDINGS]]
        if len(serious) > _SHOWN_FINDINGS:
            lines.append(f"    ... and {len(serious) - _SHOWN_FINDINGS} more (see the report)")
    sign_offs = sign_offs_in(report_dir, r)
    if sign_offs:
        lines.append("  signatures present:")
        for so in sign_offs:
            state = _signature_state(report_dir / so.file, data)
            key = so.fingerprint or "key unreadable"
            lines.append(f"    {so.principal} ({so.role}), {key}, {so.file}: {state}")
    else:
        lines.append("  signatures present: none")
    if any(so.principal == signer for so in sign_offs):
        lines.append(
            f"  {signer} has signed already: the same key again changes nothing, another key is refused"
        )
    return "\n".join(_printable(line) for line in lines)


def _signature_state(path: Path, data: bytes) -> str:
    try:
        intact = signature_matches(data, parse_signature(path.read_bytes()))
    except (OSError, SignatureMalformed):
        return "unreadable"
    return "matches report.json" if intact else "does NOT match report.json"


def _printable(text: str) -> str:
    """Text for a terminal: control and format characters (escape sequences, bidi overrides, line
    separators) shown as escapes, so a report's text cannot redraw or hide what is confirmed."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        else ch
        for ch in text
    )


def _fingerprint_of(sig_path: Path) -> str:
    return parse_signature(sig_path.read_text(encoding="ascii")).fingerprint


report.add_command(render_cmd, "render")
report.add_command(rebuild_cmd, "rebuild")
