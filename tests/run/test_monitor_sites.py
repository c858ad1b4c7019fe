"""The monitor's quorum rule over sites: pure logic, every instant given by the test."""

from __future__ import annotations

from drill.evidence.events import AssetState, EventDraft, SiteState
from drill.playbook.model import Asset, Probe
from drill.probes.base import Observation
from drill.run.monitor import Monitor

MS = 1_000_000
SITES = ("a", "b", "c")


def _monitor(quorum: int = 2) -> Monitor:
    probe = Probe("health", "http", {}, 100, 50, fall=2, rise=2, sites=SITES, quorum=quorum)
    return Monitor.for_assets([Asset("shop", "web", (probe,))])


def _feed(monitor: Monitor, site: str, oks: list[bool], start_ms: int, error_ns: int = 0) -> list[EventDraft]:
    out: list[EventDraft] = []
    for i, ok in enumerate(oks):
        at = (start_ms + 100 * i) * MS
        out += monitor.observe_site(
            "shop", "health", site, Observation(ok, latency_us=5_000), at, at, i, error_ns
        )
    return out


def _asset_states(drafts: list[EventDraft]) -> list[str]:
    return [d.payload.state for d in drafts if isinstance(d.payload, AssetState)]


def test_down_only_when_a_quorum_of_sites_sees_it_down() -> None:
    monitor = _monitor()
    for site in SITES:
        _feed(monitor, site, [True, True], 0)
    assert monitor.state("shop") == "up"
    lone = _feed(monitor, "c", [False, False, False], 200)  # one site cut off: not an outage
    assert _asset_states(lone) == [] and monitor.state("shop") == "up"
    assert [d.payload.state for d in lone if isinstance(d.payload, SiteState)] == ["down"]
    second = _feed(monitor, "a", [False, False], 200)
    assert _asset_states(second) == ["down"]
    down = next(d.payload for d in second if isinstance(d.payload, AssetState))
    assert down.probe == "health@a" and down.at_mono_ns == 200 * MS


def test_a_silent_site_counts_for_neither_side() -> None:
    monitor = _monitor()
    for site in SITES:
        _feed(monitor, site, [True, True], 0)
    silent = monitor.site_silent("b", 250 * MS)
    assert [(d.payload.site, d.payload.state) for d in silent if isinstance(d.payload, SiteState)] == [
        ("b", "no data")
    ]
    assert monitor.state("shop") == "up"  # a and c still see it up: 2 of the 3
    _feed(monitor, "a", [False, False], 300)
    assert monitor.state("shop") == "up"  # a down, b silent, c up: nothing decides a change
    _feed(monitor, "c", [False, False], 300)
    assert monitor.state("shop") == "down"


def test_the_clock_error_of_the_deciding_site_widens_the_interval() -> None:
    monitor = _monitor(quorum=1)
    _feed(monitor, "a", [True, True], 0, error_ns=3 * MS)
    drafts = _feed(monitor, "a", [False, False], 200, error_ns=3 * MS)
    down = next(d.payload for d in drafts if isinstance(d.payload, AssetState))
    # the last probe that saw it up started at 100 ms; the first failing one ended at 205 ms
    assert (down.lower_mono_ns, down.upper_mono_ns) == (97 * MS, 208 * MS)


def test_back_fresh_needs_enough_sites_to_outvote_a_quorum() -> None:
    monitor = _monitor()
    for site in SITES:
        _feed(monitor, site, [True, True], 0)
    monitor.start_fresh(1_000 * MS)
    _feed(monitor, "a", [True, True], 1_000)
    assert not monitor.back_fresh("shop")  # one fresh site of three: two down could still be a quorum
    _feed(monitor, "b", [True, True], 1_000)
    assert monitor.back_fresh("shop")
