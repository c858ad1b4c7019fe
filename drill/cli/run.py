"""`drill run`: run a playbook against real systems and write the evidence folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from drill.cli.keys import read_passphrase_file
from drill.cli.live import LiveDisplay, LogSink, TerminalPrompter
from drill.cli.output import echo_json, format_option
from drill.cli.summary import print_evidence, print_summary
from drill.durations import parse_duration_ms
from drill.errors import EXIT_ABORTED, EXIT_OK, DrillError, UsageError
from drill.evidence.events import PreviousDrill
from drill.evidence.snapshot import Phase
from drill.log import configure_logging, set_log_options
from drill.log import log_format as current_log_format
from drill.plan import build_plan
from drill.playbook.model import ActionStep, Playbook, walk_steps
from drill.playbook.validate import load_playbook
from drill.report.evidence import write_evidence
from drill.report.sign import signer_identity
from drill.results import results_json
from drill.run.dryrun import Readiness, check_readiness
from drill.run.runner import run_drill
from drill.run.session import RollbackPolicy, RunOptions, RunOutcome, operator_identity


def load_for_run(
    playbook: Path, sign_key: Path | None, signer: str, passphrase_file: Path | None
) -> tuple[Playbook, str | None]:
    """Load the playbook and check the signing key before anything runs: a typo in either
    must fail now, not after a drill that cannot be repeated cheaply."""
    loaded = load_playbook(playbook)
    passphrase = read_passphrase_file(passphrase_file)
    if sign_key is not None:
        signer_identity(sign_key, signer, passphrase)
    return loaded, passphrase


_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variables_options(command: Callable[..., None]) -> Callable[..., None]:
    """--var NAME=VALUE (repeatable) and --vars-file FILE: the plain variables ${var:NAME}."""
    command = click.option(
        "--vars-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML mapping of plain variables for ${var:NAME} (never redacted; not for secrets).",
    )(command)
    return click.option(
        "--var",
        "var_pairs",
        multiple=True,
        metavar="NAME=VALUE",
        help="A plain variable for ${var:NAME}; wins over --vars-file and the environment.",
    )(command)


def read_variables(pairs: tuple[str, ...], vars_file: Path | None) -> dict[str, str]:
    """--vars-file first, then each --var over it; bad input is a clear UsageError."""
    found: dict[str, str] = {}
    if vars_file is not None:
        try:
            data = yaml.safe_load(vars_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read vars file {vars_file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise UsageError(f"{vars_file}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{vars_file}: expected a mapping of NAME: value")
        for name, value in data.items():
            if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
                raise UsageError(f"{vars_file}: {name!r} is not a variable name (letters, digits, _)")
            if isinstance(value, dict | list) or value is None:
                raise UsageError(
                    f"{vars_file}: variable {name} must be a plain value, not {type(value).__name__}"
                )
            found[name] = str(value).lower() if isinstance(value, bool) else str(value)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _VAR_NAME.fullmatch(name):
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE", hint="e.g. --var REGION=eu-west-1")
        found[name] = value
    return found


def confirm_before_harm(playbook: Playbook, *, yes: bool, interactive: bool) -> None:
    """Before anything changes the world, the operator sees what will and says yes (or --yes)."""
    actions = [
        s.name for s in walk_steps((*playbook.scenario, *playbook.rollback)) if isinstance(s, ActionStep)
    ]
    if not actions or yes:
        return
    if not interactive:
        raise UsageError(
            f"this drill changes the world ({len(actions)} action step(s)) and this run is not"
            " interactive, so nobody can confirm it",
            hint="pass --yes to confirm from a script (--auto-confirm implies it)",
        )
    meta = playbook.metadata
    click.echo(
        f"\ndrill {meta.name} ({meta.test_type}{', ' + meta.quarter if meta.quarter else ''})", err=True
    )
    click.echo(f"environment: {meta.environment or '(not stated: metadata.environment)'}", err=True)
    click.echo(f"assets: {len(playbook.assets)}; steps that will run:", err=True)
    for step in build_plan(playbook).steps:
        marks = " [inject]" if step.injects else (" [changes the world]" if step.kind == "action" else "")
        where = "rollback " if step.phase == Phase.ROLLBACK else ""
        click.echo(f"  {where}{step.number}. {step.name}: {step.summary}{marks}", err=True)
    if not click.confirm("Run these steps now?", default=False, err=True):
        raise DrillError("not confirmed: nothing was run")


def read_ack_wait(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise UsageError(f"--ack-wait: {exc}") from None


@click.command("run")
@click.argument("playbook", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True
)
@click.option(
    "--auto-confirm",
    is_flag=True,
    help="Confirm manual steps automatically (recorded as such); implies --yes.",
)
@click.option(
    "--yes", "-y", "yes", is_flag=True, help="Run without asking first (scripts): the steps change the world."
)
@click.option(
    "--ack-wait",
    metavar="DURATION",
    help="After the drill, wait at most this long for acknowledgements (default: until every paged"
    " chain acknowledged or its respond_within passed); Ctrl-C ends the wait.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Readiness check: resolve secrets, probe each asset once, reach every notifier and action"
    " endpoint without using it, find each command; run no action, send no page (exit 3 if not ready)."
    " The probes are real: they send their credentials to their targets, command probes run, and a"
    " canary probe makes one canary write.",
)
@click.option(
    "--rollback",
    type=click.Choice(["always", "on-failure", "never"]),
    default="always",
    show_default=True,
    help="When the rollback section fails back: after every drill that ran (always), only after a"
    " failed or aborted one, or never.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    hidden=True,
    help="Same as the global `drill --log-format` (kept for scripts written for drill 0.1).",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH Ed25519 key to sign the report.",
)
@click.option("--signer", default="operator", show_default=True, help="Principal name of the signer.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--allow-degraded",
    is_flag=True,
    help="Run the scenario although not every asset is up at the start (recorded in the report).",
)
@click.option(
    "--ack-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the ack endpoint listens on while pages are out (loopback unless told).",
)
@click.option("--ack-port", type=int, default=0, help="Port of the ack endpoint (0: any free port).")
@click.option(
    "--public-url",
    default="",
    help="Base URL people use to reach the ack endpoint (a proxy, a tunnel), if not host:port;"
    " ack links in pages start with it.",
)
@click.option(
    "--history",
    "history_index",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DRILL_HISTORY",
    help="History index (drill history): the report links to the last verified drill of this"
    " playbook there and shows the change against it. Default: $DRILL_HISTORY; none without it.",
)
@click.option(
    "--broker",
    envvar="DRILL_BROKER",
    default="",
    help="NATS URL (nats://HOST:PORT) where the agents of the playbook's sites connect; needed"
    " when probes run at sites. Default: $DRILL_BROKER.",
)
@format_option
@variables_options
def run_cmd(
    playbook: Path,
    runs_dir: Path,
    auto_confirm: bool,
    yes: bool,
    ack_wait: str | None,
    dry_run: bool,
    rollback: RollbackPolicy,
    log_format: str | None,
    sign_key: Path | None,
    signer: str,
    passphrase_file: Path | None,
    var_pairs: tuple[str, ...],
    vars_file: Path | None,
    allow_degraded: bool,
    ack_host: str,
    ack_port: int,
    public_url: str,
    history_index: Path | None,
    broker: str,
    fmt: str,
) -> None:
    """Run PLAYBOOK; exit 0 pass, 1 an objective missed or not measured (incomplete), 3 aborted or
    not run, 2 bad input."""
    loaded, passphrase = load_for_run(playbook, sign_key, signer, passphrase_file)
    variables = read_variables(var_pairs, vars_file)
    check_ack_endpoint(ack_host, ack_port, public_url)
    previous = previous_of(history_index, loaded.metadata.name)
    if log_format is not None:
        set_log_options(fmt=log_format)
    configure_logging()
    if dry_run:
        report = asyncio.run(check_readiness(loaded, variables=variables, broker=broker))
        if fmt == "json":
            echo_json(readiness_data(report))
        else:
            for line in report.lines():
                click.echo(line)
        sys.exit(EXIT_OK if report.ready else EXIT_ABORTED)  # not ready: the drill could not run
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    confirm_before_harm(loaded, yes=yes or auto_confirm, interactive=interactive)
    live = interactive and current_log_format() == "auto"
    who = operator_identity()
    options = RunOptions(
        runs_dir=runs_dir,
        auto_confirm=auto_confirm,
        interactive=interactive,
        rollback=rollback,
        operator=who,
        variables=variables,
        allow_degraded=allow_degraded,
        ack_wait_ms=read_ack_wait(ack_wait),
        ack_host=ack_host,
        ack_port=ack_port,
        public_url=public_url,
        previous=previous,
        broker=broker,
    )
    display = LiveDisplay(loaded) if live else None
    prompter = None if auto_confirm else TerminalPrompter(who, display)
    sinks = [display] if display is not None else [LogSink()]
    with EvidenceSignals() as late:  # outside the run, a signal waits for the evidence (exit 3)
        with display if display is not None else contextlib.nullcontext():
            outcome = asyncio.run(
                run_drill(
                    loaded,
                    options,
                    prompter=prompter,
                    sinks=sinks,
                    install_signal_handlers=True,
                    emergency=_unsigned_evidence,
                )
            )
        if fmt == "text":
            print_summary(outcome.results)
        broken = [p for p in (outcome.journal_error, outcome.results_error) if p]
        try:
            evidence = write_evidence(
                outcome.run_dir, sign_key=sign_key, signer=signer, passphrase=passphrase
            )
        except OSError as exc:  # a full disk, say: the journal stands
            broken.append(f"cannot write the report in {outcome.run_dir}: {exc.strerror or exc}")
            evidence = []
        except DrillError as exc:
            if not broken:  # a healthy run's report must be written: its problem is the error
                raise
            broken.append(f"no report: {exc.message}")
            evidence = []
        written = [p for p in evidence if p.exists()]
        if fmt == "text":
            print_evidence(outcome, written)
    code = EXIT_ABORTED if broken or late.received else outcome.exit_code
    if fmt == "json":
        echo_json(
            run_data(outcome, written, broken, signed=sign_key is not None and not broken, exit_code=code)
        )
    if broken:  # the runner's own environment failed: the drill ended like an abort
        click.echo(f"drill: aborted: {'; '.join(broken)}", err=True)
        sys.exit(EXIT_ABORTED)
    sys.exit(code)


def previous_of(index: Path | None, playbook: str) -> PreviousDrill | None:
    """The last verified drill of this playbook in the history index, when one is given."""
    if index is None:
        return None
    from drill.practice.previous import previous_drill

    return previous_drill(index, playbook)


def run_data(
    outcome: RunOutcome, evidence: list[Path], problems: list[str], *, signed: bool, exit_code: int
) -> dict[str, object]:
    """`drill run --format json`: the verdict, where the evidence is, and results.json's content."""
    results = outcome.results
    return {
        "verdict": results.verdict,
        "verdict_reason": results.verdict_reason or results.reason,
        "exit_code": exit_code,
        "run_id": outcome.run_dir.name,
        "run_dir": str(outcome.run_dir),
        "evidence": [p.name for p in evidence],
        "signed": signed,
        "problems": problems,
        "results": json.loads(results_json(results)),
    }


