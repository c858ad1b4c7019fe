"""The coordinator's side of probing from sites, inside `drill run`.

It publishes each site's assignment, reads the observations stream through a durable consumer
(acknowledging only what it has journalled, so a lost connection redelivers and nothing is
lost; what is redelivered twice is recognised by its agent and sequence and journalled once),
and asks each site's agent for its clock every PING_INTERVAL. A clock answer is both a
measurement and a sign of life: a site that has not answered for LOST_AFTER is lost, and its
probes read "no data" until it answers again.

Agent instants are mapped onto this run's monotonic clock through the agent's measured offset;
the bound of that offset's error (half the best recent round trip, plus the agent's own
synchronisation error) widens every interval the site's observations date.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from drill.clock import Clock, ns_of
from drill.errors import UsageError
from drill.log import get_logger
from drill.playbook.model import Playbook
from drill.probes.base import Observation
from drill.run.sites.broker import TRANSIENT, connect, ensure_streams, publish
from drill.run.sites.wire import (
    OBSERVATIONS_STREAM,
    Assignment,
    ProbeOrder,
    Release,
    SiteDone,
    SiteObservation,
    clock_subject,
    decode_clock,
    decode_report,
    encode,
    observations_subject,
    orders_subject,
    token,
)
from drill.secrets import cut_end

log = get_logger("drill.sites")
NS_PER_MS = 1_000_000
PING_INTERVAL_S = 0.5
PING_TIMEOUT_S = 0.5
LOST_AFTER_NS = 3_000 * NS_PER_MS
CLOCK_SAMPLES = 8  # the offset is taken from the best of the last few round trips
FETCH_BATCH = 512
REASON_LIMIT = 500  # characters of an agent's failure reason kept
DRAIN_MAX_S = 5.0  # after the release: read until every present agent is done, or this long
ASSIGNMENT_GRACE_MS = 10 * 60_000  # an orphaned agent stops this long after the drill's own bound
UNBOUNDED_DRILL_MS = 24 * 3_600_000  # the bound an orphaned agent assumes when the drill has none


@dataclass(slots=True)
class ClockSample:
    offset_ns: int
    error_ns: int


@dataclass(slots=True)
class SiteLink:
    """What the coordinator knows of one site."""

    site: str
    agent: str = ""
    present: bool = False
    last_seen_ns: int = 0
    samples: deque[ClockSample] = field(default_factory=lambda: deque(maxlen=CLOCK_SAMPLES))
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # a first clock answer came

    def best(self) -> ClockSample:
        return min(self.samples, key=lambda s: s.error_ns)


@dataclass(frozen=True, slots=True)
class SiteCallbacks:
    """How the coordinator reports into the run (the runner journals; this module never does)."""

    # (site, asset, probe, observation, started_mono_ns, scheduled_mono_ns, tick, error_ns)
    observed: Callable[[str, str, str, Observation, int, int, int, int], None]
    # (site, agent, offset_ns, error_ns, clock source)
    seen: Callable[[str, str, int, int, str], None]
    # (site, reason, last_seen_mono_ns)
    lost: Callable[[str, str, int], None]
    # (site, agent, observed by the agent, journalled here, dropped by the agent)
    done: Callable[[str, str, int, int, int], None]


def site_orders(playbook: Playbook) -> dict[str, list[ProbeOrder]]:
    """Each declared site's probes, in playbook order."""
    orders: dict[str, list[ProbeOrder]] = {s.name: [] for s in playbook.sites}
    for asset in playbook.assets:
        for probe in asset.probes:
            for site in probe.sites:
                order = ProbeOrder(
                    asset.id, probe.name, probe.kind, dict(probe.params), probe.interval_ms, probe.timeout_ms
                )
                orders[site].append(order)
    return orders


