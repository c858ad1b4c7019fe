"""`drill verify`: an evidence folder checked the way an auditor needs it, and said so.

The text output is for the auditor and fits 80 columns: which drill it is, its verdict (in
capitals: a verified FAIL report reads "verified ..., verdict: FAIL"), each signature with its
role, key, the allowed_signers line that trusted it and what is known of its time, then the
journal, evidence files and views checked, and last the `covered:` line. `--format json` is one
document with the same facts; when verification fails it is `{"verified": false, "error": ...}`
on stdout, the one-line error on stderr, and exit 1.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from drill.cli.output import echo_json, format_option
from drill.errors import UsageError, VerificationFailed
from drill.evidence.inputs import InputRejected
from drill.report.sign import REPORT_FILE
from drill.report.verify import SignatureCheck, Verification, verify_report_dir

WIDTH = 80
_LABEL = 10  # width of the labels in the indented key/value lines
_SIG_LABEL = 14  # in a signature's lines: "unverifiable: " is the longest


@click.command("verify")
@click.argument("report_dir", type=click.Path(path_type=Path))
@click.option(
    "--allowed-signers",
    required=True,
    type=click.Path(path_type=Path),
    help="OpenSSH allowed_signers file: who may sign, with which key, and when.",
)
@click.option(
    "--require",
    default="",
    help="Principals that must all have signed, with trusted keys, comma-separated.",
)
@click.option(
    "--revoked",
    type=click.Path(path_type=Path),
    help="Revoked public keys, one per line.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on any signature allowed_signers does not trust (default: report it, and fail only "
    "for the preparer's and the --require'd ones).",
)
@format_option
def verify(
    report_dir: Path, allowed_signers: Path, require: str, revoked: Path | None, strict: bool, fmt: str
) -> None:
    """Verify REPORT_DIR: signatures, schema, journal chain and evidence digests, report.json against
    the journal's fold, and each view present against a re-rendering.

    The preparer's signature and every --require'd one must be trusted by --allowed-signers;
    other untrusted signatures are reported (fatal with --strict). A signature that does not
    match report.json always fails. Exit 0 verified (whatever the drill's verdict), 1 not
    verified, 2 when an input is refused (missing, not a regular file, too large, nested too
    deeply)."""
    required = tuple(p.strip() for p in require.split(",") if p.strip())
    if report_dir.name == REPORT_FILE and report_dir.is_file():
        report_dir = report_dir.parent
    try:
        result = verify_report_dir(
            report_dir, allowed_signers, require=required, revoked_path=revoked, strict=strict
        )
    except VerificationFailed as exc:
        if fmt == "json":
            echo_json({"verified": False, "error": exc.message, "report_dir": str(report_dir)})
        raise VerificationFailed(f"NOT VERIFIED: {exc.message}") from None
    except InputRejected as exc:
        raise InputRejected(f"NOT VERIFIED: {exc.message}", hint=exc.hint) from None
    except UsageError as exc:
        raise UsageError(f"NOT VERIFIED: {exc.message}", hint=exc.hint) from None
    if fmt == "json":
        echo_json(verification_json(result, str(report_dir)))
    else:
        for line in verification_text(result):
            click.echo(line)


def verification_json(result: Verification, report_dir: str) -> dict[str, object]:
    """The `--format json` document of a verified folder."""
    journal = result.journal
    return {
        "verified": True,
        "report_dir": report_dir,
        "verdict": result.verdict,
        "verdict_reason": result.verdict_reason,
        "drill": {
            "name": result.playbook,
            "quarter": result.quarter,
            "test_type": result.test_type,
            "run_id": result.run_id,
            "report_id": result.report_id,
            "generated_utc": result.generated_utc,
        },
        "signatures": [_signature_json(s) for s in result.signatures],
        "journal": {
            "file": journal.file,
            "events": journal.events,
            "head": journal.head,
            "sha256": journal.sha256,
        },
        "evidence": list(result.evidence),
        "views": list(result.views),
        "views_absent": list(result.views_absent),
        "folded": result.folded,
        "notes": list(result.notes),
        "not_checked": list(result.not_checked),
        "covered": list(result.covered_checks),
        "strict": result.strict,
    }


def _signature_json(sig: SignatureCheck) -> dict[str, object]:
    return {
        "principal": sig.principal,
        "role": sig.role,
        "fingerprint": sig.fingerprint,
        "trusted": sig.trusted,
        "trusted_by": sig.trusted_by,
        "file": sig.file,
        "time": sig.time,
        "note": sig.note,
    }


def verification_text(result: Verification) -> list[str]:
    """The text output, line by line (none longer than 80 columns but the `covered:` line and
    an unbreakable path)."""
    verdict = result.verdict.upper()
    lines = [f"verified: report {result.report_id}, verdict: {verdict}"]
    quarter = f"quarter {result.quarter}" if result.quarter else "no quarter stated"
    lines += _field("drill", f"{result.playbook}, {quarter}, {result.test_type} test")
    lines += _field("run", result.run_id)
    lines += _field("verdict", f"{verdict} ({result.verdict_reason})" if result.verdict_reason else verdict)
    if result.verdict != "pass":
        lines += _field("note", "verified means the evidence is authentic, not that the drill passed")
    lines += ["", _signatures_heading(result)]
    for sig in result.signatures:
        lines += _signature_lines(sig)
    journal = result.journal
    lines += ["", f"journal: {journal.file}, {journal.events} events, hash chain intact"]
    lines += _field("head", journal.head)
    lines += _field("sha256", journal.sha256)
    lines.append("")
    evidence = ", ".join(result.evidence) if result.evidence else "none listed in the report"
    lines += _wrap(f"evidence files checked (SHA-256 as signed): {evidence}")
    if result.views or result.views_absent:
        views = ", ".join(result.views) if result.views else "none"
        absent = f"; not present: {', '.join(result.views_absent)}" if result.views_absent else ""
        lines += _wrap(f"views checked (same bytes as a re-rendering of {REPORT_FILE}): {views}{absent}")
    if result.folded:
        lines += _wrap(f"{REPORT_FILE} is what {journal.file} folds to (rebuilt and compared)")
    for note in result.notes:
        lines += _wrap(f"note: {note}")
    for skipped in result.not_checked:
        lines += _wrap(f"not checked: {skipped}")
    lines.append(result.covered)  # one line, whatever its length: scripts look for it
    return lines


def _signatures_heading(result: Verification) -> str:
    trusted = sum(1 for s in result.signatures if s.trusted)
    untrusted = len(result.signatures) - trusted
    if not untrusted:
        return f"signatures: {trusted} trusted"
    return f"signatures: {trusted} trusted, {untrusted} not trusted (reported; --strict refuses them)"


def _signature_lines(sig: SignatureCheck) -> list[str]:
    lines = [f"  {sig.principal}: {sig.role}"]
    lines += _field("key", sig.fingerprint, indent=4, width=_SIG_LABEL)
    if sig.trusted:
        lines += _field("trusted by", sig.trusted_by, indent=4, width=_SIG_LABEL)
    else:
        kind, _, reason = sig.note.partition(": ")  # untrusted | unverifiable
        lines += _field(kind, reason, indent=4, width=_SIG_LABEL)
    lines += _field("when", sig.time, indent=4, width=_SIG_LABEL)
    lines += _field("file", sig.file, indent=4, width=_SIG_LABEL)
    return lines


def _field(label: str, value: str, *, indent: int = 2, width: int = _LABEL) -> list[str]:
    """`  label:   value`, the value wrapped under itself."""
    head = " " * indent + f"{label + ':':<{width - 1}} "
    return _wrap(value, first=head, rest=" " * len(head))


def _wrap(text: str, *, first: str = "", rest: str = "  ") -> list[str]:
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]
