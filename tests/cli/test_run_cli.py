"""`drill run` as a user runs it: a subprocess, real servers, signals, SIGKILL mid-drill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from drill.evidence.journal import read_events, verify_journal
from tests.conftest import SwitchableServer, drill_run_argv

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: cli-test, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s, rpo: "0"}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: hold, pause: 60s}}
rollback:
  - {{name: fail back, action: {{http: {{url: "{url}/failback"}}}}}}
"""


def _start(tmp_path: Path, url: str) -> tuple[subprocess.Popen[bytes], Path]:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(PLAYBOOK.format(url=url))
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        drill_run_argv(playbook, runs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    return proc, runs


def _journal_with(runs: Path, needle: bytes, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> Path:
    """Poll the journal the subprocess writes until it holds `needle` (another process: no event to await)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in runs.glob("*/journal.jsonl"):
            if needle in path.read_bytes():
                return path
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.02)
    raise AssertionError(f"journal never showed {needle!r}")


def test_sigkill_mid_drill_loses_nothing_written(tmp_path: Path, http_server: SwitchableServer) -> None:
    proc, runs = _start(tmp_path, http_server.url)
    try:
        journal = _journal_with(runs, b'"step":"hold"', proc)
        before = journal.read_bytes()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    after = journal.read_bytes()
    assert after.startswith(before)  # every byte seen before the kill is still there, unchanged
    summary = verify_journal(journal, allow_torn_tail=True)
    assert summary.count >= before.count(b"\n")
    types = [e.type for e in read_events(journal, allow_torn_tail=True)]
    assert types[0] == "run.started" and "step.started" in types and "run.finished" not in types


def test_sigint_aborts_runs_rollback_and_exits_3(tmp_path: Path, http_server: SwitchableServer) -> None:
    proc, runs = _start(tmp_path, http_server.url)
    try:
        journal = _journal_with(runs, b'"step":"hold"', proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 3, proc.stderr.read().decode() if proc.stderr else ""
    assert http_server.requests.count("/failback") == 1
    verify_journal(journal)
    results = json.loads((journal.parent / "results.json").read_text())
    assert results["status"] == "aborted" and results["rollback"] == {"ran": True, "status": "ok"}
    assert results["stops"][0]["condition"] == "signal SIGINT"
    assert (journal.parent / "report.json").exists() and (journal.parent / "report.html").exists()


def test_non_interactive_manual_step_needs_auto_confirm(tmp_path: Path) -> None:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(
        PLAYBOOK.format(url="http://127.0.0.1:9").replace(
            "{name: hold, pause: 60s}", '{name: check, manual: "Banner up?"}'
        )
    )
    proc = subprocess.run(
        drill_run_argv(playbook, tmp_path / "runs"),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ},
        timeout=60,
    )
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "manual steps (check) but this run is not interactive" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


CHAIN = """\
contacts:
  chains:
    oncall:
      respond_within: 15m
      contacts:
        - {{name: Ana, via: webhook, url: "{url}/page", ack_within: 5m}}
"""


def test_sigint_does_not_wait_for_acknowledgements(tmp_path: Path, http_server: SwitchableServer) -> None:
    """A page went out with a 5 min ack window; Ctrl-C still ends the drill within seconds,
    rolled back, with evidence, and says at once what happens."""
    playbook = tmp_path / "p.yaml"
    text = PLAYBOOK.format(url=http_server.url).replace(
        "    tier: tier-0\n", "    tier: tier-0\n    contact_chain: oncall\n"
    )
    playbook.write_text(text + CHAIN.format(url=http_server.url))
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        drill_run_argv(playbook, runs),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        journal = _journal_with(runs, b'"type":"page.sent"', proc)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        took_s = time.monotonic() - interrupted
    finally:
        proc.kill()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 3, err
    assert took_s < 5 + 5, (
        f"took {took_s:.1f} s"
    )  # the rollback's own bound (one 60 s action, done at once) + 5 s
    assert "aborting: ending the scenario, rolling back, not waiting for acknowledgements" in err
    assert http_server.requests.count("/failback") == 1
    verify_journal(journal)
    results = json.loads((journal.parent / "results.json").read_text())
    assert results["status"] == "aborted"
    assert [p["acked_utc"] for p in results["pages"]] == [None]  # who had not acknowledged is on record
    (wait,) = results["waits"]
    assert (wait["what"], wait["outcome"], wait["detail"]) == (
        "acknowledgements",
        "ended by the operator",
        "not acknowledged: oncall",
    )
    assert (journal.parent / "report.json").exists()
