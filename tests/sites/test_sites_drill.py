"""Drills probed from three sites: real `drill agent` processes, a real nats-server, one journal.

Each agent reads its target from its own environment (${env:TARGET}), as a real site would
reach the service over its own network path; a site "cut off" is an agent whose path leads to a
closed port. Ground truth is what the test recorded itself: the instants it switched the
service off and on, and which agents it killed.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from drill.evidence.events import (
    AssetState,
    Event,
    FailureInjected,
    ProbeObserved,
    SiteDone,
    SiteSeen,
    SiteState,
)
from drill.evidence.journal import read_events, verify_journal
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions, Sink
from tests.servers import ToggleServer
from tests.support.nats import AgentProc, NatsServer, start_agent
from tests.support.servers import start_or_skip

pytestmark = pytest.mark.timeout(120)
SITES = ("eu-west", "us-east", "ap-south")
INTERVAL_MS = 100
TIMEOUT_MS = 200


def playbook_text(scenario: str, quorum: int = 2) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: drill/v1
        kind: Playbook
        metadata: {{name: three-sites, owner: test@drill.example}}
        settings: {{interval: {INTERVAL_MS}ms, timeout: {TIMEOUT_MS}ms, fall: 2, rise: 2, max_duration: 60s}}
        sites:
          - {{name: eu-west}}
          - {{name: us-east}}
          - {{name: ap-south}}
        tiers:
          - {{name: web, rto: 10s}}
        assets:
          - id: shop
            tier: web
            waive: {{rpo: "stateless front"}}
            sites: [eu-west, us-east, ap-south]
            quorum: {quorum}
            probes:
              - name: health
                http: {{url: "${{env:TARGET}}"}}
        scenario:
        """
    ) + textwrap.indent(textwrap.dedent(scenario), "  ")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_or_skip(lambda: NatsServer(tmp_path / "nats").start())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def target() -> AsyncIterator[ToggleServer]:
    server = ToggleServer(http=True)
    await server.start()
    try:
        yield server
    finally:
        if server.server is not None:
            await server.stop()


class Agents:
    def __init__(self, broker: NatsServer, workdir: Path) -> None:
        self.broker, self.workdir = broker, workdir
        self.procs: dict[str, AgentProc] = {}

    def start(self, site: str, url: str) -> AgentProc:
        self.procs[site] = start_agent(self.broker.url, site, self.workdir, {"TARGET": url})
        return self.procs[site]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def agents(broker: NatsServer, tmp_path: Path) -> Iterator[Agents]:
    group = Agents(broker, tmp_path)
    try:
        yield group
    finally:
        group.stop()


class Outage:
    """On the injection: the service off for outage_s, then on again, instants recorded."""

    def __init__(self, server: ToggleServer, outage_s: float = 0.8) -> None:
        self.server, self.outage_s = server, outage_s
        self.t_off = self.t_on = 0
        self.task: asyncio.Task[None] | None = None

    def sink(self, event: Event) -> None:
        if isinstance(event.payload, FailureInjected) and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self.t_off = await self.server.stop()
        await asyncio.sleep(self.outage_s)
        self.t_on = await self.server.start()


DETECT_AND_RECOVER = """\
- {name: declare disaster, mark: disaster}
- name: detected
  wait_for: {state: down, asset: shop, within: 10s}
- name: recovered
  wait_for: {state: up, asset: shop, within: 10s}
"""


async def _run(
    tmp_path: Path, text: str, broker: NatsServer, sinks: Sequence[Sink] = ()
) -> tuple[int, list[Event], Path]:
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    outcome = await run_drill(
        load_playbook(path), RunOptions(runs_dir=tmp_path / "runs", broker=broker.url), sinks=list(sinks)
    )
    return outcome.exit_code, list(read_events(outcome.journal_path)), outcome.journal_path


def _observed_per_site(events: list[Event]) -> Counter[str]:
    return Counter(e.payload.site or "" for e in events if isinstance(e.payload, ProbeObserved))


async def test_three_sites_one_journal_with_each_sites_view(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    for site in SITES:
        agents.start(site, target.url)
    outage = Outage(target)
    code, events, journal = await _run(tmp_path, playbook_text(DETECT_AND_RECOVER), broker, [outage.sink])
    assert outage.task is not None
    await outage.task
    assert code == 0, [
        e.payload for e in events if type(e.payload).__name__ in ("StepFinished", "RunFinished")
    ]
    verify_journal(journal)
    per_site = _observed_per_site(events)
    assert set(per_site) == set(SITES) and min(per_site.values()) > 10, per_site
    seen = {e.payload.site for e in events if isinstance(e.payload, SiteSeen)}
    assert seen == set(SITES)
    # nothing lost between agent and journal: each agent's own count equals what was journalled
    done = {e.payload.site: e.payload for e in events if isinstance(e.payload, SiteDone)}
    assert set(done) == set(SITES)
    for site, record in done.items():
        assert record.observed == record.journalled == per_site[site], record
    # every site saw the outage itself, and the asset's down/up lie after the truth
    site_downs = {
        e.payload.site for e in events if isinstance(e.payload, SiteState) and e.payload.state == "down"
    }
    assert site_downs == set(SITES)
    states = {
        e.payload.state: e.payload
        for e in events
        if isinstance(e.payload, AssetState) and not e.payload.initial
    }
    down, up = states["down"], states["up"]
    assert down.lower_mono_ns <= outage.t_off <= (down.upper_mono_ns or 0) + INTERVAL_MS * 1_000_000
    assert outage.t_off <= down.at_mono_ns
    assert outage.t_on <= up.at_mono_ns
    assert "@" in down.probe  # the site whose view completed the quorum
