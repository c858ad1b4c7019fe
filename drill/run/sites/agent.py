"""`drill agent --site NAME --broker URL`: runs the probes the coordinator assigns to its site.

The agent connects outbound to the broker and waits. For each assignment (its site's latest
order, read from the durable orders stream, so an agent started late still gets it) it runs
the probes on the same drift-free scheduler as `drill run` and publishes every observation to
the observations stream under a message id; a publish that fails (the broker restarting, the
network gone) is retried under the same id, in order, so the stream ends with each observation
once. An agent keeps probing while the coordinator is unreachable (it injects nothing, so there
is nothing to stop) and stops at the release, or at the assignment's deadline when no release
ever comes. It answers clock requests, by which the coordinator measures its clock and sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from drill.clock import Clock, SystemClock, ns_of, wall_ns
from drill.errors import DrillError
from drill.log import get_logger
from drill.playbook.model import Probe
from drill.probes.base import Observation
from drill.probes.registry import PROBE_KINDS
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_loops
from drill.run.sites.broker import connect, ensure_streams, publish
from drill.run.sites.wire import (
    Assignment,
    ClockReading,
    Release,
    SiteDone,
    SiteObservation,
    clock_subject,
    decode_order,
    encode,
    message_id,
    observations_subject,
    orders_subject,
)
from drill.secrets import Secrets

log = get_logger("drill.agent")
MAX_BACKLOG = 100_000  # observations kept while the broker is away; older ones are dropped, and counted
CHRONY_TIMEOUT_S = 1.0
# The orders consumer is an ordered consumer, held in the broker's memory: a restarted broker has
# lost it, and the client recreates it only after two idle heartbeats missed in a row (checked
# every two heartbeats). At nats-py's default of 5 s a release (or an assignment) could wait up to
# 20 s after a restart; at 1 s, about 4 s.
ORDERS_HEARTBEAT_S = 1.0


def agent_id(name: str) -> str:
    """The agent's name and one incarnation: a restarted agent numbers its observations from 0
    again, and must not have them taken for retries of its predecessor's."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def chrony_error_ns() -> tuple[int, str]:
    """How far this host's clock may be from true time, by chrony (`chronyc -c tracking`:
    |offset| + root delay / 2 + root dispersion), or (0, "broker round trip") without chrony."""
    if shutil.which("chronyc") is None:
        return 0, "broker round trip"
    try:
        out = subprocess.run(
            ["chronyc", "-c", "tracking"],
            capture_output=True,
            text=True,
            timeout=CHRONY_TIMEOUT_S,
            check=True,
        ).stdout.split(",")
        offset, root_delay, root_dispersion = abs(float(out[4])), float(out[10]), float(out[11])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return 0, "broker round trip"
    return int((offset + root_delay / 2 + root_dispersion) * 1e9), "chrony"


@dataclass(slots=True)
class _Duty:
    """One assignment being run."""

    assignment: Assignment
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    observed: int = 0
    dropped: int = 0


