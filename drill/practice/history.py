"""The history: an SQLite index (stdlib sqlite3) of evidence folders, each verified on the way in.

The folders stay the source of truth: the index holds RunRecords derived from them and can be
rebuilt from them at any time (`drill history rebuild`). A folder that does not verify against
the auditor's allowed_signers is kept with its status (tampered, unsigned, unreadable) and the
reason, and never counted (RunRecord.countable).

API (used by trend, due, diff, review, people):
    record = read_record(folder, allowed_signers)          # verify + derive; never raises for bad evidence
    with History.open(index_path) as history:
        history.add(record)                                 # replaces the entry of the same folder
        history.records(playbook=..., asset=..., tier=..., quarter=..., verdict=..., status=...)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from drill.practice.records import RunRecord

DEFAULT_INDEX = Path("drill-history.sqlite")


def read_record(folder: Path, allowed_signers: Path, revoked: Path | None = None) -> RunRecord:
    """The folder verified (as `drill verify` does, against the auditor's trust file) and derived
    into a RunRecord; a folder that does not verify gets its status and the reason, not an error."""
    raise NotImplementedError


class History:
    """An open index."""

    @classmethod
    @contextmanager
    def open(cls, path: Path) -> Iterator[History]:
        raise NotImplementedError
        yield cls()

    def add(self, record: RunRecord) -> None:
        raise NotImplementedError

    def records(
        self,
        *,
        playbook: str | None = None,
        asset: str | None = None,
        tier: str | None = None,
        quarter: str | None = None,
        verdict: str | None = None,
        status: str | None = None,
    ) -> list[RunRecord]:
        """Matching records, oldest first (by generated_utc, then run id)."""
        raise NotImplementedError


def add_folders(
    index: Path, folders: Iterable[Path], allowed_signers: Path, revoked: Path | None = None
) -> list[RunRecord]:
    """Verify and index each folder; the records as indexed (bad evidence included, flagged)."""
    raise NotImplementedError
