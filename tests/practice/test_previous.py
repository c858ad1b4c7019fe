"""A report's link to the previous drill: `drill run --history INDEX` (a real run of q1's playbook,
a later quarter, against the embedded lab, the CLI in a subprocess as a user runs it) journals the
last verified drill of the playbook the index knows, and the signed report names it by its report
SHA-256 and shows the change against it. Tampered, unsigned and contact-test evidence is never the
previous drill; without a history the report has no `previous` at all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drill.errors import UsageError
from drill.lab.lab import Lab, LabConfig
from drill.practice.history import History, add_folders, read_record
from drill.practice.previous import previous_drill
from drill.practice.records import VERIFIED
from drill.units import human_ms
from tests.practice.conftest import PLAYBOOK_NAME, Practice, demo_text

RUN_TIMEOUT_S = 120  # the demo drill takes about 10 s; this bounds a hung subprocess, it syncs nothing


@dataclass(frozen=True, slots=True)
class Linked:
    index: Path
    run_dir: Path
    report: dict[str, Any]  # the new run's report.json
    q1_report: dict[str, Any]
    q1_sha256: str


async def _run_with_history(playbook: Path, runs: Path, index: Path, key: Path) -> dict[str, Any]:
    """`drill run PLAYBOOK --history INDEX` in a subprocess, against a lab this process serves."""
    async with Lab.start(LabConfig()) as lab:
        env = {k: v for k, v in os.environ.items() if k != "DRILL_HISTORY"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "drill",
            "run",
            str(playbook),
            "--runs-dir",
            str(runs),
            "--yes",
            "--log-format",
            "json",
            "--sign-key",
            str(key),
            "--signer",
            "operator",
            "--history",
            str(index),
            "--format",
            "json",
            env={**env, **lab.env()},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
    assert proc.returncode == 0, err.decode()[-3000:]
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture(scope="module")
def linked(practice: Practice, tmp_path_factory: pytest.TempPathFactory) -> Linked:
    """An index of q1, the tampered copy of q3, the unsigned run and the contact test (all three
    newer than q1, none countable as a drill), then one more real run with --history."""
    where = tmp_path_factory.mktemp("previous")
    index = where / "history.sqlite"
    labels = ("q1", "tampered", "unsigned", "contacts")
    add_folders(index, [practice.runs[label] for label in labels], practice.allowed_signers)
    playbook = where / "q1-next-year.yaml"
    playbook.write_text(demo_text("2027-Q1"), encoding="utf-8")
    done = asyncio.run(_run_with_history(playbook, where / "runs", index, practice.keys["operator"]))
    run_dir = Path(done["run_dir"])
    q1_bytes = (practice.runs["q1"] / "report.json").read_bytes()
    return Linked(
        index=index,
        run_dir=run_dir,
        report=json.loads((run_dir / "report.json").read_bytes()),
        q1_report=json.loads(q1_bytes),
        q1_sha256=hashlib.sha256(q1_bytes).hexdigest(),
    )


def test_the_index_holds_evidence_that_does_not_count(practice: Practice, linked: Linked) -> None:
    """The premise: beside q1, the index holds a tampered copy of q3 (a later quarter), an
    unsigned run and a contact test of the same playbook; only q1 counts as a drill."""
    with History.open(linked.index, create=False) as history:
        records = history.records(playbook=PLAYBOOK_NAME)
    statuses = sorted((r.status, r.mode) for r in records)
    assert statuses == [
        ("tampered", "drill"),
        ("unsigned", "drill"),
        ("verified", "contacts"),
        ("verified", "drill"),
    ]
    assert [r.run_id for r in records if r.countable and r.mode == "drill"] == [practice.run_ids["q1"]]


def test_the_report_links_to_q1_by_its_report_sha256(practice: Practice, linked: Linked) -> None:
    previous = linked.report["previous"]
    assert previous["report_sha256"] == linked.q1_sha256
    assert previous["run_id"] == practice.run_ids["q1"] == linked.q1_report["run_id"]
    assert previous["run_id"] not in (
        practice.run_ids["q3"],
        practice.run_ids["unsigned"],
    )  # tampered is q3's id
    assert previous["generated_utc"] == linked.q1_report["generated_utc"]
    assert (previous["verdict"], previous["quarter"]) == ("pass", "2026-Q1")
    assert linked.report["playbook"]["quarter"] == "2027-Q1"
    # the link is in the signed report: the new folder verifies as it stands
    assert read_record(linked.run_dir, practice.allowed_signers).status == VERIFIED


def test_the_change_carries_q1s_figures(linked: Linked) -> None:
    then = {a["id"]: a for a in linked.q1_report["assets"]}
    now = {a["id"]: a for a in linked.report["assets"]}
    changes = {c["asset"]: c for c in linked.report["previous"]["changes"]}
    assert set(changes) == set(then) == set(now) == {"orders-kv", "web", "reports"}
    for name, change in changes.items():
        assert (
            change["verdict_then"] == then[name]["verdict"] and change["verdict_now"] == now[name]["verdict"]
        )
        assert change.get("rto_then_ms") == then[name].get("rto_ms")
        assert change.get("rto_now_ms") == now[name].get("rto_ms")
    assert changes["orders-kv"]["rto_then_ms"] is not None  # q1 measured it: a real figure, not a gap


def test_the_views_show_the_change_against_q1(practice: Practice, linked: Linked) -> None:
    html = (linked.run_dir / "report.html").read_text(encoding="utf-8")
    markdown = (linked.run_dir / "report.md").read_text(encoding="utf-8")
    q1_id = practice.run_ids["q1"]
    assert "<h2>Change against the previous drill</h2>" in html
    assert "## Change against the previous drill" in markdown
    for view in (html, markdown):
        assert q1_id in view and linked.q1_sha256 in view
    section = markdown.split("## Change against the previous drill", 1)[1].split("\n## ", 1)[0]
    for asset in linked.q1_report["assets"]:
        row = next(line for line in section.splitlines() if line.startswith(f"| {asset['id']} |"))
        assert human_ms(asset.get("rto_ms")) in row, row  # q1's RTO, as people read it
        html_row = html.split(f"<td>{asset['id']}</td>", 1)[1].split("</tr>", 1)[0]
        assert human_ms(asset.get("rto_ms")) in html_row


def test_without_a_history_the_report_has_no_previous(practice: Practice) -> None:
    for label in ("q1", "q2", "q3", "q4"):
        report = json.loads((practice.runs[label] / "report.json").read_bytes())
        assert "previous" not in report
    markdown = (practice.runs["q1"] / "report.md").read_text(encoding="utf-8")
    assert "Change against the previous drill" not in markdown


def test_previous_drill_skips_evidence_that_does_not_count(practice: Practice, tmp_path: Path) -> None:
    bad_only = tmp_path / "bad.sqlite"
    add_folders(
        bad_only,
        [practice.runs[label] for label in ("tampered", "unsigned", "contacts")],
        practice.allowed_signers,
    )
    assert previous_drill(bad_only, PLAYBOOK_NAME) is None
    both = tmp_path / "both.sqlite"
    add_folders(
        both, [practice.runs["q1"], practice.runs["q3"], practice.runs["tampered"]], practice.allowed_signers
    )
    found = previous_drill(both, PLAYBOOK_NAME)
    assert found is not None and found.run_id == practice.run_ids["q3"]  # the latest verified one
    q3_bytes = (practice.runs["q3"] / "report.json").read_bytes()
    assert found.report_sha256 == hashlib.sha256(q3_bytes).hexdigest()  # q3's own, not the tampered copy's
    assert previous_drill(both, "another-playbook") is None
    with pytest.raises(UsageError, match="does not exist"):
        previous_drill(tmp_path / "missing.sqlite", PLAYBOOK_NAME)
