"""Steady state first: against an environment that is already broken, nothing that changes the
world runs; the evidence says why, the verdict is `not run`, nothing is rolled back, exit 3."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from drill.errors import EXIT_ABORTED
from drill.evidence.events import RunStatus, SteadyState, StepFinished, StepStatus
from drill.evidence.journal import read_events, verify_journal
from drill.playbook.model import Action, ActionStep, MarkStep, Playbook
from drill.report.build import build_report_from_journal
from drill.report.render_md import render_markdown
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _playbook(port: int, actions: SwitchableServer) -> Playbook:
    scenario = (
        MarkStep("declare", "disaster"),
        ActionStep("kill primary", Action("http", {"method": "POST", "url": actions.url + "/kill"})),
        ActionStep("fail over", Action("http", {"method": "POST", "url": actions.url + "/failover"})),
    )
    rollback = (
        ActionStep("fail back", Action("http", {"method": "POST", "url": actions.url + "/failback"})),
    )
    return one_asset_playbook("tcp", {"host": "127.0.0.1", "port": port}, scenario, rollback=rollback)


async def test_nothing_changes_the_world_when_an_asset_is_down_at_the_start(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    playbook = _playbook(_closed_port(), http_server)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True, rollback="always"))
    assert http_server.requests == []  # ground truth: no action reached the world, no rollback either
    results = outcome.results
    assert (results.status, results.verdict, outcome.exit_code) == (
        RunStatus.NOT_RUN,
        "not-run",
        EXIT_ABORTED,
    )
    assert results.reason == "steady state not met: not up at the start: svc (down)"
    assert results.rollback.ran is False
    assert results.steady_state is not None and results.steady_state.not_up == ("svc",)
    asset = results.assets[0]
    assert (asset.verdict, asset.rto_ms) == ("not-measured", None)  # never "RTO 0"
    assert asset.reasons == (
        "the drill did not run: the steady state was not met (this asset was not up at the start)",
    )
    verify_journal(outcome.journal_path)
    events = list(read_events(outcome.journal_path))
    steady = [e.payload for e in events if isinstance(e.payload, SteadyState)]
    assert steady == [SteadyState(False, ("svc",), False)]
    skipped = [e.payload for e in events if isinstance(e.payload, StepFinished)]
    assert [s.status for s in skipped] == [StepStatus.SKIPPED] * 3
    report = build_report_from_journal(outcome.journal_path)
    assert report.verdict == "not-run"
    assert "Steady state NOT met: svc not up at the start; nothing was changed" in render_markdown(report)


async def test_allow_degraded_runs_anyway_and_the_report_says_so(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    playbook = _playbook(_closed_port(), http_server)
    options = RunOptions(runs_dir=tmp_path, auto_confirm=True, allow_degraded=True)
    outcome = await run_drill(playbook, options)
    assert http_server.requests[:2] == ["/kill", "/failover"]
    assert outcome.results.steady_state is not None and outcome.results.steady_state.degraded_allowed
    report = build_report_from_journal(outcome.journal_path)
    assert any(f.title == "Drill run against a degraded environment" for f in report.findings)
    # the asset was down before the failure was injected: no recovery from it can be timed
    assert report.verdict == "incomplete"
    (asset,) = report.assets
    assert asset.rto_ms is None and asset.verdict == "incomplete"
    assert any("already down before the failure was injected" in r for r in asset.reasons)


async def test_a_healthy_start_meets_the_steady_state(http_server: SwitchableServer, tmp_path: Path) -> None:
    playbook = _playbook(http_server.server_port, http_server)
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True))
    assert outcome.results.steady_state is not None and outcome.results.steady_state.met
    assert "/kill" in http_server.requests


PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: broken, owner: tests}
settings: {interval: 100ms, timeout: 300ms}
tiers: [{name: tier-0, rto: 5s}]
assets:
  - id: svc
    tier: tier-0
    probes:
      - {name: port, tcp: {host: 127.0.0.1, port: PORT}}
scenario:
  - {name: declare, mark: disaster}
  - {name: kill, action: {http: {method: POST, url: "URL/kill"}}}
rollback:
  - {name: fail back, action: {http: {method: POST, url: "URL/failback"}}}
"""


def test_drill_run_exits_3_and_says_why(http_server: SwitchableServer, tmp_path: Path) -> None:
    text = PLAYBOOK.replace("PORT", str(_closed_port())).replace("URL", http_server.url)
    (tmp_path / "drill.yaml").write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "drill",
            "run",
            "drill.yaml",
            "--auto-confirm",
            "--runs-dir",
            "runs",
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "verdict: NOT-RUN (steady state not met: not up at the start: svc (down))" in done.stdout
    assert http_server.requests == []
