"""Ground truth: a server the test switches off and on at instants it records itself.

Measured t_detect and t_recover (the runner's journal) must lie within one probe interval
(+ the probe's timeout, + scheduling slack) after the true instants, and never before them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from drill.clock import monotonic_ns
from drill.evidence.events import AssetState, Event, FailureInjected
from drill.evidence.journal import read_events
from drill.playbook.model import MarkStep, Playbook, WaitFor, WaitForStep
from drill.results import results_json
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.probes.test_dns import Zone
from tests.run.helpers import one_asset_playbook
from tests.servers import ToggleServer

INTERVAL_MS = 100
TIMEOUT_MS = 200
SLACK_NS = 30_000_000  # event-loop scheduling on a loaded 2-core machine
OUTAGE_S = 0.6

SCENARIO = (
    MarkStep("declare disaster", "disaster"),
    WaitForStep("detected", WaitFor(state="down", within_ms=5000, asset="svc")),
    WaitForStep("recovered", WaitFor(state="up", within_ms=5000, asset="svc")),
)


class Outage:
    """After the drill declares the disaster: switch the service off, wait, switch it on."""

    def __init__(self, off: Callable[[], Awaitable[int]], on: Callable[[], Awaitable[int]]) -> None:
        self.off, self.on = off, on
        self.injected = asyncio.Event()
        self.t_off = self.t_on = 0
        self.task: asyncio.Task[None] | None = None

    def sink(self, event: Event) -> None:
        if isinstance(event.payload, FailureInjected) and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self.t_off = await self.off()
        await asyncio.sleep(OUTAGE_S)
        self.t_on = await self.on()


def _states(journal: Path) -> dict[str, int]:
    return {
        e.payload.state: e.payload.at_mono_ns
        for e in read_events(journal)
        if isinstance(e.payload, AssetState) and not e.payload.initial
    }


async def _drill(playbook: Playbook, outage: Outage, tmp_path: Path) -> dict[str, int]:
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path / "runs"), sinks=[outage.sink])
    assert outage.task is not None
    await outage.task
    assert outcome.exit_code == 0, results_json(outcome.results)
    return _states(outcome.journal_path)


def _assert_within_bound(measured: int, truth: int) -> None:
    bound = (INTERVAL_MS + TIMEOUT_MS) * 1_000_000 + SLACK_NS
    assert truth <= measured <= truth + bound, f"measured {(measured - truth) / 1e6:.1f} ms after the truth"


@pytest.fixture
async def http_toggle() -> AsyncIterator[ToggleServer]:
    server = ToggleServer(http=True)
    await server.start()
    yield server
    if server.server is not None:
        await server.stop()


@pytest.mark.parametrize("repetition", range(3))
async def test_http_outage_is_timed_against_ground_truth(
    http_toggle: ToggleServer, tmp_path: Path, repetition: int
) -> None:
    playbook = one_asset_playbook(
        "http", {"url": http_toggle.url}, SCENARIO, interval_ms=INTERVAL_MS, timeout_ms=TIMEOUT_MS
    )
    outage = Outage(http_toggle.stop, http_toggle.start)
    states = await _drill(playbook, outage, tmp_path)
    _assert_within_bound(states["down"], outage.t_off)
    _assert_within_bound(states["up"], outage.t_on)


@pytest.mark.parametrize("repetition", range(2))
async def test_tcp_outage_is_timed_against_ground_truth(tmp_path: Path, repetition: int) -> None:
    server = ToggleServer(http=False)
    await server.start()
    try:
        params = {"host": "127.0.0.1", "port": server.port, "send": "ping\n", "expect": "pong"}
        playbook = one_asset_playbook("tcp", params, SCENARIO, interval_ms=INTERVAL_MS, timeout_ms=TIMEOUT_MS)
        outage = Outage(server.stop, server.start)
        states = await _drill(playbook, outage, tmp_path)
    finally:
        if server.server is not None:
            await server.stop()
    _assert_within_bound(states["down"], outage.t_off)
    _assert_within_bound(states["up"], outage.t_on)


async def test_dns_answer_switch_is_timed_against_ground_truth(tmp_path: Path) -> None:

    loop = asyncio.get_running_loop()
    transport, zone = await loop.create_datagram_endpoint(Zone, local_addr=("127.0.0.1", 0))
    zone.records[("app.drill.test", "A")] = ["10.0.0.1"]
    port = transport.get_extra_info("sockname")[1]

    async def flip(value: str) -> int:
        at = monotonic_ns()
        zone.records[("app.drill.test", "A")] = [value]
        return at

    try:
        params = {"name": "app.drill.test", "nameserver": "127.0.0.1", "port": port, "expect": "10.0.0.1"}
        playbook = one_asset_playbook("dns", params, SCENARIO, interval_ms=INTERVAL_MS, timeout_ms=TIMEOUT_MS)
        outage = Outage(lambda: flip("10.9.9.9"), lambda: flip("10.0.0.1"))
        states = await _drill(playbook, outage, tmp_path)
    finally:
        transport.close()
    _assert_within_bound(states["down"], outage.t_off)
    _assert_within_bound(states["up"], outage.t_on)
