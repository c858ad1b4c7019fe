"""`drill report countersign` shows what is signed and asks on a terminal (a real pty); --yes
answers for scripts; without a terminal it refuses. `sign` and `countersign` re-render the
views present, so their sign-off block lists the new signature and `drill verify` still passes.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.report.build import build_report_from_journal, load_report, write_report
from drill.report.evidence import render_views
from drill.report.model import Signer
from drill.report.sign import load_private_key, sign_bytes, sign_report
from drill.report.verify import verify_report_dir
from tests.support.terminal import answer_on_terminal

from .signing_helpers import (
    FIXTURE_JOURNAL,
    key_fingerprint,
    make_key,
    make_report_dir,
    pub_line,
    write_allowed_signers,
)

PROMPT = b"Countersign this report as lead? [y/N]: "
TERMINAL_TIMEOUT_S = 60  # a Python start plus one signature, on a busy CI machine
VIEWS = ("report.html", "report.md", "report.junit.xml")


def _folder(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A folder as `drill run --sign-key op --signer operator` leaves it (every view), the lead's
    key, and an allowed_signers file trusting both."""
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = make_report_dir(tmp_path, signer=("operator", op))
    render_views(load_report(run), run)
    allowed = write_allowed_signers(
        tmp_path / "allowed_signers", f"operator {pub_line(op)}", f"lead {pub_line(lead)}"
    )
    return run, op, lead, allowed


def _views(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in VIEWS}


def _countersign_on_terminal(argv: list[str], answer: bytes, stdout: Path) -> tuple[int, str]:
    return answer_on_terminal(argv, PROMPT, answer, stdout, TERMINAL_TIMEOUT_S)


def _argv(run: Path, lead: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "drill",
        "report",
        "countersign",
        str(run),
        "--key",
        str(lead),
        "--signer",
        "lead",
        *extra,
    ]


def test_countersign_on_a_terminal_shows_what_is_signed_and_yes_signs(tmp_path: Path) -> None:
    run, op, lead, allowed = _folder(tmp_path)
    report = load_report(run)
    code, shown = _countersign_on_terminal(_argv(run, lead), b"y\n", tmp_path / "stdout")
    assert code == 0, shown
    before_prompt = shown[: shown.index(PROMPT.decode())]
    for line in (
        f"Countersigning {run / 'report.json'} (SHA-256 ",
        "  drill:    payments-q4 (2026-Q4)",
        f"  run:      {report.run_id}",
        f"  report:   {report.report_id}",
        "  verdict:  FAIL: a scenario step failed: purge CDN cache",
        "  assets:   5 (1 pass, 3 fail, 0 not measured)",
        "  findings: 2 critical, 5 high, 2 medium, 5 low, 2 info",
        "  critical and high findings:",
        "    F-001 critical: payments-db missed its RPO",
        "    F-007 high: Contact chain exhausted: ledger-oncall",
        "  signatures present:",
        f"    operator (prepared the report), {key_fingerprint(op)}, report.json.operator.sig: matches report.json",
    ):
        assert line in before_prompt, (line, before_prompt)
    assert "F-008" not in before_prompt  # medium and lower are counted, not listed
    stdout = (tmp_path / "stdout").read_text()
    assert stdout.splitlines() == [
        f"countersigned as lead ({key_fingerprint(lead)}): {run / 'report.json.lead.sig'}",
        *(str(run / name) for name in VIEWS),
    ]
    md = (run / "report.md").read_text()
    assert f"| lead | countersigned | {key_fingerprint(lead)} | report.json.lead.sig |" in md
    assert "Signatures present: operator, lead" in (run / "report.html").read_text()
    result = verify_report_dir(run, allowed, require=("operator", "lead"))
    assert result.views == VIEWS  # the re-rendered views are what verify renders
    assert [s.principal for s in result.signatures] == ["operator", "lead"]


def test_countersign_answered_no_signs_nothing(tmp_path: Path) -> None:
    run, _, lead, allowed = _folder(tmp_path)
    views = _views(run)
    code, shown = _countersign_on_terminal(_argv(run, lead), b"n\n", tmp_path / "stdout")
    assert code == 3, shown
    assert "drill: not confirmed: nothing was signed" in shown
    assert not (run / "report.json.lead.sig").exists()
    assert _views(run) == views
    assert (tmp_path / "stdout").read_text() == ""
    verify_report_dir(run, allowed)  # untouched


def test_countersign_without_a_terminal_needs_yes(tmp_path: Path) -> None:
    run, _, lead, _ = _folder(tmp_path)
    views = _views(run)
    result = CliRunner().invoke(
        cli, ["report", "countersign", str(run), "--key", str(lead), "--signer", "lead"]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "drill: countersigning needs a yes: this is not a terminal, so nobody can confirm it",
        "  hint: pass --yes to countersign from a script",
    ]
    assert not (run / "report.json.lead.sig").exists() and _views(run) == views


