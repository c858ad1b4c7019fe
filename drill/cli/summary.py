"""What `drill run` prints when a drill ends: the per-asset table, the verdict, the evidence."""

from __future__ import annotations

from pathlib import Path

import click

from drill.results import Results
from drill.run.session import RunOutcome
from drill.units import human_ms


def print_summary(results: Results) -> None:
    """The end-of-run table: one line per asset, then the verdict."""
    assets = results.assets
    wide = max([len("asset"), *(len(a.id) for a in assets)])
    tier = max([len("tier"), *(len(a.tier) for a in assets)])
    click.echo(
        f"\n{'asset':<{wide}}  {'tier':<{tier}} {'detect':>9} {'switch':>9} {'RTO':>9} {'target':>9}  verdict"
    )
    for a in assets:
        cells = [human_ms(v) for v in (a.detection_ms, a.switchover_ms, a.rto_ms, a.targets.rto_ms)]
        row = " ".join(f"{c:>9}" for c in cells)
        click.echo(f"{a.id:<{wide}}  {a.tier:<{tier}} {row}  {a.verdict}")
        for reason in a.reasons:
            click.echo(f"{'':<{wide + 2}}↳ {reason}")
    why = results.verdict_reason or results.reason
    reason = f" ({why})" if why else ""
    click.echo(f"\nverdict: {results.verdict.upper()}{reason}")
    back = results.return_to_normal
    if back is not None:
        click.echo(
            "return to normal: confirmed (every asset back at its baseline state)"
            if back.confirmed
            else f"return to normal: NOT confirmed: {', '.join(back.not_back)}"
        )


def print_evidence(outcome: RunOutcome, evidence: list[Path]) -> None:
    click.echo(f"\nevidence: {outcome.run_dir}")
    for path in evidence:
        click.echo(f"  {path.name}")
