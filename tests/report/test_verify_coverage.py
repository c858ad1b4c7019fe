"""`drill verify` checks the rendered views and that report.json is the journal's fold, and says
what it covered (issue 12, part 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.errors import VerificationFailed
from drill.evidence.canonical import canonical_bytes
from drill.report.build import load_report
from drill.report.evidence import render_views
from drill.report.sign import sign_report
from drill.report.verify import verify_report_dir

from .signing_helpers import make_key, make_report_dir, pub_line, write_allowed_signers

VIEWS = ("report.html", "report.md", "report.junit.xml")
FULL_COVERAGE = (
    "covered: signatures, schema, journal chain and digest, evidence digests, report = journal fold, "
    "views: report.html report.md report.junit.xml"
)


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A signed evidence folder with every view rendered, as `drill run --sign-key` leaves it."""
    key = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path, signer=("operator", key))
    render_views(load_report(run), run)
    allowed = write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(key)}")
    return run, allowed, key


def _verify(run: Path, allowed: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", str(run), "--allowed-signers", str(allowed)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_untouched_evidence_verifies_and_says_what_was_covered(folder: tuple[Path, Path, Path]) -> None:
    run, allowed, _ = folder
    result = verify_report_dir(run, allowed)
    assert (result.views, result.views_absent, result.folded, result.not_checked) == (VIEWS, (), True, ())
    code, out = _verify(run, allowed)
    assert code == 0, out
    assert out.startswith("verified: report rpt-")
    assert "\nreport.json is what journal.jsonl folds to (rebuilt and compared)\n" in out
    assert (
        "\nviews checked (same bytes as a re-rendering of report.json): report.html,\n"
        "  report.md, report.junit.xml\n"
    ) in out
    assert out.splitlines()[-1] == FULL_COVERAGE


@pytest.mark.parametrize("view", VIEWS)
def test_an_edited_view_fails_naming_it(folder: tuple[Path, Path, Path], view: str) -> None:
    run, allowed, _ = folder
    path = run / view
    path.write_bytes(path.read_bytes().replace(b"fail", b"pass", 1))
    code, out = _verify(run, allowed)
    assert code == 1
    assert out.startswith(f"drill: NOT VERIFIED: {view} does not match report.json")
    assert len(out.strip().splitlines()) == 1


def test_an_absent_view_is_listed_as_not_present(folder: tuple[Path, Path, Path]) -> None:
    run, allowed, _ = folder
    (run / "report.md").unlink()
    (run / "report.junit.xml").unlink()
    code, out = _verify(run, allowed)
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "covered: signatures, schema, journal chain and digest, evidence digests, report = journal fold, "
        "views: report.html; not present: report.md report.junit.xml"
    )


def _resign(run: Path, key: Path, edit: dict[str, object]) -> None:
    data = json.loads((run / "report.json").read_bytes())
    data.update(edit)
    (run / "report.json").write_bytes(canonical_bytes(data))
    (run / "report.json.operator.sig").unlink()
    sign_report(run, key, "operator")


def test_a_re_signed_report_with_a_flipped_verdict_fails_against_the_journal(
    folder: tuple[Path, Path, Path],
) -> None:
    run, allowed, key = folder
    before = json.loads((run / "report.json").read_bytes())["verdict"]
    _resign(run, key, {"verdict": "pass" if before != "pass" else "fail"})
    render_views(load_report(run), run)  # the views follow the forged report: only the fold catches it
    with pytest.raises(
        VerificationFailed, match=r"^report\.json does not match the journal: verdict differs"
    ):
        verify_report_dir(run, allowed)
    code, out = _verify(run, allowed)
    assert code == 1
    assert out.strip() == (
        "drill: NOT VERIFIED: report.json does not match the journal: verdict differs from what "
        "journal.jsonl folds to"
    )
    rebuilt = CliRunner().invoke(cli, ["report", str(run / "journal.jsonl"), "-o", str(run.parent / "re")])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"verdict: {before}" in rebuilt.output


def test_a_nested_difference_is_named_by_its_path(folder: tuple[Path, Path, Path]) -> None:
    run, allowed, key = folder
    data = json.loads((run / "report.json").read_bytes())
    assets = data["assets"]
    assert isinstance(assets, list) and assets
    first = dict(assets[0])
    first["id"] = first["id"] + "-forged"
    _resign(run, key, {"assets": [first, *assets[1:]]})
    for view in VIEWS:
        (run / view).unlink()
    with pytest.raises(
        VerificationFailed, match=r"^report\.json does not match the journal: assets\[0\]\.id "
    ):
        verify_report_dir(run, allowed)


def test_a_report_from_another_drill_version_says_what_it_did_not_check(
    folder: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from drill.report import build

    run, allowed, _ = folder
    monkeypatch.setattr(build, "tool_version", lambda: "9.9.9")
    result = verify_report_dir(run, allowed)
    assert (result.folded, result.views) == (False, ())
    assert result.not_checked and "built by drill 0.0.0-test, this is drill 9.9.9" in result.not_checked[0]
    code, out = _verify(run, allowed)
    assert code == 0, out
    assert (
        "\nnot checked: report = journal fold and views: the report was built by drill\n  0.0.0-test" in out
    )
    assert out.splitlines()[-1] == "covered: signatures, schema, journal chain and digest, evidence digests"
