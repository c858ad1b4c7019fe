"""Escalation: page each affected chain's contacts in order until someone acknowledges.

One call of `escalate` is one drill event (a declared disaster, or an asset going down):
- every chain starts with its first contact at the trigger instant; without an acknowledgement,
  the next contact is paged exactly when the previous one's ack_within runs out (deadlines are
  computed from scheduled instants, so they never drift); a chain whose last contact stays
  silent is exhausted (chain.exhausted);
- a person (same name, via and address) who is in several affected chains is paged once, with
  every asset of those chains listed; their acknowledgement answers for all of those chains;
- a page that cannot be delivered (after bounded retries) is recorded with its reason and, by
  default, the chain moves on to the next contact at once instead of waiting for a reply that
  cannot come;
- time-to-acknowledge = ack instant - page instant, both monotonic;
- a PagerDuty page acknowledged through drill is resolved there (resolve_on_ack).

Acks may still arrive after `escalate` returns (a late reply after exhaustion): they are recorded
as page.acked as long as the AckDesk is open, so `emit` must stay usable until it is closed.
Notifiers take `params` with secret references; they are resolved here, at page time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from drill.clock import Clock
from drill.errors import DrillError
from drill.evidence.events import ChainExhausted, EventDraft, PageAcked, PageSent
from drill.notify.ack import AckDesk, AckServer, Emit
from drill.notify.base import (
    Message,
    NotifierInvalid,
    NotifierKind,
    NotifyContext,
    RetryPolicy,
    SendResult,
    warm_up,
)
from drill.notify.registry import NOTIFIER_KINDS
from drill.secrets import Secrets

_MS = 1_000_000
DEFAULT_RETRY = RetryPolicy()
DECLARED_ASK = "A disaster has been declared in this drill: acknowledge, then join the recovery."
CONTACT_DRILL_ASK = "This is a contact-chain drill (no system is affected): please acknowledge this page."


# The playbook's ContactChain / Contact / Playbook satisfy these; notify sits below the playbook
# layer, so it names only the shape it reads.
class ContactLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def via(self) -> str: ...
    @property
    def ack_within_ms(self) -> int: ...
    @property
    def params(self) -> Mapping[str, Any]: ...


class ChainLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def contacts(self) -> Sequence[ContactLike]: ...
    @property
    def respond_within_ms(self) -> int | None: ...


class AssetLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def contact_chain(self) -> str: ...


class MetadataLike(Protocol):
    @property
    def name(self) -> str: ...


class PlaybookLike(Protocol):
    @property
    def metadata(self) -> MetadataLike: ...
    @property
    def chains(self) -> Sequence[ChainLike]: ...
    @property
    def assets(self) -> Sequence[AssetLike]: ...


@dataclass(frozen=True, slots=True)
class Affected:
    """One chain to page in this event, and the assets it answers for."""

    chain: ChainLike
    assets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PageAbout:
    """What every page of this event says besides its assets."""

    drill: str
    run_id: str
    asked: str = DECLARED_ASK
    severity: Literal["critical", "error", "warning", "info"] = "critical"


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One page as sent, and its acknowledgement if one came while escalating."""

    page_id: str
    chain: str  # the chain that reached the person first
    chains: tuple[str, ...]  # every affected chain this person answers for
    contact: str
    via: str
    assets: tuple[str, ...]
    ack_within_ms: int
    sent_mono_ns: int
    ok: bool
    reason: str
    attempts: int
    acked_mono_ns: int | None = None
    by: str = ""

    @property
    def ack_ms(self) -> int | None:
        return None if self.acked_mono_ns is None else (self.acked_mono_ns - self.sent_mono_ns) // _MS


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    """How one chain ended: acknowledged (by which page, when) or exhausted."""

    chain: str
    assets: tuple[str, ...]
    respond_within_ms: int | None
    acked_mono_ns: int | None
    page_id: str  # the acknowledged page ('' when exhausted)
    first_ack_ms: int | None  # from the trigger instant
    exhausted: bool


@dataclass(frozen=True, slots=True)
class EscalationOutcome:
    """Everything one escalation did; the journal has the same facts as events."""

    trigger_mono_ns: int
    chains: tuple[ChainOutcome, ...]
    pages: tuple[PageRecord, ...]


def person_key(contact: ContactLike) -> str:
    """Who a contact is: name + via + address (to / url / routing_key), before secrets are resolved."""
    params = contact.params
    address = {k: params[k] for k in ("to", "url", "routing_key") if k in params}
    return json.dumps([contact.name, contact.via, address], sort_keys=True, default=str)


