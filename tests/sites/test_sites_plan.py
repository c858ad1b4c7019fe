"""`drill plan` says which site probes what; `--dry-run` checks each site's agent is connected."""

from __future__ import annotations

import time
from pathlib import Path

from drill.plan import site_duties, site_duties_text
from drill.playbook.validate import load_playbook
from drill.run.dryrun import check_readiness
from drill.run.sites.coordinator import agent_answers
from tests.servers import ToggleServer
from tests.sites.conftest import DETECT_AND_RECOVER, Agents, playbook_text
from tests.support.nats import NatsServer


def _playbook(tmp_path: Path) -> Path:
    path = tmp_path / "sites.yaml"
    path.write_text(playbook_text(DETECT_AND_RECOVER))
    return path


def test_plan_lists_each_sites_probes_and_quorum(tmp_path: Path) -> None:
    playbook = load_playbook(_playbook(tmp_path))
    assert [d["site"] for d in site_duties(playbook)] == ["eu-west", "us-east", "ap-south"]
    text = site_duties_text(playbook)
    assert "eu-west: shop/health (down when 2 of 3 sites see it down)" in text


async def test_dry_run_names_the_site_whose_agent_is_not_connected(
    tmp_path: Path, broker: NatsServer, agents: Agents, target: ToggleServer
) -> None:
    agents.start("eu-west", target.url)
    agents.start("us-east", target.url)
    for site in ("eu-west", "us-east"):  # the agents are processes: wait until each answers
        deadline = time.monotonic() + 20
        while await agent_answers(broker.url, site, 0.5) and time.monotonic() < deadline:
            pass
    readiness = await check_readiness(load_playbook(_playbook(tmp_path)), broker=broker.url)
    lines = readiness.lines()
    assert not readiness.ready
    assert any(line.startswith("ok  site eu-west") or line.startswith("ok site eu-west") for line in lines), (
        lines
    )
    assert any(line.startswith("ok") and "site us-east" in line for line in lines), lines
    missing = [line for line in lines if "site ap-south" in line]
    assert missing and missing[0].startswith("NOT READY") and "drill agent --site ap-south" in missing[0]
    probe = next(line for line in lines if "probe shop/health" in line)
    assert "probed from sites eu-west, us-east, ap-south (quorum 2), not from here" in probe


async def test_dry_run_without_a_broker_is_not_ready(tmp_path: Path) -> None:
    readiness = await check_readiness(load_playbook(_playbook(tmp_path)))
    assert not readiness.ready
    assert sum("no --broker given" in line for line in readiness.lines()) == 3
