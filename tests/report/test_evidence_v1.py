"""Evidence written by drill 0.1.0 (journal format 1, no plan in run.started) still verifies and folds.

tests/fixtures/evidence-v1/ is a real `drill demo` folder from 0.1.0: signed report.json, journal,
results.json and the demo's allowed_signers. Every command runs on a copy in tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.evidence.events import RunStarted
from drill.evidence.journal import read_events
from drill.report.build import build_report_from_journal, load_report, report_bytes
from drill.report.verify import verify_report_dir

from .signing_helpers import ssh_verify

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "evidence-v1"
PRINCIPAL = "demo-operator"


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    folder = tmp_path / "evidence-v1"
    shutil.copytree(FIXTURE, folder)
    return folder


def _drill(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_fixture_is_a_format_1_journal(v1: Path) -> None:
    first = next(iter(read_events(v1 / "journal.jsonl")))
    assert isinstance(first.payload, RunStarted)
    assert (first.payload.format, first.payload.plan, first.payload.tool_version) == (1, None, "0.1.0")


def test_drill_verify_accepts_the_0_1_0_evidence_folder(v1: Path) -> None:
    code, out = _drill("verify", str(v1), "--allowed-signers", str(v1 / "allowed_signers"))
    assert code == 0, out
    assert out.startswith("verified: report rpt-")
    assert f"\n  {PRINCIPAL}: prepared the report\n" in out and "hash chain intact" in out
    assert (
        verify_report_dir(v1, v1 / "allowed_signers", require=(PRINCIPAL,)).signers[0].principal == PRINCIPAL
    )


def test_ssh_keygen_verifies_the_0_1_0_signature(v1: Path) -> None:
    done = ssh_verify(v1, v1 / "allowed_signers", PRINCIPAL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(f'Good "drill-report-v1" signature for {PRINCIPAL}')
    (v1 / "report.json").write_bytes((v1 / "report.json").read_bytes().replace(b'"fail"', b'"pass"', 1))
    assert ssh_verify(v1, v1 / "allowed_signers", PRINCIPAL).returncode != 0  # control: it can fail


def test_drill_journal_verify_accepts_the_0_1_0_journal(v1: Path) -> None:
    code, out = _drill("journal", "verify", str(v1 / "journal.jsonl"))
    assert code == 0, out
    head = json.loads((v1 / "report.json").read_bytes())["journal"]["head"]
    assert out.startswith(f"ok: 113 events, head {head}")


def _judgements(data: dict[str, Any]) -> dict[str, Any]:
    """Pop what is judged rather than measured: since 0.1.0 an objective nobody measured is
    never a pass (README, "Verdicts"), so these may differ where 0.1.0 passed one."""
    data["run"].pop("verdict_reason", None)
    assets = {a["id"]: (a.pop("verdict"), a.pop("reasons"), a.pop("objectives", [])) for a in data["assets"]}
    tiers = {t["name"]: t.pop("verdict") for t in data["scope"]["tiers"]}
    return {
        "assets": assets,
        "tiers": tiers,
        "summary": data.pop("summary"),
        "findings": data.pop("findings"),
    }


def _assert_judged_as_0_1_0_except_unmeasured_rpo(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    changed = []
    for aid, (verdict, reasons, objectives) in ours["assets"].items():
        old_verdict, old_reasons, _ = theirs["assets"][aid]
        if verdict == old_verdict:
            assert reasons == old_reasons, aid
            continue
        assert (old_verdict, verdict) == ("pass", "incomplete"), aid
        assert [o["objective"] for o in objectives if o["state"] == "not-measured"] == ["rpo"], aid
        changed.append(aid)
    assert changed, "the fixture has an RPO target no canary measured: 0.1.0 passed it"
    old_titles = [f["title"] for f in theirs["findings"]]
    new_titles = [f["title"] for f in ours["findings"]]
    assert [t for t in new_titles if t not in old_titles] == [f"{aid}: RPO not measured" for aid in changed]
    assert set(old_titles) <= set(new_titles)


def test_a_format_1_journal_folds_to_the_report_0_1_0_signed(v1: Path) -> None:
    """The plan is rebuilt from the journalled document: every measured value is as 0.1.0 signed it.

    The planned steps' one-line details differ (they now come from the plan's step summaries), and
    so does the stated uncertainty: 0.1.0 claimed one probe interval; it is now the window the
    journal recorded around each change (wider when a probe stalled), with fields of its own.
    """
    stored = load_report(v1)
    rebuilt = build_report_from_journal(
        v1 / "journal.jsonl", signer=stored.prepared_by, evidence_files=[v1 / "results.json"]
    )
    theirs, ours = json.loads((v1 / "report.json").read_bytes()), json.loads(report_bytes(rebuilt))
    for data in (theirs, ours):
        data.pop("tool")  # the builder's version: 0.1.0 then, pinned for tests now
        data["run"].pop("steady_state", None)  # not checked by 0.1.0: none for format 1
        for phase in ("scenario", "rollback_plan"):
            for step in data["exercise"][phase]:
                step.pop("detail")
        for asset in data["assets"]:
            asset.pop("uncertainty_ms")
            for added in ("t_inject_done_utc", "detect_window_ms", "recover_window_ms"):
                asset.pop(added, None)
            if asset.get("rpo"):
                asset["rpo"].pop("at_risk_writes", None)  # new since 0.1.0 (replica-confirmed canaries)
    judged = _judgements(ours), _judgements(theirs)
    assert ours == theirs  # every measured value, as 0.1.0 signed it
    _assert_judged_as_0_1_0_except_unmeasured_rpo(*judged)
    for asset in rebuilt.assets:  # the 200 ms interval, plus what the recorded instants add
        assert asset.recover_window_ms is not None and 200 <= asset.uncertainty_ms == asset.recover_window_ms
    assert [s.detail for s in rebuilt.exercise.scenario[:2]] == [
        "wait for all assets up within 5 s",
        "pause 1 s",
    ]


def test_rebuilding_the_0_1_0_folder_keeps_its_signed_report(v1: Path) -> None:
    before = (v1 / "report.json").read_bytes()
    code, out = _drill("report", str(v1 / "journal.jsonl"), "--no-render")
    assert code == 2
    assert "is signed (1 signature(s)) and differs from the rebuilt report" in out
    assert (v1 / "report.json").read_bytes() == before
    code, out = _drill("verify", str(v1), "--allowed-signers", str(v1 / "allowed_signers"))
    assert code == 0, out
