"""`drill sla report --history`: the practice's verified drills are planned windows of the SLA
(examples/sla-lab.yaml covers the demo playbook the practice drills), a tampered copy is not."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from click.testing import CliRunner

from drill.cli import cli
from drill.clock import parse_utc
from drill.practice.history import add_folders
from drill.report.build import load_report
from tests.practice.conftest import Practice

SLA = Path(__file__).resolve().parents[2] / "examples" / "sla-lab.yaml"


def _report(practice: Practice, tmp_path: Path, *extra: str) -> dict[str, Any]:  # parsed JSON
    q1 = load_report(practice.runs["q1"]).run
    assert q1.started_utc is not None
    day = parse_utc(q1.started_utc).astimezone(ZoneInfo("Europe/Berlin")).date()
    argv = [
        "sla",
        "report",
        str(SLA),
        "--from",
        day.isoformat(),
        "--to",
        (day + timedelta(days=1)).isoformat(),
    ]
    argv += ["--journal", str(practice.runs["q1"] / "journal.jsonl"), "--format", "json", *extra]
    done = CliRunner().invoke(cli, argv)
    assert done.exit_code in (0, 1), done.output
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def test_verified_drills_from_the_history_are_excluded_and_a_tampered_copy_is_not(
    practice: Practice, tmp_path: Path
) -> None:
    index = tmp_path / "history.sqlite"
    add_folders(index, list(practice.runs.values()), practice.allowed_signers)
    without = _report(practice, tmp_path)
    with_history = _report(practice, tmp_path, "--history", str(index))
    notes = "\n".join(str(n) for n in with_history["notes"])
    for label in ("q1", "q2", "q3", "q4"):
        assert f"Drill {practice.run_ids[label]} (" in notes
    assert "tampered" not in notes and practice.run_ids["unsigned"] not in notes
    web_without, web_with = (
        next(s for s in d["services"] if s["service"] == "web") for d in (without, with_history)
    )
    q1 = load_report(practice.runs["q1"]).run
    assert q1.started_utc and q1.finished_utc
    drill_ms = int((parse_utc(q1.finished_utc) - parse_utc(q1.started_utc)).total_seconds() * 1000)
    drills = {e["name"]: e["ms"] for e in web_with["excluded_by_reason"]}
    assert "drill" not in {e["name"] for e in web_without["excluded_by_reason"]}
    assert sum(ms for name, ms in drills.items() if "drill" in name) >= drill_ms  # q1's window, at least
    # q1's outage happened inside its own drill window: planned, so it no longer counts as downtime
    assert web_without["downtime_raw_ms"] > 0
    assert web_with["downtime_raw_ms"] < web_without["downtime_raw_ms"]
