"""One builder of history records for the practice tests that need a RunRecord without real evidence.

Every field a test does not name gets a fixed, plausible value; signers follow the status (only
verified evidence has a trusted signer), as History.add_folders would record them.
"""

from __future__ import annotations

from collections.abc import Iterable

from drill.practice.records import VERIFIED, AssetRecord, PageRecord, RunMode, RunRecord, Status


def run_record(
    run_id: str,
    started: str,
    *,
    assets: Iterable[AssetRecord] = (),
    pages: Iterable[PageRecord] = (),
    mode: RunMode = "drill",
    status: Status = VERIFIED,
    problem: str = "",
    playbook: str = "pb",
    playbook_sha256: str = "pb",
    quarter: str = "",
    verdict: str = "pass",
    report_sha256: str = "",
    folder: str = "",
) -> RunRecord:
    """A RunRecord started and generated at `started`; `report_sha256`/`folder` default from the id."""
    return RunRecord(
        run_id=run_id,
        report_id=f"report-{run_id}",
        report_sha256=report_sha256 or f"sha-{run_id}",
        folder=folder or f"/evidence/{run_id}",
        mode=mode,
        playbook=playbook,
        playbook_sha256=playbook_sha256,
        quarter=quarter,
        test_type="functional",
        started_utc=started,
        generated_utc=started,
        verdict=verdict,
        verdict_reason="",
        status=status,
        problem=problem,
        signers=("operator",) if status == VERIFIED else (),
        assets=tuple(assets),
        pages=tuple(pages),
    )
