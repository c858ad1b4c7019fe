"""`drill run` when its own environment fails: a full disk, an unusable --runs-dir, a bad URL,
and ack links behind a public URL. Real subprocesses, a real loopback server."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drill.evidence.journal import verify_journal
from tests.cli.test_run_cli import CHAIN
from tests.conftest import SwitchableHandler, SwitchableServer, drill_run_argv, run_files, serving

LIMIT = 32 * 1024  # `ulimit -f 32`: no file of the run may grow beyond 32 KiB (EFBIG, "File too large")

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: fault-test, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s, rpo: "0"}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
{scenario}
rollback:
  - {{name: fail back, action: {{http: {{url: "{url}/failback"}}}}}}
"""
DECLARE = "  - {name: declare, mark: disaster}\n"
# its captured output (40 kB) makes the journal line of its step.finished too large to write
BIG = (
    DECLARE
    + f"  - {{name: big, action: {{command: {{argv: [{sys.executable}, -c, \"print('x' * 40000)\"]}}}},"
    " capture: stdout}\n  - {name: hold, pause: 60s}\n"
)


def _run(
    tmp_path: Path, text: str, *extra: str, env: dict[str, str] | None = None, limit: int | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    playbook = tmp_path / "p.yaml"
    playbook.write_text(text)
    runs = tmp_path / "runs"

    def small_files() -> None:  # in the child only
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        drill_run_argv(playbook, runs, *extra) if "--runs-dir" not in extra else _argv(playbook, *extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        preexec_fn=small_files,
        timeout=120,
    )
    return proc, runs


def _argv(playbook: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "drill", "run", str(playbook), "--log-format", "json", "--yes", *extra]


# -- 1. a full disk mid-drill ------------------------------------------------------------------
def test_a_full_disk_mid_drill_aborts_rolls_back_and_keeps_the_evidence(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    proc, runs = _run(tmp_path, PLAYBOOK.format(url=http_server.url, scenario=BIG), limit=LIMIT)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert http_server.requests.count("/failback") == 1  # the rollback ran against the world
    (journal,) = run_files(runs, "journal.jsonl")
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"drill: aborted: cannot write journal {journal}: File too large; the journal is closed"
    summary = verify_journal(journal)  # what was written verifies: the torn line was dropped
    assert journal.stat().st_size <= LIMIT and summary.count > 0
    results = json.loads((journal.parent / "results.json").read_text())
    assert results["status"] == "aborted" and results["reason"] == "the journal ends before run.finished"
    assert (journal.parent / "report.json").exists()  # the report too, from the journal as written


# -- 2. an http action's URL that cannot be requested ------------------------------------------
def _with_action(url: str, action_url: str, before: str = "") -> str:
    scenario = f'{DECLARE}{before}  - {{name: switch, action: {{http: {{url: "{action_url}"}}}}}}\n'
    return PLAYBOOK.format(url=url, scenario=scenario)


@pytest.mark.parametrize(
    "bad",
    ["http://127.0.0.1:99999/x", "http://127.0.0.1:abc/x", "http://admin:p/w@127.0.0.1:8/x"],
    ids=["port-range", "port-text", "password"],
)
def test_a_literal_bad_url_is_refused_before_anything_runs(
    tmp_path: Path, http_server: SwitchableServer, bad: str
) -> None:
    proc, runs = _run(tmp_path, _with_action(http_server.url, bad))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and bad not in proc.stderr and "p/w" not in proc.stderr
    assert "step 'switch': http action: url: " in proc.stderr
    assert http_server.requests == [] and not runs.exists()


def test_a_secret_url_resolving_to_a_bad_one_fails_at_prepare_unquoted(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    secret = "http://admin:s3cr#t@127.0.0.1:99999/x"
    proc, runs = _run(
        tmp_path, _with_action(http_server.url, "${env:SWITCH_URL}"), env={"SWITCH_URL": secret}
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "s3cr" not in proc.stderr
    assert "step 'switch': http action: url: the port is not a number from 1 to 65535" in proc.stderr
    assert http_server.requests == [] and not runs.exists()


def test_a_bad_url_made_from_a_step_output_fails_the_step_and_rolls_back(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    emit = (
        f"  - {{name: where, action: {{command: {{argv: [{sys.executable}, -c,"
        " \"print('127.0.0.1:99999')\"]}}, capture: stdout}\n"
    )
    text = _with_action(http_server.url, "http://${steps.where.output}/switch", before=emit)
    proc, runs = _run(tmp_path, text)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert http_server.requests.count("/failback") == 1
    (journal,) = run_files(runs, "journal.jsonl")
    verify_journal(journal)
    results = json.loads((journal.parent / "results.json").read_text())
    (switch,) = [s for s in results["steps"] if s["name"] == "switch"]
    assert switch["status"] == "failed"
    assert switch["reason"] == "POST url: the port is not a number from 1 to 65535; " + (
        "a user name or password with special characters must be percent-encoded, e.g. @ as %40"
    )
    assert results["rollback"] == {"ran": True, "status": "ok"}


# -- 3. an unusable --runs-dir ------------------------------------------------------------------
def _runs_dirs(tmp_path: Path) -> dict[str, Path]:
    regular = tmp_path / "a-file"
    regular.write_text("not a folder\n")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    return {"proc": Path("/proc/x"), "under-a-file": regular / "runs", "read-only": readonly / "runs"}


@pytest.mark.parametrize("which", ["proc", "under-a-file", "read-only"])
def test_an_unusable_runs_dir_is_one_line_exit_2(
    tmp_path: Path, http_server: SwitchableServer, which: str
) -> None:
    if which == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only (0555) folder")
    runs = _runs_dirs(tmp_path)[which]
    proc, _ = _run(tmp_path, PLAYBOOK.format(url=http_server.url, scenario=DECLARE), "--runs-dir", str(runs))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"drill: cannot create the evidence folder {runs}/" in proc.stderr
    assert "must be a folder this user can write" in proc.stderr
    assert "/failback" not in http_server.requests  # nothing ran


# -- 4. reachable ack links ---------------------------------------------------------------------
class _Recording(SwitchableHandler):
    """The conftest handler that also keeps each POST body (the page as the webhook got it)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/page":
            self.server.bodies.append(body)  # type: ignore[attr-defined]
        self._answer()


@pytest.fixture
def page_server() -> Iterator[SwitchableServer]:
    server = SwitchableServer()
    server.RequestHandlerClass = _Recording
    server.bodies = []  # type: ignore[attr-defined]
    yield from serving(server)


def test_ack_links_carry_the_public_url_and_plain_http_is_warned(
    tmp_path: Path, page_server: SwitchableServer
) -> None:
    public = "http://drill.example:8443"
    url = page_server.url
    text = PLAYBOOK.format(url=url, scenario=DECLARE).replace(
        "    tier: tier-0\n", "    tier: tier-0\n    contact_chain: oncall\n"
    ) + CHAIN.format(url=url)
    proc, _ = _run(tmp_path, text, "--ack-host", "127.0.0.1", "--public-url", public, "--ack-wait", "1s")
    assert "Traceback" not in proc.stderr
    assert f"drill: warning: --public-url {public} is not https" in proc.stderr
    (page,) = [json.loads(b) for b in page_server.bodies]  # type: ignore[attr-defined]
    assert page["ack_url"].startswith(f"{public}/ack/"), page


def test_a_public_url_that_is_not_a_url_is_refused(tmp_path: Path, http_server: SwitchableServer) -> None:
    text = PLAYBOOK.format(url=http_server.url, scenario=DECLARE)
    proc, runs = _run(tmp_path, text, "--public-url", "drill")
    assert proc.returncode == 2 and "--public-url: expected a base URL" in proc.stderr
    assert not runs.exists()
