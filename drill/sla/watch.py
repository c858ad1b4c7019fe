"""`drill watch`: a playbook's probes with no scenario, for days, into rotated and sealed segments.

The probing is the drill runner's own: the drift-free per-probe loops of drill.run.scheduler,
the fall/rise monitor of drill.run.monitor, the hash-chained journal of drill.evidence.journal
(probe.observed handed to the OS at once, so a SIGKILL loses nothing written; asset.state and
segment boundaries fsynced, off the event loop). What the watch adds is the folder
(drill.sla.segments): a new segment every `rotate_ms` of UTC (boundaries at multiples of it since
the epoch: hourly at the top of the hour, daily at UTC midnight), the previous one sealed first.

Memory is bounded: per probe, its loop and its monitor streak; per segment, the open writer
(head, count) and its first and last UTC. Nothing is kept per observation (the journal holds it).
Each segment's writer gets a fresh clock anchor, so UTC stamps follow the wall clock at each
rotation instead of drifting for days from the one taken at start-up.

A restart never claims what it did not see: the last segment is checked and sealed ("after
restart") if the crash left it open, and the new segment records a watch.gap from the last
event journalled to the instant the new segment opened, health no-data; every asset starts
unknown until its probes say otherwise (the monitor's first asset.state is `initial`).

With WatchOptions.metrics (drill.sla.metrics, `--metrics`), each observation and asset state
also updates a Prometheus registry, and a scrape reads the open segment's number, event count
and last UTC through segment_view(): a live view beside the evidence, never part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from drill.clock import SystemClock, utc_iso, utc_ms
from drill.durations import format_duration_ms
from drill.errors import DrillError, JournalInvalid, UsageError
from drill.evidence.events import (
    AssetState,
    EventDraft,
    Payload,
    PlaybookRef,
    ProbeAbandoned,
    ProbeOverrun,
    WatchGap,
    WatchSegment,
    WatchStarted,
    WatchStopped,
)
from drill.evidence.journal import GENESIS, JournalWriter, file_sha256
from drill.evidence.snapshot import Plan
from drill.log import get_logger
from drill.plan import build_plan
from drill.playbook.model import Playbook
from drill.probes import canary
from drill.probes.base import Observation
from drill.run.monitor import Monitor
from drill.run.runner import schedule_probes
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_loops
from drill.run.session import operator_identity, secrets_for
from drill.secrets import Secrets
from drill.sla.alerts import AlertEvaluator, AlertPager, Edge, check_alerts, evaluate_every, journal_and_page
from drill.sla.calendar import period_of
from drill.sla.digest import DigestBuilder
from drill.sla.model import Sla, Timeline
from drill.sla.segments import (
    SEAL_FORMAT,
    Seal,
    SealedHow,
    SegmentSigner,
    read_seal,
    scan_segment,
    seal_of,
    segment_name,
    segments_in,
    write_seal,
)
from drill.sla.sources import watch_timelines_since
from drill.version import __version__

if TYPE_CHECKING:  # prometheus_client is imported only by a watch that serves /metrics
    from drill.sla.metrics import WatchMetrics

HOUR_MS = 3_600_000
MIN_ROTATE_MS = 100  # below this a segment would hold a handful of events: a typo, not a plan

SegmentReason = Literal["start", "rotation", "restart"]


@dataclass(frozen=True, slots=True)
class WatchOptions:
    out: Path
    rotate_ms: int = HOUR_MS
    duration_ms: int | None = None  # stop after this long (tests, cron); None: until a signal
    signer: SegmentSigner | None = None
    env: Mapping[str, str] | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    operator: str = ""
    metrics: WatchMetrics | None = None  # updated as the watch observes (drill.sla.metrics)
    sla: Sla | None = None  # its burn-rate and threshold alerts page while watching (drill.sla.alerts)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a watch folder left off: the segment to open next and what it must name."""

    number: int
    previous_file: str = ""
    previous_head: str = GENESIS
    previous_events: int = 0
    last_utc: str = ""  # the last event journalled before this start ('' in a new folder)
    last_utc_file: str = ""
    sealed_now: Seal | None = None  # the segment this start had to seal (left open by a crash)


@dataclass(frozen=True, slots=True)
class WatchOutcome:
    folder: Path
    first_segment: int  # opened by this process
    last_segment: int
    stop_reason: str
    resumed: Resume
    gap: WatchGap | None
    journal_error: str = ""  # why the watch stopped early: its journal could not be written


