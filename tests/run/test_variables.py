"""Plain variables ${var:NAME}: resolved like secrets, never redacted (a secret of `2026` blanks out
every timestamp that contains it; a variable must not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drill.errors import SecretUnresolved
from drill.evidence.events import RunStarted
from drill.evidence.journal import read_events
from drill.playbook.model import MarkStep, PauseStep
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from drill.secrets import REDACTED, Secrets
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook

SCENARIO = (MarkStep("declare", "disaster"), PauseStep("watch", 100))


async def test_a_variable_is_resolved_and_never_redacted(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    port = str(http_server.server_port)
    params = {"url": "http://127.0.0.1:${var:PORT}/health", "headers": {"X-Year": "${var:YEAR}"}}
    playbook = one_asset_playbook("http", params, SCENARIO)
    options = RunOptions(runs_dir=tmp_path, auto_confirm=True, variables={"PORT": port, "YEAR": "2026"})
    outcome = await run_drill(playbook, options)
    svc = outcome.results.assets[0]
    assert svc.probes_ok == svc.probes_total > 0  # the probe reached the server through ${var:PORT}
    text = outcome.journal_path.read_text()
    assert REDACTED not in text
    first = next(iter(read_events(outcome.journal_path))).payload
    assert isinstance(first, RunStarted)
    assert first.started_utc.startswith("2026") and first.run_id.startswith("2026")


async def test_the_same_value_as_a_secret_is_redacted_everywhere(
    http_server: SwitchableServer, tmp_path: Path
) -> None:
    """The reason plain variables exist: a secret is scrubbed wherever its text appears."""
    params = {"url": http_server.url + "/health", "headers": {"X-Year": "${env:YEAR}"}}
    playbook = one_asset_playbook("http", params, SCENARIO)
    outcome = await run_drill(
        playbook, RunOptions(runs_dir=tmp_path, auto_confirm=True, env={"YEAR": "2026"})
    )
    first = next(iter(read_events(outcome.journal_path))).payload
    assert isinstance(first, RunStarted)
    assert first.started_utc.startswith(REDACTED) and first.run_id.startswith(REDACTED)


def test_variables_win_over_the_environment_and_a_missing_one_is_named() -> None:
    secrets = Secrets(env={"REGION": "from-env", "ONLY_ENV": "e"}, variables={"REGION": "eu-west-1"})
    assert secrets.resolve_text("${var:REGION}/${var:ONLY_ENV}") == "eu-west-1/e"
    assert secrets.values == set()  # nothing to redact
    with pytest.raises(SecretUnresolved, match="variable NOPE is not set"):
        secrets.resolve_text("${var:NOPE}", "assets.svc.probes.check")


def _drill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drill", *args], capture_output=True, text=True, cwd=cwd)


PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: vars, owner: tests}
settings: {interval: 100ms, timeout: 500ms}
tiers: [{name: tier-0, rto: 5s}]
assets:
  - id: svc
    tier: tier-0
    probes:
      - {name: health, http: {url: "http://127.0.0.1:${var:PORT}/health"}}
scenario:
  - {name: declare, mark: disaster}
  - {name: watch, pause: 200ms}
"""


def test_var_and_vars_file_on_the_command_line(http_server: SwitchableServer, tmp_path: Path) -> None:
    (tmp_path / "drill.yaml").write_text(PLAYBOOK)
    (tmp_path / "vars.yaml").write_text("PORT: 1\n")  # overridden by --var below
    port = str(http_server.server_port)
    done = _drill(
        "run",
        "drill.yaml",
        "--runs-dir",
        "runs",
        "--vars-file",
        "vars.yaml",
        "--var",
        f"PORT={port}",
        cwd=tmp_path,
    )
    # exit 1, incomplete: nothing went down, so no recovery was demonstrated; the probes answered
    assert done.returncode == 1 and "verdict: INCOMPLETE" in done.stdout, done.stdout + done.stderr
    bad = _drill("run", "drill.yaml", "--var", "PORT", cwd=tmp_path)
    assert bad.returncode == 2 and "--var 'PORT': expected NAME=VALUE" in bad.stderr
    missing = _drill("run", "drill.yaml", cwd=tmp_path)
    assert missing.returncode == 2 or missing.returncode == 3, missing.stderr
    assert "variable PORT is not set" in missing.stderr
    (tmp_path / "list.yaml").write_text("- 1\n")
    listed = _drill("run", "drill.yaml", "--vars-file", "list.yaml", cwd=tmp_path)
    assert listed.returncode == 2 and "expected a mapping of NAME: value" in listed.stderr
