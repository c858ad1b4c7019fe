"""The end-of-run summary names every critical and high finding, tells an undelivered page from
an unanswered one, and no text a person reads shows a raw number or a Python repr.

One real drill over the embedded lab, where things go wrong: the on-call's pager URL answers
404 (the page is never delivered), a second chain's receiver takes the page and nobody answers,
and the rollback fails at its first step, so reports is not back to normal.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from drill.cli.live import WIDTH, LiveDisplay
from drill.cli.summary import print_summary, summary_lines
from drill.evidence.events import Event
from drill.evidence.journal import read_events
from drill.lab import Lab
from drill.plan import build_plan, plan_to_text
from drill.playbook.validate import load_playbook
from drill.report.build import build_findings, build_report_from_journal
from drill.report.model import Finding
from drill.results import Results, ReturnResult, fold_results
from drill.run.dryrun import check_readiness
from drill.run.runner import run_drill
from drill.run.session import RunOptions

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "playbooks" / "demo.yaml"

# What people must never read: a duration in raw milliseconds, a Python None/True/False, float
# seconds, or a YAML duration literal instead of words ("1s500ms", "900000 ms", "300.00s").
FORBIDDEN = {
    "raw milliseconds": re.compile(r"\b\d{4,} ms\b"),
    "None": re.compile(r"\bNone\b"),
    "True": re.compile(r"\bTrue\b"),
    "False": re.compile(r"\bFalse\b"),
    "float seconds": re.compile(r"\b\d+\.\d{2,}\s?s\b"),
    "duration literal": re.compile(r"\b\d+(?:ms|s|m|h|d)(?:\d+(?:ms|s|m|h|d))*\b"),
}


class SilentReceiver(BaseHTTPRequestHandler):
    """A pager that takes every page (200) and never acknowledges one."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def failed_rollback_playbook(folder: Path, silent_url: str) -> Path:
    """playbooks/demo.yaml, broken the ways drills break."""
    doc = yaml.safe_load(DEMO.read_text())
    chains = doc["contacts"]["chains"]
    chains["lab-oncall"]["contacts"][0]["url"] = "${env:DRILL_LAB_CONTROL_URL}/control/nowhere"  # 404
    chains["quiet"] = {
        "respond_within": "1s",
        "contacts": [{"name": "Quinn", "via": "webhook", "url": silent_url, "ack_within": "1s"}],
    }
    for asset in doc["assets"]:
        if asset["id"] == "reports":
            asset["contact_chain"] = "quiet"
    # reports is seen down, then left to the rollback to restart (whose first step fails)
    dropped = ("reports wait their turn", "restart reports", "everything back")
    doc["scenario"] = [s for s in doc["scenario"] if s["name"] not in dropped]
    doc["scenario"].append(
        {"name": "reports is down", "wait_for": {"asset": "reports", "state": "down", "within": "10s"}}
    )
    doc["rollback"] = [
        {
            "name": "restore the primary",
            "action": {"http": {"url": "${env:DRILL_LAB_CONTROL_URL}/control/nowhere"}},
        },
        {"name": "restart reports", "action": {"http": {"url": "${env:DRILL_LAB_RECOVER_REPORTS_URL}"}}},
        *doc["rollback"][1:],
    ]
    path = folder / "failed-rollback.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class FailedDrill:
    results: Results
    findings: tuple[Finding, ...]
    frames: list[list[str]]
    plan_text: str
    readiness: list[str]  # what `drill run --dry-run` prints for it


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailedDrill]:
    folder = tmp_path_factory.mktemp("failed-rollback")
    with ThreadingHTTPServer(("127.0.0.1", 0), SilentReceiver) as receiver:
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        playbook = load_playbook(
            failed_rollback_playbook(folder, f"http://127.0.0.1:{receiver.server_port}/page")
        )
        display = LiveDisplay(playbook)
        frames: list[list[str]] = []

        def sink(event: Event) -> None:
            display(event)
            console = Console(record=True, width=WIDTH, file=io.StringIO())
            console.print(display.render())
            frames.append(console.export_text().splitlines())

        readiness: list[str] = []

        async def drill() -> Path:
            async with Lab.start() as lab:
                readiness.extend((await check_readiness(playbook, {**os.environ, **lab.env()})).lines())
                options = RunOptions(
                    runs_dir=folder / "runs",
                    auto_confirm=True,
                    ack_wait_ms=1_500,
                    env={**os.environ, **lab.env()},
                )
                return (await run_drill(playbook, options, sinks=[sink])).journal_path

        journal = asyncio.run(drill())
        receiver.shutdown()
    report = build_report_from_journal(journal)
    results = fold_results(read_events(journal))
    yield FailedDrill(results, report.findings, frames, plan_to_text(build_plan(playbook)), readiness)