def affected_chains(playbook: PlaybookLike, asset_ids: Sequence[str] | None = None) -> list[Affected]:
    """Group assets by contact chain (all assets when asset_ids is None), in playbook order.

    With asset_ids=None every chain is included, even one no asset names (a contact drill).
    """
    wanted = None if asset_ids is None else set(asset_ids)
    by_chain: dict[str, list[str]] = {}
    for asset in playbook.assets:
        if asset.contact_chain and (wanted is None or asset.id in wanted):
            by_chain.setdefault(asset.contact_chain, []).append(asset.id)
    return [
        Affected(chain, tuple(by_chain.get(chain.name, ())))
        for chain in playbook.chains
        if wanted is None or chain.name in by_chain
    ]


def check_contacts(
    chains: Sequence[ChainLike], secrets: Secrets, kinds: Mapping[str, NotifierKind[Any]] = NOTIFIER_KINDS
) -> None:
    """Resolve and parse every contact now, so a bad one stops the run before anything happens.

    Raises SecretUnresolved or NotifierInvalid (DrillErrors) naming the chain and contact.
    """
    for chain in chains:
        for contact in chain.contacts:
            _spec_for(contact, chain.name, secrets, kinds)


def _spec_for(
    contact: ContactLike, chain: str, secrets: Secrets, kinds: Mapping[str, NotifierKind[Any]]
) -> tuple[NotifierKind[Any], Any]:
    where = f"contacts.chains.{chain}.{contact.name}"
    kind = kinds.get(contact.via)
    if kind is None:
        raise NotifierInvalid(
            f"{where}: unknown via {contact.via!r}", hint=f"one of: {', '.join(sorted(kinds))}"
        )
    params = secrets.resolve_params(contact.params, where)
    try:
        return kind, kind.parse(params)
    except NotifierInvalid as exc:
        raise NotifierInvalid(f"{where}: {exc.message}", hint=exc.hint) from None


@dataclass(slots=True)
class _Page:
    page_id: str
    contact: ContactLike
    chain: str
    chains: tuple[str, ...]
    assets: tuple[str, ...]
    due_ns: int  # when escalation called for it (trigger, or the previous contact's deadline)
    sent_ns: int  # when it actually went out (due_ns plus event-loop lag)
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    result: SendResult | None = None
    acked_ns: int | None = None
    by: str = ""

    def record(self) -> PageRecord:
        result = self.result or SendResult(False, "not sent", 0)
        return PageRecord(
            self.page_id,
            self.chain,
            self.chains,
            self.contact.name,
            self.contact.via,
            self.assets,
            self.contact.ack_within_ms,
            self.sent_ns,
            result.ok,
            result.reason,
            result.attempts,
            self.acked_ns,
            self.by,
        )


@dataclass(slots=True)
class _ChainState:
    affected: Affected
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    acked_ns: int | None = None
    page_id: str = ""
    exhausted: bool = False


