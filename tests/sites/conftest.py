"""Shared pieces of the site tests: a real nats-server, `drill agent` processes, a target the
test switches off and on, three-site playbooks, and running a drill against them."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from drill.evidence.events import Event, FailureInjected, ProbeObserved
from drill.evidence.journal import read_events
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions, Sink
from tests.servers import ToggleServer
from tests.support.nats import AgentProc, NatsServer, start_agent
from tests.support.servers import start_or_skip

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


async def run_sites_drill(
    tmp_path: Path, text: str, broker: NatsServer, sinks: Sequence[Sink] = ()
) -> tuple[int, list[Event], Path]:
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    outcome = await run_drill(
        load_playbook(path), RunOptions(runs_dir=tmp_path / "runs", broker=broker.url), sinks=list(sinks)
    )
    return outcome.exit_code, list(read_events(outcome.journal_path)), outcome.journal_path


def observed_per_site(events: list[Event]) -> Counter[str]:
    return Counter(e.payload.site or "" for e in events if isinstance(e.payload, ProbeObserved))