def check_rotate(rotate_ms: int) -> int:
    if rotate_ms < MIN_ROTATE_MS:
        raise UsageError(
            f"--rotate must be at least {MIN_ROTATE_MS}ms", hint="e.g. --rotate 1h or --rotate 1d"
        )
    return rotate_ms


def watch_probes(playbook: Playbook, secrets: Secrets) -> tuple[ScheduledProbe, ...]:
    """Every asset probe, its secrets resolved and spec parsed now (a typo fails before anything
    runs), as the runner's prepare() builds them; a watch runs no step, so the scenario's action
    secrets are not resolved: they need not exist on the watching host."""
    remote = [f"{a.id}/{p.name}" for a in playbook.assets for p in a.probes if p.remote]
    if remote:
        raise UsageError(
            f"{playbook.source}: probes run at sites ({', '.join(remote[:3])}): drill watch probes"
            " only from this host",
            hint="watch with a playbook whose probes name no sites (one watch per site, for now)",
        )
    scheduled = schedule_probes(playbook, secrets)
    if not scheduled:
        raise UsageError(f"{playbook.source}: no asset has a probe: nothing to watch")
    return tuple(scheduled)


def resume(
    folder: Path, playbook: Playbook, signer: SegmentSigner | None, now_utc: str, tracked: Sequence[str] = ()
) -> Resume:
    """Read where the folder left off; seal the last segment if a crash left it open.

    The last segment's chain is checked in full (an incomplete last line is left as the journal
    reader leaves it); a break anywhere else, or a seal that no longer matches, refuses the start:
    nothing is appended to evidence that was altered."""
    found = segments_in(folder)
    if not found:
        return Resume(1)
    number, path = found[-1]
    try:
        seal = read_seal(path)
        # digested only when this start has to seal it
        scan = scan_segment(
            path,
            allow_torn_tail=seal is None or seal.torn_bytes > 0,
            tracked=tracked if seal is None else None,
        )
    except ValueError as exc:
        raise DrillError(
            f"{path.with_suffix('.seal')}: not a readable seal ({exc}); refusing to resume"
        ) from None
    except JournalInvalid as exc:
        raise DrillError(
            f"{exc}; refusing to resume a watch folder whose last segment is broken",
            hint=f"check it with `drill watch-verify {folder}`; watch into a new --out folder",
        ) from None
    if scan.opened is not None and scan.opened.plan.name != playbook.metadata.name:
        raise UsageError(
            f"{folder} holds the watch of playbook {scan.opened.plan.name!r}, not {playbook.metadata.name!r}",
            hint="give each playbook its own --out folder",
        )
    sealed_now = None
    if seal is None:
        seal = sealed_now = seal_of(path, number, scan, "after restart", now_utc)
        write_seal(path, seal, signer)
    elif (seal.sha256, seal.events, seal.head) != (scan.sha256, scan.events, scan.head):
        raise DrillError(
            f"{path} does not match its seal (changed after it was sealed); refusing to resume",
            hint=f"check it with `drill watch-verify {folder}`; watch into a new --out folder",
        )
    last_utc, last_file = seal.last_utc, path.name
    for _, earlier in reversed(found[:-1]):  # a segment cut short while opening holds no event
        if last_utc:
            break
        earlier_seal = read_seal(earlier)
        if earlier_seal is not None:
            last_utc, last_file = earlier_seal.last_utc, earlier.name
    return Resume(
        number + 1, path.name, seal.head, seal.events, last_utc, last_file if last_utc else "", sealed_now
    )


@dataclass(slots=True)
class _Segment:
    """The open segment: its writer and the little the seal needs that the writer does not keep."""

    number: int
    path: Path
    writer: JournalWriter
    clock: SystemClock
    previous_file: str
    previous_head: str
    digest: DigestBuilder
    first_utc: str = ""
    last_utc: str = ""


SegmentCallback = Callable[[Path, Seal], None]


