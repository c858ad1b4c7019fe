"""`drill review export`: one ticket per corrective action in Jira or ServiceNow, its key stored back.

The library (drill/practice/tickets.py) plans and sends; this command reads the review and the
report bound to it, takes credentials from environment variables only (a secret on the command
line would be in the shell history and the process list), and writes the tickets back into the
review, also after a failure, for what was done before it: a second export then updates those
tickets instead of creating them again. Writing changes review.yaml's bytes, so its signatures
no longer match and the command says so.

Exit codes: 0 ok (every action created, updated or skipped with its reason); 1 the tracker refused
a request or could not be reached (one line, credentials redacted); 2 bad input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import click

from drill.cli.output import echo_json, format_option
from drill.errors import UsageError
from drill.practice.review import load_review, sha256_hex, signatures_of, write_review
from drill.practice.review_model import REVIEW_FILE, Review
from drill.practice.tickets import (
    SYSTEMS,
    Credentials,
    ExportOutcome,
    ExportPlan,
    TicketExportFailed,
    Tracker,
    export_tickets,
    parse_tracker,
    plan_export,
)
from drill.report.build import REPORT_FILE, parse_report, read_report_file
from drill.report.model import Report

EXAMPLE = """\b
Example:
  export JIRA_TOKEN=...   # a Data Center personal access token
  drill review export runs/2026-Q2/review.yaml --tracker jira \\
      --url https://jira.example.com --project OPS --token-env JIRA_TOKEN --dry-run
  drill review export runs/2026-Q2/review.yaml --tracker servicenow \\
      --url https://example.service-now.com --table problem_task \\
      --user-env SN_USER --password-env SN_PASSWORD