@dataclass(slots=True)
class Coordinator:
    broker: str
    run_id: str
    playbook: Playbook
    clock: Clock
    callbacks: SiteCallbacks
    bound_ms: int = 0  # the drill's own time bound (settings.max_duration); 0: none
    links: dict[str, SiteLink] = field(default_factory=dict)
    duplicates: int = 0
    _next_seq: dict[str, int] = field(default_factory=dict)  # per agent: the next sequence expected
    _taken: dict[str, int] = field(default_factory=dict)  # per agent: observations passed on
    _done: set[str] = field(default_factory=set)  # sites whose agent said it is done
    _base_mono_ns: int = 0
    _base_wall_ns: int = 0
    _nc: Client | None = None

    def __post_init__(self) -> None:
        self.links = {s.name: SiteLink(s.name) for s in self.playbook.sites}
        self._base_mono_ns = self.clock.monotonic_ns()
        self._base_wall_ns = ns_of(self.clock.utc_at(self._base_mono_ns))

    # -- the dead man's switch ------------------------------------------------------------------
    def refusal(self) -> str:
        """Why a fault may not be injected now: some probe could not see it from a quorum of its
        sites (empty when every probe can)."""
        for asset in self.playbook.assets:
            for probe in asset.probes:
                if not probe.remote:
                    continue
                present = [s for s in probe.sites if self.links[s].present]
                if len(present) < probe.quorum:
                    missing = ", ".join(s for s in probe.sites if s not in present)
                    return (
                        f"only {len(present)} of the {len(probe.sites)} sites probing {asset.id}/{probe.name}"
                        f" are connected (quorum {probe.quorum}; not connected: {missing}):"
                        " an outage could not be told from a lost site"
                    )
        return ""

    # -- running --------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Connect and assign: before the probes start, so a broker that cannot be reached fails
        the run before anything changed."""
        self._nc = await connect(self.broker, f"drill run {self.run_id}")
        js = self._nc.jetstream()
        await ensure_streams(js)
        until = self.clock.utc_at(self.clock.monotonic_ns())
        until_ms = ns_of(until) // NS_PER_MS + (self.bound_ms or UNBOUNDED_DRILL_MS) + ASSIGNMENT_GRACE_MS
        for site, probes in site_orders(self.playbook).items():
            body = encode(Assignment(self.run_id, site, probes, until_ms))
            if not await _publish_within(js, orders_subject(site), body, f"assign/{self.run_id}/{site}"):
                raise UsageError(f"the broker at {self.broker} did not store the assignment of site {site!r}")

    async def run(self, stop: asyncio.Event) -> None:
        """Watch the sites and journal their observations until `stop`; then release the agents
        and read what they observed up to then."""
        nc = self._nc
        if nc is None:
            raise RuntimeError("Coordinator.run before connect")
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            observations_subject(self.run_id),
            durable=f"run-{token(self.run_id)}",
            stream=OBSERVATIONS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.ALL, deliver_policy=DeliverPolicy.ALL, ack_wait=30),
        )
        try:
            async with asyncio.TaskGroup() as group:
                pings = [group.create_task(self._ping(nc, link, stop)) for link in self.links.values()]
                reading = group.create_task(self._read(sub, stop))
                await stop.wait()
                for ping in pings:
                    ping.cancel()
                await self._release(js)
                await reading
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await js.delete_consumer(OBSERVATIONS_STREAM, f"run-{token(self.run_id)}")
            await nc.close()

    async def _release(self, js: JetStreamContext) -> None:
        for site in self.links:
            body = encode(Release(self.run_id, site))
            await _publish_within(js, orders_subject(site), body, f"release/{self.run_id}/{site}")

    async def _ping(self, nc: Client, link: SiteLink, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = self.clock.monotonic_ns()
            try:
                reply = await nc.request(clock_subject(link.site), b"", timeout=PING_TIMEOUT_S)
                self._answered(link, sent, self.clock.monotonic_ns(), reply.data)
            except (NoRespondersError, *TRANSIENT):
                pass
            except ValueError as exc:  # an answer that is not a clock reading
                log.warning("sites.clock_unreadable", site=link.site, error=str(exc))
            self._check_lost(link)
            await asyncio.sleep(max(0.0, PING_INTERVAL_S - (self.clock.monotonic_ns() - sent) / 1e9))

    def _answered(self, link: SiteLink, sent_ns: int, received_ns: int, data: bytes) -> None:
        reading = decode_clock(data)
        midpoint_wall = self._base_wall_ns + (sent_ns + received_ns) // 2 - self._base_mono_ns
        sample = ClockSample(reading.utc_ns - midpoint_wall, (received_ns - sent_ns) // 2 + reading.error_ns)
        if reading.agent != link.agent:
            link.samples.clear()  # a new agent: its clock is another clock
        link.samples.append(sample)
        link.last_seen_ns = received_ns
        if not link.present or reading.agent != link.agent:
            link.present, link.agent = True, reading.agent
            best = link.best()
            self.callbacks.seen(link.site, reading.agent, best.offset_ns, best.error_ns, reading.source)
        link.ready.set()

    def _check_lost(self, link: SiteLink) -> None:
        now = self.clock.monotonic_ns()
        if link.present and now - link.last_seen_ns > LOST_AFTER_NS:
            link.present = False
            silent_ms = (now - link.last_seen_ns) // NS_PER_MS
            self.callbacks.lost(link.site, f"no agent answered for {silent_ms} ms", link.last_seen_ns)

    def _drained(self) -> bool:
        """Every site still present has said it is done."""
        return all(link.site in self._done for link in self.links.values() if link.present)

    async def _read(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        stopped_at: int | None = None
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=0.25)
            except (*TRANSIENT,):
                msgs = []
            if msgs:
                await self._take(m.data for m in msgs)
                with contextlib.suppress(*TRANSIENT):  # unacknowledged: redelivered, then recognised
                    await msgs[-1].ack()
            if stop.is_set():
                now = self.clock.monotonic_ns()
                stopped_at = stopped_at or now
                # bounded even while an agent that missed the release keeps publishing: what it
                # sends later is left out, and its site.done is then missing, which says so
                if (not msgs and self._drained()) or now - stopped_at > DRAIN_MAX_S * 1e9:
                    return

    async def _take(self, bodies: Iterable[bytes]) -> None:
        for body in bodies:
            try:
                report = decode_report(body)
            except ValueError as exc:
                log.warning("sites.observation_unreadable", error=str(exc))
                continue
            if isinstance(report, SiteDone):
                self._agent_done(report)
            else:
                await self._observed(report)

    def _agent_done(self, done: SiteDone) -> None:
        if done.site not in self.links or done.run_id != self.run_id or done.agent in self._done:
            return
        self._done.add(done.site)
        journalled = self._taken.get(done.agent, 0)
        self.callbacks.done(done.site, done.agent, done.observed, journalled, done.dropped)

    async def _observed(self, record: SiteObservation) -> None:
        link = self.links.get(record.site)
        if link is None or record.run_id != self.run_id:
            return
        # an agent publishes in order, one at a time, so its sequence only grows in the stream:
        # anything at or below what was taken is a redelivery
        if record.seq < self._next_seq.get(record.agent, 0):
            self.duplicates += 1
            return
        self._next_seq[record.agent] = record.seq + 1
        self._taken[record.agent] = self._taken.get(record.agent, 0) + 1
        if not link.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.ready.wait(), PING_INTERVAL_S * 4)
        sample = link.best() if link.samples else ClockSample(0, LOST_AFTER_NS)
        started = self._base_mono_ns + (record.started_utc_ns - sample.offset_ns - self._base_wall_ns)
        # what arrives over the broker is bounded here: an agent's reason is a line, not a file
        obs = Observation(record.ok, cut_end(record.reason, REASON_LIMIT), latency_us=record.latency_us)
        scheduled = started - record.jitter_us * 1000
        self.callbacks.observed(
            record.site, record.asset, record.probe, obs, started, scheduled, record.tick, sample.error_ns
        )


async def _publish_within(
    js: JetStreamContext, subject: str, body: bytes, msg_id: str, within_s: float = 5.0
) -> bool:
    give_up = asyncio.Event()
    timer = asyncio.get_running_loop().call_later(within_s, give_up.set)
    try:
        return await publish(js, subject, body, msg_id, give_up)
    finally:
        timer.cancel()


async def agent_answers(broker: str, site: str, timeout_s: float) -> str:
    """'' when an agent of `site` answers a clock request through `broker`, else why not (for
    `drill run --dry-run`: the agent is connected and would get its assignment)."""
    try:
        nc = await connect(broker, f"drill dry-run ({site})")
    except UsageError as exc:
        return exc.message
    try:
        await nc.request(clock_subject(site), b"", timeout=timeout_s)
        return ""
    except NoRespondersError:
        return f"no agent of site {site!r} is connected to {broker} (start `drill agent --site {site} --broker {broker}`)"
    except (*TRANSIENT,):
        return f"no agent of site {site!r} answered through {broker} within {timeout_s:g} s"
    finally:
        await nc.close()