class _Watch:
    """One watch process: routes observations to the open segment, rotates, seals, stops."""

    def __init__(
        self,
        playbook: Playbook,
        plan: Plan,
        options: WatchOptions,
        secrets: Secrets,
        on_sealed: SegmentCallback | None,
    ) -> None:
        self.playbook = playbook
        self.plan = plan
        self.options = options
        self.secrets = secrets
        self.on_sealed = on_sealed
        self.monitor = Monitor.for_assets(playbook.assets)
        self.segment: _Segment | None = None
        self.stop = asyncio.Event()
        self.stop_reason = ""
        self.journal_error: DrillError | None = None
        self.sync_wanted = asyncio.Event()
        self.sync_lock = threading.Lock()  # a segment is never closed while the syncer fsyncs it
        self.first_segment = 0
        self.metrics = options.metrics
        self.alerts = AlertEvaluator(options.sla) if options.sla is not None else None
        self.tracked = options.sla.delay_probes if options.sla is not None else ()
        self.log = get_logger("drill.watch")

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    # -- the open segment --------------------------------------------------------------------
    def open_segment(self, number: int, reason: SegmentReason, resumed: Resume | None = None) -> int:
        """Create segment N and journal watch.segment (fsynced); returns its instant (mono ns)."""
        previous = self.segment
        if previous is not None:
            prev_file, prev_head, prev_count = previous.path.name, previous.writer.head, previous.writer.count
        elif resumed is not None:
            prev_file, prev_head, prev_count = (
                resumed.previous_file,
                resumed.previous_head,
                resumed.previous_events,
            )
        else:
            prev_file, prev_head, prev_count = "", GENESIS, 0
        clock = SystemClock()  # a fresh anchor per segment: see the module docstring
        path = self.options.out / segment_name(number)
        writer = JournalWriter.create(path, clock, redact=self.secrets.redact_data)
        digest = DigestBuilder(tracked=self.tracked)
        self.segment = _Segment(number, path, writer, clock, prev_file, prev_head, digest)
        states: dict[str, str] = {a.id: self.monitor.state(a.id) or "unknown" for a in self.playbook.assets}
        opened = WatchSegment(
            number, prev_file, prev_head, prev_count, reason, self.options.rotate_ms, self.plan, states
        )
        at = clock.monotonic_ns()
        self.emit_draft(EventDraft(opened, at), sync=False)
        writer.sync()
        return at

    def emit(self, payload: Payload, at_ns: int, *, asset: str | None = None, sync: bool = False) -> None:
        self.emit_draft(EventDraft(payload, at_ns, asset), sync=sync)

    def emit_draft(self, draft: EventDraft, *, sync: bool = False) -> None:
        """Journal into the open segment; after a write failure, stop the watch and drop the rest
        (the segment ends at its last whole line; the next start seals it)."""
        segment = self.segment
        if segment is None or self.journal_error is not None:
            return
        try:
            event = segment.writer.append(draft)
        except DrillError as exc:
            self.journal_error = exc
            self.request_stop(f"the journal cannot be written: {exc.message}")
            return
        if not segment.first_utc:
            segment.first_utc = event.utc
        segment.last_utc = event.utc
        segment.digest.take(event)
        if sync:
            self.sync_wanted.set()

    def close_segment(self, how: SealedHow) -> Seal | None:
        """Close (fsync) and seal the open segment; None after a journal error (left to a restart)."""
        segment, self.segment = self.segment, None
        if segment is None:
            return None
        with self.sync_lock:
            try:
                segment.writer.close()
            except DrillError as exc:
                self.journal_error = self.journal_error or exc
        if self.journal_error is not None:
            return None
        sealed_utc = utc_iso(segment.clock.utc_at(segment.clock.monotonic_ns()))
        seal = Seal(
            file=segment.path.name,
            segment=segment.number,
            events=segment.writer.count,
            head=segment.writer.head,
            sha256=file_sha256(segment.path),
            first_utc=segment.first_utc,
            last_utc=segment.last_utc,
            sealed=how,
            sealed_utc=sealed_utc,
            previous_file=segment.previous_file,
            previous_head=segment.previous_head,
            digest=segment.digest.finish() if segment.writer.count else None,
        )
        write_seal(segment.path, seal, self.options.signer)
        self.log.info("segment sealed", file=seal.file, events=seal.events, head=seal.head, sealed=how)
        if self.on_sealed is not None:
            self.on_sealed(segment.path, seal)
        return seal

    def rotate(self) -> None:
        """Seal the open segment and open the next: all on the loop, so no event falls between."""
        segment = self.segment
        if segment is None:
            return
        previous_file, head, count = segment.path.name, segment.writer.head, segment.writer.count
        if self.close_segment("at rotation") is None:
            return
        self.open_segment(
            segment.number + 1, "rotation", Resume(segment.number + 1, previous_file, head, count)
        )

    # -- probes ------------------------------------------------------------------------------
    def on_observation(
        self, probe: ScheduledProbe, obs: Observation, scheduled_ns: int, started_ns: int, tick: int
    ) -> None:
        metrics = self.metrics
        for draft in self.monitor.observe(probe.asset, probe.probe.name, obs, started_ns, scheduled_ns, tick):
            state = draft.payload if isinstance(draft.payload, AssetState) else None
            self.emit_draft(draft, sync=state is not None)
            if state is not None and metrics is not None:
                metrics.asset_state(probe.asset, state.state == "up")
        if metrics is not None:
            metrics.observed(probe.asset, probe.probe.name, obs.ok, obs.latency_us)
        alerts, segment = self.alerts, self.segment
        if alerts is not None and segment is not None:
            at_ms = wall_ms(segment.clock, started_ns)
            alerts.observe(f"{probe.asset}/{probe.probe.name}", obs.ok, at_ms, obs.latency_us)

    def now_ms(self) -> int:
        clock = self.segment.clock if self.segment is not None else SystemClock()
        return wall_ms(clock, clock.monotonic_ns())

    def segment_view(self) -> tuple[int, int, str] | None:
        """The open segment for a /metrics scrape (another thread: reads only, each atomic)."""
        segment = self.segment
        if segment is None:
            return None
        return segment.number, segment.writer.count, segment.last_utc

    def on_overrun(self, probe: ScheduledProbe, missed: int, at_ns: int) -> None:
        self.emit(ProbeOverrun(probe.probe.name, missed), at_ns, asset=probe.asset)

    def on_abandoned(self, probe: ScheduledProbe, reason: str) -> None:
        self.emit(ProbeAbandoned(probe.probe.name, reason), SystemClock().monotonic_ns(), asset=probe.asset)

    # -- tasks -------------------------------------------------------------------------------
    async def rotations(self) -> None:
        """Rotate at every multiple of rotate_ms of UTC until stopped."""
        rotate = self.options.rotate_ms
        while not self.stop.is_set() and self.segment is not None:
            clock = self.segment.clock
            now = clock.monotonic_ns()
            at_ms = wall_ms(clock, now)
            boundary = now + ((at_ms // rotate + 1) * rotate - at_ms) * 1_000_000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((boundary - now) / 1e9):
                    await self.stop.wait()
            if not self.stop.is_set():
                self.rotate()

    async def syncer(self) -> None:
        """fsync after state changes, in a worker thread, coalesced (as RunSession.syncing does)."""
        while True:
            await self.sync_wanted.wait()
            self.sync_wanted.clear()
            segment = self.segment
            if segment is None:
                continue
            try:
                await asyncio.to_thread(self._sync, segment.writer)
            except DrillError as exc:
                self.journal_error = self.journal_error or exc
                self.request_stop(f"the journal cannot be synced: {exc.message}")

    def _sync(self, writer: JournalWriter) -> None:
        with self.sync_lock:
            writer.sync()  # a no-op once the writer is closed

    async def deadline(self, duration_ms: int) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration_ms / 1000):
                await self.stop.wait()
                return
        self.request_stop(f"--duration {format_duration_ms(duration_ms)} passed")


async def run_watch(
    playbook: Playbook,
    options: WatchOptions,
    *,
    install_signal_handlers: bool = True,
    on_sealed: SegmentCallback | None = None,
    stop: asyncio.Event | None = None,
) -> WatchOutcome:
    """Watch until SIGTERM/SIGINT, `stop`, or options.duration_ms; seal the last segment, return."""
    check_rotate(options.rotate_ms)
    secrets = secrets_for(playbook, options.env, options.variables)
    probes = watch_probes(playbook, secrets)
    if options.sla is not None:
        check_alerts(options.sla, playbook, secrets)
    plan = build_plan(playbook)
    make_folder(options.out)
    with folder_lock(options.out):
        start_clock = SystemClock()
        now_utc = utc_iso(start_clock.utc_now())
        watch = _Watch(playbook, plan, options, secrets, on_sealed)
        resumed = resume(options.out, playbook, options.signer, now_utc, watch.tracked)
        if watch.alerts is not None and resumed.number > 1:
            watch.alerts.seed(_earlier(options.out, watch.alerts.sla, utc_ms(now_utc)))
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, watch.request_stop, f"{sig.name} received")
        if options.metrics is not None:
            options.metrics.follow(watch.segment_view)
        try:
            return await _watch(watch, probes, resumed, stop)
        finally:
            if options.metrics is not None:
                options.metrics.follow(None)
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)


