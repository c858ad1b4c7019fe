"""Contact chains during a run: page when the disaster is declared (or an asset goes down),
serve acknowledgements, and wait for the chains to answer before the run ends.

It is a sink like the live display: it reacts to journal events and never drives the scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from drill.clock import Clock
from drill.evidence.events import (
    AssetState,
    Event,
    EventDraft,
    FailureInjected,
    PageAcked,
    PageSent,
    WaitEnded,
    WaitStarted,
)
from drill.log import get_logger
from drill.notify.ack import ACK_URL_FILE, AckDesk, AckServer, Emit
from drill.notify.base import NotifyContext, RetryPolicy, warm_up
from drill.notify.escalation import PageAbout, affected_chains, escalate
from drill.playbook.model import Playbook
from drill.run.waits import first_of
from drill.secrets import Secrets


class Paging:
    """Pages each affected chain once per run; an async context manager around the run."""

    def __init__(
        self,
        playbook: Playbook,
        secrets: Secrets,
        clock: Clock,
        emit: Emit,
        *,
        run_id: str,
        run_dir: Path,
        ack_host: str = "127.0.0.1",
        ack_port: int = 0,
        public_url: str = "",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.playbook, self.secrets, self.clock, self.emit = playbook, secrets, clock, emit
        self.run_id, self.run_dir = run_id, run_dir
        self.retry = retry or RetryPolicy()
        self.enabled = bool(playbook.chains) and playbook.settings.page_on != "never"
        self.desk = AckDesk(clock, emit)
        self.server = AckServer(self.desk, ack_host, ack_port, public_url)
        self.paged: set[str] = set()
        self.triggered_ns: dict[str, int] = {}  # chain -> the instant its page was triggered
        self.page_chains: dict[str, tuple[str, ...]] = {}  # page id -> the chains it pages
        self.acked: set[str] = set()  # chains with an acknowledgement
        self.tasks: list[asyncio.Task[Any]] = []
        self.injected = False

    async def __aenter__(self) -> Paging:
        if self.enabled:
            await warm_up()
            await self.server.start()
            try:
                self.server.write_url_file(self.run_dir)
            except OSError as exc:  # a full disk, say: pages still carry their links
                get_logger("drill.run").warning(
                    f"cannot write {self.run_dir / ACK_URL_FILE} ({exc.strerror or exc}):"
                    f" `drill ack --run-dir` will not find the endpoint; links in pages still work"
                )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.enabled:
            self.desk.close()
            await self.server.close()
            (self.run_dir / ACK_URL_FILE).unlink(missing_ok=True)  # no stale endpoint for `drill ack`

    def sink(self, event: Event) -> None:
        """React to the journal: the declared disaster, or an asset going down after it."""
        if not self.enabled:
            return
        policy = self.playbook.settings.page_on
        payload = event.payload
        if isinstance(payload, PageSent):
            self.page_chains[payload.page_id] = payload.chains or (payload.chain,)
        elif isinstance(payload, PageAcked):
            self.acked.update(self.page_chains.get(payload.page_id, (payload.chain,)))
        elif isinstance(payload, FailureInjected):
            self.injected = True
            if policy == "declare":
                self._page([a.id for a in self.playbook.assets], event.mono_ns)
        elif (
            isinstance(payload, AssetState)
            and policy == "asset-down"
            and self.injected
            and payload.state == "down"
        ):
            self._page([event.asset or ""], payload.at_mono_ns)

    def _page(self, asset_ids: list[str], trigger_ns: int) -> None:
        affected = [a for a in affected_chains(self.playbook, asset_ids) if a.chain.name not in self.paged]
        if not affected:
            return
        self.paged.update(a.chain.name for a in affected)
        self.triggered_ns.update((a.chain.name, trigger_ns) for a in affected)
        ctx = NotifyContext(clock=self.clock, retry=self.retry, redact=self.secrets.redact_text)
        coro = escalate(
            affected,
            trigger_mono_ns=trigger_ns,
            about=PageAbout(drill=self.playbook.metadata.name, run_id=self.run_id),
            desk=self.desk,
            ctx=ctx,
            emit=self.emit,
            secrets=self.secrets,
        )
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name="escalation"))

    def unacknowledged(self) -> list[str]:
        return sorted(self.paged - self.acked)

    async def drain(self, cap_ms: int | None, stop: asyncio.Event) -> None:
        """Wait, visibly, until every paged chain has acknowledged or its respond_within has passed
        (then its verdict is decided), at most cap_ms, or until the operator ends the wait (stop)."""
        pending = [t for t in self.tasks if not t.done()]
        waiting = self.unacknowledged()
        if not pending or not waiting:
            return
        decided_ms = self._decided_in_ms()
        bound_ms = decided_ms if cap_ms is None else min(decided_ms, cap_ms)
        now = self.clock.monotonic_ns()
        if stop.is_set():  # the operator already said stop: record who had not answered, wait not
            left = f"not acknowledged: {', '.join(waiting)}"
            self.emit(EventDraft(WaitEnded("acknowledgements", "ended by the operator", left), now))
            return
        detail = f"from chains {', '.join(waiting)}; Ctrl-C ends the wait"
        self.emit(EventDraft(WaitStarted("acknowledgements", bound_ms, detail), now))
        await first_of(asyncio.wait(pending), stop.wait(), timeout_s=bound_ms / 1000)
        missing = self.unacknowledged()
        if not missing:
            outcome = "done"
        elif stop.is_set():
            outcome = "ended by the operator"
        else:  # the cap cut it short, or every respond_within passed and the verdict is decided
            outcome = "timed out" if bound_ms < decided_ms else "respond_within passed"
        left = f"not acknowledged: {', '.join(missing)}" if missing else ""
        self.emit(EventDraft(WaitEnded("acknowledgements", outcome, left), self.clock.monotonic_ns()))

    def _decided_in_ms(self) -> int:
        """From now until the last paged chain's respond_within has passed (or, for a chain with
        none, its whole escalation has run), never beyond the escalation itself."""
        now = self.clock.monotonic_ns()
        escalation = self._escalation_ms()
        ends = []
        for chain in self.playbook.chains:
            if chain.name not in self.paged or chain.name in self.acked:
                continue
            target = chain.respond_within_ms if chain.respond_within_ms is not None else escalation
            ends.append(self.triggered_ns.get(chain.name, now) + min(target, escalation) * 1_000_000)
        return max(0, (max(ends, default=now) - now) // 1_000_000) + 1000

    def _escalation_ms(self) -> int:
        per_contact = self.retry.deadline_ms
        chains = [c for c in self.playbook.chains if c.name in self.paged]
        return max((sum(x.ack_within_ms + per_contact for x in c.contacts) for c in chains), default=0)
