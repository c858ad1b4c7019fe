"""`drill report JOURNAL`, `drill report rebuild` and `drill report render` through the real CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.evidence.events import JOURNAL_FORMAT, RunStarted
from drill.evidence.journal import read_events
from drill.report.build import load_report
from tests.conftest import SwitchableServer, drill_run_argv

from .conftest import JOURNAL


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(JOURNAL, folder / "journal.jsonl")
    return folder


def _drill(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_report_journal_rebuilds_report_and_views(run_dir: Path) -> None:
    code, out, _ = _drill("report", str(run_dir / "journal.jsonl"))
    assert code == 0
    names = {p.name for p in run_dir.iterdir()}
    assert {"report.json", "report.html", "report.md", "report.junit.xml"} <= names
    assert "verdict: fail" in out
    first = (run_dir / "report.json").read_bytes()
    code, _, _ = _drill("report", "rebuild", str(run_dir))  # a folder works too
    assert code == 0
    assert (run_dir / "report.json").read_bytes() == first


def test_rebuild_keeps_signer_and_evidence_of_an_existing_report(run_dir: Path, tmp_path: Path) -> None:
    from drill.report.build import build_report_from_journal, write_report
    from drill.report.model import Signer

    (run_dir / "playbook.yaml").write_text("kind: Playbook\n")
    original = build_report_from_journal(
        run_dir / "journal.jsonl",
        signer=Signer("ana", "SHA256:" + "x" * 43),
        evidence_files=[run_dir / "playbook.yaml"],
    )
    stored = write_report(original, run_dir).read_bytes()
    (run_dir / "report.json.ana.sig").write_text("placeholder")
    code, _, _ = _drill("report", str(run_dir / "journal.jsonl"), "--no-render")
    assert code == 0
    assert (run_dir / "report.json").read_bytes() == stored  # byte-identical: signatures stay valid
    (run_dir / "playbook.yaml").write_text("kind: Playbook  # edited\n")
    code, _, err = _drill("report", str(run_dir / "journal.jsonl"))
    assert code == 2
    assert "is signed (1 signature(s)) and differs from the rebuilt report" in err
    assert (run_dir / "report.json").read_bytes() == stored
    code, _, _ = _drill(
        "report", "rebuild", str(run_dir / "journal.jsonl"), "-o", str(tmp_path / "elsewhere")
    )
    assert code == 0 and (tmp_path / "elsewhere" / "report.json").is_file()


def test_rebuild_of_a_tampered_journal_names_the_line(run_dir: Path) -> None:
    journal = run_dir / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    del lines[9]
    journal.write_bytes(b"".join(lines))
    code, _, err = _drill("report", str(journal))
    assert code == 1
    assert "line 10: seq 11 expected 10" in err
    assert not (run_dir / "report.json").exists()


_FORMATS = [("html", "report.html", "<!DOCTYPE html>"), ("md", "report.md", "# DR drill report"),
            ("junit", "report.junit.xml", "<testsuites")]  # fmt: skip


@pytest.mark.parametrize(("fmt", "name", "marker"), _FORMATS)
def test_render_each_format(run_dir: Path, fmt: str, name: str, marker: str) -> None:
    assert _drill("report", str(run_dir / "journal.jsonl"), "--no-render")[0] == 0
    code, out, _ = _drill("report", "render", str(run_dir / "report.json"), "--format", fmt)
    assert code == 0 and out.strip() == str(run_dir / name)
    assert marker in (run_dir / name).read_text()
    code, out, _ = _drill("report", "render", str(run_dir), "--format", fmt, "-o", "-")
    assert code == 0 and marker in out


def test_render_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bogus = tmp_path / "report.json"
    bogus.write_text('{"hello": 1}')
    code, _, err = _drill("report", "render", str(bogus))
    assert code == 2
    assert "not a valid drill report" in err
    with pytest.raises(Exception, match="not a valid"):
        load_report(bogus)


FRESH_PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: fresh-run, owner: tests}}
settings: {{interval: 100ms, timeout: 500ms}}
tiers: [{{name: tier-0, rto: 5s}}]
assets:
  - id: web
    tier: tier-0
    probes:
      - {{name: health, http: {{url: "{url}/health"}}}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: hold, pause: 500ms}}
"""


def _drill_subprocess(*args: str) -> subprocess.CompletedProcess[bytes]:
    """drill as a user runs it (the tool version is the installed one, as in `drill run`)."""
    return subprocess.run(
        [sys.executable, "-m", "drill", *args], capture_output=True, timeout=60, check=False
    )


def test_report_of_a_fresh_runs_journal_is_byte_identical(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    """`drill run` writes report.json; `drill report JOURNAL` rebuilds exactly the same bytes."""
    playbook = tmp_path / "p.yaml"
    playbook.write_text(FRESH_PLAYBOOK.format(url=http_server.url))
    runs = tmp_path / "runs"
    ran = subprocess.run(
        drill_run_argv(playbook, runs), capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=False
    )
    # exit 1, incomplete: nothing went down, so no recovery was demonstrated (README, "Verdicts")
    assert ran.returncode == 1, ran.stderr.decode()[-2000:]
    (journal,) = runs.glob("*/journal.jsonl")
    run_dir = journal.parent
    started = next(iter(read_events(journal))).payload
    assert isinstance(started, RunStarted) and started.format == JOURNAL_FORMAT and started.plan is not None
    written = (run_dir / "report.json").read_bytes()
    report = load_report(run_dir)
    assert report.verdict == "incomplete" and [e.file for e in report.evidence] == ["results.json"]
    (run_dir / "report.md").unlink()
    again = _drill_subprocess("report", str(journal))
    assert again.returncode == 0, again.stderr.decode()
    assert (run_dir / "report.json").read_bytes() == written
    assert (run_dir / "report.md").is_file()  # it did rebuild: the views were rendered again
    # The journal alone (no earlier report to take the evidence list from) gives the same report
    # but for that list.
    alone = _drill_subprocess("report", "rebuild", str(journal), "-o", str(tmp_path / "alone"), "--no-render")
    assert alone.returncode == 0, alone.stderr.decode()
    assert load_report(tmp_path / "alone") == replace(report, evidence=())