@dataclass(slots=True)
class Agent:
    site: str
    broker: str
    name: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Clock = field(default_factory=SystemClock)
    agent: str = ""
    _duties: dict[str, _Duty] = field(default_factory=dict)
    _backlog: asyncio.Queue[tuple[str, bytes, str]] = field(
        default_factory=lambda: asyncio.Queue(MAX_BACKLOG)
    )
    _seq: int = 0
    published: int = 0
    _secrets: Secrets = field(default_factory=lambda: Secrets(env={}))

    def __post_init__(self) -> None:
        self.agent = self.agent or agent_id(self.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set: answer clock requests, run assignments, publish."""
        nc = await connect(self.broker, f"drill agent {self.agent} ({self.site})")
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            clock_error = chrony_error_ns()

            async def answer(msg: Msg) -> None:
                await self._clock(msg, clock_error)

            await nc.subscribe(clock_subject(self.site), cb=answer)
            orders = await js.subscribe(
                orders_subject(self.site),
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                idle_heartbeat=ORDERS_HEARTBEAT_S,
            )
            log.info("agent.ready", site=self.site, agent=self.agent, broker=self.broker)
            async with asyncio.TaskGroup() as group:
                publisher = group.create_task(self._publish(js, stop))
                reading = group.create_task(self._orders(orders, group))
                await stop.wait()
                for duty in self._duties.values():
                    duty.stop.set()
                reading.cancel()
                for duty in list(self._duties.values()):
                    if duty.task is not None:
                        await duty.task
                await self._backlog.join()  # whatever was observed is published before leaving
                publisher.cancel()
        finally:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=2)
            await nc.close()

    async def _clock(self, msg: Msg, clock_error: tuple[int, str]) -> None:
        reading = ClockReading(self.agent, wall_ns(), clock_error[0], clock_error[1])
        with contextlib.suppress(Exception):
            await msg.respond(encode(reading))

    async def _orders(self, orders: JetStreamContext.PushSubscription, group: asyncio.TaskGroup) -> None:
        async for msg in orders.messages:
            try:
                order = decode_order(msg.data)
            except ValueError as exc:
                log.warning("agent.order_unreadable", error=str(exc))
                continue
            if isinstance(order, Release):
                duty = self._duties.get(order.run_id)
                if duty is not None:
                    duty.stop.set()
            elif order.run_id not in self._duties and order.until_utc_ms > wall_ns() // 1_000_000:
                duty = _Duty(order)
                self._duties[order.run_id] = duty
                duty.task = group.create_task(self._serve(duty))

    async def _serve(self, duty: _Duty) -> None:
        assignment = duty.assignment
        try:
            probes = self._schedule(assignment)
        except DrillError as exc:
            log.error("agent.assignment_refused", run=assignment.run_id, error=exc.message)
            return
        log.info("agent.assignment", run=assignment.run_id, probes=len(probes))
        resources = Resources(probes)
        contexts = {
            (p.asset, p.probe.name): LiveProbeContext.for_probe(p, resources, self.clock, _drop, self._redact)
            for p in probes
        }
        deadline = asyncio.get_running_loop().call_later(
            max(0.0, (assignment.until_utc_ms * 1_000_000 - wall_ns()) / 1e9), duty.stop.set
        )
        try:
            await run_probe_loops(
                probes,
                contexts,
                self.clock,
                lambda p, obs, scheduled, started, tick: self._observed(
                    duty, p, obs, scheduled, started, tick
                ),
                stop=duty.stop,
            )
        finally:
            deadline.cancel()
            await resources.aclose()
            done = SiteDone(assignment.run_id, self.site, self.agent, duty.observed, duty.dropped)
            await self._backlog.put(
                (
                    observations_subject(assignment.run_id, self.site),
                    encode(done),
                    f"done/{assignment.run_id}/{self.site}/{self.agent}",
                )
            )
            log.info("agent.released", run=assignment.run_id, observed=duty.observed, dropped=duty.dropped)

    def _schedule(self, assignment: Assignment) -> tuple[ScheduledProbe, ...]:
        self._secrets = Secrets(env=dict(self.env))
        scheduled = []
        for order in assignment.probes:
            kind = PROBE_KINDS[order.kind]
            params = self._secrets.resolve_params(order.params, f"assets.{order.asset}.probes.{order.name}")
            probe = Probe(
                order.name, order.kind, order.params, order.interval_ms, order.timeout_ms, fall=1, rise=1
            )
            scheduled.append(ScheduledProbe(order.asset, probe, kind, kind.parse(params)))
        return tuple(scheduled)

    def _redact(self, text: str) -> str:
        return self._secrets.redact_text(text)

    def _observed(
        self,
        duty: _Duty,
        probe: ScheduledProbe,
        obs: Observation,
        scheduled: int,
        started: int,
        tick: int,
    ) -> None:
        assignment = duty.assignment
        started_utc = self.clock.utc_at(started)
        record = SiteObservation(
            run_id=assignment.run_id,
            site=self.site,
            agent=self.agent,
            seq=self._seq,
            asset=probe.asset,
            probe=probe.probe.name,
            tick=tick,
            ok=obs.ok,
            latency_us=obs.latency_us,
            reason="" if obs.ok else self._redact(obs.reason),
            started_utc_ns=ns_of(started_utc),
            jitter_us=(started - scheduled) // 1000,
        )
        item = (
            observations_subject(assignment.run_id, self.site),
            encode(record),
            message_id(assignment.run_id, self.site, self.agent, self._seq),
        )
        self._seq += 1
        duty.observed += 1
        try:
            self._backlog.put_nowait(item)
        except asyncio.QueueFull:
            duty.dropped += 1

    async def _publish(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        """One publish at a time, in order: a retried one keeps its id, so it is stored once."""
        while True:
            subject, body, msg_id = await self._backlog.get()
            await publish(js, subject, body, msg_id)
            self.published += 1
            self._backlog.task_done()


def _drop(event: object) -> None:
    """Events a probe kind emits besides its observation (canary writes): an agent runs no such
    probe (validate refuses canaries at sites), so there is nothing to keep."""
