"""`drill validate`, `drill plan`, `drill schema`, `drill init`: the playbook commands."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import click

from drill.cli.output import echo_json, format_option
from drill.errors import EXIT_OK, EXIT_USAGE, Diagnostic, PlaybookInvalid, UsageError
from drill.playbook.load import MAX_BYTES, parse_document
from drill.playbook.model import Playbook
from drill.playbook.schema import bundled_schema
from drill.playbook.validate import check_document, check_playbook, load_playbook


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True, path_type=str))
@format_option
def validate(files: tuple[str, ...], fmt: str) -> None:
    """Check playbooks; print every problem as FILE:LINE:COL: error|warning: message. Exit 2 if invalid.

    FILES are playbooks, folders (every *.yaml / *.yml under them that declares
    `apiVersion: drill/...`, sorted) or `-` for standard input."""
    invalid = False
    results = []
    for file in expand_playbook_paths(files):
        playbook, diagnostics = check_stdin() if file == "-" else check_playbook(file)
        name = STDIN_NAME if file == "-" else file
        invalid = invalid or playbook is None
        results.append(
            {"file": name, "valid": playbook is not None, "diagnostics": [d.as_dict() for d in diagnostics]}
        )
        if fmt == "text":
            for diagnostic in diagnostics:
                click.echo(str(diagnostic))
            if playbook is not None:
                click.echo(f"{name}: valid ({_counts(len(playbook.assets), diagnostics)})")
            else:
                click.echo(f"{name}: invalid ({_tally(diagnostics)})")
    if fmt == "json":
        echo_json({"valid": not invalid, "files": results})
    sys.exit(EXIT_USAGE if invalid else EXIT_OK)


STDIN_NAME = "<stdin>"
_DRILL_API = re.compile(rb"^apiVersion:[ \t]*[\"']?drill/", re.MULTILINE)
_OTHER_KIND = re.compile(rb"(?m)^kind:\s*['\"]?SLA\b")


def expand_playbook_paths(paths: tuple[str, ...]) -> list[str]:
    """Files as given; a folder as the playbooks under it (YAML files declaring apiVersion drill/...),
    sorted, so a folder of playbooks and their vars files can be checked in one go."""
    found: list[str] = []
    for path in paths:
        folder = Path(path)
        if path == "-" or not folder.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        playbooks = [str(p) for p in inside if _declares_drill(p)]
        if not playbooks:
            raise UsageError(
                f"{path}: no playbook in this folder (*.yaml or *.yml with apiVersion: drill/v1)"
            )
        found.extend(playbooks)
    return found


def _declares_drill(path: Path) -> bool:
    """A playbook in a folder: it declares drill's apiVersion and is no other kind of document
    (an SLA document is checked by `drill sla validate`)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(MAX_BYTES)
    except OSError:
        return True  # unreadable: let validate say so for this file
    return _DRILL_API.search(head) is not None and _OTHER_KIND.search(head) is None


def check_stdin() -> tuple[Playbook | None, list[Diagnostic]]:
    """A playbook read from standard input (bounded like a file)."""
    raw = sys.stdin.buffer.read(MAX_BYTES + 1)
    try:
        doc = parse_document(raw, STDIN_NAME)
    except PlaybookInvalid as exc:
        return None, list(exc.diagnostics)
    return check_document(doc)


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
    from drill.plan import build_plan, plan_to_dict, plan_to_text, site_duties, site_duties_text

    playbook = load_playbook(file, warnings=warnings)
    result = build_plan(playbook)
    for warning in warnings:
        click.echo(str(warning), err=True)
    if fmt == "json":
        data = plan_to_dict(result)
        if playbook.sites:  # absent without sites: the plan's JSON stays as it was
            data["sites"] = site_duties(playbook)
        echo_json(data)
    else:
        click.echo(plan_to_text(result) + site_duties_text(playbook), nl=False)


@click.command()
def schema() -> None:
    """Print the playbook JSON Schema (one bundled file, for yaml-language-server and other editors)."""
    click.echo(json.dumps(bundled_schema(), indent=2, ensure_ascii=False))


@click.command()
@click.argument("path", default="playbook.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--lab",
    "for_lab",
    is_flag=True,
    help="Aim it at drill's embedded lab (`drill lab up`): it runs as it is, `drill run --yes` included.",
)
def init(path: Path, for_lab: bool) -> None:
    """Write a commented starter playbook (default ./playbook.yaml); never overwrites a file.

    Without --lab its targets are placeholders for your own systems; with --lab it names the
    lab's ports (those of the lab this folder runs, else the defaults)."""
    # Imported here: only init needs the lab's layout, and `drill validate` should start fast.
    from drill.lab.daemon import DEFAULT_DIR as DEFAULT_LAB_DIR
    from drill.lab.daemon import running_lab
    from drill.lab.lab import DEFAULT_PORT_BASE
    from drill.lab.lab import PORTS as LAB_PORTS
    from drill.playbook.starter import lab_starter_playbook, starter_playbook

    running = running_lab(DEFAULT_LAB_DIR) if for_lab else None
    port_base = running.port_base if running is not None else DEFAULT_PORT_BASE
    try:
        text = lab_starter_playbook(str(path), port_base) if for_lab else starter_playbook(str(path))
    except ValueError as exc:
        raise UsageError(f"{path!r}: {exc}", hint="name a file without control characters") from None
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it", hint="name another path") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    file = shlex.quote(str(path))
    if not for_lab:
        click.echo(
            f"wrote {path} (its targets are placeholders); next: drill validate {file} && drill plan {file}"
        )
        click.echo("to try a whole drill first: drill lab up && drill init --lab my-drill.yaml")
        return
    last = port_base + max(LAB_PORTS.values())
    where = "the lab running here" if running is not None else "a `drill lab up` lab (not running yet)"
    click.echo(f"wrote {path}, aimed at {where} on 127.0.0.1:{port_base}-{last}")
    click.echo(f"next: drill validate {file} && drill run --dry-run {file} && drill run {file} --yes")
