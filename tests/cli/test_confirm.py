"""`drill run` asks before it changes the world: real subprocesses, a real pty for the terminal.

A drill with an `action` step (scenario or rollback) runs only when someone said yes: `--yes`
(or `--auto-confirm`, which implies it) from a script, or "y" at the prompt on a terminal. A
script without either is refused at once, before anything is reached or any evidence folder is
made. A drill with no action step (marks and pauses only) changes nothing, so it never asks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SwitchableServer, drill_run_argv, run_files
from tests.support.terminal import answer_on_terminal

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: confirm-test, owner: tests{environment}}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: kill primary, action: {{http: {{url: "{url}/kill", method: POST}}}}}}
rollback:
  - {{name: fail back, action: {{http: {{url: "{url}/failback"}}}}}}
"""

HARMLESS = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: harmless, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: hold, pause: 200ms}}
  - {{name: resolved, mark: resolved}}
"""

PROMPT = "Run these steps now? [y/N]"
REFUSED = "this run is not interactive, so nobody can confirm it"
RUN_TIMEOUT_S = 90  # a whole short drill in a subprocess on a busy 2-core machine


def _playbook(tmp_path: Path, url: str, environment: str | None = None, text: str = PLAYBOOK) -> Path:
    env = "" if environment is None else f", environment: {environment}"
    path = tmp_path / "p.yaml"
    path.write_text(text.format(url=url, environment=env))
    return path


def _argv(playbook: Path, runs: Path, *extra: str) -> list[str]:
    """`drill run` WITHOUT --yes, JSON logs."""
    return drill_run_argv(playbook, runs, *extra, yes=False)


def _results(runs: Path) -> dict[str, object]:
    (path,) = run_files(runs, "results.json")
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _on_terminal(argv: list[str], answer: bytes, stdout: Path) -> tuple[int, str]:
    return answer_on_terminal(argv, PROMPT.encode(), answer, stdout, RUN_TIMEOUT_S)


def test_a_script_without_yes_is_refused_before_anything_runs(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _playbook(tmp_path, http_server.url)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        _argv(playbook, runs), capture_output=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert REFUSED in err
    assert "this drill changes the world (2 action step(s))" in err  # scenario + rollback
    assert "hint:" in err and "--yes" in err.split("hint:", 1)[1]
    assert "Traceback" not in err
    assert PROMPT not in err  # nobody to ask, so it does not ask
    assert not runs.exists()  # no evidence folder for a run that never started
    assert http_server.requests == []  # ground truth: nothing reached the world, not even a probe


def test_an_action_in_the_rollback_alone_also_needs_confirmation(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    text = PLAYBOOK.replace(
        '  - {{name: kill primary, action: {{http: {{url: "{url}/kill", method: POST}}}}}}\n', ""
    )
    playbook = _playbook(tmp_path, http_server.url, text=text)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        _argv(playbook, runs), capture_output=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert REFUSED in err and "(1 action step(s))" in err and "Traceback" not in err
    assert not runs.exists() and http_server.requests == []


@pytest.mark.parametrize("flag", ["--yes", "-y", "--auto-confirm"])
def test_yes_or_auto_confirm_runs_from_a_script(
    tmp_path: Path, http_server: SwitchableServer, flag: str
) -> None:
    playbook = _playbook(tmp_path, http_server.url)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        _argv(playbook, runs, flag), capture_output=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S
    )
    err = proc.stderr.decode()
    assert proc.returncode in (0, 1), err  # it ran (the verdict is not the point here)
    assert REFUSED not in err and PROMPT not in err and "Traceback" not in err
    assert ("POST", "/kill") in http_server.calls  # the scenario's action reached the world
    assert http_server.requests.count("/failback") == 1  # and so did the rollback's
    results = _results(runs)
    assert results["status"] == "completed"


def test_on_a_terminal_no_means_nothing_runs(tmp_path: Path, http_server: SwitchableServer) -> None:
    playbook = _playbook(tmp_path, http_server.url, environment="staging-eu")
    runs = tmp_path / "runs"
    code, shown = _on_terminal(_argv(playbook, runs), b"n\n", tmp_path / "stdout")
    assert code == 3, shown
    before, _, after = shown.partition(PROMPT)
    lines = [line.strip() for line in before.splitlines()]
    assert "drill confirm-test (functional)" in lines
    assert "environment: staging-eu" in lines
    assert "1. declare: mark disaster (t_inject at its start) [inject]" in lines
    assert "2. kill primary: http action, timeout 1 min [changes the world]" in lines
    assert "rollback 1. fail back: http action, timeout 1 min [changes the world]" in lines
    # the numbered steps come in plan order, between the heading and the question
    order = [before.index(x) for x in ("environment: staging-eu", "1. declare", "2. kill", "rollback 1.")]
    assert order == sorted(order)
    assert "not confirmed: nothing was run" in after
    assert "Traceback" not in shown
    assert http_server.requests == []  # ground truth: nothing reached the world
    assert not runs.exists()


def test_on_a_terminal_yes_runs_and_an_unstated_environment_is_said_so(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    playbook = _playbook(tmp_path, http_server.url)  # no metadata.environment
    runs = tmp_path / "runs"
    code, shown = _on_terminal(_argv(playbook, runs), b"y\n", tmp_path / "stdout")
    assert code in (0, 1), shown
    before, _, after = shown.partition(PROMPT)
    assert "environment: (not stated: metadata.environment)" in before
    assert "[changes the world]" in before and "[inject]" in before
    assert "not confirmed" not in after and "Traceback" not in shown
    assert ("POST", "/kill") in http_server.calls  # the action's server saw the request
    assert http_server.requests.count("/failback") == 1
    assert _results(runs)["status"] == "completed"
    assert "verdict:" in (tmp_path / "stdout").read_text()


def test_a_drill_without_actions_runs_without_asking(tmp_path: Path, http_server: SwitchableServer) -> None:
    playbook = _playbook(tmp_path, http_server.url, text=HARMLESS)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        _argv(playbook, runs), capture_output=True, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S
    )
    err = proc.stderr.decode()
    assert proc.returncode in (0, 1), err
    assert REFUSED not in err and PROMPT not in err and "Traceback" not in err
    assert _results(runs)["status"] == "completed"
    assert set(http_server.requests) == {"/health"}  # only the probe: nothing was changed
