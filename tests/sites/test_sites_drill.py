"""Drills probed from three sites: real `drill agent` processes, a real nats-server, one journal.

Each agent reads its target from its own environment (${env:TARGET}), as a real site would
reach the service over its own network path; a site "cut off" is an agent whose path leads to a
closed port. Ground truth is what the test recorded itself: the instants it switched the
service off and on, and which agents it killed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drill.evidence.events import AssetState, SiteDone, SiteSeen, SiteState
from drill.evidence.journal import verify_journal
from tests.servers import ToggleServer
from tests.sites.conftest import (
    DETECT_AND_RECOVER,
    INTERVAL_MS,
    SITES,
    Agents,
    Outage,
    observed_per_site,
    playbook_text,
    run_sites_drill,
)
from tests.support.nats import NatsServer

pytestmark = pytest.mark.timeout(120)


async def test_three_sites_one_journal_with_each_sites_view(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    for site in SITES:
        agents.start(site, target.url)
    outage = Outage(target)
    code, events, journal = await run_sites_drill(
        tmp_path, playbook_text(DETECT_AND_RECOVER), broker, [outage.sink]
    )
    assert outage.task is not None
    await outage.task
    assert code == 0, [
        e.payload for e in events if type(e.payload).__name__ in ("StepFinished", "RunFinished")
    ]
    verify_journal(journal)
    per_site = observed_per_site(events)
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
