"""`drill review`: the after-action review beside a drill's report (review.yaml).

init pre-fills it from the report; people edit it; validate checks it; sign and countersign
sign its exact bytes (namespace drill-review-v1, review.yaml.<principal>.sig beside it, as the
report's signatures are named). An action is closed only by evidence: `close` with a later drill
that verifies now and met the objective, `accept` with a risk acceptance signed by a principal the
trust file allows. `set` makes the other edits. Every edit changes review.yaml's bytes, so its
signatures no longer match: the command says so. `status` lists, across the history, each
review's signature state and its actions still open, overdue first. `render` writes review.html
and review.md. `export` (drill/cli/review_export.py) files the actions as tickets.

Exit codes: 0 ok; 1 the answer is bad (validate found problems, close or accept refused, status
found an overdue action); 2 bad input; 3 countersigning not confirmed by a person.
"""

from __future__ import annotations

import getpass
import hashlib
import sys
from pathlib import Path
from typing import Any

import click

from drill.cli.history import index_option
from drill.cli.keys import passphrase_for, passphrase_option
from drill.cli.output import echo_json, format_option
from drill.cli.review_export import export
from drill.clock import wall_utc_now
from drill.errors import EXIT_FAILED, DrillError, UsageError
from drill.practice.review import (
    ReviewStatus,
    SignaturesSummary,
    accept_risk,
    check_review_countersignable,
    check_signable,
    close_by_retest,
    load_review,
    new_review,
    parse_day,
    report_beside,
    review_status,
    set_action,
    sign_file,
    signature_file,
    signatures_of,
    validate_file,
    write_review,
    write_text_atomically,
)
from drill.practice.review_model import OPEN_STATUSES, REVIEW_FILE, REVIEW_NAMESPACE, Review
from drill.practice.review_views import (
    REVIEW_HTML,
    REVIEW_MD,
    render_review_html,
    render_review_markdown,
    visible,
)

_FILE = click.Path(dir_okay=False, path_type=Path)
_ALLOWED = click.option(
    "--allowed-signers",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The auditor's OpenSSH allowed_signers file: whose signatures count.",
)


@click.group("review")
def review() -> None:
    """After-action review: init, validate, sign, close actions by evidence, status, render.

    \b
    Example:
      drill review init runs/20261202T101500Z-ab12cd34 --time-zone Europe/Berlin
      drill review validate runs/20261202T101500Z-ab12cd34/review.yaml
    """


# ---------------------------------------------------------------- init


@review.command("init")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--time-zone", default="Europe/Berlin", show_default=True, help="IANA zone of the due dates.")
@click.option("--out", type=_FILE, help="Where to write it (default RUN_DIR/review.yaml).")
@click.option("--force", is_flag=True, help="Replace an existing review.")
def init_cmd(run_dir: Path, time_zone: str, out: Path | None, force: bool) -> None:
    """Write RUN_DIR/review.yaml pre-filled from the report: one open action per finding, one
    unrated row per measured objective, the participants and signers; bound to report.json by
    its SHA-256. Owner, due and ratings are left for people to fill. Refuses to replace an
    existing review (exit 2) unless --force.

    \b
    Example:
      drill review init runs/latest --time-zone Europe/Berlin
    """
    target = out or run_dir / REVIEW_FILE
    if target.exists() and not force:
        raise UsageError(f"{target} exists already", hint="edit it, or pass --force to start it again")
    made = new_review(run_dir, time_zone, wall_utc_now())
    write_review(target, made)
    findings = sum(1 for a in made.actions if a.finding)
    click.echo(
        f"wrote {target}: {len(made.actions)} action(s) for {findings} finding(s), "
        f"{len(made.objectives)} objective(s) to rate; fill in owner, due and ratings"
    )


# ---------------------------------------------------------------- validate


@review.command("validate")
@click.argument("file", type=_FILE)
@format_option
def validate_cmd(file: Path, fmt: str) -> None:
    """Check a review: its schema, and the rules (done needs a retest closure, risk-accepted a
    risk-acceptance closure, due dates are real days, action ids are unique, findings exist in
    the report beside it, report_sha256 matches that report). Exit 1 on problems, 2 unreadable.

    \b
    Example:
      drill review validate runs/latest/review.yaml --format json
    """
    made, problems = validate_file(file)
    beside = report_beside(file)
    if fmt == "json":
        echo_json(
            {
                "file": str(file),
                "valid": not problems,
                "report_checked": beside is not None,
                "problems": [
                    {"path": p.path, "message": p.message, "location": p.location} for p in problems
                ],
            }
        )
    else:
        for p in problems:
            click.echo(visible(str(p) if p.location else f"{file}: {p}"))
        if made is not None and not problems:
            where = "against the report beside it" if beside else "no report beside it: binding not checked"
            click.echo(f"{file}: valid ({len(made.actions)} action(s); {where})")
    if problems:
        sys.exit(EXIT_FAILED)


