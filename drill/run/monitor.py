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

from drill.evidence.events import AssetState, EventDraft, ProbeObserved, SiteState, State
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
class SiteGroup:
    """One probe run at several sites: a streak per site, and the quorum rule over them.

    Down when at least `quorum` sites see it down; up when so many see it up that the rest
    could not make a quorum; otherwise (sites silent or split) it keeps its state, since
    nothing decides a change. A site with no data counts for neither side.
    """

    quorum: int
    sites: dict[str, ProbeTrack]
    state: State | None = None
    error_ns: dict[str, int] = field(default_factory=dict)  # per site: its clock's error bound

    def decide(self) -> State | None:
        states = [t.state for t in self.sites.values()]
        if states.count("down") >= self.quorum:
            return "down"
        if states.count("up") >= len(states) - self.quorum + 1:
            return "up"
        return self.state

    def fresh(self) -> bool:
        """Enough sites answered `rise` times since start_fresh to outvote any quorum of down."""
        fresh = sum(t.fresh_ok >= t.rise for t in self.sites.values())
        return fresh >= len(self.sites) - self.quorum + 1


@dataclass(slots=True)
class AssetTrack:
    asset: str
    probes: dict[str, ProbeTrack]
    state: State | None = None
    since_ns: int = 0
    last_latency_us: int = 0
    total: int = 0
    ok: int = 0
    groups: dict[str, SiteGroup] = field(default_factory=dict)  # probes run at sites, by name

    def combined(self) -> State | None:
        """Down if any probe is down; up only when every probe is up."""
        states = [p.state for p in self.probes.values()] + [g.state for g in self.groups.values()]
        if "down" in states:
            return "down"
        return "up" if all(s == "up" for s in states) else None

    def tracks(self) -> Iterable[ProbeTrack]:
        yield from self.probes.values()
        for group in self.groups.values():
            yield from group.sites.values()


@dataclass(slots=True)
class Monitor:
    """Turns observations into probe.observed and asset.state events."""

    assets: dict[str, AssetTrack] = field(default_factory=dict)

    @classmethod
    def for_assets(cls, assets: Iterable[Asset]) -> Monitor:
        return cls({a.id: _asset_track(a) for a in assets})

    def state(self, asset: str) -> State | None:
        return self.assets[asset].state

    def start_fresh(self, since_ns: int) -> None:
        """From now on count, per probe, the successes of probes started at or after since_ns:
        the return to normal is judged on those alone, never on a state seen before the rollback
        ended (a rollback that breaks something has not been probed yet)."""
        for track in self.assets.values():
            for probe in track.tracks():
                probe.fresh_from_ns, probe.fresh_ok = since_ns, 0

    def back_fresh(self, asset: str) -> bool:
        """Up, and every probe has answered `rise` times in a row since start_fresh."""
        track = self.assets[asset]
        return (
            track.state == "up"
            and all(p.fresh_ok >= p.rise for p in track.probes.values())
            and all(g.fresh() for g in track.groups.values())
        )

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

    def knows(self, asset: str, probe: str, site: str) -> bool:
        track = self.assets.get(asset)
        group = track.groups.get(probe) if track is not None else None
        return group is not None and site in group.sites

    def observe_site(
        self,
        asset: str,
        probe: str,
        site: str,
        obs: Observation,
        started_ns: int,
        scheduled_ns: int,
        tick: int,
        error_ns: int,
    ) -> list[EventDraft]:
        """An observation made by a site's agent, its instants already on this run's clock;
        error_ns bounds how far that mapping may be off (the agent's clock offset error)."""
        track = self.assets[asset]
        group = track.groups[probe]
        site_track = group.sites[site]
        group.error_ns[site] = error_ns
        track.total += 1
        track.ok += obs.ok
        observed = ProbeObserved(
            probe=probe,
            ok=obs.ok,
            latency_us=obs.latency_us,
            tick=tick,
            scheduled_mono_ns=scheduled_ns,
            jitter_us=(started_ns - scheduled_ns) // 1000,
            reason="" if obs.ok else obs.reason,
            site=site,
        )
        out = [EventDraft(observed, started_ns, asset)]
        if site_track.observe(obs.ok, started_ns, started_ns + obs.latency_us * 1000):
            out.append(_site_state(asset, probe, site, site_track, error_ns))
            out.extend(self._group_turn(track, probe, site))
        return out

    def site_silent(self, site: str, at_ns: int) -> list[EventDraft]:
        """A site's agent went silent: each of its probes reads `no data` from at_ns, and the
        quorum is decided by the other sites alone."""
        out: list[EventDraft] = []
        for track in self.assets.values():
            for probe, group in track.groups.items():
                site_track = group.sites.get(site)
                if site_track is None or site_track.state is None:
                    continue
                fresh = ProbeTrack(fall=site_track.fall, rise=site_track.rise)
                fresh.fresh_from_ns, fresh.last_start_ns = site_track.fresh_from_ns, at_ns
                group.sites[site] = fresh
                silent = SiteState(site, probe, "no data", at_ns, site_track.last_start_ns, at_ns)
                out.append(EventDraft(silent, at_ns, track.asset))
                out.extend(self._group_turn(track, probe, site))
        return out

    def _group_turn(self, track: AssetTrack, probe: str, site: str) -> list[EventDraft]:
        group = track.groups[probe]
        new = group.decide()
        if new == group.state:
            return []
        group.state = new
        cause = group.sites[site]
        return self._asset_transition(track, f"{probe}@{site}", cause, group.error_ns.get(site, 0))

    def _asset_transition(
        self, track: AssetTrack, probe: str, cause: ProbeTrack, error_ns: int = 0
    ) -> list[EventDraft]:
        new = track.combined()
        if new is None or new == track.state:
            return []
        initial = track.state is None
        track.state, track.since_ns = new, cause.streak_start_ns
        change = AssetState(
            state=new,
            at_mono_ns=cause.streak_start_ns,
            lower_mono_ns=(cause.before_streak_ns or cause.streak_start_ns) - error_ns,
            probe=probe,
            streak=cause.streak_len,
            initial=initial,
            upper_mono_ns=cause.first_done_ns + error_ns,
        )
        return [EventDraft(change, cause.streak_start_ns, track.asset)]


def _asset_track(asset: Asset) -> AssetTrack:
    local = {p.name: ProbeTrack(fall=p.fall, rise=p.rise) for p in asset.probes if not p.remote}
    groups = {
        p.name: SiteGroup(p.quorum, {site: ProbeTrack(fall=p.fall, rise=p.rise) for site in p.sites})
        for p in asset.probes
        if p.remote
    }
    return AssetTrack(asset.id, local, groups=groups)


def _site_state(asset: str, probe: str, site: str, cause: ProbeTrack, error_ns: int) -> EventDraft:
    assert cause.state is not None  # only called on a change, which sets a state
    change = SiteState(
        site,
        probe,
        cause.state,
        cause.streak_start_ns,
        (cause.before_streak_ns or cause.streak_start_ns) - error_ns,
        cause.first_done_ns + error_ns,
    )
    return EventDraft(change, cause.streak_start_ns, asset)
