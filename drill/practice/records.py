"""What the history keeps of each evidence folder: one RunRecord per folder, verified on the way in.

The signed evidence folders are the source of truth; these records are derived from them (the
report, and the plan journalled in run.started) and can be rebuilt from them at any time. Only a
record whose `status` is VERIFIED may be counted in a trend, a due date or a closure; the others
are kept so that people see which folders were refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

VERIFIED: Final = "verified"  # every check of `drill verify` passed against the auditor's allowed_signers
TAMPERED: Final = "tampered"  # a signature, digest or the journal chain does not match
UNSIGNED: Final = "unsigned"  # no signature the trust file accepts (none at all, or untrusted only)
UNREADABLE: Final = "unreadable"  # not an evidence folder drill can read (missing or refused files)

Status = Literal["verified", "tampered", "unsigned", "unreadable"]
RunMode = Literal["drill", "contacts"]  # a drill, or a `drill contacts test` (people only)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One asset of one run: its measured figures and objective states (as in the report)."""

    asset: str
    tier: str
    verdict: str  # pass | fail | incomplete | unaffected | not-measured
    detection_ms: int | None
    switchover_ms: int | None
    rto_ms: int | None
    rto_target_ms: int | None
    rto_state: str | None  # met | missed | not-measured | unaffected (None: no such objective)
    rpo_ms: int | None
    rpo_target_ms: int | None
    rpo_state: str | None
    lost_writes: int | None
    availability_bp: int | None  # None: not measured
    chain: str  # the asset's contact chain ("" for none)
    ack_ms: int | None  # the chain's first acknowledgement, from its trigger (None: none)
    definition_sha256: str  # SHA-256 of the asset's plan entry (targets, probes, dependencies)


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One page of one run: who, through what, delivered or not, acknowledged when."""

    chain: str
    contact: str
    via: str
    sent_utc: str
    delivered: bool
    reason: str  # why not delivered ("" when delivered)
    acked: bool
    ack_ms: int | None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One evidence folder as the history knows it."""

    run_id: str
    report_id: str
    report_sha256: str  # of report.json's bytes: what every signature covers
    folder: str  # absolute path at the time it was added
    mode: RunMode
    playbook: str  # metadata.name
    playbook_sha256: str
    quarter: str  # "" when the playbook states none
    test_type: str
    started_utc: str  # "" when the run never started
    generated_utc: str
    verdict: str  # pass | fail | incomplete | aborted | not-run
    verdict_reason: str
    status: Status
    problem: str  # why the folder is not VERIFIED ("" when it is)
    signers: tuple[str, ...]  # trusted principals whose signatures verified
    assets: tuple[AssetRecord, ...]
    pages: tuple[PageRecord, ...]

    @property
    def countable(self) -> bool:
        """May this run be counted (trend, due date, closure)? Only verified evidence counts."""
        return self.status == VERIFIED
