"""SLA alerts while `drill watch` runs: burn-rate pairs and thresholds, paged through the
playbook's contact chains (drill.notify.escalation, the drill's own paging), once per episode.

What is kept is bounded: per SLA service, its probes' latest result and the health spans of the
last `horizon_ms` (the longest burn window; 1 h when the SLA has none) or back to the start of the
current contract period when that is earlier, built from the watch's own observations. The rule: a service is down when the latest observation of any of its probes
failed; up when every one of its probes has been observed and the latest of each succeeded; until
then it has no span (no data, counted per the SLA's no_data policy).

Nothing is judged on time the watch did not see: a burn pair is evaluated only once the watch has
observed for its whole long window (before that: not measured, no alert). A threshold is judged
on the contract period that contains now (the calendar month, quarter or year in the contract's
zone; for a rolling window, the window ending now): the downtime this watch saw in it, against
the whole period's eligible time. That figure is the highest availability the period can still
end at, whatever the unobserved time turns out to be (no data counted down only adds downtime,
excluded only shrinks the denominator), so a threshold fires only when the period is certain to
end below it: a 10-minute outage never pages a 90 % ("legal") chain in a month that is at
99.98 %. Earlier warning is the burn pairs' job. The spans kept reach back to the period's start
(one per change of health, not one per observation); after a restart, `seed` gives them what the
folder's earlier segments saw of the period. The evaluation runs every
min(short windows)/2, at least 1 s.

On a rising edge, `sla.alert` (state firing) is journalled and the alert's chain paged; when it
clears, `sla.alert` (state resolved) is journalled and nothing is paged.

Delay KPIs are judged per observation of their probe, not per evaluation: a round trip slower
than a level's delay fires that level (kind "delay", service: the probe); a failed round trip
fires level 1 at least, and higher levels as the failure lasts (a message not back is delayed
at least since the first failed round trip of the run began). A level resolves when a round
trip completes within it. Edges found by `observe` are handed out by the next `evaluate`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from drill.clock import Clock, utc_iso_ms
from drill.errors import UsageError
from drill.evidence.events import EventDraft, SlaAlert
from drill.log import get_logger
from drill.notify.ack import AckDesk, AckServer, Emit
from drill.notify.base import NotifyContext, RetryPolicy
from drill.notify.escalation import Affected, PageAbout, check_contacts, escalate
from drill.playbook.model import Playbook
from drill.secrets import Secrets
from drill.sla.calendar import period_of
from drill.sla.compute import burn_rate, compute_period
from drill.sla.model import (
    BurnRateAlert,
    DelayKpi,
    Health,
    Service,
    Sla,
    Span,
    Threshold,
    Timeline,
    Window,
)

DEFAULT_HORIZON_MS = 3_600_000
MIN_EVERY_MS = 1000


def horizon_ms(sla: Sla) -> int:
    """How much of the past the evaluator keeps: the longest burn window (1 h without any)."""
    return max((b.long_ms for b in sla.burn_rates), default=DEFAULT_HORIZON_MS)


def every_ms(sla: Sla) -> int:
    """How often to evaluate: half the shortest short window, at least 1 s."""
    shortest = min((b.short_ms for b in sla.burn_rates), default=2 * MIN_EVERY_MS)
    return max(MIN_EVERY_MS, shortest // 2)


class ServiceTimeline:
    """One service's recent health, bounded to `horizon_ms` behind the latest instant seen."""

    def __init__(self, service: Service, horizon: int, window: Window | None = None) -> None:
        self.service = service
        self.horizon = horizon
        self.window = window  # the contract's: spans of its current period are kept too
        self.latest: dict[str, bool] = {}
        self.closed: deque[Span] = deque()
        self.open_start = 0
        self.open_health: Health | None = None  # None: no span open (no data)
        self.first_ms: int | None = None  # the first observation of any of its probes

    def health(self) -> Health | None:
        if any(not ok for ok in self.latest.values()):
            return "down"
        if len(self.latest) == len(self.service.probes):
            return "up"
        return None

    def observe(self, probe: str, ok: bool, at_ms: int) -> None:
        if probe not in self.service.probes:
            return
        if self.first_ms is None:
            self.first_ms = at_ms
        self.latest[probe] = ok
        health = self.health()
        if health == self.open_health:
            return
        if self.open_health is not None and at_ms > self.open_start:
            self.closed.append(Span(self.open_start, at_ms, self.open_health, "watch"))
        self.open_start, self.open_health = at_ms, health
        self.trim(at_ms)

    def trim(self, now_ms: int) -> None:
        keep_from = now_ms - self.horizon
        if self.window is not None:
            keep_from = min(keep_from, period_of(self.window, now_ms).start_ms)
        while self.closed and self.closed[0].end_ms <= keep_from:
            self.closed.popleft()

    def timeline(self, now_ms: int) -> Timeline:
        self.trim(now_ms)
        spans = list(self.closed)
        if self.open_health is not None and now_ms > self.open_start:
            spans.append(Span(self.open_start, now_ms, self.open_health, "watch"))
        return Timeline(self.service.name, tuple(spans))


