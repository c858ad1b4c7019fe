"""`drill validate`, `drill plan`, `drill schema`, `drill init`: the playbook commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from drill.cli.output import echo_json, format_option
from drill.errors import EXIT_OK, EXIT_USAGE, Diagnostic, UsageError
from drill.plan import build_plan, plan_to_dict, plan_to_text
from drill.playbook.schema import bundled_schema
from drill.playbook.starter import STARTER_PLAYBOOK
from drill.playbook.validate import check_playbook, load_playbook


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@format_option
def validate(files: tuple[str, ...], fmt: str) -> None:
    """Check playbooks; print every problem as FILE:LINE:COL: error|warning: message. Exit 2 if invalid."""
    invalid = False
    results = []
    for file in files:
        playbook, diagnostics = check_playbook(file)
        invalid = invalid or playbook is None
        results.append(
            {"file": file, "valid": playbook is not None, "diagnostics": [d.as_dict() for d in diagnostics]}
        )
        if fmt == "text":
            for diagnostic in diagnostics:
                click.echo(str(diagnostic))
            if playbook is not None:
                click.echo(f"{file}: valid ({_counts(len(playbook.assets), diagnostics)})")
            else:
                click.echo(f"{file}: invalid ({_tally(diagnostics)})")
    if fmt == "json":
        echo_json({"valid": not invalid, "files": results})
    sys.exit(EXIT_USAGE if invalid else EXIT_OK)


def _tally(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


def _counts(assets: int, diagnostics: list[Diagnostic]) -> str:
    warnings = len(diagnostics)
    return f"{assets} asset{'s' * (assets != 1)}, {warnings} warning{'s' * (warnings != 1)}"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@format_option
def plan(file: str, fmt: str) -> None:
    """Show the recovery order, targets, contact chains, scenario steps and worst-case duration."""
    warnings: list[Diagnostic] = []
    result = build_plan(load_playbook(file, warnings=warnings))
    for warning in warnings:
        click.echo(str(warning), err=True)
    if fmt == "json":
        echo_json(plan_to_dict(result))
    else:
        click.echo(plan_to_text(result), nl=False)


@click.command()
def schema() -> None:
    """Print the playbook JSON Schema (one bundled file, for yaml-language-server and other editors)."""
    click.echo(json.dumps(bundled_schema(), indent=2, ensure_ascii=False))


@click.command()
@click.argument("path", default="playbook.yaml", type=click.Path(dir_okay=False, path_type=Path))
def init(path: Path) -> None:
    """Write a commented starter playbook (default ./playbook.yaml); never overwrites a file."""
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(STARTER_PLAYBOOK)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it", hint="name another path") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path}; next: drill validate {path} && drill plan {path}")