"""


@click.command("export", epilog=EXAMPLE)
@click.argument("review_file", type=click.Path(path_type=Path))
@click.option("--tracker", "system", type=click.Choice(SYSTEMS), required=True, help="Where tickets go.")
@click.option("--url", required=True, help="The tracker's base URL, e.g. https://jira.example.com.")
@click.option("--project", default="", metavar="KEY", help="Jira: the project new issues are created in.")
@click.option(
    "--table",
    default="",
    metavar="incident|problem_task",
    help="ServiceNow: the table new records are created in (default incident).",
)
@click.option("--token-env", metavar="VAR", help="Environment variable holding a bearer token.")
@click.option("--user-env", metavar="VAR", help="Environment variable holding the user (basic auth).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the password or API token.")
@click.option(
    "--no-priority",
    is_flag=True,
    help="Jira: send no priority (a project whose screens lack the field refuses one).",
)
@click.option("--dry-run", is_flag=True, help="Print the requests that would be sent; send nothing.")
@format_option
def export(
    review_file: Path,
    system: str,
    url: str,
    project: str,
    table: str,
    token_env: str | None,
    user_env: str | None,
    password_env: str | None,
    no_priority: bool,
    dry_run: bool,
    fmt: str,
) -> None:
    """Create (or update) one ticket per corrective action of REVIEW_FILE (review.yaml, or its
    folder) and store each ticket's key and URL in the action's `ticket` field.

    An open or in-progress action without a ticket gets one; an action with a ticket of this
    tracker has it updated (a closed action's ticket learns of its closure); anything else is
    skipped, with the reason. Credentials come from environment variables only."""
    path = review_file / REVIEW_FILE if review_file.is_dir() else review_file
    tracker = parse_tracker(system, url, project=project, table=table, priority=not no_priority)
    # a dry run needs no credentials; given ones are still checked, so the dry run rehearses the call
    given = bool(token_env or user_env or password_env)
    credentials = (
        read_credentials(token_env, user_env, password_env) if given or not dry_run else Credentials()
    )
    review = load_review(path)
    report = bound_report(path, review)
    plan = plan_export(review, report, tracker)
    if dry_run:
        _show_plan(plan, tracker, fmt)
        return
    outcome = export_tickets(
        review, plan, tracker, credentials, on_attempt=lambda line: click.echo(f"retry: {line}", err=True)
    )
    if outcome.changed:
        try:
            write_review(path, outcome.review)
        except OSError as exc:
            _lost_tickets(path, outcome, exc)
    _show_outcome(path, plan, outcome, tracker, fmt)
    if outcome.error is not None:
        raise outcome.error  # after the output: drill's group prints it as one line, exit 1


def _lost_tickets(path: Path, outcome: ExportOutcome, exc: OSError) -> NoReturn:
    """The tickets are in the tracker but not in the review: name each, so a person can write them
    in by hand (an export before that would create them again)."""
    for item in outcome.done:
        click.echo(f"{item.action_id}: {item.operation}d {item.ticket} (not stored)")
    raise TicketExportFailed(
        f"cannot write {path}: {exc.strerror or exc}; put the tickets above in the actions' ticket "
        "fields before exporting again"
    )


def read_credentials(token_env: str | None, user_env: str | None, password_env: str | None) -> Credentials:
    """The credentials the named environment variables hold: a token, or a user and a password."""
    if token_env and (user_env or password_env):
        raise UsageError("give --token-env, or --user-env and --password-env, not both")
    if token_env:
        return Credentials(token=_env_value(token_env, "--token-env"))
    if user_env and password_env:
        return Credentials(
            user=_env_value(user_env, "--user-env"), password=_env_value(password_env, "--password-env")
        )
    if user_env or password_env:
        raise UsageError("basic auth needs both --user-env and --password-env")
    raise UsageError(
        "give the credentials' environment variables: --token-env VAR, or --user-env and --password-env"
    )


def _env_value(name: str, option: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise UsageError(f"{option} {name}: that environment variable is not set (or is empty)")
    if ":" in value and option == "--user-env":
        raise UsageError(f"{option} {name}: a user name for basic auth cannot hold ':'")
    return value


def bound_report(review_path: Path, review: Review) -> Report | None:
    """The report beside the review when it is the one the review is bound to (its SHA-256 is the
    review's report_sha256): its findings' titles and details go into the tickets. Another report
    there is not used, with a warning; none is fine (the tickets then carry the review's text)."""
    source = review_path.parent / REPORT_FILE
    if not source.is_file():
        return None
    data = read_report_file(source)  # bounded: report.json is hostile input
    digest = sha256_hex(data)
    if digest != review.report_sha256:
        click.echo(
            f"warning: {source} is not the report this review is bound to (SHA-256 {digest[:12]}…, "
            f"the review names {review.report_sha256[:12]}…); its findings are not used",
            err=True,
        )
        return None
    return parse_report(data, str(source))


def _show_plan(plan: ExportPlan, tracker: Tracker, fmt: str) -> None:
    if fmt == "json":
        echo_json(
            {
                "tracker": tracker.system,
                "url": tracker.base_url,
                "dry_run": True,
                "requests": [
                    {
                        "action": r.action_id,
                        "operation": r.operation,
                        "method": r.method,
                        "url": r.url,
                        "key": r.key or None,
                        "body": dict(r.body),
                    }
                    for r in plan.requests
                ],
                "skipped": [{"action": s.action_id, "reason": s.reason} for s in plan.skipped],
            }
        )
        return
    for request in plan.requests:
        click.echo(request.line())
    for skip in plan.skipped:
        click.echo(f"{skip.action_id}: skipped: {skip.reason}")
    click.echo(f"dry run: nothing sent to {tracker.name}")


def _say_written(path: Path, resign: str) -> None:
    """On stderr (stdout holds one line per action, or the JSON document): the write changed the
    review's bytes, so the signatures over them no longer match."""
    stale = signatures_of(path)
    if stale:
        names = ", ".join(s.name for s in stale)
        click.echo(
            f"{path}: tickets written: its signatures ({names}) no longer match; re-sign: {resign}", err=True
        )
    else:
        click.echo(f"{path}: tickets written (the review is not signed yet: {resign})", err=True)


def _show_outcome(path: Path, plan: ExportPlan, outcome: ExportOutcome, tracker: Tracker, fmt: str) -> None:
    done = {d.action_id: d for d in outcome.done}
    not_sent = [r for r in plan.requests if r.action_id not in done]
    resign = f"drill review sign {path} --sign-key KEY --signer NAME"
    if outcome.changed:
        _say_written(path, resign)
    if fmt == "json":
        echo_json(
            {
                "tracker": tracker.system,
                "url": tracker.base_url,
                "dry_run": False,
                "done": [
                    {
                        "action": d.action_id,
                        "operation": d.operation,
                        "ticket": d.ticket,
                        "status": d.status_code,
                    }
                    for d in outcome.done
                ],
                "not_sent": [{"action": r.action_id, "operation": r.operation} for r in not_sent],
                "skipped": [{"action": s.action_id, "reason": s.reason} for s in plan.skipped],
                "error": str(outcome.error) if outcome.error is not None else None,
                "review_written": outcome.changed,
                "resign": resign if outcome.changed else None,
            }
        )
        return
    for item in outcome.done:
        verb = "created" if item.operation == "create" else "updated"
        click.echo(f"{item.action_id}: {verb} {item.ticket}")
    for request in not_sent:
        click.echo(f"{request.action_id}: not done ({request.operation}): the export stopped")
    for skip in plan.skipped:
        click.echo(f"{skip.action_id}: skipped: {skip.reason}")
