"""Per-asset up/down state from probe observations, with fall/rise hysteresis (DESIGN §2).

A down transition is dated at the start of the first failing probe of the streak; an up
transition at the *completion* of the first successful probe (a refinement of DESIGN: a request
that hung through a failover and was then answered started before the service was back, so its
start would flatter the RTO by up to the probe timeout). The true change lies between the start
of the probe before the streak (the last one that saw the old state, however many ticks were
skipped meanwhile) and the completion of the streak's first probe: both are journalled, so the
uncertainty is what was recorded, not an assumed interval. The monitor is pure logic: it returns the events to
journal and never touches a clock or a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from drill.evidence.events import AssetState, EventDraft, ProbeObserved, State
from drill.playbook.model import Asset
from drill.probes.base import Observation


@dataclass(slots=True)
class ProbeTrack:
    """The current streak of one probe."""

    fall: int
    rise: int
    state: State | None = None
    streak_ok: bool | None = None
    streak_len: int = 0
    streak_start_ns: int = 0  # when the streak's state began: see the module docstring
    before_streak_ns: int = 0  # start of the probe before the streak: the uncertainty's lower bound
    first_done_ns: int = 0  # completion of the streak's first probe: the uncertainty's upper bound
    last_start_ns: int = 0
    fresh_from_ns: int | None = None  # see Monitor.start_fresh
    fresh_ok: int = 0  # consecutive successes of probes started at or after fresh_from_ns

    def observe(self, ok: bool, started_ns: int, finished_ns: int) -> bool:
        """Count one result; True when this probe's state changed."""
        if self.fresh_from_ns is not None and started_ns >= self.fresh_from_ns:
            self.fresh_ok = self.fresh_ok + 1 if ok else 0
        if ok is not self.streak_ok:
            self.streak_ok, self.streak_len = ok, 0
            self.streak_start_ns = finished_ns if ok else started_ns
            self.before_streak_ns = self.last_start_ns
            self.first_done_ns = finished_ns
        self.streak_len += 1
        self.last_start_ns = started_ns
        wanted: State = "up" if ok else "down"
        needed = self.rise if ok else self.fall
        if self.state != wanted and self.streak_len >= needed:
            self.state = wanted
            return True
        return False


@dataclass(slots=True)
class AssetTrack:
    asset: str
    probes: dict[str, ProbeTrack]
    state: State | None = None
    since_ns: int = 0
    last_latency_us: int = 0
    total: int = 0
    ok: int = 0

    def combined(self) -> State | None:
        """Down if any probe is down; up only when every probe is up."""
        states = [p.state for p in self.probes.values()]
        if "down" in states:
            return "down"
        return "up" if all(s == "up" for s in states) else None


@dataclass(slots=True)
class Monitor:
    """Turns observations into probe.observed and asset.state events."""

    assets: dict[str, AssetTrack] = field(default_factory=dict)

    @classmethod
    def for_assets(cls, assets: Iterable[Asset]) -> Monitor:
        return cls(
            {
                a.id: AssetTrack(a.id, {p.name: ProbeTrack(fall=p.fall, rise=p.rise) for p in a.probes})
                for a in assets
            }
        )

    def state(self, asset: str) -> State | None:
        return self.assets[asset].state

    def start_fresh(self, since_ns: int) -> None:
        """From now on count, per probe, the successes of probes started at or after since_ns:
        the return to normal is judged on those alone, never on a state seen before the rollback
        ended (a rollback that breaks something has not been probed yet)."""
        for track in self.assets.values():
            for probe in track.probes.values():
                probe.fresh_from_ns, probe.fresh_ok = since_ns, 0

    def back_fresh(self, asset: str) -> bool:
        """Up, and every probe has answered `rise` times in a row since start_fresh."""
        track = self.assets[asset]
        return track.state == "up" and all(p.fresh_ok >= p.rise for p in track.probes.values())

    def down_since_ns(self, asset: str) -> int | None:
        track = self.assets[asset]
        return track.since_ns if track.state == "down" else None

    def observe(
        self, asset: str, probe: str, obs: Observation, started_ns: int, scheduled_ns: int, tick: int
    ) -> list[EventDraft]:
        track = self.assets[asset]
        probe_track = track.probes[probe]
        track.total += 1
        track.ok += obs.ok
        track.last_latency_us = obs.latency_us
        observed = ProbeObserved(
            probe=probe,
            ok=obs.ok,
            latency_us=obs.latency_us,
            tick=tick,
            scheduled_mono_ns=scheduled_ns,
            jitter_us=(started_ns - scheduled_ns) // 1000,
            reason="" if obs.ok else obs.reason,
        )
        out = [EventDraft(observed, started_ns, asset)]
        if probe_track.observe(obs.ok, started_ns, started_ns + obs.latency_us * 1000):
            out.extend(self._asset_transition(track, probe, probe_track))
        return out

    def _asset_transition(self, track: AssetTrack, probe: str, cause: ProbeTrack) -> list[EventDraft]:
        new = track.combined()
        if new is None or new == track.state:
            return []
        initial = track.state is None
        track.state, track.since_ns = new, cause.streak_start_ns
        change = AssetState(
            state=new,
            at_mono_ns=cause.streak_start_ns,
            lower_mono_ns=cause.before_streak_ns or cause.streak_start_ns,
            probe=probe,
            streak=cause.streak_len,
            initial=initial,
            upper_mono_ns=cause.first_done_ns,
        )
        return [EventDraft(change, cause.streak_start_ns, track.asset)]
