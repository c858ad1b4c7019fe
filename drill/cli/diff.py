"""`drill diff RUN_A RUN_B`: what changed between two runs, in the playbook and in the results.

Each side is an evidence folder, or a run id (or the start of one) looked up in the history
index. Each side's evidence is judged before anything is compared, and said first: checked now
against `--allowed-signers` when given (as `drill verify` does); else, for a run id or a folder
the index holds, the status the index gave it (only while its report.json and journal are still
the bytes indexed); else "not checked". A side that is not verified is still compared (people need
to see what a tampered copy claims) but flagged in capitals at the top, never shown as trusted.

Exit codes: 0 compared (whatever changed); 1 a side's evidence did not verify (tampered,
unsigned; compared all the same when its report and journal can still be read); 2 bad input (no such folder or run id, not an evidence folder,
an ambiguous run id, an unusable trust file). Two runs of different playbooks are compared, and
the output says so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from drill.cli.history import index_option
from drill.cli.output import echo_json, format_option
from drill.errors import UsageError, VerificationFailed
from drill.practice.diff import (
    NOT_CHECKED,
    RunSide,
    checked_side,
    diff_data,
    diff_runs,
    diff_text,
    indexed_side,
    load_side,
)
from drill.practice.history import History
from drill.practice.records import VERIFIED, RunRecord


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@index_option
@click.option(
    "--allowed-signers",
    type=click.Path(path_type=Path),
    help="The auditor's OpenSSH allowed_signers file: verify both sides now against it.",
)
@click.option("--revoked", type=click.Path(path_type=Path), help="Revoked public keys, one per line.")
@format_option
def diff(
    run_a: str, run_b: str, index: Path, allowed_signers: Path | None, revoked: Path | None, fmt: str
) -> None:
    """Compare two runs: what changed in the playbook (assets, targets, probes, contact chains,
    steps, stop conditions) and in the results (each asset's verdict, detection, switchover, RTO
    and RPO against target, lost writes, availability, time to ack), side by side. A target met
    in A and missed in B is REGRESSED, the reverse fixed.

    RUN_A and RUN_B are evidence folders, or run ids (or their start) in the history index.
    Each side's evidence status is shown first; a tampered or unsigned side is compared but
    flagged, never taken as trusted.

    \b
    Example:
      drill diff runs/20260105T091500Z-1a2b3c4d runs/20260406T091500Z-5e6f7a8b \\
          --allowed-signers auditor/allowed_signers
      drill diff 20260105T0915 20260406T0915 --index practice.sqlite --format json

    Exit 0 compared, 1 compared but a side did not verify, 2 bad input."""
    if revoked is not None and allowed_signers is None:
        raise UsageError("--revoked needs --allowed-signers (it narrows whose signatures count)")
    a = resolve_side(run_a, "RUN_A", index, allowed_signers, revoked)
    b = resolve_side(run_b, "RUN_B", index, allowed_signers, revoked)
    compared = diff_runs(a, b)
    if fmt == "json":
        echo_json(diff_data(compared))
    else:
        for line in diff_text(compared):
            click.echo(line)
    refused = [  # "not checked" is what was asked for (no trust file, not indexed); said, not failed
        f"{name} is {side.trust.status.upper()}"
        for name, side in (("A", a), ("B", b))
        if side.trust.status not in (VERIFIED, NOT_CHECKED)
    ]
    if refused:
        raise VerificationFailed(f"compared, but not on trusted evidence: {', '.join(refused)}")


def resolve_side(
    given: str, name: str, index: Path, allowed_signers: Path | None, revoked: Path | None
) -> RunSide:
    """RUN_A or RUN_B: an existing path is an evidence folder; anything else a run id in the
    index. UsageError (exit 2) when it is neither."""
    path = Path(given)
    if path.exists():
        if allowed_signers is not None:
            return checked_side(path, allowed_signers, revoked)
        known = folder_record(path, index) if index.is_file() else None
        return load_side(path) if known is None else indexed_side(known, index)
    if not index.is_file():
        raise UsageError(
            f"{name} {given!r} is no evidence folder, and there is no history index {index} to look it up in",
            hint="name an evidence folder, or the index with --index",
        )
    record, others = indexed_record(given, name, index)
    if allowed_signers is not None:
        side = checked_side(Path(record.folder), allowed_signers, revoked)
    else:
        side = indexed_side(record, index)
    if not others:
        return side
    copies = f"{others} other folder{'s' if others != 1 else ''} of this run id, not verified"
    return replace(
        side, trust=replace(side.trust, basis=f"{side.trust.basis}; the index also holds {copies}")
    )


def folder_record(folder: Path, index: Path) -> RunRecord | None:
    """The index's entry for this very folder (symlinks resolved), if it holds one."""
    try:
        where = folder.resolve()
    except (OSError, RuntimeError):
        return None
    with History.open(index, create=False) as history:
        return next((r for r in history.records() if Path(r.folder) == where), None)


def indexed_record(run_id: str, name: str, index: Path) -> tuple[RunRecord, int]:
    """The one indexed folder a run id names, and how many other folders hold that run id: its
    verified folder is chosen over copies that did not verify (a tampered copy keeps the run id
    it was copied from); UsageError when the id is unknown, the start of several, or held by
    several folders alike."""
    with History.open(index, create=False) as history:
        records = history.records(run_id=run_id)
    if not records:
        raise UsageError(
            f"{name} {run_id!r} is neither an evidence folder nor a run id in {index}",
            hint="`drill history list` shows the run ids",
        )
    ids = sorted({r.run_id for r in records})
    if len(ids) > 1:
        raise UsageError(
            f"{name} {run_id!r} is the start of {len(ids)} run ids in {index}: {', '.join(ids[:5])}"
            + (", ..." if len(ids) > 5 else ""),
            hint="give more of the run id",
        )
    verified = [r for r in records if r.status == VERIFIED]
    candidates = verified or records
    if len(candidates) > 1:
        folders = ", ".join(r.folder for r in candidates[:3])
        raise UsageError(
            f"{name} {run_id!r} is held by {len(candidates)} folders in {index}: {folders}",
            hint="name the evidence folder instead of the run id",
        )
    return candidates[0], len(records) - 1
