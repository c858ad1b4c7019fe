"""`drill report JOURNAL`, `drill report rebuild` and `drill report render` through the real CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
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
    code, out, err = _drill("report", "render", str(run_dir / "report.json"), "--to", fmt)
    assert code == 0 and out.strip() == str(run_dir / name) and err == ""
    assert marker in (run_dir / name).read_text()
    code, out, _ = _drill("report", "render", str(run_dir), "--to", fmt, "-o", "-")
    assert code == 0 and marker in out


def test_render_format_is_a_deprecated_alias_of_to(run_dir: Path) -> None:
    """`--format` is reserved for text/json machine output; `render --format md` still works."""
    assert _drill("report", str(run_dir / "journal.jsonl"), "--no-render")[0] == 0
    code, out, err = _drill("report", "render", str(run_dir), "--format", "md")
    assert code == 0 and out.strip() == str(run_dir / "report.md")
    assert err == "drill: warning: `drill report render --format` is deprecated; use --to md\n"
    code, _, err = _drill("report", "render", str(run_dir), "--to", "md", "--format", "html")
    assert code == 2 and "drill: --to md and --format html disagree" in err
    code, out, _ = _drill("report", "render", "--help")
    assert "--to [html|md|junit|pdf]" in out and "--format" not in out  # hidden


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
    (journal,) = [j for j in runs.glob("*/journal.jsonl") if not j.parent.is_symlink()]
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
    # Into an empty folder: the run's report beside the journal gives the preparer and the
    # evidence list, and results.json is written there as the journal's fold, the bytes `drill
    # run` wrote, so report.json is the same bytes too.
    elsewhere = _drill_subprocess(
        "report", "rebuild", str(journal), "-o", str(tmp_path / "out"), "--no-render"
    )
    assert elsewhere.returncode == 0, elsewhere.stderr.decode()
    assert (tmp_path / "out" / "results.json").read_bytes() == (run_dir / "results.json").read_bytes()
    assert (tmp_path / "out" / "report.json").read_bytes() == written
    assert f"byte-identical to {run_dir / 'report.json'}" in elsewhere.stdout.decode()
    # The journal alone: the same report (this run was not signed, so prepared_by is null in
    # both), and rebuild says it cannot know the signer.
    (tmp_path / "alone").mkdir()
    shutil.copy(journal, tmp_path / "alone" / "journal.jsonl")
    alone = _drill_subprocess("report", "rebuild", str(tmp_path / "alone"), "--no-render")
    assert alone.returncode == 0, alone.stderr.decode()
    assert load_report(tmp_path / "alone") == report
    assert (tmp_path / "alone" / "report.json").read_bytes() == written
    assert "prepared_by unknown: the journal does not name the signer" in alone.stderr.decode()
