"""The `drill` command line: click commands only. Parse, call the library, show DrillError, exit.

Each area's commands live in a submodule of this package and are added in `_COMMANDS`; this is
the only place that prints a DrillError and turns it into an exit code.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from drill.errors import EXIT_INTERNAL, DrillError
from drill.log import FORMATS, LEVELS, level_from_counts, set_log_options
from drill.version import __version__

EXIT_SIGPIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away

# name -> (submodule, attribute, one-line help) of every top-level command, in help order.
# Commands are imported only when used, so `drill --version` and `drill validate` start fast;
# tests/cli/test_cli_conventions.py checks every entry loads the command it names.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("drill.cli.playbook", "validate", "Check playbooks: every problem as FILE:LINE:COL."),
    "plan": ("drill.cli.playbook", "plan", "Show recovery order, targets, chains, steps, worst case."),
    "schema": ("drill.cli.playbook", "schema", "Print the playbook JSON Schema (for editors)."),
    "init": ("drill.cli.playbook", "init", "Write a commented starter playbook."),
    "run": ("drill.cli.run", "run_cmd", "Run a drill and write its signed evidence."),
    "verify": ("drill.cli.verify", "verify", "Verify an evidence folder as an auditor would."),
    "report": ("drill.cli.report", "report", "Sign, countersign, render or rebuild a report."),
    "journal": ("drill.cli.journal", "journal", "Inspect or verify a drill journal."),
    "keygen": ("drill.cli.keys", "keygen", "Write an OpenSSH Ed25519 key pair for signing."),
    "contacts": ("drill.cli.contacts", "contacts", "Rehearse contact chains: page, measure time-to-ack."),
    "ack": ("drill.cli.ack", "ack", "Acknowledge a page from a shell."),
    "demo": ("drill.cli.demo", "demo", "Run the demo drill over the embedded lab."),
    "lab": ("drill.cli.lab", "lab", "Start, stop or show the embedded lab in the background."),
    "history": ("drill.cli.history", "history", "Index verified evidence folders: add, list, show, rebuild."),
    "trend": ("drill.cli.trend", "trend", "Trends over the history: regressions and fixes named."),
    "diff": ("drill.cli.diff", "diff", "Compare two runs: playbook changes and results side by side."),
    "due": ("drill.cli.due", "due", "Which assets are due for a drill, overdue first."),
    "review": (
        "drill.cli.review",
        "review",
        "After-action review: init, sign, close actions by evidence, export tickets.",
    ),
    "sla": ("drill.cli.sla", "sla", "SLA documents: validate, report a period (signed), verify."),
    "watch": ("drill.cli.watch", "watch", "Probe continuously into rotated, sealed journal segments."),
    "watch-verify": (
        "drill.cli.watch",
        "watch_verify",
        "Verify a watch folder: chains, seals, signatures, gaps.",
    ),
    "agent": ("drill.cli.agent", "agent", "Probe from a site: run what drill run assigns it, via NATS."),
    "completion": ("drill.cli.completion", "completion", "Print the shell completion script."),
}


def drill_error_of(group: BaseExceptionGroup[BaseException]) -> DrillError | None:
    """The first DrillError in an exception group (a task group's) when nothing but DrillErrors
    and cancellations is in it; None when it holds anything else (a bug)."""
    import asyncio

    found, rest = group.split(DrillError)
    if rest is not None and rest.split(asyncio.CancelledError)[1] is not None:
        return None
    first: BaseException | None = found
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, DrillError) else None


class DrillGroup(click.Group):
    """Shows a DrillError as one message and exits with its code; anything else is a bug.

    A DrillError inside an exception group (raised in a task group) is shown the same way.
    The top-level group's subcommands are loaded from `lazy` (COMMANDS) on first use; a group
    without it holds its commands as click groups do."""

    lazy: dict[str, tuple[str, str, str]] = {}  # set on the one `drill` group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = self.lazy.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, attr, _ = where
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from COMMANDS' help lines: `drill --help` imports no command."""
        if not self.lazy:
            super().format_commands(ctx, formatter)
            return
        rows = [(name, help_line) for name, (_, _, help_line) in self.lazy.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DrillError as exc:
            click.echo(f"drill: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BaseExceptionGroup as group:
            found = drill_error_of(group)
            if found is None:
                traceback.print_exc()
                click.echo(
                    "drill: internal error (a bug); please report it with the traceback above", err=True
                )
                sys.exit(EXIT_INTERNAL)
            click.echo(f"drill: {found}", err=True)
            sys.exit(found.exit_code)
        except KeyboardInterrupt:
            click.echo("drill: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `drill ... | head`: the reader left; say nothing more, as cat does
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail again
            sys.exit(EXIT_SIGPIPE)
        except Exception:
            traceback.print_exc()
            click.echo("drill: internal error (a bug); please report it with the traceback above", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=DrillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="drill")
@click.option("-v", "--verbose", count=True, help="More log detail (-v: debug).")
@click.option("-q", "--quiet", count=True, help="Less log detail (-q: warnings and errors, -qq: errors).")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Log level; wins over -v/-q (default: info).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="Logs on stderr: console on a terminal, JSON lines otherwise (auto), or as told.",
)
def cli(verbose: int, quiet: int, log_level: str | None, log_format: str) -> None:
    """drill: rehearse disaster recovery and prove, with signed evidence, how fast failover is.

    Exit codes: 0 ok, 1 a target missed or verification failed, 2 bad input or usage,
    3 aborted or could not run, 70 internal error (a bug). Logs go to stderr; `--format json`
    on a reporting command writes one JSON document to stdout."""
    set_log_options(fmt=log_format, level=log_level or level_from_counts(verbose, quiet))


cli.lazy = COMMANDS


def main() -> None:
    """Console-script entry point; click usage errors exit 2."""
    cli(prog_name="drill")
