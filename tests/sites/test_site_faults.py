"""Sites failing under a drill: an agent killed, a site cut off from the target, a quorum of sites
gone before an injection, the broker itself restarted, a publish retried under the same id, and
clients creating the streams at the same moment.

Real processes throughout (nats-server, `drill agent`): the test kills and restarts them at exact
points of the drill, found through the journal's own events (a sink on a step's start), and
records the instants it did so as ground truth.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig

from drill.clock import monotonic_ns
from drill.errors import EXIT_FAILED
from drill.evidence.events import (
    AssetState,
    Event,
    FailureInjected,
    Mark,
    ProbeObserved,
    ReturnChecked,
    SiteDone,
    SiteLost,
    SiteSeen,
    SiteState,
    StepFinished,
    StepStarted,
    StepStatus,
)
from drill.run.sites.broker import connect, ensure_streams, publish
from drill.run.sites.coordinator import (
    DRAIN_MAX_S,
    LOST_AFTER_NS,
    NS_PER_MS,
    PING_INTERVAL_S,
    agent_answers,
)
from drill.run.sites.wire import (
    OBSERVATIONS_STREAM,
    ORDERS_STREAM,
    SiteObservation,
    encode,
    message_id,
    observations_subject,
)
from tests.servers import ToggleServer
from tests.sites.conftest import (
    DETECT_AND_RECOVER,
    INTERVAL_MS,
    SITES,
    Agents,
    Outage,
    observed_per_site,
    playbook_text,
    run_sites_drill,
)
from tests.support.nats import NatsServer
from tests.support.servers import free_port, start_or_skip

pytestmark = pytest.mark.timeout(60)

# long enough for a killed agent's site to be declared lost (LOST_AFTER plus a ping interval)
SETTLE = "- {name: settle, pause: 4500ms}\n"
PING_NS = int(PING_INTERVAL_S * 1e9)
INTERVAL_NS = INTERVAL_MS * NS_PER_MS
P = TypeVar("P")


@dataclass
class OnStep:
    """A sink calling `action` once, synchronously, when the named step has started and each of
    `sites_up` has been journalled up (so the action meets those sites seen and counted): it
    happens at that point of the drill, not after a guessed delay."""

    step: str
    action: Callable[[], None]
    sites_up: frozenset[str] = frozenset()
    at_ns: int = 0  # when the action had completed
    _started: bool = False
    _up: set[str] = field(default_factory=set)

    def sink(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, StepStarted) and payload.step == self.step:
            self._started = True
        elif isinstance(payload, SiteState) and payload.state == "up":
            self._up.add(payload.site)
        if self._started and self.sites_up <= self._up and not self.at_ns:
            self.action()
            self.at_ns = monotonic_ns()


async def agents_answer(broker: NatsServer, within_s: float = 20.0) -> None:
    """Until every site's agent answers a clock request: connected, so the drill meets them all
    from its start (a Python process takes a while to start, the drill does not wait for a site)."""
    deadline = monotonic_ns() + int(within_s * 1e9)
    for site in SITES:
        while why := await agent_answers(broker.url, site, 1.0):
            assert monotonic_ns() < deadline, why
            await asyncio.sleep(0.05)  # polling a condition, bounded by the deadline


def _of(events: list[Event], kind: type[P]) -> list[tuple[Event, P]]:
    """The journal's events of one type, each with its payload typed."""
    return [(e, e.payload) for e in events if isinstance(e.payload, kind)]


def _first(events: list[Event], kind: type[object]) -> Event:
    return next(e for e in events if isinstance(e.payload, kind))


def _finished(events: list[Event]) -> dict[str, StepFinished]:
    return {p.step: p for _, p in _of(events, StepFinished)}


def _site_states(events: list[Event], site: str) -> list[SiteState]:
    return [p for _, p in _of(events, SiteState) if p.site == site]


def _site_observed(events: list[Event], site: str) -> list[tuple[Event, ProbeObserved]]:
    return [(e, p) for e, p in _of(events, ProbeObserved) if p.site == site]


def _done(events: list[Event]) -> dict[str, SiteDone]:
    return {p.site: p for _, p in _of(events, SiteDone)}


