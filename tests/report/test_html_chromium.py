"""The HTML report renders in headless Chromium without console errors (and a screenshot is written).

Skipped when Chromium is absent, unless DRILL_REQUIRE_INTEGRATION=1 (then it fails).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from drill.report.model import Report
from drill.report.pdf import HEADLESS_FLAGS, PdfUnavailable, find_chromium
from drill.report.render_html import render_html

pytestmark = pytest.mark.integration

_FLAGS = [*HEADLESS_FLAGS, "--enable-logging=stderr", "--v=0"]  # as drill prints PDFs, plus its console


def _chromium() -> str:
    try:
        return find_chromium()
    except PdfUnavailable:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("DRILL_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message + "; DRILL_REQUIRE_INTEGRATION=1 forbids skipping")
        pytest.skip(message)


def _screenshot(browser: str, page: Path, tmp_path: Path, size: str = "1280,2400") -> tuple[Path, list[str]]:
    """Render page to a PNG under tmp_path; returns the PNG and the page's console lines."""
    png = tmp_path / f"{page.stem}.png"
    cmd = [
        browser,
        *_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={size}",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return png, console


def test_html_report_renders_without_console_errors(tmp_path: Path, report: Report) -> None:
    browser = _chromium()
    # Control: the harness does see a console error when a page has one.
    bad = tmp_path / "control.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><script>console.error("drill-control-42")</script></body></html>'
    )
    _, console = _screenshot(browser, bad, tmp_path, size="400,300")
    assert any("drill-control-42" in line for line in console), "console capture does not work"

    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    png, console = _screenshot(browser, page, tmp_path)
    assert console == []
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a real page, not a blank one