# ---------------------------------------------------------------- sign, countersign


def _signing(func: Any) -> Any:
    func = passphrase_option(func)
    func = click.option("--signer", required=True, help="Your principal, as in the allowed_signers file.")(
        func
    )
    func = click.option("--sign-key", "sign_key", required=True, type=_FILE, help="Your private key.")(func)
    return click.argument("file", type=_FILE)(func)


@review.command("sign")
@_signing
@click.option("--yes", "-y", "yes", is_flag=True, help="Sign without asking (scripts).")
def sign_cmd(file: Path, sign_key: Path, signer: str, passphrase_file: Path | None, yes: bool) -> None:
    """Sign review.yaml's exact bytes (SSHSIG, namespace drill-review-v1): writes
    review.yaml.SIGNER.sig beside it. Refuses a review that does not validate or is not bound
    to the report beside it. Shows what is signed and asks on a terminal unless --yes.

    \b
    Example:
      drill review sign runs/latest/review.yaml --sign-key ~/.ssh/drill_ed25519 --signer lead
    """
    _sign(file, sign_key, signer, passphrase_file, yes, countersign=False, role="")


@review.command("countersign")
@_signing
@click.option("--role", type=click.Choice(["lead", "observer"]), default="observer", show_default=True)
@click.option("--yes", "-y", "yes", is_flag=True, help="Countersign without asking (scripts).")
def countersign_cmd(
    file: Path, sign_key: Path, signer: str, passphrase_file: Path | None, role: str, yes: bool
) -> None:
    """Add a sign-off to a review someone else signed (the same bytes, one more .sig). Shows what
    is signed and asks on a terminal unless --yes.

    \b
    Example:
      drill review countersign runs/latest/review.yaml --sign-key obs_ed25519 --signer ana --role observer
    """
    _sign(file, sign_key, signer, passphrase_file, yes, countersign=True, role=role)


def _sign(
    file: Path,
    key: Path,
    signer: str,
    passphrase_file: Path | None,
    yes: bool,
    *,
    countersign: bool,
    role: str,
) -> None:
    verb = "countersign" if countersign else "sign"
    if not yes and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(
            f"{verb}ing needs a yes: this is not a terminal, so nobody can confirm it",
            hint=f"pass --yes to {verb} from a script",
        )
    signature_file(file, signer)  # a principal that cannot be used is refused first
    data = _read_bytes(file)
    made = check_signable(file, data)
    if countersign:
        check_review_countersignable(file, data, signer)
    click.echo(_what_is_signed(file, data, made, signer, role), err=True)
    if not yes and not click.confirm(
        f"{verb.capitalize()} this review as {visible(signer)}?", default=False, err=True
    ):
        raise DrillError(f"not confirmed: nothing was {verb}ed")
    path = sign_file(file, data, key, signer, REVIEW_NAMESPACE, passphrase_for(key, passphrase_file))
    if _read_bytes(file) != data:
        path.unlink(missing_ok=True)
        raise UsageError(f"{file} changed while it was being signed; nothing was signed")
    as_role = f" ({role})" if role else ""
    click.echo(f"{verb}ed as {signer}{as_role}: {path}")


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None


def _what_is_signed(file: Path, data: bytes, r: Review, signer: str, role: str) -> str:
    open_actions = [a for a in r.actions if a.status in OPEN_STATUSES]
    lines = [
        f"Signing {file} (SHA-256 {hashlib.sha256(data).hexdigest()})"
        + (f" as {signer} ({role})" if role else ""),
        f"  drill:   {r.playbook}" + (f" ({r.quarter})" if r.quarter else ""),
        f"  run:     {r.run_id}",
        f"  report:  {r.report_id}, SHA-256 {r.report_sha256} (matches report.json beside it)",
        f"  actions: {len(r.actions)}, {len(open_actions)} open or in progress",
    ]
    lines += [
        f"    {a.id} {a.status}: {a.title} (owner {a.owner or '—'}, due {a.due or '—'})" for a in open_actions
    ]
    present = signatures_of(file)
    lines.append("  signatures present: " + (", ".join(p.name for p in present) if present else "none"))
    return "\n".join(visible(line) for line in lines)


# ---------------------------------------------------------------- edits


