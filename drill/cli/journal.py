"""`drill journal verify FILE`: check a journal's hash chain and name the first broken line."""

from __future__ import annotations

from pathlib import Path

import click

from drill.cli.output import echo_json, format_option
from drill.errors import JournalInvalid
from drill.evidence.journal import verify_journal


@click.group()
def journal() -> None:
    """Inspect a drill journal (journal.jsonl: the hash-chained record of a run)."""


@journal.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--allow-torn-tail",
    is_flag=True,
    help="Accept an incomplete last line (a write cut short by a crash) and verify the rest.",
)
@format_option
def verify(file: Path, allow_torn_tail: bool, fmt: str) -> None:
    """Check every line and the SHA-256 chain of FILE; exit 1 naming the first broken line, 2 for
    a file it refuses (not a regular file, a line over 16 MiB)."""
    try:
        summary = verify_journal(file, allow_torn_tail=allow_torn_tail)
    except JournalInvalid as exc:
        if fmt == "json":
            echo_json({"ok": False, "file": str(file), "error": exc.message})
        raise
    if fmt == "json":
        echo_json(
            {
                "ok": True,
                "file": str(file),
                "events": summary.count,
                "head": summary.head,
                "sha256": summary.sha256,
                "torn_bytes": summary.torn_bytes,
            }
        )
        return
    click.echo(f"ok: {summary.count} events, head {summary.head}, sha256 {summary.sha256}")
    if summary.torn_bytes:
        click.echo(
            f"note: ignored an incomplete last line ({summary.torn_bytes} bytes) after line {summary.count}; "
            "the file's sha256 above includes it"
        )
