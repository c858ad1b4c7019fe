"""`drill report render` and `drill report rebuild`: views of a report, and a report from a journal alone.

`render --to html|md|junit|pdf` (`--format` is reserved for text/json machine output across the
CLI; here it is a hidden, deprecated alias of --to that warns on stderr).

The `report` group itself belongs to drill/cli/report.py; it adds these commands and can use
JournalDefaultGroup so that `drill report JOURNAL` means `drill report rebuild JOURNAL`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from drill.errors import UsageError
from drill.report.build import load_report
from drill.report.evidence import RENDERERS, rebuild_evidence
from drill.report.pdf import PDF_FILE, render_pdf
from drill.report.signoff import sign_offs_in

KINDS = [*RENDERERS, "pdf"]


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
@click.option(
    "--to",
    "kind",
    type=click.Choice(KINDS),
    default=None,
    help="What to write: html, md, junit, or pdf (printed from the HTML by headless Chromium; "
    "not evidence).  [default: html]",
)
@click.option("--format", "old_kind", type=click.Choice(KINDS), default=None, hidden=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="File to write ('-' for stdout); default: report.html / report.md / report.junit.xml / "
    "report.pdf beside REPORT.",
)
def render_cmd(report: Path, kind: str | None, old_kind: str | None, output: Path | None) -> None:
    """Render REPORT (report.json or its folder) as html, md, junit or pdf.

    Views list the signatures beside report.json in their sign-off block. report.pdf is a
    printable copy of report.html: not signed, not listed in report.json, not checked by
    `drill verify` (Chromium's output differs from run to run). Chromium is $DRILL_CHROMIUM, else
    chromium, chromium-browser or google-chrome on PATH; without one, exit 3.
    """
    if old_kind is not None:
        if kind is not None and kind != old_kind:
            raise UsageError(f"--to {kind} and --format {old_kind} disagree", hint="pass --to only")
        click.echo(
            f"drill: warning: `drill report render --format` is deprecated; use --to {old_kind}", err=True
        )
    chosen = kind or old_kind or "html"
    data = load_report(report)  # a regular file, bounded: never a FIFO or /dev/zero
    folder = report if report.is_dir() else report.parent
    sign_offs = sign_offs_in(folder, data)  # the signatures beside report.json
    to_stdout = output is not None and str(output) == "-"
    if chosen == "pdf":
        if to_stdout:
            with tempfile.TemporaryDirectory(prefix="drill-pdf-") as tmp:
                pdf = render_pdf(data, Path(tmp) / PDF_FILE, sign_offs)
                click.echo(pdf.read_bytes(), nl=False)  # bytes go to the binary stream
            return
        click.echo(str(render_pdf(data, output or folder / PDF_FILE, sign_offs)))
        return
    renderer, name = RENDERERS[chosen]
    text = renderer(data, sign_offs)
    if to_stdout:
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
    help="Folder for report.json, results.json and the views (default: the journal's folder).",
)
@click.option(
    "--signer-of",
    type=click.Path(exists=True, path_type=Path),
    help="The run's report.json (or its folder): take its preparer and evidence list, which the "
    "journal does not hold (default: the report.json beside the journal, else in the output folder).",
)
@click.option("--no-render", is_flag=True, help="Write report.json (and results.json if absent) only.")
@click.option("--allow-torn-tail", is_flag=True, help="Accept a last journal line cut short by a crash.")
@click.option("--force", is_flag=True, help="Replace a signed report.json even if the rebuilt bytes differ.")
def rebuild_cmd(
    journal: Path,
    out_dir: Path | None,
    signer_of: Path | None,
    no_render: bool,
    allow_torn_tail: bool,
    force: bool,
) -> None:
    """Rebuild report.json from JOURNAL (deterministic: the same journal gives the same bytes).

    The journal does not name the signer, and the report lists results.json's digest; the
    rebuilt report.json is the run's byte for byte when the preparer is known (--signer-of,
    else the report.json beside the journal, else the one in the output folder), results.json
    is the run's (it is written from the journal when absent, never overwritten), and this drill
    is the version that built the report. Otherwise a note on stderr says which field differs
    and why.
    """
    done = rebuild_evidence(
        journal,
        out_dir,
        signer_of=signer_of,
        render=not no_render,
        allow_torn_tail=allow_torn_tail,
        force=force,
    )
    for path in done.written:
        click.echo(str(path))
    report = done.report
    click.echo(
        f"verdict: {report.verdict}  report {report.report_id}  journal head {report.journal.head[:16]}…"
    )
    if done.identical:
        click.echo(f"byte-identical to {done.reference}")
    for note in done.differences:
        click.echo(f"drill: note: {note}", err=True)
