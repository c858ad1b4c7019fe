"""playbooks/demo.yaml over the lab: a realistic outcome, some targets met and one missed with its reason."""

from __future__ import annotations

import os
from pathlib import Path

from drill.evidence.events import RunStatus, StepStatus
from drill.evidence.snapshot import Phase
from drill.lab import Lab
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions

DEMO = Path(__file__).resolve().parents[2] / "playbooks" / "demo.yaml"


async def test_demo_drill_meets_web_targets_and_misses_kv_rpo(tmp_path: Path) -> None:
    async with Lab.start() as lab:
        outcome = await run_drill(
            load_playbook(DEMO),
            RunOptions(runs_dir=tmp_path, auto_confirm=True, env={**os.environ, **lab.env()}),
        )
        lost_in_lab = lab.kv.lost_on_failover
    results = outcome.results
    assert results.status == RunStatus.COMPLETED
    assert results.verdict == "fail"
    assets = {a.id: a for a in results.assets}
    kv, web, reports = assets["orders-kv"], assets["web"], assets["reports"]
    assert kv.verdict == "fail"
    assert kv.rpo is not None
    assert kv.rpo.lost_writes == lost_in_lab >= 1  # the probe saw exactly what the lab dropped
    assert any("RPO" in reason for reason in kv.reasons), kv.reasons
    assert web.verdict == "pass" and web.rto_ms is not None and web.rto_ms <= 10_000
    assert reports.verdict == "pass" and reports.detection_ms is not None
    assert web.ack is not None and web.ack.met is True
    assert all(step.status == StepStatus.OK for step in results.steps if step.phase == Phase.SCENARIO)
