"""A run's evidence from start to finish, shared by `drill run`, `drill contacts test` and `drill demo`.

A RunSession owns the evidence folder runs/<run-id>/ and its journal: it opens both, journals
`run.started` (with the plan snapshot and the journal format), stamps every later event,
journals `run.finished`, then folds the written journal (one checked pass) into results.json.
What the results say is therefore exactly what the evidence holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from drill.clock import Clock, utc_iso
from drill.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, DrillError
from drill.evidence.events import (
    JOURNAL_FORMAT,
    Event,
    EventDraft,
    Payload,
    PlaybookRef,
    RunFinished,
    RunOptionsRecord,
    RunStarted,
    RunStatus,
)
from drill.evidence.journal import JournalStream, JournalSummary, JournalWriter
from drill.evidence.snapshot import Plan
from drill.playbook.model import Playbook
from drill.results import Results, fold_results, results_json
from drill.secrets import Secrets
from drill.version import __version__

JOURNAL_FILE = "journal.jsonl"
RESULTS_FILE = "results.json"
RollbackPolicy = Literal["on-failure", "always", "never"]
Sink = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: where evidence goes, how the operator takes part, when rollback runs."""

    runs_dir: Path = Path("runs")
    run_id: str = ""
    auto_confirm: bool = False
    interactive: bool = False
    rollback: RollbackPolicy = "always"  # fail back after every drill that ran, passed or not
    operator: str = ""  # user@host; defaults to the current user
    env: Mapping[str, str] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)  # ${var:NAME}: --var and the vars file
    allow_degraded: bool = False  # run the scenario although not every asset was up at the start
    ack_wait_ms: int | None = None  # cap on the wait for acknowledgements after the drill (None: none)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    journal_path: Path
    results: Results
    journal: JournalSummary
    exit_code: int


def operator_identity() -> str:
    """user@host of whoever runs the drill, for the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_run_id(clock: Clock) -> str:
    stamp = clock.utc_at(clock.monotonic_ns()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def secrets_for(
    playbook: Playbook, env: Mapping[str, str] | None, variables: Mapping[str, str] | None = None
) -> Secrets:
    """References resolved against `env` (default: this process's), the plain `variables` and the
    playbook's folder."""
    return Secrets(
        env=dict(env if env is not None else os.environ),
        base_dir=Path(playbook.source).parent,
        variables=dict(variables or {}),
    )


def _journal_safe(value: object) -> object:
    """The playbook document as journal data: integers only in evidence, so a float (say a
    json_equals value of 0.5) is kept as its decimal text; dates and other scalars as text."""
    if isinstance(value, Mapping):
        return {str(k): _journal_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_journal_safe(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(slots=True)
class RunSession:
    """One run's evidence folder and journal; every event of the run goes through `emit`."""

    playbook: Playbook
    plan: Plan
    options: RunOptions
    clock: Clock
    secrets: Secrets
    run_id: str
    run_dir: Path
    journal: JournalWriter
    sinks: list[Sink] = field(default_factory=list)
    _sync_wanted: asyncio.Event | None = None

    @classmethod
    @contextmanager
    def open(
        cls,
        playbook: Playbook,
        plan: Plan,
        options: RunOptions,
        clock: Clock,
        secrets: Secrets,
        *,
        mode: Literal["drill", "contacts"] = "drill",
    ) -> Iterator[RunSession]:
        """A new, empty runs/<run-id>/ (never reused) with its journal open and run.started written."""
        run_id = options.run_id or new_run_id(clock)
        run_dir = options.runs_dir / run_id
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise DrillError(f"evidence folder {run_dir} already exists; refusing to reuse it") from None
        with JournalWriter.create(run_dir / JOURNAL_FILE, clock, redact=secrets.redact_data) as journal:
            session = cls(playbook, plan, options, clock, secrets, run_id, run_dir, journal)
            session.emit(session._started(mode))
            yield session

    @property
    def journal_path(self) -> Path:
        return self.run_dir / JOURNAL_FILE

    def emit(self, payload: Payload, *, asset: str | None = None, sync: bool = True) -> Event:
        """Journal an event stamped now (fsynced unless sync=False) and feed the sinks."""
        return self.emit_draft(EventDraft(payload, self.clock.monotonic_ns(), asset), sync=sync)

    def emit_draft(self, draft: EventDraft, *, sync: bool = False) -> Event:
        """Journal a draft: in the OS at once (a SIGKILL loses nothing); with sync, on stable
        storage soon after (the syncer's fdatasync, off the event loop), or at once without one."""
        event = self.journal.append(draft, sync=sync and self._sync_wanted is None)
        if sync and self._sync_wanted is not None:
            self._sync_wanted.set()
        for sink in self.sinks:
            sink(event)
        return event

    @asynccontextmanager
    async def syncing(self) -> AsyncIterator[None]:
        """While inside, fsyncs of state changes and step boundaries run in a worker thread,
        coalesced, so a 4 ms fdatasync never stalls the probes' schedule (DESIGN §4)."""
        self._sync_wanted = wanted = asyncio.Event()
        task = asyncio.create_task(self._syncer(wanted), name="journal syncer")
        try:
            yield
        finally:
            self._sync_wanted = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.journal.sync()  # whatever the syncer had not reached yet

    async def _syncer(self, wanted: asyncio.Event) -> None:
        while True:
            await wanted.wait()
            wanted.clear()
            await asyncio.to_thread(self.journal.sync)

    def finish(self, status: RunStatus, reason: str = "") -> None:
        self.emit(RunFinished(status, reason))

    def _started(self, mode: Literal["drill", "contacts"]) -> RunStarted:
        playbook, options = self.playbook, self.options
        document = _journal_safe(playbook.document)
        return RunStarted(
            run_id=self.run_id,
            playbook=PlaybookRef(
                playbook.metadata.name,
                playbook.sha256,
                playbook.source,
                document if isinstance(document, dict) else {},
            ),
            user=options.operator or operator_identity(),
            host=socket.gethostname(),
            tool_version=__version__,
            started_utc=utc_iso(self.clock.utc_at(self.clock.monotonic_ns())),
            options=RunOptionsRecord(options.auto_confirm, options.rollback, options.allow_degraded),
            planned_start=playbook.metadata.planned_start,
            mode=mode,
            plan=self.plan,
            format=JOURNAL_FORMAT,
        )


def finish_run(journal_path: Path) -> tuple[JournalSummary, Results]:
    """Fold the written journal (one checked pass) and write results.json beside it."""
    stream = JournalStream(journal_path)
    results = fold_results(stream)
    summary = stream.summary
    results = replace(results, journal_head=summary.head)
    (journal_path.parent / RESULTS_FILE).write_text(results_json(results), encoding="utf-8")
    return summary, results


def outcome_of(session: RunSession) -> RunOutcome:
    """After the session closed: results folded from its journal and the exit code they imply."""
    summary, results = finish_run(session.journal_path)
    if results.status in (RunStatus.ABORTED, RunStatus.NOT_RUN):
        code = EXIT_ABORTED
    else:
        code = EXIT_OK if results.verdict == "pass" else EXIT_FAILED
    return RunOutcome(session.run_dir, session.journal_path, results, summary, code)