def _edited(file: Path, made: Review, message: str) -> None:
    """Write the edited review; say which signatures it made stale."""
    write_review(file, made)
    click.echo(visible(message))
    stale = signatures_of(file)
    if stale:
        names = ", ".join(s.name for s in stale)
        click.echo(
            f"{file.name} changed: its signatures ({names}) no longer match; "
            f"re-sign: drill review sign {file} --sign-key KEY --signer NAME"
        )


def _by(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@review.command("close")
@click.argument("file", type=_FILE)
@click.argument("action_id")
@click.option("--retest", "run_id", required=True, help="The run id of the later drill that retested it.")
@index_option
@_ALLOWED
@click.option("--revoked", type=_FILE, help="Revoked public keys, one per line.")
@click.option("--by", help="Who closes it (default: the user name).")
def close_cmd(
    file: Path,
    action_id: str,
    run_id: str,
    index: Path,
    allowed_signers: Path,
    revoked: Path | None,
    by: str | None,
) -> None:
    """Close ACTION_ID as done by a retest: the run must be in the history index, verify now
    against --allowed-signers, be a drill of the same playbook started after the reviewed run,
    and its report must show the action's objective met for that asset (no objective: the
    asset passed; no asset: the drill passed). Otherwise refused with the reason (exit 1) and
    nothing is written.

    \b
    Example:
      drill review close runs/q2/review.yaml A-001 --retest 20261002T090000Z-1a2b3c4d \\
        --index drill-history.sqlite --allowed-signers allowed_signers
    """
    made = load_review(file)
    closed, judged = close_by_retest(
        file, made, action_id, run_id, index, allowed_signers, by=_by(by), now=wall_utc_now(), revoked=revoked
    )
    _edited(file, closed, f"{action_id} done: closed by retest {run_id} ({judged.folder}, verified now)")


@review.command("accept")
@click.argument("file", type=_FILE)
@click.argument("action_id")
@click.option("--reason", required=True, help="Why the risk is accepted.")
@click.option("--sign-key", "sign_key", required=True, type=_FILE, help="The risk owner's private key.")
@click.option("--signer", required=True, help="The risk owner's principal.")
@_ALLOWED
@passphrase_option
def accept_cmd(
    file: Path,
    action_id: str,
    reason: str,
    sign_key: Path,
    signer: str,
    allowed_signers: Path,
    passphrase_file: Path | None,
) -> None:
    """Close ACTION_ID as risk-accepted: writes risk-ACTION_ID.yaml beside the review (the action,
    the reason, the report's SHA-256, the time), signs it (namespace drill-risk-acceptance-v1)
    and verifies that signature against --allowed-signers. A signer not allowed for that
    namespace is refused (exit 1) and the risk file removed.

    \b
    Example:
      drill review accept runs/q2/review.yaml A-002 --reason "vendor fix in Q1" \\
        --sign-key risk_ed25519 --signer risk-owner --allowed-signers allowed_signers
    """
    made = load_review(file)
    passphrase = passphrase_for(sign_key, passphrase_file)
    accepted, risk = accept_risk(
        file,
        made,
        action_id,
        reason,
        sign_key,
        signer,
        allowed_signers,
        now=wall_utc_now(),
        passphrase=passphrase,
    )
    _edited(file, accepted, f"{action_id} risk-accepted by {signer}: {risk} (signed, verified)")


@review.command("set")
@click.argument("file", type=_FILE)
@click.argument("action_id")
@click.option("--status", type=click.Choice(list(OPEN_STATUSES)), help="open or in-progress.")
@click.option("--owner", help="Who does it.")
@click.option("--due", help="The day it is due, YYYY-MM-DD in the review's time zone ('' clears it).")
@click.option("--ticket", help="A ticket key or URL.")
@click.option("--by", help="Who makes the change (default: the user name).")
def set_cmd(
    file: Path,
    action_id: str,
    status: str | None,
    owner: str | None,
    due: str | None,
    ticket: str | None,
    by: str | None,
) -> None:
    """Edit an action that is not closed: status (open, in-progress), owner, due, ticket. done and
    risk-accepted are reached only through `close` and `accept`.

    \b
    Example:
      drill review set runs/q2/review.yaml A-001 --status in-progress --owner ana --due 2026-12-31
    """
    if status is None and owner is None and due is None and ticket is None:
        raise UsageError("nothing to set", hint="give --status, --owner, --due or --ticket")
    made = load_review(file)
    edited = set_action(
        made,
        action_id,
        status=status,  # type: ignore[arg-type]  # click.Choice of OPEN_STATUSES
        owner=owner,
        due=due,
        ticket=ticket,
        by=_by(by),
        now=wall_utc_now(),
    )
    if edited == made:
        click.echo(f"{action_id}: nothing changed")
        return
    _edited(file, edited, f"{action_id} updated")


# ---------------------------------------------------------------- status


@review.command("status")
@index_option
@_ALLOWED
@click.option("--as-of", help="Judge overdue on this day (YYYY-MM-DD; default today in each review's zone).")
@format_option
def status_cmd(index: Path, allowed_signers: Path, as_of: str | None, fmt: str) -> None:
    """Across every folder in the history: the review beside each report, its signature state
    (signed and verified / unsigned / signature does not match), and each open or in-progress
    action, overdue first, with owner, due and ticket. Exit 1 when an action is overdue.

    \b
    Example:
      drill review status --index drill-history.sqlite --allowed-signers allowed_signers --as-of 2027-01-15
    """
    day = None
    if as_of is not None:
        day = parse_day(as_of)
        if day is None:
            raise UsageError(f"--as-of {as_of!r} is not a real day (YYYY-MM-DD)")
    found = review_status(index, allowed_signers, as_of=day, now=wall_utc_now())
    if fmt == "json":
        echo_json({"index": str(index), "reviews": [_status_json(s) for s in found]})
    else:
        _status_text(found)
    if any(s.overdue for s in found):
        sys.exit(EXIT_FAILED)


def _signatures_json(summary: SignaturesSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "state": summary.state,
        "signatures": [
            {"principal": s.principal, "file": s.file, "state": s.state, "reason": s.reason}
            for s in summary.signatures
        ],
    }


def _status_json(s: ReviewStatus) -> dict[str, Any]:
    return {
        "folder": s.folder,
        "review": s.review_file,
        "run_id": s.run_id,
        "playbook": s.playbook,
        "quarter": s.quarter,
        "problem": s.problem,
        "signatures": _signatures_json(s.signatures),
        "as_of": s.as_of,
        "overdue": s.overdue,
        "open_actions": [
            {
                "id": o.action.id,
                "title": o.action.title,
                "status": o.action.status,
                "severity": o.action.severity,
                "owner": o.action.owner,
                "due": o.action.due,
                "ticket": o.action.ticket,
                "overdue": o.overdue,
            }
            for o in s.open_actions
        ],
    }


def _status_text(found: list[ReviewStatus]) -> None:
    if not found:
        click.echo("no review.yaml beside any indexed report")
        return
    for s in found:
        head = f"{s.playbook}" + (f" {s.quarter}" if s.quarter else "") + f"  run {s.run_id}"
        click.echo(visible(head))
        click.echo(f"  {visible(s.review_file)}")
        if s.problem:
            click.echo(f"  UNREADABLE: {visible(s.problem)}")
            continue
        assert s.signatures is not None
        who = ", ".join(f"{x.principal} {x.state}" for x in s.signatures.signatures)
        click.echo(f"  signatures: {s.signatures.state}" + (f" ({visible(who)})" if who else ""))
        if not s.open_actions:
            click.echo("  no open action")
        for o in s.open_actions:
            a = o.action
            mark = "OVERDUE " if o.overdue else ""
            click.echo(
                visible(
                    f"  {mark}{a.id} {a.status} {a.severity}: {a.title}  owner {a.owner or '—'}, "
                    f"due {a.due or '—'}, ticket {a.ticket or '—'}"
                )
            )
        click.echo("")
    overdue = sum(s.overdue for s in found)
    if overdue:
        click.echo(f"{overdue} overdue action(s)")


# ---------------------------------------------------------------- render


@review.command("render")
@click.argument("file", type=_FILE)
@click.option(
    "--to", "to", type=click.Choice(["html", "md"]), multiple=True, help="Which view (default both)."
)
def render_cmd(file: Path, to: tuple[str, ...]) -> None:
    """Write review.html and review.md beside review.yaml, from it and the report beside it.

    \b
    Example:
      drill review render runs/latest/review.yaml --to html
    """
    made = load_review(file)
    beside = report_beside(file)
    if beside is None:
        raise UsageError(
            f"no report.json beside {file}", hint="keep review.yaml in the run's evidence folder"
        )
    if beside.sha256 != made.report_sha256:
        click.echo(
            f"warning: {file} is bound to another report than the one beside it (the views say so)", err=True
        )
    for kind in to or ("html", "md"):
        if kind == "html":
            target, text = file.with_name(REVIEW_HTML), render_review_html(made, beside.report)
        else:
            target, text = file.with_name(REVIEW_MD), render_review_markdown(made, beside.report)
        write_text_atomically(target, text)
        click.echo(str(target))


review.add_command(export)
