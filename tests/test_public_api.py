"""The public API in drill/__init__.py: the names are pinned, each resolves, and importing stays lazy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import drill

PUBLIC = [
    "DrillError",
    "Plan",
    "Playbook",
    "Report",
    "Results",
    "RunOptions",
    "RunOutcome",
    "Verification",
    "__version__",
    "build_plan",
    "build_report_from_journal",
    "fold_results",
    "load_playbook",
    "load_report",
    "read_events",
    "run_drill",
    "verify_journal",
    "verify_report_dir",
    "write_report",
]


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(drill.__all__) == sorted(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(drill, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = drill.nope


def test_import_drill_loads_no_driver() -> None:
    code = "import sys, drill; print(','.join(m for m in ('httpx', 'psycopg', 'redis', 'jsonschema') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_flow_through_the_public_api(tmp_path: Path) -> None:
    """load -> plan -> fold -> report, on the 0.1.0 evidence fixture's journal (rebuilt plan)."""
    fixture = Path(__file__).parent / "fixtures" / "evidence-v1"
    playbook = drill.load_playbook(Path(__file__).parent / "playbook" / "valid" / "minimal.yaml")
    assert drill.build_plan(playbook).name == playbook.metadata.name
    results = drill.fold_results(drill.read_events(fixture / "journal.jsonl"))
    report = drill.build_report_from_journal(fixture / "journal.jsonl")
    assert report.verdict == results.verdict
    assert drill.write_report(report, tmp_path).is_file()