class _Escalation:
    def __init__(
        self,
        affected: Sequence[Affected],
        trigger_ns: int,
        about: PageAbout,
        desk: AckDesk,
        ctx: NotifyContext,
        emit: Emit,
        secrets: Secrets,
        kinds: Mapping[str, NotifierKind[Any]],
        escalate_on_failure: bool,
        resolve_on_ack: bool,
    ) -> None:
        self.trigger_ns = trigger_ns
        self.about = about
        self.desk = desk
        self.ctx = ctx
        self.clock: Clock = ctx.clock
        self.emit = emit
        self.secrets = secrets
        self.kinds = kinds
        self.escalate_on_failure = escalate_on_failure
        self.resolve_on_ack = resolve_on_ack
        self.tg: asyncio.TaskGroup | None = None
        self.chains = {a.chain.name: _ChainState(a) for a in affected}
        self.pages: dict[str, _Page] = {}  # by person_key
        self.order: list[_Page] = []
        # every affected chain a person belongs to, in playbook order
        self.memberships: dict[str, list[str]] = {}
        for a in affected:
            for contact in a.chain.contacts:
                names = self.memberships.setdefault(person_key(contact), [])
                if a.chain.name not in names:
                    names.append(a.chain.name)

    async def run(self) -> EscalationOutcome:
        try:
            async with asyncio.TaskGroup() as tg:
                self.tg = tg
                for state in self.chains.values():
                    tg.create_task(self._run_chain(tg, state))
        except asyncio.CancelledError:
            # The drill ended (or was interrupted) with pages still open: withdraw them where the
            # channel can, so nobody is paged on for a drill that is over.
            await self._resolve_open()
            raise
        finally:
            self.tg = None
        return self.outcome()

    async def _resolve_open(self) -> None:
        open_pages = [
            p
            for p in self.order
            if p.acked_ns is None and p.contact.via == "pagerduty" and p.delivered.is_set()
        ]
        if open_pages:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESOLVE_BOUND_S):
                    await asyncio.gather(*(self._resolve(p) for p in open_pages), return_exceptions=True)

    def outcome(self) -> EscalationOutcome:
        chains = tuple(
            ChainOutcome(
                name,
                s.affected.assets,
                s.affected.chain.respond_within_ms,
                s.acked_ns,
                s.page_id,
                None if s.acked_ns is None else (s.acked_ns - self.trigger_ns) // _MS,
                s.exhausted,
            )
            for name, s in self.chains.items()
        )
        return EscalationOutcome(self.trigger_ns, chains, tuple(p.record() for p in self.order))

    async def _run_chain(self, tg: asyncio.TaskGroup, state: _ChainState) -> None:
        chain = state.affected.chain
        at = self.trigger_ns
        await self.clock.sleep_until(at)
        for contact in chain.contacts:
            if state.acked.is_set():
                return
            page = self._page(tg, contact, chain.name, at)
            deadline = page.due_ns + contact.ack_within_ms * _MS  # from when it was due: no drift
            outcome = await self._wait(state, page, deadline)
            if outcome == "acked":
                return
            # a shared person's page may have run out before this chain reached them: never go
            # back in time (the next contact keeps its full ack_within)
            at = max(deadline, at) if outcome == "timeout" else max(self.clock.monotonic_ns(), at)
        if state.acked.is_set():
            return
        state.exhausted = True
        exhausted = ChainExhausted(
            chain.name, tuple(state.affected.assets), len(chain.contacts), self.trigger_ns
        )
        self.emit(EventDraft(exhausted, self.clock.monotonic_ns()))

    async def _wait(self, state: _ChainState, page: _Page, deadline: int) -> str:
        """Wait for the chain's ack, the deadline, or (optionally) the page's delivery failure."""
        waiters = {
            asyncio.ensure_future(state.acked.wait()): "acked",
            asyncio.ensure_future(self.clock.sleep_until(deadline)): "timeout",
        }
        if self.escalate_on_failure:
            waiters[asyncio.ensure_future(page.failed.wait())] = "failed"
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if state.acked.is_set():
            return "acked"
        return "timeout" if any(waiters[t] == "timeout" for t in done) else "failed"

    def _page(self, tg: asyncio.TaskGroup, contact: ContactLike, chain: str, at: int) -> _Page:
        """The person's page in this event: the existing one, or a new one sent now."""
        key = person_key(contact)
        existing = self.pages.get(key)
        if existing is not None:
            return existing
        chains = tuple(self.memberships.get(key, [chain]))
        assets: list[str] = []
        for name in chains:
            assets += [a for a in self.chains[name].affected.assets if a not in assets]
        page = _Page(self.desk.next_page_id(), contact, chain, chains, tuple(assets), due_ns=at, sent_ns=at)
        self.pages[key] = page
        self.order.append(page)
        token = self.desk.issue(page.page_id, lambda ns, by: self._acked(page, ns, by))
        # the instant the page goes out is now; `at` is when it was due (equal unless the loop lagged)
        page.sent_ns = max(at, self.clock.monotonic_ns())
        tg.create_task(self._deliver(page, token))
        return page

    async def _deliver(self, page: _Page, token: str) -> None:
        contact = page.contact
        message = Message(
            drill=self.about.drill,
            run_id=self.about.run_id,
            page_id=page.page_id,
            chain=", ".join(page.chains),
            contact=contact.name,
            assets=page.assets,
            asked=self.about.asked,
            ack_url=self.desk.url_for(token),
            ack_token=token,
            severity=self.about.severity,
        )
        try:
            kind, spec = _spec_for(contact, page.chain, self.secrets, self.kinds)
        except DrillError as exc:
            result = SendResult(False, self.ctx.redact(exc.message), 0)
        else:
            result = await kind.send(spec, message, self.ctx)
            if token in result.reason:  # a receiver may echo the page back in its error body
                result = SendResult(result.ok, result.reason.replace(token, "«token»"), result.attempts)
        page.result = result
        page.delivered.set()
        if not result.ok:
            page.failed.set()
        done_ns = self.clock.monotonic_ns()
        sent = PageSent(
            page_id=page.page_id,
            chain=page.chain,
            contact=contact.name,
            via=contact.via,
            assets=tuple(page.assets),
            ok=result.ok,
            reason=result.reason,
            attempts=result.attempts,
            ack_within_ms=contact.ack_within_ms,
            chains=tuple(page.chains),
            delivery_ms=(done_ns - page.sent_ns) // _MS,
            trigger_mono_ns=self.trigger_ns,
        )
        # stamped with the instant the page went out: time-to-ack counts from there
        self.emit(EventDraft(sent, page.sent_ns))

    def _acked(self, page: _Page, ack_ns: int, by: str) -> None:
        page.acked_ns, page.by = ack_ns, by
        ack_ms = (ack_ns - page.sent_ns) // _MS
        for name in page.chains:
            state = self.chains[name]
            if not state.acked.is_set() and not state.exhausted:
                state.acked_ns, state.page_id = ack_ns, page.page_id
                state.acked.set()
        acked = PageAcked(
            page_id=page.page_id,
            chain=page.chain,
            contact=page.contact.name,
            via=page.contact.via,
            by=by,
            ack_ms=ack_ms,
            ack_within_ms=page.contact.ack_within_ms,
            met=ack_ms <= page.contact.ack_within_ms,
            since_trigger_ms=(ack_ns - self.trigger_ns) // _MS,
            chains=tuple(page.chains),
        )
        self.emit(EventDraft(acked, ack_ns))
        if self.resolve_on_ack and page.contact.via == "pagerduty" and self.tg is not None:
            with contextlib.suppress(RuntimeError):  # the group is just closing: too late to resolve
                self.tg.create_task(self._resolve(page))

    async def _resolve(self, page: _Page) -> None:
        """Resolve an acknowledged PagerDuty page, so PagerDuty's own escalation stops too."""
        try:
            kind, spec = _spec_for(page.contact, page.chain, self.secrets, self.kinds)
        except DrillError:
            return
        message = Message(
            drill=self.about.drill,
            run_id=self.about.run_id,
            page_id=page.page_id,
            chain=", ".join(page.chains),
            contact=page.contact.name,
            assets=page.assets,
            asked=self.about.asked,
            action="resolve",
        )
        await kind.send(spec, message, self.ctx)


