"""Renderers: golden Markdown and JUnit from the fixed journal; self-contained, escaped HTML.

Regenerate the golden files after an intended change with DRILL_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from drill.report.build import report_bytes
from drill.report.model import Report, Signer, report_from_data
from drill.report.render_html import render_html
from drill.report.render_junit import render_junit
from drill.report.render_md import render_markdown
from drill.report.signoff import COUNTERSIGNER, PREPARER, SignOff
from drill.units import human_bp, human_ms, human_pm

GOLDEN = Path(__file__).resolve().parent / "golden"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DRILL_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing {path}: run with DRILL_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def test_markdown_golden(report: Report) -> None:
    _golden("report.md", render_markdown(report))


def test_junit_golden(report: Report) -> None:
    _golden("report.junit.xml", render_junit(report))


def test_junit_has_one_case_per_objective(report: Report) -> None:
    root = ET.fromstring(render_junit(report).encode())
    cases = {str(c.get("name")): c for c in root.iter("testcase")}
    # RTO for every asset; RPO where a target is set (tier-2 has none); ack where a chain was paged.
    assert sorted(cases) == sorted(
        [
            "payments-db RTO", "payments-db RPO", "payments-db ack",
            "payments-api RTO", "payments-api RPO", "payments-api ack",
            "ledger RTO", "ledger RPO", "ledger ack",
            "reports RTO", "reports RPO",
            "search RTO",
        ]
    )  # fmt: skip
    failure = cases["reports RTO"].find("failure")
    assert failure is not None
    assert failure.get("message") == "RTO 2 min 30 s ± 1 s exceeds target 2 min"
    rpo = cases["payments-db RPO"].find("failure")
    assert rpo is not None and rpo.get("message") == "RPO 1.2 s (3 lost writes) exceeds target 0 ms"
    # no canary: not measured is a failure (the drill is incomplete), never a green case
    unmeasured = cases["ledger RPO"].find("failure")
    assert (
        unmeasured is not None and unmeasured.get("message") == "not measured: no canary probe writes to it"
    )
    waived = cases["payments-api RPO"].find("skipped")  # waived by the playbook, with its reason
    assert waived is not None and str(waived.get("message")).startswith("waived: stateless")
    unaffected = cases["search RTO"].find("skipped")
    assert unaffected is not None and str(unaffected.get("message")).startswith("unaffected: ")
    assert cases["payments-api RTO"].find("failure") is None
    assert cases["payments-api RTO"].get("time") == "20.500"
    assert (root.get("tests"), root.get("failures")) == ("12", "5")
    assert [s.get("name") for s in root.iter("testsuite")] == [
        "payments-q4.tier-0",
        "payments-q4.tier-1",
        "payments-q4.tier-2",
    ]


# A signature file name is whatever is in the folder: report.json.<anything>.sig.
HOSTILE_SIGN_OFF = SignOff(
    "<script>alert(2)</script>|x\ny`z", COUNTERSIGNER, "SHA256:" + "k" * 43, "report.json.<img src=y>|.sig"
)


def test_markdown_escapes_table_cells(report: Report) -> None:
    first = replace(report.findings[0], title="a | b\nc")
    evil = replace(report, findings=(first, *report.findings[1:]))
    text = render_markdown(evil, (HOSTILE_SIGN_OFF,))
    assert "a \\| b c" in text
    for line in text.splitlines():
        if line.startswith("| F-001"):
            assert len(re.split(r"(?<!\\)\|", line)) == 7  # five cells: the escaped pipe splits nothing
    (row,) = [line for line in text.splitlines() if line.startswith("| <script>")]
    assert row == (
        "| <script>alert(2)</script>\\|x y`z | countersigned | SHA256:" + "k" * 43
        + " | report.json.<img src=y>\\|.sig |"
    )  # fmt: skip
    assert len(re.split(r"(?<!\\)\|", row)) == 6  # four cells, whatever the file name holds


def test_html_is_self_contained_and_complete(report: Report) -> None:
    assert report.prepared_by is not None
    signed = SignOff("ana", PREPARER, report.prepared_by.fingerprint, "report.json.ana.sig")
    html = render_html(report, (signed,))
    assert "<script" not in html.lower()
    # No network: the only URL is the SVG namespace identifier.
    assert re.findall(r"https?://[^\s\"'<]+", html) == ["http://www.w3.org/2000/svg"]
    assert not re.search(r"""(src|href)\s*=""", html)
    assert html.index("FAIL") < html.index("Targets vs achieved") < html.index("Recovery timeline")
    for needle in (
        "Findings",
        "People",
        "Step timeline",
        "Verification",
        report.journal.sha256,
        report.prepared_by.fingerprint,
        "@media print",
        "<svg",
        "ledger-oncall",
        "<h2>Sign-off</h2>",
        "report.json.ana.sig",
    ):
        assert needle in html
    assert html.index("Step timeline") < html.index("<h2>Sign-off</h2>") < html.index("<h2>Verification</h2>")
    assert html.count("<circle") == 4  # one recovery marker per recovered asset (search never went down)


def test_html_escapes_report_text(report: Report) -> None:
    asset = replace(report.assets[0], description="<script>alert(1)</script>")
    finding = replace(report.findings[0], detail='"><img src=x onerror=alert(1)>')
    evil = replace(report, assets=(asset, *report.assets[1:]), findings=(finding, *report.findings[1:]))
    html = render_html(evil, (HOSTILE_SIGN_OFF,))
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "<strong>&lt;script&gt;alert(2)&lt;/script&gt;|x\ny`z</strong>" in html
    assert "report.json.&lt;img src=y&gt;|.sig</td>" in html
    # the preparer named by the report, as hostile as a report.json can make it
    unsigned = render_html(replace(evil, prepared_by=Signer('"><b>x</b>', "SHA256:" + "p" * 43)))
    assert "<b>x</b>" not in unsigned and "&#34;&gt;&lt;b&gt;x&lt;/b&gt;" in unsigned


def test_renderers_are_deterministic(report: Report) -> None:
    reread = report_from_data(json.loads(report_bytes(report)))  # as `drill report render` reads it
    for render in (render_html, render_markdown, render_junit):
        assert render(report) == render(reread)


def test_html_handles_a_drill_without_injection(report: Report) -> None:
    assets = tuple(
        replace(
            a,
            t_inject_utc=None,
            t_detect_utc=None,
            t_recover_utc=None,
            rto_ms=None,
            detection_ms=None,
            switchover_ms=None,
            verdict="not-measured",
        )
        for a in report.assets
    )
    quiet = replace(report, assets=assets, findings=())
    html = render_html(quiet)
    assert "Recovery timeline" not in html and "No findings." in html
    assert "not measured" in render_junit(quiet)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "—"),
        (0, "0 ms"),
        (999, "999 ms"),
        (250, "250 ms"),
        (1000, "1 s"),
        (1500, "1.5 s"),
        (12_000, "12 s"),
        (30_000, "30 s"),
        (59_960, "1 min"),
        (90_000, "1 min 30 s"),
        (245_000, "4 min 5 s"),
        (900_000, "15 min"),
        (3_600_000, "1 h"),
        (5_430_000, "1 h 31 min"),
        (9_000_000, "2 h 30 min"),
        (183_600_000, "2 d 3 h"),
    ],
)
def test_human_ms(ms: int | None, text: str) -> None:
    assert human_ms(ms) == text


def test_human_bp_and_pm() -> None:
    assert (human_bp(10_000), human_bp(8_927), human_bp(5)) == ("100.00 %", "89.27 %", "0.05 %")
    assert human_pm(1500, 500) == "1.5 s ± 500 ms"
    assert human_pm(2300, 250) == "2.3 s ± 250 ms"
    assert human_pm(None, 500) == "—"


def _band_fill(html: str, asset: str) -> str:
    """The fill of an asset's target-RTO band in the timeline (the first rect of its row)."""
    row = re.search(rf"<title>{re.escape(asset)}: injected.*?</title>(.*?)</g>", html, re.S)
    assert row is not None, asset
    fill = re.search(r'<rect [^>]*fill="(#[0-9a-f]{6})"', row.group(1))
    assert fill is not None, asset
    return fill.group(1)


def test_the_timeline_is_green_only_where_a_recovery_met_its_target(report: Report) -> None:
    html = render_html(report)
    assert _band_fill(html, "payments-api") == "#dff1e6"  # recovered within its RTO
    assert _band_fill(html, "reports") == "#eef0f3"  # missed its RTO: never "within target"
    assert _band_fill(html, "search") == "#eef0f3"  # never went down: nothing recovered
    assert "0 ms ±" not in html  # an unaffected asset is never "RTO 0"
    assert ">unaffected<" in html


def test_junit_tells_an_undelivered_page_from_an_unanswered_one(report: Report) -> None:
    pages = tuple(
        replace(p, ok=False, reason="HTTP 404", acked_utc=None, ack_ms=None)
        if p.chain == "ledger-oncall"
        else p
        for p in report.people.pages
    )
    assert any(p.chain == "ledger-oncall" for p in pages)
    undelivered = replace(report, people=replace(report.people, pages=pages))
    text = render_junit(undelivered)
    assert "chain ledger-oncall: no page delivered (" in text and "HTTP 404" in text
    assert "delivered, nobody acknowledged" not in text