def test_countersign_yes_from_a_script_then_verify(tmp_path: Path) -> None:
    run, _, lead, allowed = _folder(tmp_path)
    result = CliRunner().invoke(
        cli, ["report", "countersign", str(run), "--key", str(lead), "--signer", "lead", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "  verdict:  FAIL: a scenario step failed: purge CDN cache" in result.stderr  # shown all the same
    assert "Countersign this report" not in result.stderr  # --yes answered: no question
    assert (
        f"| lead | countersigned | {key_fingerprint(lead)} | report.json.lead.sig |"
        in (run / "report.md").read_text()
    )
    assert verify_report_dir(run, allowed, require=("lead",)).views == VIEWS


def test_countersign_rerenders_only_the_views_present(tmp_path: Path) -> None:
    run, _, lead, allowed = _folder(tmp_path)
    (run / "report.html").unlink()
    (run / "report.junit.xml").unlink()
    result = CliRunner().invoke(
        cli, ["report", "countersign", str(run), "--key", str(lead), "--signer", "lead", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [str(run / "report.md")]
    assert not (run / "report.html").exists() and not (run / "report.junit.xml").exists()
    verified = verify_report_dir(run, allowed)
    assert (verified.views, verified.views_absent) == (("report.md",), ("report.html", "report.junit.xml"))


def test_the_prompt_shows_report_text_escaped(tmp_path: Path) -> None:
    """A finding title with terminal escape sequences cannot redraw what the signer confirms."""
    op, lead = make_key(tmp_path, "op"), make_key(tmp_path, "lead")
    run = tmp_path / "run"
    run.mkdir()
    report = build_report_from_journal(FIXTURE_JOURNAL, signer=Signer("operator", key_fingerprint(op)))
    hostile = replace(report.findings[0], title="ok\x1b[2J\x1b[1A\u202eevil")
    write_report(replace(report, findings=(hostile, *report.findings[1:])), run)
    sign_report(run, op, "operator")
    result = CliRunner().invoke(
        cli, ["report", "countersign", str(run), "--key", str(lead), "--signer", "lead", "--yes"]
    )
    assert result.exit_code == 0, result.output
    assert "    F-001 critical: ok\\x1b[2J\\x1b[1A\\u202eevil" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_sign_rerenders_the_views_present(tmp_path: Path) -> None:
    """A report written unsigned (views say "Not signed") and signed later: the views follow."""
    op = make_key(tmp_path, "op")
    run = tmp_path / "run"
    run.mkdir()
    report = build_report_from_journal(FIXTURE_JOURNAL, signer=Signer("operator", key_fingerprint(op)))
    write_report(report, run)
    render_views(report, run)
    (run / "journal.jsonl").write_bytes(FIXTURE_JOURNAL.read_bytes())
    assert "**Not signed.**" in (run / "report.md").read_text()
    result = CliRunner().invoke(cli, ["report", "sign", str(run), "--key", str(op), "--signer", "operator"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"signed as operator ({key_fingerprint(op)}): {run / 'report.json.operator.sig'}",
        *(str(run / name) for name in VIEWS),
    ]
    md = (run / "report.md").read_text()
    assert "**Not signed.**" not in md
    assert f"| operator | prepared the report | {key_fingerprint(op)} | report.json.operator.sig |" in md
    allowed = write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(op)}")
    assert verify_report_dir(run, allowed).views == VIEWS


@pytest.mark.parametrize("command", ["sign", "countersign"])
def test_signing_refuses_a_file_that_is_not_a_report_before_signing(tmp_path: Path, command: str) -> None:
    key = make_key(tmp_path, "k")
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text('{"hello":1}')
    result = CliRunner().invoke(
        cli,
        [
            "report",
            command,
            str(run),
            "--key",
            str(key),
            "--signer",
            "lead",
            *(["--yes"] if command == "countersign" else []),
        ],
    )
    assert result.exit_code == 2
    assert "not a valid drill report" in result.stderr and "Traceback" not in result.stderr
    assert list(run.glob("*.sig")) == []


def test_countersign_refuses_before_asking_what_it_cannot_sign(tmp_path: Path) -> None:
    """Nobody else signed, or a signature no longer matches: one line, no summary, no question."""
    lead = make_key(tmp_path, "lead")
    unsigned = make_report_dir(tmp_path)
    argv = ["report", "countersign", str(unsigned), "--key", str(lead), "--signer", "lead", "--yes"]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"drill: {unsigned / 'report.json'} has no signature by anyone else to countersign"
    )
    (tmp_path / "second").mkdir()
    run, op, lead, _ = _folder(tmp_path / "second")
    forged = sign_bytes(b"other bytes", load_private_key(op))  # a real signature, of other bytes
    (run / "report.json.operator.sig").write_text(forged, encoding="ascii")
    result = CliRunner().invoke(
        cli, ["report", "countersign", str(run), "--key", str(lead), "--signer", "lead", "--yes"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "drill: report.json.operator.sig does not match report.json (changed after operator "
        "signed); refusing to countersign\n"
    )
    assert not (run / "report.json.lead.sig").exists() and not (unsigned / "report.json.lead.sig").exists()
