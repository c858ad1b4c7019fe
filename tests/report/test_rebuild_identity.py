"""When `drill report rebuild JOURNAL` writes exactly the run's report.json, and what it says when not.

The journal does not name who signs the report, and the report lists the SHA-256 of results.json.
So the rebuilt bytes are the run's when (1) the preparer is known: --signer-of REPORT, else the
report.json beside the journal, else the one in the output folder; (2) results.json is the run's:
kept when the output folder has one, else written there as the journal's fold (the bytes `drill
run` writes); (3) this drill is the version that built the report. Each case below is one rule.

The run folder is made by the code `drill run --sign-key` runs: finish_run (results.json), then
write_evidence (report.json, its signature, the views).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.report import build
from drill.report.build import load_report, write_report
from drill.report.evidence import write_evidence
from drill.report.verify import verify_report_dir
from drill.run.session import finish_run

from .signing_helpers import FIXTURE_JOURNAL, make_key, pub_line, write_allowed_signers

RUN_ID = "20261120T090000Z-payments-q4"  # the fixture journal's
VIEWS = ("report.html", "report.md", "report.junit.xml")
UNKNOWN_SIGNER = (
    "drill: note: prepared_by unknown: the journal does not name the signer; pass --signer-of "
    f"runs/{RUN_ID}/report.json (the run's report) to rebuild it byte for byte\n"
)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """runs/RUN_ID/ as a signed `drill run` leaves it."""
    key = make_key(tmp_path, "op")
    folder = tmp_path / "runs" / RUN_ID
    folder.mkdir(parents=True)
    shutil.copyfile(FIXTURE_JOURNAL, folder / "journal.jsonl")
    finish_run(folder / "journal.jsonl")
    write_evidence(folder, sign_key=key, signer="operator")
    write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(key)}")
    return folder


def _rebuild(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["report", "rebuild", *(str(a) for a in args)])
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stdout, result.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_rebuilt_in_the_runs_own_folder_is_identical(run: Path, tmp_path: Path) -> None:
    before = _files(run)
    code, out, err = _rebuild(run / "journal.jsonl")
    assert code == 0, err
    assert _files(run) == before  # report.json, results.json, the signature and every view
    assert out.splitlines()[-1] == f"byte-identical to {run / 'report.json'}"
    assert err == ""
    assert verify_report_dir(run, tmp_path / "allowed_signers").views == VIEWS


def test_a_deleted_results_json_is_written_again_from_the_journal(run: Path) -> None:
    before = _files(run)
    (run / "results.json").unlink()
    code, out, err = _rebuild(run)
    assert code == 0, err
    assert _files(run) == before
    assert out.splitlines()[0] == str(run / "results.json")  # it says what it wrote


def test_rebuilt_into_an_empty_folder_is_identical(run: Path, tmp_path: Path) -> None:
    """The run's report beside the journal names the preparer; results.json is the fold."""
    out_dir = tmp_path / "empty"
    code, out, err = _rebuild(run / "journal.jsonl", "-o", out_dir)
    assert code == 0, err
    assert (out_dir / "report.json").read_bytes() == (run / "report.json").read_bytes()
    assert (out_dir / "results.json").read_bytes() == (run / "results.json").read_bytes()
    assert f"byte-identical to {run / 'report.json'}" in out and err == ""


def test_the_journal_alone_lacks_only_the_signer(run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "archive"
    alone.mkdir()
    shutil.copyfile(run / "journal.jsonl", alone / "journal.jsonl")
    code, out, err = _rebuild(alone / "journal.jsonl", "-o", tmp_path / "out")
    assert code == 0, err
    signed = load_report(run)
    assert signed.prepared_by is not None
    assert load_report(tmp_path / "out") == replace(signed, prepared_by=None)  # nothing else differs
    assert (tmp_path / "out" / "report.json").read_bytes() != (run / "report.json").read_bytes()
    assert err == UNKNOWN_SIGNER
    assert "byte-identical" not in out


def test_the_journal_alone_with_signer_of_is_identical(run: Path, tmp_path: Path) -> None:
    alone = tmp_path / "archive"
    alone.mkdir()
    shutil.copyfile(run / "journal.jsonl", alone / "journal.jsonl")
    code, out, err = _rebuild(alone / "journal.jsonl", "--signer-of", run / "report.json")
    assert code == 0, err
    assert (alone / "report.json").read_bytes() == (run / "report.json").read_bytes()
    assert (alone / "results.json").read_bytes() == (run / "results.json").read_bytes()
    assert f"byte-identical to {run / 'report.json'}" in out and err == ""
    # a folder names its report.json too
    code, out, _ = _rebuild(alone / "journal.jsonl", "-o", tmp_path / "again", "--signer-of", run)
    assert (
        code == 0 and (tmp_path / "again" / "report.json").read_bytes() == (run / "report.json").read_bytes()
    )


def test_signer_of_another_runs_report_is_refused(run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_report(replace(load_report(run), run_id="20261121T000000Z-other"), other)
    code, _, err = _rebuild(run / "journal.jsonl", "-o", tmp_path / "out", "--signer-of", other)
    assert code == 2
    assert err == (
        f"drill: --signer-of {other / 'report.json'} is the report of run 20261121T000000Z-other, "
        f"not of journal.jsonl's run {RUN_ID}\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_results_json_that_is_not_this_drills_fold(tmp_path: Path) -> None:
    """A run whose results.json another drill version wrote: kept in place (identical), but a
    rebuild elsewhere writes this drill's fold, and says that is why the bytes differ."""
    key = make_key(tmp_path, "op")
    run = tmp_path / "runs" / RUN_ID
    run.mkdir(parents=True)
    shutil.copyfile(FIXTURE_JOURNAL, run / "journal.jsonl")
    (run / "results.json").write_text('{"written": "by drill 0.0.1"}\n')
    write_evidence(run, sign_key=key, signer="operator")
    stored = (run / "report.json").read_bytes()
    assert _rebuild(run)[0] == 0 and (run / "report.json").read_bytes() == stored
    out_dir = tmp_path / "out"
    code, out, err = _rebuild(run, "-o", out_dir)
    assert code == 0
    assert err == (
        f"drill: note: report.json differs from {run / 'report.json'}: evidence results.json: the "
        f"journal's fold written to {out_dir / 'results.json'} is not the results.json the report covers "
        "(written by another drill version, or edited)\n"
    )
    assert "byte-identical" not in out
    rebuilt = load_report(out_dir)
    assert replace(rebuilt, evidence=()) == replace(load_report(run), evidence=())  # only that differs


def test_another_drill_version_says_so(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "tool_version", lambda: "9.9.9")
    stored = (run / "report.json").read_bytes()
    code, _, err = _rebuild(run)  # in place: the signed report is kept
    assert code == 2
    assert err.splitlines()[0] == (
        f"drill: {run / 'report.json'} is signed (1 signature(s)) and differs from the rebuilt report "
        "(tool: it was built by drill 0.0.0-test, this is drill 9.9.9)"
    )
    assert (run / "report.json").read_bytes() == stored
    code, _, err = _rebuild(run, "-o", tmp_path / "out")
    assert code == 0
    assert err == (
        f"drill: note: report.json differs from {run / 'report.json'}: tool: it was built by drill "
        "0.0.0-test, this is drill 9.9.9\n"
    )