def test_the_summary_names_every_critical_and_high_finding(
    failed: FailedDrill, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build_findings(failed.results) == failed.findings  # computed from Results as the report does
    print_summary(failed.results)
    out = capsys.readouterr().out
    shown = [f for f in failed.findings if f.severity in ("critical", "high")]
    titles = {f.title for f in shown}
    assert {"Rollback failed", "Rollback step failed: restore the primary", "Not back to normal"} <= titles
    assert {
        "orders-kv: page not delivered",
        "web: page not delivered",
        "Contact chain exhausted: quiet",
    } <= titles
    for finding in shown:
        assert f"  {finding.severity.upper():<8}  {finding.title}\n" in out
        assert f"\n            {finding.detail}\n" in out
    assert "  CRITICAL  Rollback failed\n            step 'restore the primary' failed (" in out
    assert "; systems may not be back to normal" in out
    assert "after the drill, not back at their baseline state: reports (down)" in out
    rest = len(failed.findings) - len(shown)
    assert f"findings: {sum(f.severity == 'critical' for f in shown)} critical, " in out
    assert f"; {rest} others in the report" in out
    assert "return to normal: NOT confirmed: reports (down)" in out


def test_an_undelivered_page_is_not_called_unacknowledged(failed: FailedDrill) -> None:
    text = "\n".join(summary_lines(failed.results, failed.findings))
    not_delivered = 'page not delivered (Lab on-call via webhook: HTTP 404: {"error": "unknown control /control/nowhere"})'
    assert f"  lab-oncall: {not_delivered}; chain exhausted" in text
    assert f"contact chain lab-oncall: {not_delivered}" in text  # orders-kv's and web's reasons
    assert "  quiet: delivered to Quinn (webhook), not acknowledged within 1 s; chain exhausted" in text
    assert "contact chain quiet: delivered to Quinn (webhook), not acknowledged within 1 s" in text
    assert "did not acknowledge" not in text


def test_findings_given_by_the_caller_are_the_ones_shown(
    failed: FailedDrill, capsys: pytest.CaptureFixture[str]
) -> None:
    print_summary(failed.results, findings=())  # a caller holding the report passes its findings
    out = capsys.readouterr().out
    assert "findings:" not in out and "verdict: FAIL" in out
    confirmed = replace(failed.results, return_to_normal=ReturnResult(True))
    lines = summary_lines(confirmed, build_findings(confirmed))
    assert "return to normal: confirmed (every asset back at its baseline state)" in lines
    assert not any("Not back to normal" in x for x in lines)
    minor = [f for f in failed.findings if f.severity not in ("critical", "high")]
    lines = summary_lines(failed.results, minor)
    assert lines[-1] == f"findings: none critical or high; {len(minor)} others in the report"


def _people_texts(failed: FailedDrill) -> dict[str, str]:
    """Every text of the run that people read, by where it comes from."""
    r = failed.results
    texts = {
        "summary": "\n".join(summary_lines(r, failed.findings)),
        "plan": failed.plan_text,
        "dry run": "\n".join(failed.readiness),
        "live view": "\n".join("\n".join(f) for f in failed.frames),
        "findings": "\n".join(f"{f.title}: {f.detail}" for f in failed.findings),
        "run reason": f"{r.reason}\n{r.verdict_reason}",
        "steps": "\n".join(s.reason for s in r.steps),
        "assets": "\n".join(
            "\n".join([*a.reasons, *(o.reason for o in a.objectives), *(e.reason for e in a.probe_errors)])
            for a in r.assets
        ),
        "waits": "\n".join(f"{w.outcome} {w.detail}" for w in r.waits),
    }
    for shipped in sorted((ROOT / "playbooks").glob("*.yaml")):
        texts[f"plan {shipped.name}"] = plan_to_text(build_plan(load_playbook(shipped)))
    return texts


def test_no_text_people_read_shows_raw_numbers_or_python_reprs(failed: FailedDrill) -> None:
    texts = _people_texts(failed)
    assert all(text.strip() for text in texts.values()), [k for k, v in texts.items() if not v.strip()]
    found = [
        f"{source}: {name}: {line.strip()!r}"
        for source, text in texts.items()
        for line in text.splitlines()
        for name, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_scan_catches_what_users_reported() -> None:
    reported = [
        "target 300.00s",
        "did not acknowledge within 900000 ms",
        "first ack None ms, target 900000 ms, met: False",
        "detects within 1s500ms",
        "pause 1500ms",
        "met: True",
    ]
    assert all(any(p.search(text) for p in FORBIDDEN.values()) for text in reported)
    fine = ["target 5 min", "first ack after 907 ms, target 30 s: met", "detects within 1.5 s", "RPO 0 ms"]
    assert not any(p.search(text) for text in fine for p in FORBIDDEN.values())
