"""The trend page in headless Chromium: no console errors, one chart per asset in the DOM, the
regression row, and a screenshot whose pixels show the chart's colours.

Skipped when Chromium is absent, unless DRILL_REQUIRE_INTEGRATION=1 (then it fails).
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drill.practice.trend import Trend, compute_trend, render_trend_html
from drill.report.pdf import HEADLESS_FLAGS, PdfUnavailable, find_chromium
from tests.practice.test_trend import asset, run

pytestmark = pytest.mark.integration

_FLAGS = [*HEADLESS_FLAGS, "--enable-logging=stderr", "--v=0"]
MISSED_RED = (0xB4, 0x23, 0x18)  # a missed RTO's point (and the FAIL text)
MET_GREEN = (0x1E, 0x7D, 0x4F)  # a met RTO's point


def _chromium() -> str:
    try:
        return find_chromium()
    except PdfUnavailable:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("DRILL_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message + "; DRILL_REQUIRE_INTEGRATION=1 forbids skipping")
        pytest.skip(message)


def _browse(browser: str, page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _console(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


class _Dom(HTMLParser):
    """The parts of the rendered DOM the test looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, str | None]] = []
        self.circles = 0
        self.rows: list[list[str]] = []  # text of each <tr class="regression|fix">, with its class first
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg":
            self.svgs.append(found)
        elif tag == "circle":
            self.circles += 1
        elif tag == "tr" and found.get("class") in ("regression", "fix"):
            self._row = [found.get("class") or ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB(A) non-interlaced PNG (Chromium's)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(
            bytes(line if bpp == 3 else b"".join(bytes(line[i : i + 3]) for i in range(0, stride, 4)))
        )
        previous = line
    return width, height, rows


def _count(rows: list[bytes], rgb: tuple[int, int, int]) -> int:
    needle = bytes(rgb)
    return sum(sum(1 for i in range(0, len(row), 3) if row[i : i + 3] == needle) for row in rows)


def _trend() -> Trend:
    """Two assets over three quarters: web's RTO missed in Q2 (a regression), then met (a fix)."""
    return compute_trend(
        [
            run("r1", "2026-Q1", asset("web", rto_ms=1000), asset("db", tier="data", rto_ms=2000)),
            run("r2", "2026-Q2", asset("web", rto_ms=8000), asset("db", tier="data", rto_ms=None)),
            run("r3", "2026-Q3", asset("web", rto_ms=1200), asset("db", tier="data", rto_ms=2100)),
        ]
    )


def test_trend_page_renders_one_chart_per_asset_without_console_errors(tmp_path: Path) -> None:
    browser = _chromium()
    control = tmp_path / "control.html"
    control.write_text(
        '<!DOCTYPE html><html><body><script>console.error("drill-trend-7")</script></body></html>'
    )
    shown = _browse(browser, control, tmp_path, "--window-size=400,300", f"--screenshot={tmp_path / 'c.png'}")
    assert any("drill-trend-7" in line for line in _console(shown)), "console capture does not work"

    trend = _trend()
    page = tmp_path / "trend.html"
    page.write_text(render_trend_html(trend), encoding="utf-8")

    dumped = _browse(browser, page, tmp_path, "--dump-dom")
    assert _console(dumped) == []
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert [s.get("data-asset") for s in dom.svgs] == ["web", "db"]  # one chart per asset, nothing else
    assert dom.circles == 5  # 3 measured quarters of web, 2 of db: db's gap has no point
    assert [row[:3] for row in dom.rows] == [
        ["regression", "issue discovered", "web"],
        ["fix", "issue fixed", "web"],
    ]
    regression = " ".join(dom.rows[0])
    assert "2026-Q1" in regression and "2026-Q2" in regression and "8 s / 5 s ✗" in regression

    png = tmp_path / "trend.png"
    shot = _browse(browser, page, tmp_path, "--window-size=1280,2400", f"--screenshot={png}")
    assert _console(shot) == []
    width, height, rows = _pixels(png.read_bytes())
    assert (width, height) == (1280, 2400)
    assert _count(rows, MISSED_RED) > 40  # web's Q2 point (a filled circle) and the FAIL text, drawn in red
    assert _count(rows, MET_GREEN) > 100  # the met points and PASS badges
