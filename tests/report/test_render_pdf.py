"""`drill report render DIR --to pdf`: report.pdf printed by real headless Chromium, checked as
pixels (pdftoppm) and text (pdftotext); a missing, failing or hanging browser gives one line.

The Chromium test is skipped when chromium or poppler-utils is absent, unless
DRILL_REQUIRE_INTEGRATION=1 (then it fails).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from drill.cli import cli
from drill.report.build import load_report
from drill.report.evidence import render_views
from drill.report.model import Report
from drill.report.pdf import PdfUnavailable, render_pdf
from drill.report.verify import verify_report_dir
from tests.conftest import require_binary

from .signing_helpers import make_key, make_report_dir, pub_line, write_allowed_signers


def _drill(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stdout, result.stderr


def _one_line(stderr: str) -> str:
    """The error line of a refusal: one line, optionally followed by a hint line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), stderr
    return lines[0]


def _png_pixels(path: Path) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw pixels) of an 8-bit, non-interlaced PNG, with the
    stdlib only: chunks, zlib, and the five scanline filters of the PNG specification."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), (depth, interlace)
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw, stride = zlib.decompress(idat), width * bpp
    pixels, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
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
        pixels += line
        previous = line
    return width, height, bpp, bytes(pixels)


@pytest.fixture
def signed_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A signed evidence folder with every view, as `drill run --sign-key` leaves it."""
    key = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path, signer=("operator", key))
    render_views(load_report(run), run)
    return run, write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(key)}")


@pytest.mark.integration
def test_pdf_of_the_fixture_report_is_a_printed_page(signed_folder: tuple[Path, Path]) -> None:
    require_binary("chromium")
    pdftoppm = require_binary("pdftoppm")
    run, allowed = signed_folder
    code, out, err = _drill("report", "render", run, "--to", "pdf")
    assert code == 0, err
    pdf = run / "report.pdf"
    assert out.strip() == str(pdf) and pdf.read_bytes().startswith(b"%PDF-")

    subprocess.run(
        [pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(run / "page")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (png,) = run.glob("page*.png")
    assert png.stat().st_size > 10_000  # a page with text and colour, not an empty sheet
    width, height, bpp, pixels = _png_pixels(png)
    assert (width, height) == (414, 585)  # A4 (210 x 297 mm) at 50 dpi: the print CSS page size
    rgb = [tuple(pixels[i : i + 3]) for i in range(0, len(pixels), bpp)]
    ink = sum(1 for p in rgb if min(p) < 200) / len(rgb)
    assert 0.01 < ink < 0.6, ink  # text on white paper
    assert len(set(rgb)) > 50  # anti-aliased text, badges, tables: not a flat image
    fail_red = sum(1 for r, g, b in rgb if r > 150 and g < 90 and b < 90)
    assert fail_red > 50, fail_red  # the FAIL verdict is printed in its colour

    if pdftotext := shutil.which("pdftotext"):  # poppler-utils ships both; the pixels suffice
        page1 = subprocess.run(
            [pdftotext, "-f", "1", "-l", "1", str(pdf), "-"], check=True, capture_output=True, timeout=60
        ).stdout.decode()
        assert "payments-q4" in page1 and "FAIL" in page1
        assert "Signatures present: operator" in page1

    # Not evidence: verify passes with report.pdf beside the views and does not compare it.
    result = verify_report_dir(run, allowed)
    assert result.views == ("report.html", "report.md", "report.junit.xml")
    assert "report.pdf" not in result.views_absent


def test_no_chromium_is_one_line_exit_3(
    signed_folder: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = signed_folder
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("DRILL_CHROMIUM", raising=False)
    code, _, err = _drill("report", "render", run, "--to", "pdf")
    assert code == 3
    assert _one_line(err) == (
        "drill: cannot write a PDF: no Chromium found (chromium, chromium-browser, google-chrome on PATH)"
    )
    assert "DRILL_CHROMIUM=/path/to/chrome" in err
    assert not (run / "report.pdf").exists()


def test_drill_chromium_pointing_nowhere_is_a_usage_error(
    signed_folder: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = signed_folder
    monkeypatch.setenv("DRILL_CHROMIUM", str(tmp_path / "nowhere" / "chromium"))
    code, _, err = _drill("report", "render", run, "--to", "pdf")
    assert code == 2
    assert (
        _one_line(err)
        == f"drill: DRILL_CHROMIUM={tmp_path / 'nowhere' / 'chromium'} is not an executable file"
    )
    assert not (run / "report.pdf").exists()


def _fake_browser(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-chromium"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_hanging_browser_is_stopped_by_pid(report: Report, tmp_path: Path) -> None:
    fake = _fake_browser(tmp_path, "exec sleep 600")  # exec: the browser's PID is the sleeper's
    env = {**os.environ, "DRILL_CHROMIUM": str(fake)}
    with pytest.raises(PdfUnavailable) as caught:
        render_pdf(report, tmp_path / "report.pdf", timeout_s=0.5, env=env)
    found = re.fullmatch(
        r"fake-chromium did not finish the PDF within 0\.5 s; stopped it \(pid (\d+)\)", caught.value.message
    )
    assert found, caught.value.message
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(found.group(1)), 0)
    assert not (tmp_path / "report.pdf").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("echo '[1:2:ERROR] Missing X server or $DISPLAY' >&2; exit 21",
         "fake-chromium failed to print the PDF (exit 21): [1:2:ERROR] Missing X server or $DISPLAY"),
        ("exit 0", "fake-chromium exited without writing the PDF"),
    ],
)  # fmt: skip
def test_a_failing_browser_is_one_line(report: Report, tmp_path: Path, body: str, message: str) -> None:
    fake = _fake_browser(tmp_path, body)
    with pytest.raises(PdfUnavailable) as caught:
        render_pdf(report, tmp_path / "report.pdf", env={**os.environ, "DRILL_CHROMIUM": str(fake)})
    assert (caught.value.message, caught.value.exit_code) == (message, 3)
    assert not (tmp_path / "report.pdf").exists()
