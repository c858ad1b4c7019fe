"""Print the HTML report to PDF with headless Chromium: a copy to mail or file, not evidence.

report.pdf is not signed, not listed in report.json and not compared by `drill verify`: Chromium
writes its own creation time and producer version into the file and lays pages out by its
version and fonts, so the same report does not give the same bytes twice. The evidence stays
report.json and its signatures; the PDF carries the same sign-off block as report.html.

The browser is $DRILL_CHROMIUM when set (it must then be an executable file: UsageError, exit 2,
otherwise), else the first of chromium, chromium-browser, google-chrome on PATH; with none,
PdfUnavailable (exit 3: drill could not run the step). A browser that fails or outlives its
timeout is stopped (its process group, by PID) and reported as PdfUnavailable too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from drill.errors import EXIT_ABORTED, DrillError, UsageError
from drill.report.model import Report
from drill.report.render_html import render_html
from drill.report.signoff import SignOff

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
ENV_VAR = "DRILL_CHROMIUM"
TIMEOUT_S = 60.0  # a large drill's report prints in a few seconds; a stuck browser is stopped
PDF_FILE = "report.pdf"

# Headless, offline and stateless: no first-run work, no network of its own, a throw-away profile.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)


class PdfUnavailable(DrillError):
    """Raised when no browser can print the PDF: none installed, or it failed or timed out."""

    exit_code = EXIT_ABORTED


def find_chromium(env: Mapping[str, str] | None = None) -> str:
    """The browser to print with: $DRILL_CHROMIUM, else chromium / chromium-browser / google-chrome
    on PATH (of `env`, default this process's environment)."""
    environ = os.environ if env is None else env
    chosen = environ.get(ENV_VAR, "")
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise UsageError(
                f"{ENV_VAR}={chosen} is not an executable file",
                hint=f"point {ENV_VAR} at a Chromium or Chrome binary, or unset it to search PATH",
            )
        return chosen
    for name in BROWSERS:
        found = shutil.which(name, path=environ.get("PATH", os.defpath))
        if found:
            return found
    raise PdfUnavailable(
        f"cannot write a PDF: no Chromium found ({', '.join(BROWSERS)} on PATH)",
        hint=f"install chromium (apt-get install chromium) or set {ENV_VAR}=/path/to/chrome",
    )


def render_pdf(
    report: Report,
    output: Path,
    sign_offs: Sequence[SignOff] = (),
    *,
    timeout_s: float = TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Print render_html(report, sign_offs) to `output` with headless Chromium; returns output.

    Not deterministic and not evidence (see the module docstring). The page is written to a
    private temporary folder with the browser's profile; both are removed afterwards, and
    `output` appears whole or not at all.
    """
    browser = find_chromium(env)
    with tempfile.TemporaryDirectory(prefix="drill-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(report, sign_offs), encoding="utf-8")
        printed = Path(tmp) / PDF_FILE
        argv = [
            browser,
            *HEADLESS_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={printed}",
            page.as_uri(),
        ]
        _run_browser(argv, timeout_s, env)
        try:
            data = printed.read_bytes()
        except FileNotFoundError:
            raise PdfUnavailable(f"{Path(browser).name} exited without writing the PDF") from None
        if not data.startswith(b"%PDF-"):
            raise PdfUnavailable(f"{Path(browser).name} wrote something that is not a PDF")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = output.with_name(f".{output.name}.tmp")
        tmp_out.write_bytes(data)
        tmp_out.replace(output)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    return output


def _run_browser(argv: list[str], timeout_s: float, env: Mapping[str, str] | None) -> None:
    """Run the browser in its own process group; on timeout stop that group (by the browser's
    PID, which is the group's id) and reap it, so no renderer process outlives the command."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        raise PdfUnavailable(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise PdfUnavailable(
            f"{Path(argv[0]).name} did not finish the PDF within {timeout_s:g} s; stopped it (pid {proc.pid})",
            hint="a first start can be slow on a loaded machine; try again",
        ) from None
    except BaseException:
        _stop(proc)
        raise
    if proc.returncode != 0:
        detail = _last_line(err.decode("utf-8", errors="replace"))
        raise PdfUnavailable(
            f"{Path(argv[0]).name} failed to print the PDF (exit {proc.returncode})"
            + (f": {detail}" if detail else "")
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a grandchild that left the group still holds stderr open
        if proc.stderr is not None:
            proc.stderr.close()
        proc.wait()


def _last_line(text: str, limit: int = 200) -> str:
    """The last non-empty line of the browser's stderr (usually the error), shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= limit else last[: limit - 1] + "…"
