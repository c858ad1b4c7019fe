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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from drill.clock import Clock, utc_iso
from drill.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, DrillError, UsageError
from drill.evidence.events import (
    JOURNAL_FORMAT,
    Event,
    EventDraft,
    Payload,
    PlaybookRef,
    PreviousDrill,
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
    ack_host: str = "127.0.0.1"  # where the ack endpoint listens (loopback unless asked)
    ack_port: int = 0  # 0: any free port
    public_url: str = ""  # the base URL ack links carry, when people reach the endpoint another way
    previous: PreviousDrill | None = None  # the last verified drill of this playbook (the history's)
    broker: str = ""  # NATS URL the sites' agents use: needed when probes run at sites


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    journal_path: Path
    results: Results
    journal: JournalSummary
    exit_code: int
    # Why the evidence is incomplete: the journal could not be written (the run was aborted, its
    # rollback ran unjournalled) or results.json could not be written; '' when all is well.
    journal_error: str = ""
    results_error: str = ""


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
    # Told once, when the journal cannot be written: the run must end like an abort.
    on_journal_error: list[Callable[[DrillError], None]] = field(default_factory=list)
    journal_error: DrillError | None = None
    started: Event | None = None  # the run.started event, as journalled
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
        """A new, empty runs/<run-id>/ (never reused) with its journal open and run.started written
        (kept as `started`: sinks attached later are shown it first, see `show_started`)."""
        run_id = options.run_id or new_run_id(clock)
        run_dir = options.runs_dir / run_id
        make_evidence_folder(run_dir, options.runs_dir)
        point_latest(options.runs_dir, run_id)
        with JournalWriter.create(run_dir / JOURNAL_FILE, clock, redact=secrets.redact_data) as journal:
            session = cls(playbook, plan, options, clock, secrets, run_id, run_dir, journal)
            session.started = session.emit(session._started(mode))
            if session.journal_error is not None:  # not even run.started: nothing may run
                raise session.journal_error
            yield session

    def show_started(self, sinks: Sequence[Sink]) -> None:
        """Show run.started to sinks attached after it was journalled (the live view numbers the
        steps from its plan); a sink that fails here fails inside the run, which journals why."""
        if self.started is not None:
            for sink in sinks:
                sink(self.started)

    @property
    def journal_path(self) -> Path:
        return self.run_dir / JOURNAL_FILE

    def emit(self, payload: Payload, *, asset: str | None = None, sync: bool = True) -> Event:
        """Journal an event stamped now (fsynced unless sync=False) and feed the sinks."""
        return self.emit_draft(EventDraft(payload, self.clock.monotonic_ns(), asset), sync=sync)

    def emit_draft(self, draft: EventDraft, *, sync: bool = False) -> Event:
        """Journal a draft: in the OS at once (a SIGKILL loses nothing); with sync, on stable
        storage soon after (the syncer's fdatasync, off the event loop), or at once without one.

        When the journal cannot be written (a full disk, a file size limit, an I/O error) the
        first failure is kept and reported to `on_journal_error`, and this and every later event
        is dropped, unjournalled and unseen by the sinks, without raising: what the evidence
        holds stays what the sinks saw, and the caller (a rollback, say) carries on regardless."""
        if self.journal_error is not None:
            return _unjournalled(draft)
        try:
            event = self.journal.append(draft, sync=sync and self._sync_wanted is None)
        except DrillError as exc:
            self._journal_failed(exc)
            return _unjournalled(draft)
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
            self.sync()  # whatever the syncer had not reached yet

    def sync(self) -> None:
        """The journal's fsync; a failure is a journal error (see emit_draft), never raised."""
        try:
            self.journal.sync()
        except DrillError as exc:
            self._journal_failed(exc)

    async def _syncer(self, wanted: asyncio.Event) -> None:
        while self.journal_error is None:
            await wanted.wait()
            wanted.clear()
            try:
                await asyncio.to_thread(self.journal.sync)
            except DrillError as exc:
                self._journal_failed(exc)

    def _journal_failed(self, exc: DrillError) -> None:
        if self.journal_error is not None:
            return
        self.journal_error = exc
        for callback in self.on_journal_error:
            callback(exc)

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
            previous=options.previous,
        )


def make_evidence_folder(run_dir: Path, runs_dir: Path) -> None:
    """Create runs/<run-id>/ (never reused); an unusable runs folder is bad input (exit 2), said
    in one line before anything runs."""
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        if run_dir.is_dir():
            raise DrillError(f"evidence folder {run_dir} already exists; refusing to reuse it") from None
        raise UsageError(
            f"cannot create the evidence folder {run_dir}: a file is in the way",
            hint=f"--runs-dir {runs_dir} must be a folder this user can write",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot create the evidence folder {run_dir}: {exc.strerror or exc}",
            hint=f"--runs-dir {runs_dir} must be a folder this user can write",
        ) from None


LATEST = "latest"


def point_latest(runs_dir: Path, run_id: str) -> bool:
    """Make runs/latest a relative symlink to the newest run's folder (replaced atomically), so
    people and scripts can name it; a `latest` that is not a symlink is left alone. A failure
    here costs a convenience, never the drill: False, and nothing else happens."""
    link = runs_dir / LATEST
    if link.exists() and not link.is_symlink():
        return False
    staged = runs_dir / f".{LATEST}.{run_id}"
    try:
        staged.unlink(missing_ok=True)
        staged.symlink_to(run_id, target_is_directory=True)
        staged.replace(link)
    except OSError:
        staged.unlink(missing_ok=True)
        return False
    return True


def finish_run(journal_path: Path, *, allow_torn_tail: bool = False) -> tuple[JournalSummary, Results]:
    """Fold the written journal (one checked pass) and write results.json beside it."""
    summary, results = fold_run(journal_path, allow_torn_tail=allow_torn_tail)
    (journal_path.parent / RESULTS_FILE).write_text(results_json(results), encoding="utf-8")
    return summary, results


def fold_run(journal_path: Path, *, allow_torn_tail: bool = False) -> tuple[JournalSummary, Results]:
    """The results folded from the written journal (one checked pass), with its summary."""
    stream = JournalStream(journal_path, allow_torn_tail=allow_torn_tail)
    results = fold_results(stream)
    summary = stream.summary
    return summary, replace(results, journal_head=summary.head)


def outcome_of(session: RunSession) -> RunOutcome:
    """After the session closed: results folded from its journal and the exit code they imply.

    After a journal error the run counts as aborted (exit 3) whatever the journal says, results
    are folded from what it holds, and a results.json that cannot be written is said, not raised."""
    failed = session.journal_error
    summary, results = fold_run(session.journal_path, allow_torn_tail=failed is not None)
    results_error = ""
    try:
        (session.run_dir / RESULTS_FILE).write_text(results_json(results), encoding="utf-8")
    except OSError as exc:  # the same full disk, say: the journal stands, the results are said
        results_error = f"cannot write {session.run_dir / RESULTS_FILE}: {exc.strerror or exc}"
    if failed is not None or results_error or results.status in (RunStatus.ABORTED, RunStatus.NOT_RUN):
        code = EXIT_ABORTED
    else:
        code = EXIT_OK if results.verdict == "pass" else EXIT_FAILED
    journal_error = "" if failed is None else failed.message
    return RunOutcome(
        session.run_dir, session.journal_path, results, summary, code, journal_error, results_error
    )


def _unjournalled(draft: EventDraft) -> Event:
    """The event a draft would have been (seq 0: it is in no journal)."""
    return Event(0, "", draft.mono_ns, "", draft.payload, draft.asset)
