"""The previous drill of a playbook, as the history knows it: what `drill run --history` journals
in run.started so that the report links to that evidence (its report SHA-256) and shows the change.

Only verified evidence is a previous drill: a tampered or unsigned folder in the index is skipped.
"""

from __future__ import annotations

from pathlib import Path

from drill.errors import UsageError
from drill.evidence.events import PreviousAsset, PreviousDrill
from drill.practice.history import History
from drill.practice.records import RunRecord


def previous_drill(index: Path, playbook: str) -> PreviousDrill | None:
    """The latest countable drill (not a contacts test) of `playbook` in the index, or None."""
    if not index.is_file():
        raise UsageError(
            f"history index {index} does not exist",
            hint="create it with `drill history add runs/ --allowed-signers FILE`",
        )
    with History.open(index) as history:
        found = [r for r in history.records(playbook=playbook) if r.countable and r.mode == "drill"]
    return as_previous(found[-1]) if found else None


def as_previous(record: RunRecord) -> PreviousDrill:
    """A history record as the run journals it."""
    return PreviousDrill(
        run_id=record.run_id,
        report_sha256=record.report_sha256,
        generated_utc=record.generated_utc,
        verdict=record.verdict,
        quarter=record.quarter,
        assets=tuple(PreviousAsset(a.asset, a.verdict, a.rto_ms, a.rpo_ms) for a in record.assets),
    )