def _earlier(folder: Path, sla: Sla, now_ms: int) -> list[Timeline]:
    """What the folder already holds of the contract period a threshold judges (none without one)."""
    if not sla.thresholds:
        return []
    since = period_of(sla.window, now_ms).start_ms
    return watch_timelines_since(folder, sla.service_probes, since)


LOCK_FILE = ".watch.lock"


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """One watch per folder: a second one would seal the first one's open segment as if it had
    crashed. An flock, so a SIGKILLed watch never leaves a stale lock behind."""
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "?"
            raise DrillError(
                f"another drill watch (pid {holder}) is writing {folder}; refusing to start a second",
                hint="stop it first, or watch into another --out folder",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


async def _watch(
    watch: _Watch, probes: Sequence[ScheduledProbe], resumed: Resume, stop: asyncio.Event | None
) -> WatchOutcome:
    options = watch.options
    reason: SegmentReason = "restart" if resumed.number > 1 else "start"
    at = watch.open_segment(resumed.number, reason, resumed)
    watch.first_segment = resumed.number
    segment = watch.segment
    assert segment is not None
    now_utc = utc_iso(segment.clock.utc_at(at))
    started = _started(watch, now_utc)
    watch.emit(started, at, sync=True)
    gap = None
    if resumed.last_utc:
        duration = max(0, utc_ms(now_utc) - utc_ms(resumed.last_utc))
        gap = WatchGap(
            resumed.last_utc,
            now_utc,
            duration,
            resumed.last_utc_file,
            "no-data",
            reason="the watch was not running: nothing was observed, so nothing is known",
        )
        watch.emit(gap, at, sync=True)
    watch.log.info(
        "watching",
        playbook=watch.playbook.metadata.name,
        probes=len(probes),
        folder=str(options.out),
        segment=segment.path.name,
        rotate_ms=options.rotate_ms,
    )
    resources = Resources(probes)
    contexts = {
        (p.asset, p.probe.name): LiveProbeContext.for_probe(
            p, resources, SystemClock(), watch.emit_draft, watch.secrets.redact_text
        )
        for p in probes
    }
    for ctx in contexts.values():  # a watch compares no survivors: its canaries keep no acks
        canary.without_rpo(ctx)
    helpers = [asyncio.create_task(watch.rotations()), asyncio.create_task(watch.syncer())]
    if options.duration_ms is not None:
        helpers.append(asyncio.create_task(watch.deadline(options.duration_ms)))
    if stop is not None:
        helpers.append(asyncio.create_task(_relay(stop, watch)))
    pager = None
    if watch.alerts is not None and options.sla is not None:
        pager = AlertPager(
            watch.playbook, options.sla, watch.secrets, SystemClock(), watch.emit_draft, started.session
        )
        await pager.start()
        alerts, clock = watch.alerts, SystemClock()

        def on_edges(edges: Sequence[Edge]) -> None:
            journal_and_page(edges, watch.emit_draft, pager, clock)

        helpers.append(asyncio.create_task(evaluate_every(alerts, watch.now_ms, on_edges, watch.stop)))
    try:
        await run_probe_loops(
            probes,
            contexts,
            SystemClock(),
            watch.on_observation,
            watch.on_overrun,
            watch.stop,
            on_abandoned=watch.on_abandoned,
        )
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if pager is not None:
            await pager.close()
        await resources.aclose()
        last = watch.segment.number if watch.segment is not None else watch.first_segment
        if watch.segment is not None:
            watch.emit(WatchStopped(watch.stop_reason or "stopped"), watch.segment.clock.monotonic_ns())
            watch.close_segment("at stop")
    error = watch.journal_error.message if watch.journal_error is not None else ""
    return WatchOutcome(options.out, watch.first_segment, last, watch.stop_reason, resumed, gap, error)


async def _relay(stop: asyncio.Event, watch: _Watch) -> None:
    await stop.wait()
    watch.request_stop("stopped by the caller")


def _started(watch: _Watch, now_utc: str) -> WatchStarted:
    playbook = watch.playbook
    return WatchStarted(
        session=f"{now_utc[:19].replace('-', '').replace(':', '')}Z-{uuid.uuid4().hex[:8]}",
        playbook=PlaybookRef(playbook.metadata.name, playbook.sha256, playbook.source),
        user=watch.options.operator or operator_identity(),
        host=_host(),
        tool_version=__version__,
        started_utc=now_utc,
        format=SEAL_FORMAT,
    )


def wall_ms(clock: SystemClock, mono_ns: int) -> int:
    """UTC epoch ms of a monotonic instant, by the clock's anchor (integers: no datetime per call)."""
    return (clock.anchor_wall_ns + mono_ns - clock.anchor_mono_ns) // 1_000_000


def _host() -> str:
    import socket

    return socket.gethostname()


def make_folder(folder: Path) -> None:
    """The watch folder, created if missing; a file in the way is bad input (exit 2)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--out {folder}: a file is in the way, not a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create the watch folder {folder}: {exc.strerror or exc}") from None
