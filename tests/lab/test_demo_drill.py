"""playbooks/demo.yaml over the lab, and `drill demo`'s honesty: its words and exit code follow the
verdict, and the trust file it verifies against is not inside the evidence it vouches for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import drill.cli.demo as demo_cli
from drill.cli import cli
from drill.evidence.events import RunStatus, StepStatus
from drill.evidence.snapshot import Phase
from drill.lab import Lab
from drill.playbook.model import Playbook
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions

DEMO = Path(__file__).resolve().parents[2] / "playbooks" / "demo.yaml"


async def test_demo_drill_passes_with_a_measured_loss_within_the_rpo(tmp_path: Path) -> None:
    async with Lab.start() as lab:
        outcome = await run_drill(
            load_playbook(DEMO),
            RunOptions(runs_dir=tmp_path, auto_confirm=True, env={**os.environ, **lab.env()}),
        )
        lost_in_lab = lab.kv.lost_on_failover
    results = outcome.results
    assert results.status == RunStatus.COMPLETED
    assert (results.verdict, outcome.exit_code) == ("pass", 0)
    assets = {a.id: a for a in results.assets}
    kv, web, reports = assets["orders-kv"], assets["web"], assets["reports"]
    assert kv.verdict == "pass"
    assert kv.rpo is not None
    assert kv.rpo.lost_writes == lost_in_lab >= 1  # the probe saw exactly what the lab dropped
    assert kv.targets.rpo_ms is not None and 0 < kv.rpo.rpo_ms <= kv.targets.rpo_ms
    assert web.verdict == "pass" and web.rto_ms is not None and web.rto_ms <= 10_000
    assert reports.verdict == "pass" and reports.detection_ms is not None
    assert web.ack is not None and web.ack.met is True
    assert all(step.status == StepStatus.OK for step in results.steps if step.phase == Phase.SCENARIO)


def test_make_demo_says_pass_exits_0_and_keeps_the_trust_file_outside_the_evidence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "drill", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "verdict: PASS" in lines
    assert lines[-1] == (
        "the demo drill PASSED: every asset recovered on the secondary within its tier targets (exit 0)"
    )
    run_dir = (tmp_path / "runs" / "latest").resolve()
    trust = tmp_path / "demo-trust" / "allowed_signers"
    assert not (run_dir / "allowed_signers").exists()
    assert trust.is_file() and run_dir not in trust.resolve().parents
    assert (
        "trust file: demo-trust/allowed_signers, kept outside the evidence folder: an auditor verifies with an"
        " allowed_signers file of their own; one shipped inside the evidence it vouches for would prove nothing"
    ) in lines
    assert (
        f"verify it again:   drill verify runs/{run_dir.name} --allowed-signers demo-trust/allowed_signers"
        in lines
    )
    verify = subprocess.run(
        [sys.executable, "-m", "drill", "verify", str(run_dir), "--allowed-signers", str(trust)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_failed_demo_says_so_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same drill with an RPO of 0: the lagging replica's loss makes it fail, truthfully.
    strict = tmp_path / "strict.yaml"
    text = DEMO.read_text()
    assert "rpo: 2s," in text
    strict.write_text(text.replace("rpo: 2s,", 'rpo: "0",'))
    failing: Playbook = load_playbook(strict)
    monkeypatch.setattr(demo_cli, "demo_playbook", lambda: failing)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "verdict: FAIL (objectives missed: orders-kv)" in out
    last = out.splitlines()[-1]
    assert last.startswith("the demo drill FAILED (objectives missed: orders-kv): recovery was NOT within")
    assert last.endswith("(exit 1)")
    assert "PASSED" not in out
    assert "within the tier targets" not in result.stderr  # the opening line claims no outcome
