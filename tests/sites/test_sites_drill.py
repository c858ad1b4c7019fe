"""Drills probed from three sites: real `drill agent` processes, a real nats-server, one journal.

Each agent reads its target from its own environment (${env:TARGET}), as a real site would
reach the service over its own network path; a site "cut off" is an agent whose path leads to a
closed port. Ground truth is what the test recorded itself: the instants it switched the
service off and on, and which agents it killed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from drill.evidence.events import AssetState, SiteDone, SiteSeen, SiteState
from drill.evidence.journal import verify_journal
from drill.report.evidence import write_evidence
from drill.report.verify import verify_report_dir
from tests.report.signing_helpers import make_key, pub_line, ssh_verify, write_allowed_signers
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
    _signed_report_has_each_sites_view(journal.parent, tmp_path, per_site)


def _signed_report_has_each_sites_view(run_dir: Path, tmp_path: Path, per_site: Counter[str]) -> None:
    key = make_key(tmp_path, "op")
    write_evidence(run_dir, sign_key=key, signer="operator")
    allowed = write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(key)}")
    verify_report_dir(run_dir, allowed)
    assert ssh_verify(run_dir, allowed, "operator").returncode == 0
    report = json.loads((run_dir / "report.json").read_text())
    sites = {s["site"]: s for s in report["sites"]}
    assert set(sites) == set(SITES)
    for site, record in sites.items():
        assert record["complete"] is True and record["journalled"] == per_site[site]
        assert record["clock_error_us"] is not None and record["clock_error_us"] >= 0
    views = {(v["site"], v["probe"]): v for v in report["assets"][0]["sites"]}
    assert set(views) == {(site, "health") for site in SITES}
    assert all(v["quorum"] == 2 and v["sites"] == 3 for v in views.values())
    assert all(any(c["state"] == "down" for c in v["changes"]) for v in views.values())
    markdown = (run_dir / "report.md").read_text()
    assert "## Sites" in markdown and "2 of 3" in markdown
