"""The up/down state machine: fall/rise hysteresis and the instants DESIGN §2 defines."""

from __future__ import annotations

from drill.evidence.events import AssetState, ProbeObserved
from drill.playbook.model import Asset, Probe
from drill.probes.base import Observation
from drill.run.monitor import Monitor

OK = Observation(ok=True)
BAD = Observation(ok=False, reason="connection refused")


def _monitor(fall: int = 2, rise: int = 2, probes: tuple[str, ...] = ("health",)) -> Monitor:
    asset = Asset(
        id="api",
        tier="tier-0",
        probes=tuple(
            Probe(n, "http", {}, interval_ms=100, timeout_ms=100, fall=fall, rise=rise) for n in probes
        ),
    )
    return Monitor.for_assets([asset])


def _feed(monitor: Monitor, results: list[tuple[str, Observation, int]]) -> list[AssetState]:
    states = []
    for tick, (probe, obs, at) in enumerate(results):
        for draft in monitor.observe("api", probe, obs, at, at, tick):
            if isinstance(draft.payload, AssetState):
                states.append(draft.payload)
    return states


def test_down_needs_fall_failures_and_is_dated_at_the_first_one() -> None:
    monitor = _monitor(fall=3)
    seq = [
        ("health", OK, 100),
        ("health", OK, 200),
        ("health", BAD, 300),
        ("health", BAD, 400),
        ("health", BAD, 500),
    ]
    states = _feed(monitor, seq)
    assert [(s.state, s.at_mono_ns, s.lower_mono_ns) for s in states] == [
        ("up", 100, 100),
        ("down", 300, 200),
    ]


def test_a_single_failure_below_fall_changes_nothing() -> None:
    monitor = _monitor(fall=2)
    states = _feed(monitor, [("health", OK, 1), ("health", OK, 2), ("health", BAD, 3), ("health", OK, 4)])
    assert [s.state for s in states] == ["up"]
    assert monitor.state("api") == "up"


def test_recovery_needs_rise_successes_and_is_dated_at_the_first() -> None:
    monitor = _monitor(fall=1, rise=2)
    seq = [("health", OK, 1), ("health", OK, 2), ("health", BAD, 3), ("health", OK, 4), ("health", OK, 5)]
    states = _feed(monitor, seq)
    assert [(s.state, s.at_mono_ns) for s in states] == [("up", 1), ("down", 3), ("up", 4)]
    assert monitor.down_since_ns("api") is None


def test_asset_is_down_when_any_probe_is_down_and_up_only_when_all_are() -> None:
    monitor = _monitor(fall=1, rise=1, probes=("a", "b"))
    seq = [("a", OK, 1), ("b", OK, 2), ("b", BAD, 3), ("a", BAD, 4), ("a", OK, 5), ("b", OK, 6)]
    states = _feed(monitor, seq)
    assert [(s.state, s.at_mono_ns, s.probe) for s in states] == [
        ("up", 2, "b"),
        ("down", 3, "b"),
        ("up", 6, "b"),
    ]


def test_observed_event_carries_jitter_and_reason() -> None:
    monitor = _monitor()
    drafts = monitor.observe("api", "health", BAD, started_ns=5_000_000, scheduled_ns=4_000_000, tick=7)
    assert drafts[0].payload == ProbeObserved(
        probe="health",
        ok=False,
        latency_us=0,
        tick=7,
        scheduled_mono_ns=4_000_000,
        jitter_us=1000,
        reason="connection refused",
    )
    assert (drafts[0].mono_ns, drafts[0].asset) == (5_000_000, "api")


def test_recovery_is_dated_at_the_completion_of_the_first_success() -> None:
    """A request that hung through the failover started before the service was back."""
    monitor = _monitor(fall=1, rise=1)
    slow_ok = Observation(ok=True, latency_us=80_000)
    states = _feed(
        monitor, [("health", OK, 1_000), ("health", BAD, 2_000_000), ("health", slow_ok, 3_000_000)]
    )
    up = states[-1]
    assert (up.state, up.at_mono_ns, up.lower_mono_ns) == ("up", 83_000_000, 2_000_000)
