"""`drill contacts test`: page every chain of a playbook and measure the people alone;
`drill contacts history`: each contact's acknowledgements across the history index.

`history` imports drill.practice inside its function: loading this group stays as it was for
`drill contacts test`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import msgspec

from drill.cli.output import echo_json, format_option
from drill.cli.run import load_for_run, read_variables, variables_options
from drill.errors import EXIT_FAILED, UsageError
from drill.log import configure_logging
from drill.notify.ack import AckServer
from drill.report.evidence import write_evidence
from drill.results import Results
from drill.run.contacts import ContactTestOptions, run_contact_test
from drill.run.session import RunOptions, operator_identity
from drill.units import human_ms


@click.group("contacts")
def contacts() -> None:
    """Rehearse contact chains without touching any system."""


@contacts.command("test")
@click.argument("playbook", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True
)
@click.option(
    "--ack-host", default="127.0.0.1", show_default=True, help="Address the ack endpoint listens on."
)
@click.option("--ack-port", type=int, default=0, help="Port of the ack endpoint (0: any free port).")
@click.option(
    "--public-url", default="", help="Base URL people use to reach the ack endpoint, if not host:port."
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH Ed25519 key to sign the report.",
)
@click.option("--signer", default="operator", show_default=True)
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@variables_options
def test_chains(
    playbook: Path,
    runs_dir: Path,
    ack_host: str,
    ack_port: int,
    public_url: str,
    sign_key: Path | None,
    signer: str,
    passphrase_file: Path | None,
    var_pairs: tuple[str, ...],
    vars_file: Path | None,
    fmt: str,
) -> None:
    """Page every chain of PLAYBOOK now and wait for acks; exit 0 when every chain answered in time."""
    loaded, passphrase = load_for_run(playbook, sign_key, signer, passphrase_file)
    configure_logging()
    options = RunOptions(
        runs_dir=runs_dir, operator=operator_identity(), variables=read_variables(var_pairs, vars_file)
    )

    def ready(server: AckServer) -> None:
        click.echo(f"paging every chain; acknowledgements at {server.url} (or `drill ack TOKEN`)", err=True)

    outcome = asyncio.run(
        run_contact_test(loaded, options, ContactTestOptions(ack_host, ack_port, public_url), on_ready=ready)
    )
    write_evidence(outcome.run_dir, sign_key=sign_key, signer=signer, passphrase=passphrase)
    if fmt == "json":
        echo_json(
            {
                "verdict": outcome.results.verdict,
                "exit_code": outcome.exit_code,
                "run_id": outcome.run_dir.name,
                "run_dir": str(outcome.run_dir),
                "pages": [msgspec.to_builtins(p) for p in outcome.results.pages],
                "chains": [msgspec.to_builtins(c) for c in outcome.results.chains],
            }
        )
    else:
        _show(outcome.results, outcome.run_dir)
    sys.exit(outcome.exit_code)


def _show(results: Results, run_dir: Path) -> None:
    for page in results.pages:
        ack = f"acked after {human_ms(page.ack_ms)}" if page.ack_ms is not None else "no ack"
        sent = "sent" if page.ok else f"NOT SENT ({page.reason})"
        click.echo(f"{page.chain:<20} {page.contact:<20} {page.via:<10} {sent}, {ack}")
    for chain in results.chains:
        first = (
            "no acknowledgement"
            if chain.first_ack_ms is None
            else f"first ack after {human_ms(chain.first_ack_ms)}"
        )
        target = (
            "no target" if chain.respond_within_ms is None else f"target {human_ms(chain.respond_within_ms)}"
        )
        met = {True: "met", False: "MISSED", None: "not paged"}[chain.met]
        click.echo(f"chain {chain.name}: {first}, {target}: {met}")
    click.echo(f"verdict: {results.verdict.upper()}\nevidence: {run_dir}")


# The history index, named as `drill history` names it (drill.practice.history's DEFAULT_INDEX and
# INDEX_ENV, spelled out so that loading this group does not load the history;
# tests/practice/test_people.py checks they agree).
HISTORY_INDEX = "drill-history.sqlite"
HISTORY_ENV = "DRILL_HISTORY"

HISTORY_EXAMPLE = """\b
Example:
  drill history add runs/ --allowed-signers allowed_signers
  drill contacts history --playbook demo-lab-site-loss
  drill contacts history --format json --fail-on-flag   # exit 1 when someone is flagged
"""


@contacts.command("history", epilog=HISTORY_EXAMPLE)
@click.option(
    "--index",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=HISTORY_ENV,
    default=Path(HISTORY_INDEX),
    show_default=True,
    show_envvar=True,
    help="The history index (made by `drill history add`).",
)
@click.option("--playbook", help="Only this playbook's runs (metadata.name).")
@click.option("--fail-on-flag", is_flag=True, help="Exit 1 when a contact is flagged (for a pipeline).")
@format_option
def history_cmd(index: Path, playbook: str | None, fail_on_flag: bool, fmt: str) -> None:
    """Each contact's acknowledgement rate and time-to-ack across the verified runs of the
    history (drills and `drill contacts test` alike), flagged ones first: a contact who did not
    acknowledge in their last two runs, or whose channel failed in their latest one, with the
    chain's substitute path (its other contacts, in escalation order). Tampered, unsigned and
    unreadable folders are listed with the reason and never counted.

    Exit 0 (it reports), 1 with --fail-on-flag when a contact is flagged, 2 for bad input (no
    index, a playbook the index does not hold)."""
    from drill.practice.history import History
    from drill.practice.people import people_data, people_history, people_text, plan_orders

    with History.open(index, create=False) as opened:
        records = opened.records(playbook=playbook)
        if playbook is not None and not records:
            known = sorted({r.playbook for r in opened.records() if r.playbook})
            raise UsageError(
                f"no run of playbook {playbook!r} in {index}",
                hint=f"it holds: {', '.join(known)}" if known else "the index is empty",
            )
    people = people_history(records, plan_orders(records))
    if fmt == "json":
        echo_json({"index": str(index), "playbook": playbook, **people_data(people)})
    else:
        for line in people_text(people):
            click.echo(line)
    flagged = sum(1 for c in people.contacts if c.flagged)
    if fail_on_flag and flagged:
        click.echo(f"drill: {flagged} of {len(people.contacts)} contacts flagged", err=True)
        sys.exit(EXIT_FAILED)