RESOLVE_BOUND_S = 3.0  # withdrawing open pages must not hold up the end of a drill


async def escalate(
    affected: Sequence[Affected],
    *,
    trigger_mono_ns: int,
    about: PageAbout,
    desk: AckDesk,
    ctx: NotifyContext,
    emit: Emit,
    secrets: Secrets,
    kinds: Mapping[str, NotifierKind[Any]] = NOTIFIER_KINDS,
    escalate_on_failure: bool = True,
    resolve_on_ack: bool = True,
) -> EscalationOutcome:
    """Page every affected chain from trigger_mono_ns on; return when each is acked or exhausted.

    Emits page.sent, page.acked and chain.exhausted through `emit`; never raises for a failed
    delivery or a bad contact (both are recorded as a failed page). Cancelling it cancels
    every pending page and wait, and resolves each delivered, unacknowledged PagerDuty page. escalate_on_failure: an undeliverable page moves the chain on
    at once instead of waiting out ack_within. resolve_on_ack: a PagerDuty page acknowledged
    while this runs is resolved (same dedup_key), so PagerDuty stops escalating it too.
    """
    await warm_up()
    run = _Escalation(
        affected, trigger_mono_ns, about, desk, ctx, emit, secrets, kinds, escalate_on_failure, resolve_on_ack
    )
    return await run.run()


async def run_contact_drill(
    playbook: PlaybookLike,
    secrets: Secrets,
    clock: Clock,
    emit: Emit,
    *,
    run_id: str,
    run_dir: Path | None = None,
    ack_host: str = "127.0.0.1",
    ack_port: int = 0,
    public_url: str = "",
    retry: RetryPolicy = DEFAULT_RETRY,
    asked: str = CONTACT_DRILL_ASK,
    kinds: Mapping[str, NotifierKind[Any]] = NOTIFIER_KINDS,
    on_ready: Callable[[AckServer], None] | None = None,
) -> EscalationOutcome:
    """A contact-chain-only drill: serve acks, page every chain now, wait for acks or exhaustion.

    Checks every contact first (raises SecretUnresolved / NotifierInvalid before anything is
    sent). Writes run_dir/ack.url when run_dir is given. `on_ready(server)` (optional, sync) is
    called once the endpoint listens, e.g. to show its URL. The ack endpoint closes on return.
    """
    check_contacts(playbook.chains, secrets, kinds)
    await warm_up()
    desk = AckDesk(clock, emit)
    ctx = NotifyContext(clock=clock, retry=retry, redact=lambda text: str(secrets.redact(text)))
    about = PageAbout(drill=playbook.metadata.name, run_id=run_id, asked=asked, severity="info")
    async with AckServer(desk, ack_host, ack_port, public_url) as server:
        if run_dir is not None:
            server.write_url_file(run_dir)
        if on_ready is not None:
            on_ready(server)
        try:
            return await escalate(
                affected_chains(playbook),
                trigger_mono_ns=clock.monotonic_ns(),
                about=about,
                desk=desk,
                ctx=ctx,
                emit=emit,
                secrets=secrets,
                kinds=kinds,
            )
        finally:
            desk.close()
