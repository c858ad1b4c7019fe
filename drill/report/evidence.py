"""The evidence folder of a run: report.json (canonical), its signature, and the rendered views."""

from __future__ import annotations

from pathlib import Path

from drill.report.build import build_report_from_journal, write_report
from drill.report.render_html import render_html
from drill.report.render_junit import render_junit
from drill.report.render_md import render_markdown
from drill.report.sign import sign_report, signer_identity

VIEWS = {
    "report.html": render_html,
    "report.md": render_markdown,
    "report.junit.xml": render_junit,
}


def write_evidence(
    run_dir: Path, *, sign_key: Path | None = None, signer: str = "operator", passphrase: str | None = None
) -> list[Path]:
    """Build report.json from the run's journal, sign it when a key is given, render every view."""
    identity = signer_identity(sign_key, signer, passphrase) if sign_key else None
    extra = [p for p in (run_dir / "results.json",) if p.exists()]
    report = build_report_from_journal(run_dir / "journal.jsonl", signer=identity, evidence_files=extra)
    written = [run_dir / "journal.jsonl", *extra, write_report(report, run_dir)]
    if sign_key is not None:
        written.append(sign_report(run_dir, sign_key, signer, passphrase))
    for name, render in VIEWS.items():
        target = run_dir / name
        target.write_text(render(report), encoding="utf-8")
        written.append(target)
    return written