def readiness_data(report: Readiness) -> dict[str, object]:
    """`drill run --dry-run --format json`: ready or not, and every check."""
    return {
        "ready": report.ready,
        "checks": [
            {"what": c.what, "ok": c.ok, "checked": c.checked, "reason": c.reason} for c in report.checks
        ],
    }


def check_ack_endpoint(host: str, port: int, public_url: str) -> None:
    """--ack-host/--ack-port/--public-url make sense; a warning when links would travel in clear."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--ack-port {port}: expected 0 (any free port) to 65535")
    if not host.strip():
        raise UsageError("--ack-host: expected an address to listen on, e.g. 127.0.0.1")
    if public_url:
        if not public_url.startswith(("http://", "https://")):
            raise UsageError(
                "--public-url: expected a base URL starting with https:// (or http://)",
                hint="e.g. --public-url https://drill-ack.example.com",
            )
        if not public_url.startswith("https://"):
            click.echo(
                f"drill: warning: --public-url {public_url} is not https: the single-use tokens in"
                " ack links travel in clear text",
                err=True,
            )


class EvidenceSignals:
    """While the evidence is written after a run, SIGINT/SIGTERM wait for it instead of cutting it
    in half: the first says so, the evidence is completed, and drill exits 3; a third stops at once."""

    def __init__(self) -> None:
        self.received = 0
        self.previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> EvidenceSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)

    def _handle(self, signum: int, _frame: object) -> None:
        self.received += 1
        if self.received >= 3:
            os._exit(EXIT_ABORTED)
        if self.received == 1:
            os.write(2, b"\ndrill: writing the evidence; exiting (3) as soon as it is complete\n")


def _unsigned_evidence(outcome: RunOutcome) -> None:
    """A second Ctrl-C: the summary and a complete report from the journal, unsigned (no time
    to ask for a passphrase, and the operator asked to stop)."""
    print_summary(outcome.results)
    evidence = write_evidence(outcome.run_dir)
    print_evidence(outcome, evidence)
    click.echo(
        "report NOT signed: the drill was interrupted twice; sign it with `drill report sign`", err=True
    )
