"""What `drill run` prints when a drill ends: the per-asset table, the verdict, the people, the
critical and high findings of the report, the evidence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from drill.report.build import build_findings
from drill.report.model import Finding, Severity
from drill.results import ChainResult, PageResult, Results, unacknowledged
from drill.run.session import RunOutcome
from drill.units import human_count, human_ms

SHOWN = (Severity.CRITICAL, Severity.HIGH)  # the summary names these; the report lists them all


def print_summary(results: Results, findings: Sequence[Finding] | None = None) -> None:
    """The end-of-run summary: one line per asset, the verdict, the return to normal, each paged
    contact chain, then every critical and high finding (computed from the results exactly as
    the report computes them, unless the report's own findings are given)."""
    for line in summary_lines(results, build_findings(results) if findings is None else findings):
        click.echo(line)


def summary_lines(results: Results, findings: Sequence[Finding]) -> list[str]:
    """The summary as lines of text (what print_summary prints)."""
    assets = results.assets
    wide = max([len("asset"), *(len(a.id) for a in assets)])
    tier = max([len("tier"), *(len(a.tier) for a in assets)])
    lines = [
        "",
        f"{'asset':<{wide}}  {'tier':<{tier}} {'detect':>9} {'switch':>9} {'RTO':>9} {'target':>9}  verdict",
    ]
    for a in assets:
        cells = [human_ms(v) for v in (a.detection_ms, a.switchover_ms, a.rto_ms, a.targets.rto_ms)]
        row = " ".join(f"{c:>9}" for c in cells)
        lines.append(f"{a.id:<{wide}}  {a.tier:<{tier}} {row}  {a.verdict}")
        lines += [f"{'':<{wide + 2}}↳ {reason}" for reason in a.reasons]
    why = results.verdict_reason or results.reason
    lines += ["", f"verdict: {results.verdict.upper()}" + (f" ({why})" if why else "")]
    back = results.return_to_normal
    if back is not None:
        lines.append(
            "return to normal: confirmed (every asset back at its baseline state)"
            if back.confirmed
            else f"return to normal: NOT confirmed: {', '.join(back.not_back)}"
        )
    paged = [c for c in results.chains if c.met is not None]
    if paged:
        lines.append("contact chains:")
        lines += [f"  {chain_line(c, results.pages)}" for c in paged]
    lines += finding_lines(findings)
    return lines


def chain_line(chain: ChainResult, pages: Sequence[PageResult]) -> str:
    """One paged chain: who acknowledged and when against its target, or why nobody did (the
    pages never delivered, with the reason, or delivered and not acknowledged in time)."""
    target = "no target" if chain.respond_within_ms is None else f"target {human_ms(chain.respond_within_ms)}"
    if chain.first_ack_ms is not None:
        acked = sorted(
            (p for p in pages if chain.name in p.chains and p.acked_utc), key=lambda p: p.acked_utc or ""
        )
        by = f" by {acked[0].by or acked[0].contact}" if acked else ""
        met = "met" if chain.met else "LATE"
        return f"{chain.name}: acknowledged{by} after {human_ms(chain.first_ack_ms)}, {target}: {met}"
    text = f"{chain.name}: {unacknowledged(chain.name, chain.respond_within_ms, pages)}"
    return text + ("; chain exhausted" if chain.exhausted else "")


def finding_lines(findings: Sequence[Finding]) -> list[str]:
    """Every critical and high finding, by name; a count of the rest (the report has them all)."""
    shown = [f for f in findings if f.severity in SHOWN]
    if not findings:
        return []
    rest = len(findings) - len(shown)
    if not shown:
        return ["", f"findings: none critical or high; {human_count(rest, 'other')} in the report"]
    counts = ", ".join(f"{sum(1 for f in shown if f.severity == s)} {s}" for s in SHOWN)
    head = f"findings: {counts}" + (f"; {human_count(rest, 'other')} in the report" if rest else "")
    lines = ["", head]
    for f in shown:
        lines.append(f"  {f.severity.upper():<8}  {f.title}")
        if f.detail:
            lines.append(f"  {'':<8}  {f.detail}")
    return lines


def print_evidence(outcome: RunOutcome, evidence: list[Path]) -> None:
    click.echo(f"\nevidence: {outcome.run_dir}")
    for path in evidence:
        click.echo(f"  {path.name}")