AlertKind = Literal["burn", "threshold", "delay"]


@dataclass(frozen=True, slots=True)
class Edge:
    """An alert that changed state at an evaluation: the sla.alert to journal, and what to page
    (`detail`: the figures in words when the event has no field for them, e.g. a delay)."""

    event: SlaAlert
    alert: BurnRateAlert | Threshold | DelayKpi
    detail: str = ""


def sorted_levels(kpi: DelayKpi) -> tuple[tuple[int, str], ...]:
    """A delay KPI's levels by delay, lowest first: level n is the n-th of these."""
    return tuple(sorted(kpi.levels))


def level_reached(kpi: DelayKpi, delay_ms: int, ok: bool) -> int:
    """The highest level (1-based; 0: none) a round trip reaches: its delay is over the level's
    delay; a round trip that did not complete reaches level 1 at least."""
    reached = sum(delay_ms > at for at, _ in sorted_levels(kpi))
    return reached if ok or not kpi.levels else max(1, reached)


class DelayTracker:
    """The delay of each round trip of one probe: its latency, or for a failed one the time since
    the first failed round trip of the current run began (it is still not back)."""

    def __init__(self) -> None:
        self.failing_since_ms: int | None = None

    def delay_ms(self, ok: bool, latency_ms: int, at_ms: int) -> int:
        if ok:
            self.failing_since_ms = None
            return latency_ms
        if self.failing_since_ms is None:
            self.failing_since_ms = at_ms
        return at_ms + latency_ms - self.failing_since_ms


