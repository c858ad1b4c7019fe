"""The evidence folder of a run: report.json (canonical), its signature, and the rendered views."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from drill.report.build import build_report_from_journal, write_atomically, write_report
from drill.report.model import Report, Signer
from drill.report.render_html import render_html
from drill.report.render_junit import render_junit
from drill.report.render_md import render_markdown
from drill.report.sign import sign_report, signer_identity
from drill.report.signoff import SignOff, sign_offs_in

Renderer = Callable[[Report, Sequence[SignOff]], str]

# format -> (renderer, file name in the evidence folder)
RENDERERS: dict[str, tuple[Renderer, str]] = {
    "html": (render_html, "report.html"),
    "md": (render_markdown, "report.md"),
    "junit": (render_junit, "report.junit.xml"),
}


def render_views(report: Report, directory: Path, formats: tuple[str, ...] = tuple(RENDERERS)) -> list[Path]:
    """Write report.html / report.md / report.junit.xml next to report.json, with the sign-offs
    present in `directory`; returns the paths."""
    sign_offs = sign_offs_in(directory, report)
    written = []
    for fmt in formats:
        renderer, name = RENDERERS[fmt]
        written.append(write_atomically(directory / name, renderer(report, sign_offs).encode("utf-8")))
    return written


def write_evidence(
    run_dir: Path, *, sign_key: Path | None = None, signer: str = "operator", passphrase: str | None = None
) -> list[Path]:
    """Build report.json from the run's journal, sign it when a key is given, render every view."""
    identity = Signer(*signer_identity(sign_key, signer, passphrase)) if sign_key else None
    extra = [p for p in (run_dir / "results.json",) if p.exists()]
    report = build_report_from_journal(run_dir / "journal.jsonl", signer=identity, evidence_files=extra)
    written = [run_dir / "journal.jsonl", *extra, write_report(report, run_dir)]
    if sign_key is not None:
        written.append(sign_report(run_dir, sign_key, signer, passphrase))
    return written + render_views(report, run_dir)
