"""`drill run --dry-run`: a readiness check that probes once, resolves secrets and runs no action."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from drill.cli import cli
from tests.conftest import SwitchableServer

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: dry-run, owner: tests}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes: [{{name: health, http: {{url: "{url}/health"}}}}]
  - id: db
    tier: tier-0
    probes: [{{name: port, tcp: {{host: 127.0.0.1, port: {closed}}}, timeout: 500ms}}]
scenario:
  - {{name: declare, mark: disaster}}
  - name: fail over
    action: {{http: {{url: "{url}/failover", headers: {{X-Key: "${{env:DRILL_DRY_RUN_MISSING}}"}}}}}}
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def test_dry_run_reports_every_problem_and_runs_no_action(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_server.url, closed=_closed_port()))
    result = CliRunner().invoke(cli, ["run", "--dry-run", str(playbook)], env={"DRILL_DRY_RUN_MISSING": None})
    lines = result.output.splitlines()
    assert result.exit_code == 3, result.output  # not ready: could not run
    assert "ok  probe web/health" in lines
    assert any(line.startswith("NOT READY probe db/port: connection refused") for line in lines)
    assert any(
        "NOT READY action in step 'fail over'" in line and "DRILL_DRY_RUN_MISSING" in line for line in lines
    )
    assert lines[-1] == "not ready: 2 problem(s)"
    assert http_server.requests == ["/health"]  # probed once; the failover action never ran