class AlertEvaluator:
    """Evaluates every burn pair and threshold for every service; reports rising and falling edges."""

    def __init__(self, sla: Sla) -> None:
        self.sla = sla
        self.horizon = horizon_ms(sla)
        window = sla.window if sla.thresholds else None
        self.services = {s.name: ServiceTimeline(s, self.horizon, window) for s in sla.services}
        # Unobserved time counted up: the period's availability is then the highest it can end at.
        self.bound_sla = replace(sla, no_data="up")
        self.firing: set[tuple[str, str, str]] = set()  # (kind, alert name, service)
        self.delays = {kpi.name: DelayTracker() for kpi in sla.delays}
        self.pending: list[Edge] = []  # delay edges found by observe, handed out by evaluate

    def seed(self, timelines: Iterable[Timeline]) -> None:
        """What earlier watches of this folder saw of the current period (a restart): their spans
        count for the thresholds from now on. They end before this watch's first observation; the
        burn pairs never reach them (judged only on a long window this watch observed whole)."""
        for timeline in timelines:
            state = self.services.get(timeline.service)
            if state is not None and state.window is not None:
                state.closed.extendleft(reversed([s for s in timeline.spans if s.health != "no-data"]))

    def observe(self, probe: str, ok: bool, at_ms: int, latency_us: int | None = None) -> None:
        """One observation of "asset/probe" (cheap: a dict update, a span closed on a change).
        With its latency, it is also a round trip of every delay KPI on that probe."""
        for timeline in self.services.values():
            timeline.observe(probe, ok, at_ms)
        if latency_us is None:
            return
        for kpi in self.sla.delays:
            if kpi.probe == probe:
                self.pending += self._delay(kpi, ok, latency_us // 1000, at_ms)

    def _delay(self, kpi: DelayKpi, ok: bool, latency_ms: int, at_ms: int) -> list[Edge]:
        delay = self.delays[kpi.name].delay_ms(ok, latency_ms, at_ms)
        reached = level_reached(kpi, delay, ok)
        edges: list[Edge] = []
        for n, (after, chain) in enumerate(sorted_levels(kpi), start=1):
            name = f"{kpi.name} level {n}"
            if (n <= reached) == (("delay", name, kpi.probe) in self.firing):
                continue  # no edge: build no event (this runs for every observation)
            event = SlaAlert(
                name, "delay", "firing", kpi.probe, chain, utc_iso_ms(at_ms),
                None, None, None, None, None, None, None, None,
            )  # fmt: skip
            how = f"{delay} ms" if ok else f"not back after at least {delay} ms (the probe failed)"
            detail = f"round trip {how}, level {n} is over {after} ms (the KPI: within {kpi.within_ms} ms)"
            edges += self._edge(("delay", name, kpi.probe), n <= reached, event, kpi, detail)
        return edges

    def evaluate(self, now_ms: int) -> list[Edge]:
        edges, self.pending = self.pending, []
        at_utc = utc_iso_ms(now_ms)
        for name, state in self.services.items():
            if state.first_ms is None:
                continue
            timeline = state.timeline(now_ms)
            seen_ms = now_ms - state.first_ms
            for alert in self.sla.burn_rates:
                if seen_ms < alert.long_ms:
                    continue  # not measured yet: the watch has not seen the whole long window
                long = burn_rate(self.sla, timeline, now_ms, alert.long_ms)
                short = burn_rate(self.sla, timeline, now_ms, alert.short_ms)
                fires = long is not None and short is not None and min(long, short) >= alert.factor_milli
                event = SlaAlert(
                    alert.name, "burn", "firing", name, alert.chain, at_utc,
                    alert.factor_milli, alert.long_ms, alert.short_ms, long, short, None, None, None,
                )  # fmt: skip
                edges += self._edge(("burn", alert.name, name), fires, event, alert)
            if not self.sla.thresholds:
                continue
            period = period_of(self.sla.window, now_ms)
            window = period.end_ms - period.start_ms
            availability = compute_period(self.bound_sla, timeline, period).availability
            for threshold in self.sla.thresholds:
                fires = availability is not None and availability < threshold.below
                event = SlaAlert(
                    threshold.name, "threshold", "firing", name, threshold.chain, at_utc,
                    None, None, None, None, None, threshold.below, availability, window,
                )  # fmt: skip
                edges += self._edge(("threshold", threshold.name, name), fires, event, threshold)
        return edges

    def _edge(
        self,
        key: tuple[str, str, str],
        fires: bool,
        event: SlaAlert,
        alert: BurnRateAlert | Threshold | DelayKpi,
        detail: str = "",
    ) -> list[Edge]:
        if fires and key not in self.firing:
            self.firing.add(key)
            return [Edge(event, alert, detail)]
        if not fires and key in self.firing:
            self.firing.discard(key)
            return [Edge(_resolved(event), alert, detail)]
        return []


def _resolved(event: SlaAlert) -> SlaAlert:
    return replace(event, state="resolved")


def check_alerts(sla: Sla, playbook: Playbook, secrets: Secrets) -> None:
    """The SLA's services and chains must be the watched playbook's; every contact of a chain an
    alert pages must resolve and parse now, before anything is watched."""
    probes = {f"{a.id}/{p.name}" for a in playbook.assets for p in a.probes}
    for kpi in sla.delays:
        if kpi.probe not in probes:
            raise UsageError(
                f"--sla: delay KPI {kpi.name!r} names {kpi.probe}, not a probe of playbook {playbook.metadata.name!r}"
            )
    for service in sla.services:
        missing = [p for p in service.probes if p not in probes]
        if missing:
            raise UsageError(
                f"--sla: service {service.name!r} names {', '.join(missing)}, "
                f"not a probe of playbook {playbook.metadata.name!r}"
            )
    chains = {c.name: c for c in playbook.chains}
    wanted = sorted(
        {b.chain for b in sla.burn_rates}
        | {t.chain for t in sla.thresholds}
        | {chain for kpi in sla.delays for _, chain in kpi.levels}
    )
    unknown = [c for c in wanted if c not in chains]
    if unknown:
        raise UsageError(
            f"--sla: playbook {playbook.metadata.name!r} has no contact chain {', '.join(map(repr, unknown))}"
        )
    check_contacts([chains[c] for c in wanted], secrets)


class AlertPager:
    """Pages an alert's chain through the drill's escalation, with an acknowledgement endpoint
    on 127.0.0.1 (an ephemeral port) so the links in pages work; journals through `emit`."""

    def __init__(
        self, playbook: Playbook, sla: Sla, secrets: Secrets, clock: Clock, emit: Emit, session: str
    ) -> None:
        self.playbook, self.sla, self.secrets, self.clock, self.emit = playbook, sla, secrets, clock, emit
        self.session = session
        self.desk = AckDesk(clock, emit)
        self.server = AckServer(self.desk, "127.0.0.1", 0)
        self.tasks: list[asyncio.Task[Any]] = []
        self.chains = {c.name: c for c in playbook.chains}

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.desk.close()
        await self.server.close()

    def page(self, edge: Edge) -> None:
        event = edge.event
        if isinstance(edge.alert, DelayKpi):
            assets: tuple[str, ...] = (edge.alert.probe.partition("/")[0],)
        else:
            service = next(s for s in self.sla.services if s.name == event.service)
            assets = tuple(dict.fromkeys(p.partition("/")[0] for p in service.probes))
        ticket = isinstance(edge.alert, BurnRateAlert) and edge.alert.severity == "ticket"
        severity: Literal["critical", "warning"] = "warning" if ticket else "critical"
        about = PageAbout(
            drill=self.playbook.metadata.name,
            run_id=self.session,
            asked=f"SLA {self.sla.name}: alert {event.name} ({event.kind}) is firing for service "
            f"{event.service}: {edge.detail or describe(event)}. Acknowledge, then look into it.",
            severity=severity,
        )
        ctx = NotifyContext(clock=self.clock, retry=RetryPolicy(), redact=self.secrets.redact_text)
        coro = escalate(
            [Affected(self.chains[event.chain], assets)],
            trigger_mono_ns=self.clock.monotonic_ns(),
            about=about,
            desk=self.desk,
            ctx=ctx,
            emit=self.emit,
            secrets=self.secrets,
        )
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(asyncio.get_running_loop().create_task(coro, name="sla-alert-escalation"))


def describe(event: SlaAlert) -> str:
    """The figures in words; a figure not measured says so, never 0."""

    def x(milli: int | None) -> str:
        return "not measured" if milli is None else f"{milli / 1000:g}x"

    def pct(milli: int | None) -> str:
        return "not measured" if milli is None else f"{milli / 1000:g} %"

    if event.kind == "delay":
        return f"a round trip of {event.service} is over the delay of {event.name}"
    if event.kind == "burn":
        return (
            f"burn rate {x(event.long_milli)} over the long window, {x(event.short_milli)} over the "
            f"short one, against {x(event.factor_milli)}"
        )
    return (
        f"the contract period can end at {pct(event.availability)} availability at most (the downtime "
        f"seen so far against the whole period), below {pct(event.below)}"
    )


async def evaluate_every(
    evaluator: AlertEvaluator,
    now_ms: Callable[[], int],
    on_edges: Callable[[Sequence[Edge]], None],
    stop: asyncio.Event,
) -> None:
    """Evaluate every every_ms(sla) until stopped (drift does not matter: each evaluation reads now)."""
    period_s = every_ms(evaluator.sla) / 1000
    log = get_logger("drill.watch")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(period_s):
                await stop.wait()
        if stop.is_set():
            return
        edges = evaluator.evaluate(now_ms())
        for edge in edges:
            log.info("sla alert", alert=edge.event.name, state=edge.event.state, service=edge.event.service)
        on_edges(edges)


def journal_and_page(edges: Iterable[Edge], emit: Emit, pager: AlertPager | None, clock: Clock) -> None:
    for edge in edges:
        emit(EventDraft(edge.event, clock.monotonic_ns()))
        if edge.event.state == "firing" and pager is not None:
            pager.page(edge)