def _dated_around(outage: Outage, down: AssetState, up: AssetState) -> None:
    """Each change's window (probe instants mapped from the site's clock, widened by that
    mapping's error bound) holds the instant the test switched the service off or on."""
    assert down.lower_mono_ns <= outage.t_off <= (down.upper_mono_ns or 0) + INTERVAL_NS, down
    assert up.lower_mono_ns <= outage.t_on <= (up.upper_mono_ns or 0) + INTERVAL_NS, up


def _why(events: list[Event]) -> list[object]:
    return [e.payload for e in events if type(e.payload).__name__ in ("StepFinished", "RunFinished")]


async def test_agent_killed_mid_drill_reads_no_data_and_the_quorum_decides(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    for site in SITES:
        agents.start(site, target.url)
    await agents_answer(broker)
    kill = OnStep("settle", agents.procs["us-east"].kill, frozenset({"us-east"}))
    outage = Outage(target)
    code, events, _ = await run_sites_drill(
        tmp_path, playbook_text(SETTLE + DETECT_AND_RECOVER), broker, [kill.sink, outage.sink]
    )
    assert outage.task is not None
    await outage.task
    assert kill.at_ns and agents.procs["us-east"].proc.popen.returncode == -9
    assert code == 0, _why(events)

    lost = _of(events, SiteLost)
    assert [p.site for _, p in lost] == ["us-east"], lost  # the others never went silent
    ((lost_at, lost_why),) = lost
    # lost once it had not answered for LOST_AFTER (its last answer came at most a couple of ping
    # intervals before the kill), and before the fault: the pause allowed for it
    injected = _first(events, FailureInjected)
    silent = re.fullmatch(r"no agent answered for (\d+) ms", lost_why.reason)
    assert silent is not None and int(silent[1]) * NS_PER_MS > LOST_AFTER_NS, lost_why
    assert kill.at_ns + LOST_AFTER_NS - 2 * PING_NS <= lost_at.mono_ns < injected.mono_ns
    us_east = _site_states(events, "us-east")
    assert [s.state for s in us_east] == ["up", "no data"], us_east
    # the dead agent saw nothing of the outage, which came after its kill
    assert all(p.ok for _, p in _site_observed(events, "us-east"))

    # the outage was decided by the two sites left, and only after the truth
    changes = [s for _, s in _of(events, AssetState) if not s.initial]
    assert [s.state for s in changes] == ["down", "up"], changes
    down, up = changes
    assert down.probe in ("health@eu-west", "health@ap-south"), down
    assert up.probe in ("health@eu-west", "health@ap-south"), up
    _dated_around(outage, down, up)
    for site in ("eu-west", "ap-south"):
        seen = [s.state for s in _site_states(events, site)]
        assert seen == ["up", "down", "up"], (site, seen)

    # us-east never said it was done; the two others lost nothing between agent and journal
    per_site = observed_per_site(events)
    done = _done(events)
    assert set(done) == {"eu-west", "ap-south"}, done
    for site, record in done.items():
        assert record.observed == record.journalled == per_site[site] and record.dropped == 0, record
    assert per_site["us-east"] >= 2  # it was up (rise 2) before it was killed


async def test_site_cut_off_from_the_target_is_not_an_outage(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    agents.start("eu-west", target.url)
    agents.start("us-east", target.url)
    agents.start("ap-south", f"http://127.0.0.1:{free_port()}/health")  # nothing listens there
    await agents_answer(broker)
    outage = Outage(target)
    # a second for ap-south's view to form (fall 2 at 100 ms): the baseline waits for a quorum only
    scenario = "- {name: settle, pause: 1s}\n" + DETECT_AND_RECOVER
    code, events, _ = await run_sites_drill(tmp_path, playbook_text(scenario), broker, [outage.sink])
    assert outage.task is not None
    await outage.task
    assert code == 0, _why(events)

    injected = _first(events, FailureInjected)
    before = [e for e in events if e.seq < injected.seq]
    # ap-south saw it down from the start, and its view alone is no outage: up at the baseline
    ap_south = _of(before, SiteState)
    assert [(p.site, p.state) for _, p in ap_south if p.site == "ap-south"] == [("ap-south", "down")]
    assert [s.state for s in _site_states(events, "ap-south")] == ["down"]
    assert not any(p.ok for _, p in _site_observed(events, "ap-south"))
    baseline = [m for _, m in _of(before, Mark) if m.name == "baseline"]
    assert [m.states for m in baseline] == [{"shop": "up"}], baseline
    assert [s.state for _, s in _of(before, AssetState)] == ["up"]

    # the real outage, seen from the two sites that reach the service
    changes = [s for e, s in _of(events, AssetState) if e.seq > injected.seq]
    assert [s.state for s in changes] == ["down", "up"], changes
    down, up = changes
    assert down.probe in ("health@eu-west", "health@us-east"), down
    assert up.probe in ("health@eu-west", "health@us-east"), up
    _dated_around(outage, down, up)
    done = _done(events)
    assert set(done) == set(SITES)
    per_site = observed_per_site(events)
    for site, record in done.items():
        assert record.observed == record.journalled == per_site[site], record


async def test_fault_injection_refused_without_a_quorum_of_sites(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    for site in SITES:
        agents.start(site, target.url)

    def kill_two() -> None:
        agents.procs["us-east"].kill()
        agents.procs["ap-south"].kill()

    await agents_answer(broker)
    kill = OnStep("settle", kill_two, frozenset({"us-east", "ap-south"}))
    scenario = SETTLE + "- {name: declare disaster, mark: disaster}\n"
    code, events, _ = await run_sites_drill(tmp_path, playbook_text(scenario), broker, [kill.sink])
    assert kill.at_ns

    finished = _finished(events)
    assert finished["settle"].status == StepStatus.OK
    refused = finished["declare disaster"]
    assert refused.status == StepStatus.FAILED
    assert refused.reason.startswith("not injected: only 1 of the 3 sites probing shop/health"), refused
    assert "(quorum 2; not connected: us-east, ap-south)" in refused.reason, refused
    assert not any(isinstance(e.payload, FailureInjected) for e in events)
    lost = {p.site: e for e, p in _of(events, SiteLost)}
    assert set(lost) == {"us-east", "ap-south"}
    started = _first(events, StepStarted)  # the refusal came from sites lost during the pause
    assert all(kill.at_ns <= e.mono_ns and started.seq < e.seq for e in lost.values())
    # a failed scenario step fails the drill (README: `drill run` exits 1 on fail)
    assert code == EXIT_FAILED, _why(events)


@dataclass
class BrokerRestart:
    """On the step's start: SIGKILL the broker, wait down_s, start it again on its port and store."""

    broker: NatsServer
    down_s: float = 1.0
    killed_ns: int = 0
    back_ns: int = 0
    task: asyncio.Task[None] | None = None

    def sink(self, event: Event) -> None:
        if (
            isinstance(event.payload, StepStarted)
            and event.payload.step == "broker down"
            and self.task is None
        ):
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pid = self.broker.proc.pid if self.broker.proc else 0
        await asyncio.to_thread(self.broker.kill)
        self.killed_ns = monotonic_ns()
        await asyncio.sleep(self.down_s)  # the outage of the broker itself, not a synchronisation
        await asyncio.to_thread(self.broker.start)
        self.back_ns = monotonic_ns()
        assert self.broker.proc is not None and self.broker.proc.pid != pid


async def test_broker_restarted_mid_drill_loses_nothing(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    for site in SITES:
        agents.start(site, target.url)
    await agents_answer(broker)
    restart = BrokerRestart(broker)
    outage = Outage(target)
    scenario = "- {name: warm up, pause: 1s}\n- {name: broker down, pause: 5s}\n" + DETECT_AND_RECOVER
    code, events, _ = await run_sites_drill(
        tmp_path, playbook_text(scenario), broker, [restart.sink, outage.sink]
    )
    assert restart.task is not None and outage.task is not None
    await restart.task
    await outage.task
    assert restart.killed_ns and restart.back_ns
    assert code == 0, _why(events)

    per_site = observed_per_site(events)
    done = _done(events)
    assert set(done) == set(SITES), done
    # the release reached the agents through the restarted broker in time: each said it was
    # done within the coordinator's drain bound after the probes stopped (the return check)
    checked = _first(events, ReturnChecked)
    late = {
        p.site: (e.mono_ns - checked.mono_ns) // NS_PER_MS
        for e, p in _of(events, SiteDone)
        if e.mono_ns - checked.mono_ns > DRAIN_MAX_S * 1e9
    }
    assert not late, f"agents done this many ms after the return check: {late}"
    for site, record in done.items():
        # each observation an agent made is in the journal, once
        assert record.observed == record.journalled == per_site[site], record
        assert record.dropped == 0, record
    for site in SITES:
        observed = _site_observed(events, site)
        ticks = [p.tick for _, p in observed]
        assert all(a < b for a, b in itertools.pairwise(ticks)), (site, ticks)
        # observations made while the broker was down reached the journal after it came back
        while_down = [e for e, _ in observed if restart.killed_ns <= e.mono_ns <= restart.back_ns]
        assert len(while_down) >= 5, (site, len(while_down))
    # the outage after the restart was seen through the restarted broker
    changes = [s for _, s in _of(events, AssetState) if not s.initial]
    assert [s.state for s in changes] == ["down", "up"], changes
    assert restart.back_ns < outage.t_off
    _dated_around(outage, *changes)
    seen = Counter(p.site for _, p in _of(events, SiteSeen))
    assert set(seen) == set(SITES), seen


async def test_duplicate_publish_is_journalled_once(broker: NatsServer) -> None:
    nc = await connect(broker.url, "test duplicate publish")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        subject = observations_subject("run-dup", "eu-west")
        record = SiteObservation(
            run_id="run-dup",
            site="eu-west",
            agent="eu-west-0000",
            seq=0,
            asset="shop",
            probe="health",
            tick=0,
            ok=True,
            latency_us=100,
            reason="",
            started_utc_ns=1,
            jitter_us=0,
        )
        body = encode(record)
        first = message_id("run-dup", "eu-west", "eu-west-0000", 0)
        assert await publish(js, subject, body, first)
        assert await publish(js, subject, body, first)  # a retry after a lost ack
        assert (await js.stream_info(OBSERVATIONS_STREAM)).state.messages == 1

        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
        sub = await js.pull_subscribe(subject, stream=OBSERVATIONS_STREAM, config=config)
        msgs = await sub.fetch(10, timeout=1)
        assert [(m.data, (m.headers or {}).get("Nats-Msg-Id")) for m in msgs] == [(body, first)]

        other = message_id("run-dup", "eu-west", "eu-west-0000", 1)
        assert await publish(js, subject, body, other)  # another id: another message, same body
        assert (await js.stream_info(OBSERVATIONS_STREAM)).state.messages == 2
        msgs = await sub.fetch(10, timeout=1)
        assert [(m.data, (m.headers or {}).get("Nats-Msg-Id")) for m in msgs] == [(body, other)]
        with pytest.raises(NatsTimeout):
            await sub.fetch(10, timeout=0.5)
    finally:
        await nc.close()


async def test_streams_created_by_clients_starting_together(tmp_path: Path) -> None:
    """Agents started side by side each ensure the streams on a fresh broker: the server may tell
    the later of two concurrent creations of one stream that its subjects overlap an existing
    stream (itself). That is no error (it used to stop an agent with an internal error)."""
    for round_ in range(25):  # the race is lost by a few percent of the clients: many fresh brokers
        workdir = tmp_path / f"nats-{round_}"
        server = await asyncio.to_thread(start_or_skip, NatsServer(workdir).start)
        try:
            clients = [await connect(server.url, f"client {i}") for i in range(3)]
            try:
                await asyncio.gather(*(ensure_streams(nc.jetstream()) for nc in clients))
                names = {info.config.name for info in await clients[0].jetstream().streams_info()}
                assert names == {ORDERS_STREAM, OBSERVATIONS_STREAM}
            finally:
                for nc in clients:
                    await nc.close()
        finally:
            server.stop()
