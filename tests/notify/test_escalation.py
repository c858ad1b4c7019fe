"""Escalation against real receivers and a real ack endpoint, with an acking bot as ground truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from drill.cli.ack import ack
from drill.clock import FakeClock, SystemClock, monotonic_ns
from drill.evidence.events import ChainExhausted, PageAcked, PageSent
from drill.evidence.snapshot import Metadata
from drill.notify.ack import AckDesk, AckServer
from drill.notify.base import Message, NotifierKind, NotifyContext, RetryPolicy, SendResult, warm_up
from drill.notify.escalation import (
    Affected,
    EscalationOutcome,
    PageAbout,
    affected_chains,
    escalate,
    run_contact_drill,
)
from drill.playbook.model import Asset, Contact, ContactChain, Playbook
from drill.secrets import Secrets
from tests.notify.conftest import Emitted, Journal, Received, Receiver

MS = 1_000_000
RETRY = RetryPolicy(attempts=2, deadline_ms=800, attempt_timeout_ms=500, wait_ms=20)


class Bot:
    """Acknowledges pages arriving on chosen paths after a chosen delay; records when it acked."""

    def __init__(self, receiver: Receiver, delays: dict[str, float], *, via_cli: Path | None = None) -> None:
        self.delays = delays
        self.via_cli = via_cli
        self.acked_ns: dict[str, int] = {}  # path -> instant the ack request went out
        self.tasks: list[asyncio.Task[None]] = []
        receiver.on_request = self.seen

    def seen(self, got: Received) -> None:
        if got.path in self.delays:
            self.tasks.append(asyncio.create_task(self.ack(got)))

    async def ack(self, got: Received) -> None:
        body = got.json()
        if body.get("event_action") == "resolve":
            return
        body = body["payload"]["custom_details"] if "payload" in body else body  # PagerDuty
        await asyncio.sleep(self.delays[got.path])
        self.acked_ns[got.path] = monotonic_ns()
        if self.via_cli is not None:
            token = body["ack_command"].split()[-1]
            args = ["ack", token, "--run-dir", str(self.via_cli), "--by", "bot"]
            result = await asyncio.to_thread(CliRunner().invoke, ack, args[1:])
            assert result.exit_code == 0, result.output
            return
        async with httpx.AsyncClient(trust_env=False, verify=False) as client:  # plain http, no CA load
            response = await client.post(body["ack_url"], data={"by": f"bot{got.path}"})
        assert response.status_code == 200


@pytest.fixture
async def desk_server(journal: Journal) -> AsyncIterator[AckServer]:
    desk = AckDesk(SystemClock(), journal)
    async with AckServer(desk) as server:
        yield server


def hook(receiver: Receiver, name: str, ack_within_ms: int, path: str = "") -> Contact:
    return Contact(name=name, via="webhook", ack_within_ms=ack_within_ms, params={"url": receiver.url + path})


def chain(name: str, *contacts: Contact, respond_within_ms: int | None = None) -> ContactChain:
    return ContactChain(name=name, contacts=contacts, respond_within_ms=respond_within_ms)


async def run(
    affected: list[Affected], server: AckServer, journal: Journal, *, escalate_on_failure: bool = True
) -> tuple[int, EscalationOutcome]:
    clock = SystemClock()
    await warm_up()  # as the runner does at start-up, before any trigger
    trigger = clock.monotonic_ns()
    outcome = await escalate(
        affected,
        trigger_mono_ns=trigger,
        about=PageAbout(drill="payments-q4", run_id="run-1"),
        desk=server.desk,
        ctx=NotifyContext(clock=clock, retry=RETRY),
        emit=journal,
        secrets=Secrets(env={}),
        escalate_on_failure=escalate_on_failure,
    )
    return trigger, outcome


def sent(journal: Journal) -> dict[str, Emitted[PageSent]]:
    return {e.payload.contact: e for e in journal.of(PageSent)}


async def test_next_contact_is_paged_exactly_when_ack_within_runs_out(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    bot = Bot(receiver, {"/b": 0.2})
    oncall = chain(
        "oncall",
        hook(receiver, "Ana", 400, "/a"),
        hook(receiver, "Ben", 400, "/b"),
        hook(receiver, "Cid", 400, "/c"),
        respond_within_ms=900,
    )
    trigger, outcome = await run([Affected(oncall, ("payments-api",))], desk_server, journal)
    await asyncio.gather(*bot.tasks)

    pages = sent(journal)
    assert set(pages) == {"Ana", "Ben"}  # Ben acked, so Cid was never paged
    assert receiver.on("/c") == []
    ana, ben = pages["Ana"], pages["Ben"]
    assert 0 <= ana.mono_ns - trigger < 50 * MS
    # Ben's page goes out when Ana's 400 ms run out: deadlines are computed from due instants
    assert 0 <= ben.mono_ns - (trigger + 400 * MS) < 50 * MS
    # ... and the receiver (ground truth) saw the two pages 400 ms apart
    gap_ms = (receiver.on("/b")[0].at_ns - receiver.on("/a")[0].at_ns) / MS
    assert abs(gap_ms - 400) < 50
    assert ben.payload.ack_within_ms == 400 and ben.payload.ok and ben.payload.attempts == 1

    [acked] = journal.of(PageAcked)
    assert acked.payload.page_id == ben.payload.page_id and acked.payload.by == "bot/b"
    # measured time-to-ack matches the bot's delay (200 ms) within 100 ms ...
    assert abs(acked.payload.ack_ms - 200) <= 100
    # ... and the bot's own clock: ack instant - page instant
    truth_ms = (bot.acked_ns["/b"] - ben.mono_ns) / MS
    assert abs(acked.payload.ack_ms - truth_ms) < 20
    assert acked.payload.met is True and acked.payload.ack_within_ms == 400

    [result] = outcome.chains
    assert (result.exhausted, result.page_id, result.respond_within_ms) == (False, ben.payload.page_id, 900)
    assert result.first_ack_ms is not None and abs(result.first_ack_ms - 600) <= 100
    assert journal.of(ChainExhausted) == []
    assert [p.contact for p in outcome.pages] == ["Ana", "Ben"]
    assert outcome.pages[1].ack_ms == acked.payload.ack_ms


async def test_silent_chain_is_exhausted_when_the_last_ack_within_runs_out(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    oncall = chain("oncall", hook(receiver, "Ana", 300, "/a"), hook(receiver, "Ben", 300, "/b"))
    trigger, outcome = await run([Affected(oncall, ("db",))], desk_server, journal)

    [exhausted] = journal.of(ChainExhausted)
    assert exhausted.payload.chain == "oncall" and exhausted.payload.assets == ("db",)
    assert 0 <= exhausted.mono_ns - (trigger + 600 * MS) < 50 * MS
    assert outcome.chains[0].exhausted and outcome.chains[0].first_ack_ms is None
    assert len(receiver.requests) == 2

    # a late ack (after exhaustion) is still recorded, as missed; the chain stays exhausted
    late = receiver.on("/a")[0].json()["ack_url"]
    async with httpx.AsyncClient(trust_env=False, verify=False) as client:
        assert (await client.post(late)).status_code == 200
    [acked] = journal.of(PageAcked)
    assert acked.payload.contact == "Ana" and acked.payload.met is False and acked.payload.ack_ms >= 600


async def test_failing_receiver_is_retried_within_bound_and_escalation_goes_on(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    receiver.statuses = [500, 500]  # Ana's two attempts fail; Ben's page is answered 200
    bot = Bot(receiver, {"/b": 0.05})
    oncall = chain("oncall", hook(receiver, "Ana", 400, "/a"), hook(receiver, "Ben", 400, "/b"))
    trigger, outcome = await run([Affected(oncall, ("api",))], desk_server, journal)
    await asyncio.gather(*bot.tasks)

    pages = sent(journal)
    ana, ben = pages["Ana"], pages["Ben"]
    assert (ana.payload.ok, ana.payload.attempts, ana.payload.reason) == (False, 2, "HTTP 500: ok")
    assert len(receiver.on("/a")) == 2  # bounded: exactly the allowed attempts
    # an undeliverable page does not wait out its ack_within: Ben is paged as soon as Ana's failed
    assert ben.mono_ns - trigger < 300 * MS
    assert ben.mono_ns >= ana.mono_ns + ana.payload.delivery_ms * MS
    assert outcome.chains[0].page_id == ben.payload.page_id and not outcome.chains[0].exhausted


async def test_hanging_receiver_does_not_hold_up_escalation(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    receiver.hang = True
    oncall = chain("oncall", hook(receiver, "Ana", 300, "/a"), hook(receiver, "Ben", 300, "/b"))
    trigger, outcome = await run(
        [Affected(oncall, ("api",))], desk_server, journal, escalate_on_failure=False
    )
    pages = sent(journal)
    ana, ben = pages["Ana"], pages["Ben"]
    # with escalate_on_failure=False the chain waits ack_within even though Ana's page hangs
    assert 0 <= ben.mono_ns - (trigger + 300 * MS) < 50 * MS
    assert ana.payload.ok is False and ana.payload.reason.startswith("gave up after 800 ms")
    assert ana.payload.attempts == 2 and ana.payload.delivery_ms < 1000
    assert outcome.chains[0].exhausted


async def test_person_in_two_chains_is_paged_once_with_every_asset(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    bot = Bot(receiver, {"/ana": 0.1})
    ana = hook(receiver, "Ana", 400, "/ana")
    web = chain("web", ana, hook(receiver, "Ben", 400, "/ben"))
    data = chain("data", hook(receiver, "Cid", 400, "/cid"), hook(receiver, "Ana", 300, "/ana"))
    _trigger, outcome = await run(
        [Affected(web, ("api", "cdn")), Affected(data, ("db",))], desk_server, journal
    )
    await asyncio.gather(*bot.tasks)

    [page] = receiver.on("/ana")  # once, although both chains name her
    assert page.json()["assets"] == ["api", "cdn", "db"]
    assert page.json()["chain"] == "web, data"
    assert sorted(sent(journal)) == ["Ana", "Cid"]  # Ben never paged: Ana answered for "web"
    assert sent(journal)["Ana"].payload.chains == ("web", "data")
    [acked] = journal.of(PageAcked)
    assert acked.payload.chains == ("web", "data")
    by_name = {c.chain: c for c in outcome.chains}
    assert by_name["web"].page_id == by_name["data"].page_id == acked.payload.page_id
    assert not by_name["data"].exhausted and receiver.on("/ben") == []


async def test_pagerduty_page_acked_through_drill_is_resolved(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    receiver.status = 202
    bot = Bot(receiver, {"/v2/enqueue": 0.05})
    pd = Contact(
        name="Ana",
        via="pagerduty",
        ack_within_ms=400,
        params={"url": f"{receiver.url}/v2/enqueue", "routing_key": "${env:PD_KEY}"},
    )
    outcome = await escalate(
        [Affected(chain("oncall", pd), ("api",))],
        trigger_mono_ns=SystemClock().monotonic_ns(),
        about=PageAbout(drill="payments-q4", run_id="run-1"),
        desk=desk_server.desk,
        ctx=NotifyContext(clock=SystemClock(), retry=RETRY),
        emit=journal,
        secrets=Secrets(env={"PD_KEY": "pd-routing-key-0123456789abcdef"}),
    )
    await asyncio.gather(*bot.tasks)
    trigger, resolve = (r.json() for r in await receiver.wait_for(2))
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"] == f"drill-run-1-{outcome.pages[0].page_id}"
    assert resolve["routing_key"] == "pd-routing-key-0123456789abcdef"
    assert len(journal.of(PageSent)) == 1  # the resolve is housekeeping, not a page


async def test_cancelling_an_escalation_resolves_its_open_pagerduty_page(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    """A drill that ends (or is interrupted) with nobody acknowledged withdraws the page."""
    receiver.status = 202
    pd = Contact(
        name="Ana",
        via="pagerduty",
        ack_within_ms=60_000,
        params={"url": f"{receiver.url}/v2/enqueue", "routing_key": "${env:PD_KEY}"},
    )
    task = asyncio.create_task(
        escalate(
            [Affected(chain("oncall", pd), ("api",))],
            trigger_mono_ns=SystemClock().monotonic_ns(),
            about=PageAbout(drill="payments-q4", run_id="run-2"),
            desk=desk_server.desk,
            ctx=NotifyContext(clock=SystemClock(), retry=RETRY),
            emit=journal,
            secrets=Secrets(env={"PD_KEY": "pd-routing-key-0123456789abcdef"}),
        )
    )
    (trigger,) = [r.json() for r in await receiver.wait_for(1)]
    await journal.wait_for(PageSent)  # delivered: only a delivered page is withdrawn
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    trigger, resolve = (r.json() for r in await receiver.wait_for(2))
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert journal.of(PageAcked) == []


async def test_bad_contact_is_a_recorded_failed_page_not_a_crash(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    bot = Bot(receiver, {"/b": 0.05})
    broken = Contact(name="Ana", via="webhook", ack_within_ms=400, params={"url": "${env:MISSING_HOOK}"})
    oncall = chain("oncall", broken, hook(receiver, "Ben", 400, "/b"))
    _, outcome = await run([Affected(oncall, ("api",))], desk_server, journal)
    await asyncio.gather(*bot.tasks)
    ana = sent(journal)["Ana"]
    assert ana.payload.ok is False and ana.payload.attempts == 0
    assert "MISSING_HOOK is not set" in ana.payload.reason
    assert outcome.chains[0].page_id == sent(journal)["Ben"].payload.page_id


async def test_escalation_is_cancellable(
    receiver: Receiver, desk_server: AckServer, journal: Journal
) -> None:
    oncall = chain("oncall", hook(receiver, "Ana", 10_000, "/a"))
    task = asyncio.create_task(run([Affected(oncall, ("api",))], desk_server, journal))
    await receiver.wait_for(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.of(ChainExhausted) == []


async def test_contact_drill_pages_every_chain_and_cli_acks(
    receiver: Receiver, journal: Journal, tmp_path: Path
) -> None:
    bot = Bot(receiver, {"/a": 0.1}, via_cli=tmp_path)
    playbook = Playbook(
        metadata=Metadata(name="phone-tree", owner="dr@example.com"),
        tiers=(),
        assets=(Asset(id="api", tier="t0", probes=(), contact_chain="web"),),
        scenario=(),
        chains=(
            chain("web", hook(receiver, "Ana", 500, "/a")),
            chain("spare", hook(receiver, "Zoe", 300, "/z")),  # no asset names it: still paged
        ),
    )
    assert [(a.chain.name, a.assets) for a in affected_chains(playbook)] == [("web", ("api",)), ("spare", ())]
    outcome = await run_contact_drill(
        playbook, Secrets(env={}), SystemClock(), journal, run_id="run-7", run_dir=tmp_path, retry=RETRY
    )
    await asyncio.gather(*bot.tasks)
    assert (tmp_path / "ack.url").read_text().startswith("http://127.0.0.1:")
    by_name = {c.chain: c for c in outcome.chains}
    assert not by_name["web"].exhausted and by_name["spare"].exhausted
    [acked] = journal.of(PageAcked)
    assert acked.payload.by == "bot" and abs(acked.payload.ack_ms - 100) <= 100
    assert receiver.on("/a")[0].json()["asked"].startswith("This is a contact-chain drill")


class Recorder:
    """An in-memory notifier kind: records each page, always delivered."""

    def __init__(self) -> None:
        self.pages: list[Message] = []

    def kind(self) -> NotifierKind[Mapping[str, object]]:
        async def send(spec: Mapping[str, object], message: Message, ctx: NotifyContext) -> SendResult:
            self.pages.append(message)
            return SendResult(True, "", 1)

        return NotifierKind("memo", dict, send, "test recorder")


async def test_shared_page_that_ran_out_earlier_does_not_shorten_the_next_window(journal: Journal) -> None:
    clock = FakeClock()
    memo = Recorder()

    def person(name: str, ack_within_ms: int) -> Contact:
        return Contact(name=name, via="memo", ack_within_ms=ack_within_ms, params={"url": f"memo://{name}"})

    fast = chain("fast", person("Ana", 100))
    slow = chain("slow", person("Cid", 300), person("Ana", 100), person("Dan", 200))
    t0 = clock.monotonic_ns()
    outcome = await escalate(
        [Affected(fast, ("api",)), Affected(slow, ("db",))],
        trigger_mono_ns=t0,
        about=PageAbout(drill="d", run_id="r"),
        desk=AckDesk(clock, journal),
        ctx=NotifyContext(clock=clock),
        emit=journal,
        secrets=Secrets(env={}),
        kinds={"memo": memo.kind()},
    )
    at = {e.payload.contact: (e.mono_ns - t0) // MS for e in journal.of(PageSent)}
    # Ana once (for both chains) at 0; "slow" reaches her at 300 when her 100 ms are long gone,
    # so Dan is paged at 300 (not back-dated to 100) and keeps his full 200 ms
    assert at == {"Ana": 0, "Cid": 0, "Dan": 300}
    assert [m.contact for m in memo.pages].count("Ana") == 1
    assert all(c.exhausted for c in outcome.chains)
    assert {e.payload.chain for e in journal.of(ChainExhausted)} == {"fast", "slow"}
    assert clock.monotonic_ns() - t0 == 500 * MS
