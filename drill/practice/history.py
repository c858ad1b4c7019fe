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

What one entry is. A run is its signed report: a *verified* record is keyed by the SHA-256 of
report.json's bytes (what every signature covers), so a folder moved or copied elsewhere is the
same run, kept once, under the folder it was last added from. A record that did not verify is
keyed by its folder: a tampered or unsigned copy of a verified run is listed beside it, as the
folder it is, and never replaces it. Adding a record first drops any entry of the same folder
(the folder's evidence changed since: the new verdict on it wins), then any entry of the same
key. Folders are resolved (symlinks followed), so `runs/latest` is the run it points at.

The file: one SQLite database in rollback-journal mode (no -wal/-shm files beside it once
closed), its schema versioned with `PRAGMA user_version` (SCHEMA_VERSION). Tables: `runs` (one
row per entry), `assets` and `pages` (one row per asset / page of a run, in report order,
deleted with their run), indexed for the filters of `records`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from drill.errors import DrillError, UsageError, VerificationFailed
from drill.evidence.canonical import canonical_bytes
from drill.evidence.events import RunStarted
from drill.evidence.inputs import REPORT_LIMIT, check_json_depth, read_bounded
from drill.evidence.journal import read_events
from drill.evidence.snapshot import PlanAsset
from drill.practice.records import (
    TAMPERED,
    UNREADABLE,
    UNSIGNED,
    VERIFIED,
    AssetRecord,
    PageRecord,
    RunMode,
    RunRecord,
    Status,
)
from drill.report.build import parse_report
from drill.report.model import Report, report_from_data
from drill.report.sign import REPORT_FILE
from drill.report.verify import load_allowed_signers, load_revoked_keys, verify_report_dir
from drill.results import AssetResult, plan_of

DEFAULT_INDEX = Path("drill-history.sqlite")
INDEX_ENV = "DRILL_HISTORY"  # names the index when --index is not given
SCHEMA_VERSION = 1
JOURNAL_FILE = "journal.jsonl"
LATEST = "latest"  # the runs folder's symlink to its newest run (drill/run/session.py)
STATUSES: tuple[Status, ...] = (VERIFIED, TAMPERED, UNSIGNED, UNREADABLE)
_TEXT_LIMIT = 200  # characters kept of a string read from evidence that did not verify

# How a VerificationFailed's one line tells an unsigned folder (no signature the trust file
# accepts) and an unreadable one (a file it names is missing) from a tampered one (any other
# failure: a signature, digest, chain or fold that does not match). drill/report/verify.py's
# messages; tests/practice/test_history.py makes each case for real, so a changed message shows.
_UNSIGNED_MARKS = (
    "no signatures (",
    "must be trusted",
    "no signature is trusted",
    "needs a trusted signature",
    "has not signed",
    "is revoked",
    "but has no signature by that key",
)
_UNREADABLE_MARKS = ("listed in the signed report is missing", "cannot read ")


# ---------------------------------------------------------------- reading one folder


def read_record(folder: Path, allowed_signers: Path, revoked: Path | None = None) -> RunRecord:
    """The folder verified (as `drill verify` does, against the auditor's trust file) and derived
    into a RunRecord; a folder that does not verify gets its status and the reason, not an error.

    Only a trusted preparer is required (no --require). UsageError (exit 2) only when the trust
    file or the revoked-keys file cannot be used: that is the caller's input, not the evidence.
    """
    check_trust_files(allowed_signers, revoked)
    where = _resolved(folder)
    try:
        before = read_bounded(where / REPORT_FILE, REPORT_LIMIT, "report")
        verification = verify_report_dir(where, allowed_signers, revoked_path=revoked)
        data = read_bounded(where / REPORT_FILE, REPORT_LIMIT, "report")
    except DrillError as exc:
        return _not_verified(where, _status_of(where, exc), _one_line(exc))
    except (FileNotFoundError, NotADirectoryError):
        return _not_verified(where, UNREADABLE, f"{where / REPORT_FILE} is missing (not an evidence folder?)")
    except OSError as exc:
        return _not_verified(where, UNREADABLE, f"cannot read {where / REPORT_FILE}: {exc.strerror}")
    if data != before:
        return _not_verified(where, TAMPERED, f"{REPORT_FILE} changed while it was being verified")
    report = report_from_data(json.loads(data))  # verify checked these very bytes against the schema
    started = _run_started(where / report.journal.file)
    signers = tuple(s.principal for s in verification.signers)
    return _derived(where, data, report, started, VERIFIED, "", signers)


def check_trust_files(allowed_signers: Path, revoked: Path | None = None) -> None:
    """UsageError (exit 2) unless the auditor's trust file (and revoked-keys file) can be used:
    the caller's input, refused before any folder is read."""
    try:
        load_allowed_signers(allowed_signers)
        if revoked is not None:
            load_revoked_keys(revoked)
    except VerificationFailed as exc:  # e.g. a binary KRL: still the caller's input, not evidence
        raise UsageError(exc.message, hint=exc.hint) from None


def _resolved(folder: Path) -> Path:
    try:
        return folder.resolve()
    except (OSError, RuntimeError):  # a symlink loop: keep the path as given, made absolute
        return folder.absolute()


def _status_of(folder: Path, exc: DrillError) -> Status:
    message = exc.message
    if isinstance(exc, UsageError):  # a missing report.json, refused input (a FIFO, too large)
        return UNREADABLE
    if any(mark in message for mark in _UNSIGNED_MARKS):
        return UNSIGNED
    if any(mark in message for mark in _UNREADABLE_MARKS):
        return UNREADABLE
    return TAMPERED


def _not_verified(folder: Path, status: Status, problem: str) -> RunRecord:
    """The record of a folder that did not verify: for an unsigned one (its bytes may well be
    intact) what its report says, shown as UNSIGNED and never counted; for the others only what
    identifies it (run id, playbook name), read defensively, and the rest left empty."""
    data = _report_bytes(folder)
    if status == UNSIGNED and data is not None:
        report = _typed(data)
        if report is not None:
            started = _run_started(folder / JOURNAL_FILE)
            return _derived(folder, data, report, started, status, problem, ())
    run_id, report_id, playbook = _identity(folder, data)
    return RunRecord(
        run_id=run_id,
        report_id=report_id,
        report_sha256=hashlib.sha256(data).hexdigest() if data is not None else "",
        folder=str(folder),
        mode="drill",
        playbook=playbook,
        playbook_sha256="",
        quarter="",
        test_type="",
        started_utc="",
        generated_utc="",
        verdict="",
        verdict_reason="",
        status=status,
        problem=problem,
        signers=(),
        assets=(),
        pages=(),
    )


def _report_bytes(folder: Path) -> bytes | None:
    try:
        return read_bounded(folder / REPORT_FILE, REPORT_LIMIT, "report")
    except (DrillError, OSError):
        return None


def _typed(data: bytes) -> Report | None:
    """The report in `data` when it is one (checked against the report schema), else None."""
    try:
        return parse_report(data, REPORT_FILE)
    except DrillError:
        return None


def _identity(folder: Path, data: bytes | None) -> tuple[str, str, str]:
    """(run id, report id, playbook name) as far as they can be read safely: from report.json as
    plain JSON, else from the journal's first line; each a short printable string or ""."""
    found: dict[str, str] = {}
    if data is not None:
        try:
            check_json_depth(data, REPORT_FILE)
            document = json.loads(data)
        except (DrillError, ValueError):
            document = None
        if isinstance(document, dict):
            section = document.get("playbook")
            found = {
                "run_id": _safe(document.get("run_id")),
                "report_id": _safe(document.get("report_id")),
                "playbook": _safe(section.get("name")) if isinstance(section, dict) else "",
            }
    if not found.get("run_id"):
        started = _run_started(folder / JOURNAL_FILE)
        if started is not None:
            found = {**found, "run_id": _safe(started.run_id), "playbook": _safe(started.playbook.name)}
    return found.get("run_id", ""), found.get("report_id", ""), found.get("playbook", "")


def _safe(value: object) -> str:
    """A string from evidence nobody vouches for, fit to print: control characters escaped, short."""
    if not isinstance(value, str):
        return ""
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def _one_line(exc: DrillError) -> str:
    return _safe(" ".join(exc.message.split())) or type(exc).__name__


def _run_started(journal: Path) -> RunStarted | None:
    """The journal's first event (run.started), or None when it cannot be read as one."""
    try:
        first = next(read_events(journal), None)
    except (DrillError, OSError, ValueError):
        return None
    return first.payload if first is not None and isinstance(first.payload, RunStarted) else None


def _derived(
    folder: Path,
    data: bytes,
    report: Report,
    started: RunStarted | None,
    status: Status,
    problem: str,
    signers: tuple[str, ...],
) -> RunRecord:
    definitions = _definitions(started)
    chains = {c.name: c.first_ack_ms for c in report.people.chains}
    mode: RunMode = started.mode if started is not None else "drill"
    return RunRecord(
        run_id=report.run_id,
        report_id=report.report_id,
        report_sha256=hashlib.sha256(data).hexdigest(),
        folder=str(folder),
        mode=mode,
        playbook=report.playbook.name,
        playbook_sha256=report.playbook.sha256,
        quarter=report.playbook.quarter,
        test_type=str(report.exercise.test_type),
        started_utc=report.run.started_utc or "",
        generated_utc=report.generated_utc,
        verdict=str(report.verdict),
        verdict_reason=report.run.verdict_reason or report.run.reason,
        status=status,
        problem=problem,
        signers=signers,
        assets=tuple(asset_record(a, definitions.get(a.id, ""), chains) for a in report.assets),
        pages=tuple(
            PageRecord(
                chain=p.chain,
                contact=p.contact,
                via=p.via,
                sent_utc=p.sent_utc,
                delivered=p.ok,
                reason=p.reason,
                acked=p.acked_utc is not None,
                ack_ms=p.ack_ms,
            )
            for p in report.people.pages
        ),
    )


def asset_record(asset: AssetResult, definition: str, chains: dict[str, int | None]) -> AssetRecord:
    """What the history keeps of one asset of a report (`chains`: each chain's first ack, ms)."""
    states = {o.objective: o.state for o in asset.objectives}
    ack_ms = asset.ack.ack_ms if asset.ack is not None else chains.get(asset.contact_chain)
    return AssetRecord(
        asset=asset.id,
        tier=asset.tier,
        verdict=str(asset.verdict),
        detection_ms=asset.detection_ms,
        switchover_ms=asset.switchover_ms,
        rto_ms=asset.rto_ms,
        rto_target_ms=asset.targets.rto_ms,
        rto_state=states.get("rto"),
        rpo_ms=asset.rpo.rpo_ms if asset.rpo is not None else None,
        rpo_target_ms=asset.targets.rpo_ms,
        rpo_state=states.get("rpo"),
        lost_writes=asset.rpo.lost_writes if asset.rpo is not None else None,
        availability_bp=asset.availability_bp,
        chain=asset.contact_chain,
        ack_ms=ack_ms,
        definition_sha256=definition,
    )


def _definitions(started: RunStarted | None) -> dict[str, str]:
    """asset id -> definition_sha256 of each asset of the plan journalled in run.started."""
    if started is None:
        return {}
    try:
        plan = plan_of(started)
    except ValueError:  # a format-1 document that no longer validates: no definition to compare
        return {}
    return {asset.id: definition_sha256(asset) for asset in plan.assets}


def definition_sha256(asset: PlanAsset) -> str:
    """SHA-256 of the canonical JSON of what defines an asset for recovery: its tier, resolved
    RTO/RPO targets, dependencies, and each probe's name, kind, interval, timeout, fall, rise and
    whether it measures the RPO. Owner, description, waivers and the wave (which moves when
    another asset changes) are left out: changing them does not call for a new drill. The probe's
    target (URL, DSN) is not in the plan (it may hold a secret), so a moved target does not show."""
    entry = {
        "id": asset.id,
        "tier": asset.tier,
        "rto_ms": asset.rto_ms,
        "rpo_ms": asset.rpo_ms,
        "depends_on": list(asset.depends_on),
        "probes": [
            {
                "name": p.name,
                "kind": p.kind,
                "interval_ms": p.interval_ms,
                "timeout_ms": p.timeout_ms,
                "fall": p.fall,
                "rise": p.rise,
                "measures_rpo": p.measures_rpo,
            }
            for p in asset.probes
        ],
    }
    return hashlib.sha256(canonical_bytes(entry)).hexdigest()


# ---------------------------------------------------------------- folders


def evidence_folders(paths: Iterable[Path]) -> list[Path]:
    """The evidence folders named by `paths`, resolved, each once, in the order given: a path that
    holds report.json or journal.jsonl is one; any other folder is a runs folder, and each of its
    sub-folders that holds one is (sorted by name; `latest` and hidden entries skipped).
    UsageError for a path that does not exist, is not a folder, or holds no evidence folder."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist", hint="name an evidence folder or a runs folder")
        if not path.is_dir():
            raise UsageError(f"{path} is not a folder", hint="name an evidence folder (runs/RUN_ID) or runs/")
        if _is_evidence(path):
            found.setdefault(_resolved(path), None)
            continue
        try:
            children = sorted(path.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot list {path}: {exc.strerror}") from None
        runs = [c for c in children if c.name != LATEST and not c.name.startswith(".") and _is_evidence(c)]
        if not runs:
            raise UsageError(
                f"{path} holds no evidence folder (no {REPORT_FILE} or {JOURNAL_FILE} in it or its sub-folders)",
                hint="name a run's folder (runs/RUN_ID) or the runs folder that holds them",
            )
        for run in runs:
            found.setdefault(_resolved(run), None)
    return list(found)


def _is_evidence(path: Path) -> bool:
    try:
        return path.is_dir() and any((path / name).exists() for name in (REPORT_FILE, JOURNAL_FILE))
    except OSError:
        return False


# ---------------------------------------------------------------- the index

_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,        -- 'sha256:' || report_sha256 when verified, else 'folder:' || folder
    folder TEXT NOT NULL,
    run_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    report_sha256 TEXT NOT NULL,
    mode TEXT NOT NULL,
    playbook TEXT NOT NULL,
    playbook_sha256 TEXT NOT NULL,
    quarter TEXT NOT NULL,
    test_type TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    generated_utc TEXT NOT NULL,
    verdict TEXT NOT NULL,
    verdict_reason TEXT NOT NULL,
    status TEXT NOT NULL,
    problem TEXT NOT NULL,
    signers TEXT NOT NULL            -- JSON array of principals
);
CREATE INDEX runs_folder ON runs (folder);
CREATE INDEX runs_order ON runs (generated_utc, run_id);
CREATE INDEX runs_run_id ON runs (run_id);
CREATE INDEX runs_playbook ON runs (playbook);
CREATE INDEX runs_quarter ON runs (quarter);
CREATE INDEX runs_verdict ON runs (verdict);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE assets (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    asset TEXT NOT NULL,
    tier TEXT NOT NULL,
    verdict TEXT NOT NULL,
    detection_ms INTEGER,
    switchover_ms INTEGER,
    rto_ms INTEGER,
    rto_target_ms INTEGER,
    rto_state TEXT,
    rpo_ms INTEGER,
    rpo_target_ms INTEGER,
    rpo_state TEXT,
    lost_writes INTEGER,
    availability_bp INTEGER,
    chain TEXT NOT NULL,
    ack_ms INTEGER,
    definition_sha256 TEXT NOT NULL,
    PRIMARY KEY (run, position)
);
CREATE INDEX assets_asset ON assets (asset, run);
CREATE INDEX assets_tier ON assets (tier, run);
CREATE TABLE pages (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    chain TEXT NOT NULL,
    contact TEXT NOT NULL,
    via TEXT NOT NULL,
    sent_utc TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    reason TEXT NOT NULL,
    acked INTEGER NOT NULL,
    ack_ms INTEGER,
    PRIMARY KEY (run, position)
);
"""

RUN_COLUMNS = (
    "run_id",
    "report_id",
    "report_sha256",
    "folder",
    "mode",
    "playbook",
    "playbook_sha256",
    "quarter",
    "test_type",
    "started_utc",
    "generated_utc",
    "verdict",
    "verdict_reason",
    "status",
    "problem",
)
_ASSET_COLUMNS = (
    "asset",
    "tier",
    "verdict",
    "detection_ms",
    "switchover_ms",
    "rto_ms",
    "rto_target_ms",
    "rto_state",
    "rpo_ms",
    "rpo_target_ms",
    "rpo_state",
    "lost_writes",
    "availability_bp",
    "chain",
    "ack_ms",
    "definition_sha256",
)
_PAGE_COLUMNS = ("chain", "contact", "via", "sent_utc", "delivered", "reason", "acked", "ack_ms")


def entry_key(record: RunRecord) -> str:
    """What makes two records one entry: the signed report's bytes when verified, else the folder."""
    if record.status == VERIFIED:
        return f"sha256:{record.report_sha256}"
    return f"folder:{record.folder}"


@dataclass(slots=True)
class History:
    """An open index; use `with History.open(path) as history:`."""

    path: Path
    _db: sqlite3.Connection

    @classmethod
    @contextmanager
    def open(cls, path: Path, *, create: bool = True) -> Iterator[History]:
        """Open (with create: make when missing) the index at path. UsageError when it cannot be
        opened, is no drill history index, or was written by a newer drill."""
        if not create and not path.is_file():
            raise UsageError(
                f"history index {path} does not exist",
                hint="create it with `drill history add runs/ --allowed-signers FILE` (or name it with --index)",
            )
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise UsageError(f"cannot open history index {path}: {exc}") from None
        with closing(db):
            history = cls(path, db)
            history._prepare()
            yield history

    def _prepare(self) -> None:
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise UsageError(
                        f"{self.path} is an SQLite database but not a drill history index",
                        hint="name another file with --index",
                    )
                with self._transaction():
                    self._db.executescript(
                        f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
            elif version != SCHEMA_VERSION:
                raise UsageError(
                    f"history index {self.path} has schema version {version}; this drill reads {SCHEMA_VERSION}",
                    hint="rebuild it from the evidence folders: `drill history rebuild DIR... --allowed-signers FILE`",
                )
        except sqlite3.Error as exc:
            raise UsageError(
                f"{self.path} is not a drill history index ({exc})",
                hint="rebuild it from the evidence folders with `drill history rebuild`",
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def add(self, record: RunRecord) -> None:
        """Index one record: replaces the entry of the same folder and the entry of the same key
        (a verified run moved or copied: the same signed report)."""
        self.add_all((record,))

    def add_all(self, records: Sequence[RunRecord]) -> None:
        """add() each record, in order, in one transaction."""
        try:
            with self._transaction():
                self._db.execute("BEGIN IMMEDIATE")
                for record in records:
                    self._insert(record)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise UsageError(f"cannot write history index {self.path}: {exc}") from None

    def _insert(self, record: RunRecord) -> None:
        key = entry_key(record)
        self._db.execute("DELETE FROM runs WHERE folder = ? OR key = ?", (record.folder, key))
        values = [getattr(record, c) for c in RUN_COLUMNS]
        cursor = self._db.execute(
            f"INSERT INTO runs (key, {', '.join(RUN_COLUMNS)}, signers) VALUES "
            f"({', '.join('?' * (len(RUN_COLUMNS) + 2))})",
            (key, *values, json.dumps(list(record.signers))),
        )
        run = cursor.lastrowid
        self._db.executemany(
            f"INSERT INTO assets (run, position, {', '.join(_ASSET_COLUMNS)}) VALUES "
            f"({', '.join('?' * (len(_ASSET_COLUMNS) + 2))})",
            [(run, i, *(getattr(a, c) for c in _ASSET_COLUMNS)) for i, a in enumerate(record.assets)],
        )
        self._db.executemany(
            f"INSERT INTO pages (run, position, {', '.join(_PAGE_COLUMNS)}) VALUES "
            f"({', '.join('?' * (len(_PAGE_COLUMNS) + 2))})",
            [(run, i, *(getattr(p, c) for c in _PAGE_COLUMNS)) for i, p in enumerate(record.pages)],
        )

    def records(
        self,
        *,
        playbook: str | None = None,
        asset: str | None = None,
        tier: str | None = None,
        quarter: str | None = None,
        verdict: str | None = None,
        status: str | None = None,
        run_id: str | None = None,
    ) -> list[RunRecord]:
        """Matching records, oldest first (by generated_utc, then run id). asset/tier: runs that
        include such an asset; run_id: that run id, or the runs whose id starts with it."""
        where: list[str] = []
        params: list[object] = []
        for column, value in (
            ("playbook", playbook),
            ("quarter", quarter),
            ("verdict", verdict),
            ("status", status),
        ):
            if value is not None:
                where.append(f"runs.{column} = ?")
                params.append(value)
        for column, value in (("asset", asset), ("tier", tier)):
            if value is not None:
                where.append(
                    f"EXISTS (SELECT 1 FROM assets WHERE assets.run = runs.id AND assets.{column} = ?)"
                )
                params.append(value)
        if run_id is not None:
            where.append("(runs.run_id = ? OR substr(runs.run_id, 1, ?) = ?)")
            params.extend((run_id, len(run_id), run_id))
        sql = f"SELECT id, signers, {', '.join(RUN_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY generated_utc, run_id, folder"
        try:
            rows = self._db.execute(sql, params).fetchall()
            return [self._record(row) for row in rows]
        except sqlite3.Error as exc:
            raise UsageError(f"cannot read history index {self.path}: {exc}") from None

    def _record(self, row: tuple[object, ...]) -> RunRecord:
        run, signers, *values = row
        fields = dict(zip(RUN_COLUMNS, values, strict=True))
        assets = self._db.execute(
            f"SELECT {', '.join(_ASSET_COLUMNS)} FROM assets WHERE run = ? ORDER BY position", (run,)
        ).fetchall()
        pages = self._db.execute(
            f"SELECT {', '.join(_PAGE_COLUMNS)} FROM pages WHERE run = ? ORDER BY position", (run,)
        ).fetchall()
        return RunRecord(
            **fields,  # type: ignore[arg-type]
            signers=tuple(json.loads(str(signers))),
            assets=tuple(AssetRecord(*a) for a in assets),
            pages=tuple(PageRecord(c, n, v, s, bool(d), r, bool(k), ms) for c, n, v, s, d, r, k, ms in pages),
        )


def add_folders(
    index: Path, folders: Iterable[Path], allowed_signers: Path, revoked: Path | None = None
) -> list[RunRecord]:
    """Verify and index each folder; the records as indexed (bad evidence included, flagged)."""
    records = [read_record(folder, allowed_signers, revoked) for folder in folders]
    with History.open(index) as history:
        history.add_all(records)
    return records


def rebuild(
    index: Path, folders: Iterable[Path], allowed_signers: Path, revoked: Path | None = None
) -> list[RunRecord]:
    """Recreate the index from the folders alone: written beside it, then put in its place, so
    the old index stays whole until the new one is complete."""
    records = [read_record(folder, allowed_signers, revoked) for folder in folders]
    index = index.absolute()
    try:
        fd, name = tempfile.mkstemp(prefix=f".{index.name}.", suffix=".rebuild", dir=index.parent)
    except OSError as exc:
        raise UsageError(f"cannot write beside {index}: {exc.strerror}") from None
    os.close(fd)
    fresh = Path(name)
    try:
        fresh.unlink()  # History.open creates the database in an empty path
        with History.open(fresh) as history:
            history.add_all(records)
        fresh.replace(index)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    return records
