"""The `drill` command line: click commands only. Parse, call the library, show DrillError, exit.

Each area's commands live in a submodule of this package and are added in `_COMMANDS`; this is
the only place that prints a DrillError and turns it into an exit code.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import traceback

import click

from drill.errors import EXIT_INTERNAL, DrillError

# (submodule, attribute) of every top-level command or group, in help order.
_COMMANDS: list[tuple[str, str]] = [
    ("drill.cli.playbook", "validate"),
    ("drill.cli.playbook", "plan"),
    ("drill.cli.playbook", "schema"),
    ("drill.cli.playbook", "init"),
    ("drill.cli.ack", "ack"),
    ("drill.cli.journal", "journal"),
    ("drill.cli.run", "run_cmd"),
    ("drill.cli.contacts", "contacts"),
    ("drill.cli.demo", "demo"),
    ("drill.cli.keys", "keygen"),
    ("drill.cli.verify", "verify"),
    ("drill.cli.report", "report"),
]


def drill_error_of(group: BaseExceptionGroup[BaseException]) -> DrillError | None:
    """The first DrillError in an exception group (a task group's) when nothing but DrillErrors
    and cancellations is in it; None when it holds anything else (a bug)."""
    found, rest = group.split(DrillError)
    if rest is not None and rest.split(asyncio.CancelledError)[1] is not None:
        return None
    first: BaseException | None = found
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first if isinstance(first, DrillError) else None


class DrillGroup(click.Group):
    """Shows a DrillError as one message and exits with its code; anything else is a bug.

    A DrillError inside an exception group (raised in a task group) is shown the same way."""

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
        except Exception:
            traceback.print_exc()
            click.echo("drill: internal error (a bug); please report it with the traceback above", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=DrillGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="drill")
def cli() -> None:
    """drill: rehearse disaster recovery and prove, with signed evidence, how fast failover is."""


def _register() -> None:
    for module_name, attr in _COMMANDS:
        cli.add_command(getattr(importlib.import_module(module_name), attr))


_register()


def main() -> None:
    """Console-script entry point; click usage errors exit 2."""
    cli(prog_name="drill")
