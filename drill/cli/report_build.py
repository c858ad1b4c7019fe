"""`drill report render` and `drill report rebuild`: views of a report, and a report from a journal alone.

The `report` group itself belongs to drill/cli/report.py; it adds these commands and can use
JournalDefaultGroup so that `drill report JOURNAL` means `drill report rebuild JOURNAL`.
"""

from __future__ import annotations

from pathlib import Path

import click

from drill.errors import UsageError
from drill.evidence.inputs import InputRejected
from drill.report.build import (
    REPORT_FILE,
    build_report_from_journal,
    load_report,
    read_report_file,
    report_bytes,
    write_report,
)
from drill.report.evidence import RENDERERS, render_views
from drill.report.model import Report
from drill.report.signoff import sign_offs_in


class JournalDefaultGroup(click.Group):
    """A group where `GROUP PATH` (a path, not a subcommand name) runs `GROUP rebuild PATH`."""

    default_command = "rebuild"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if (
            args
            and args[0] not in self.commands
            and not args[0].startswith("-")
            and self.default_command in self.commands
        ):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@click.command("render")
@click.argument("report", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(RENDERERS)), default="html", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="File to write ('-' for stdout); default: report.html / report.md / report.junit.xml beside REPORT.",
)
def render_cmd(report: Path, fmt: str, output: Path | None) -> None:
    """Render REPORT (report.json or its folder) as html, md or junit."""
    data = load_report(report)  # a regular file, bounded: never a FIFO or /dev/zero
    renderer, name = RENDERERS[fmt]
    folder = report if report.is_dir() else report.parent
    text = renderer(data, sign_offs_in(folder, data))  # the signatures beside report.json
    if output is not None and str(output) == "-":
        click.echo(text, nl=False)
        return
    target = output or folder / name
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(str(target))


@click.command("rebuild")
@click.argument("journal", type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.json and its views (default: the journal's folder).",
)
@click.option("--no-render", is_flag=True, help="Write report.json only.")
@click.option("--allow-torn-tail", is_flag=True, help="Accept a last journal line cut short by a crash.")
@click.option("--force", is_flag=True, help="Replace a signed report.json even if the rebuilt bytes differ.")
def rebuild_cmd(
    journal: Path, out_dir: Path | None, no_render: bool, allow_torn_tail: bool, force: bool
) -> None:
    """Rebuild report.json from JOURNAL alone (deterministic: the same journal gives the same bytes).

    When the output folder already holds a report.json, its signer and evidence file names are
    kept (the files are re-hashed), so an untouched evidence folder rebuilds byte-identically.
    """
    if journal.is_dir():
        journal = journal / "journal.jsonl"
    target_dir = out_dir or journal.parent
    existing = target_dir / REPORT_FILE
    previous = _previous(existing)
    signer = previous.prepared_by if previous else None
    evidence = [journal.parent / e.file for e in (previous.evidence if previous else ())]
    missing = [p for p in evidence if not p.is_file()]
    if missing:
        raise UsageError(f"evidence file {missing[0]} listed in {existing} is missing")
    report = build_report_from_journal(
        journal, signer=signer, evidence_files=evidence, allow_torn_tail=allow_torn_tail
    )
    new_bytes = report_bytes(report)
    if existing.is_file() and _stored_bytes(existing) != new_bytes:
        signatures = sorted(target_dir.glob(f"{REPORT_FILE}.*.sig"))
        if signatures and not force:
            raise UsageError(
                f"{existing} is signed ({len(signatures)} signature(s)) and differs from the rebuilt report",
                hint="write elsewhere with -o DIR, or pass --force (its signatures will then fail to verify)",
            )
    path = write_report(report, target_dir)
    click.echo(str(path))
    if not no_render:
        for view in render_views(report, target_dir):
            click.echo(str(view))
    click.echo(
        f"verdict: {report.verdict}  report {report.report_id}  journal head {report.journal.head[:16]}…"
    )


def _previous(path: Path) -> Report | None:
    """The existing report.json if it is a valid report; its signer and evidence are reused.

    A report.json that is not a regular file, or is too large or too deeply nested, is refused
    (InputRejected, exit 2) rather than ignored: it would be replaced by the rebuilt one.
    """
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return load_report(path)
    except InputRejected:
        raise
    except UsageError:
        return None


def _stored_bytes(path: Path) -> bytes | None:
    """The existing report.json's bytes (None when it cannot be read: then it differs)."""
    try:
        return read_report_file(path)
    except InputRejected:
        raise
    except UsageError:
        return None
