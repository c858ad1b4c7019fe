"""`drill demo`: a whole drill against the embedded lab, ending with a verified signed report."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from drill.cli.live import LiveDisplay, LogSink
from drill.cli.summary import print_summary
from drill.demo import DEMO_SIGNER, TRUST_WHY, demo_playbook, run_demo, verdict_sentence
from drill.log import configure_logging
from drill.units import human_ms


@click.command("demo")
@click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True
)
def demo(runs_dir: Path) -> None:
    """Run the demo drill over the embedded lab: live view, signed report, verification, HTML.

    Exits as `drill run` does, with the drill's verdict: 0 pass, 1 fail or incomplete, 3 aborted
    or not run (and 1 when the report does not verify)."""
    configure_logging()
    playbook = demo_playbook()
    display = LiveDisplay(playbook) if sys.stderr.isatty() else None
    sinks = [display] if display is not None else [LogSink()]
    click.echo(f"drill demo: {playbook.metadata.name}: {playbook.metadata.description}", err=True)
    with display if display is not None else contextlib.nullcontext():
        outcome = asyncio.run(run_demo(playbook, runs_dir, sinks))
    results = outcome.run.results
    print_summary(results)
    for asset in results.assets:  # the data the failover really lost: what the canary is for
        if asset.rpo is not None:
            target = asset.targets.rpo_ms
            click.echo(
                f"{asset.id}: the failover lost {asset.rpo.lost_writes} acknowledged write(s),"
                f" RPO {human_ms(asset.rpo.rpo_ms)}"
                + ("" if target is None else f" (target {human_ms(target)})")
            )
    run_dir = outcome.run.run_dir
    v = outcome.verification
    trust = outcome.allowed_signers
    click.echo(f"\nsigned by {DEMO_SIGNER} ({outcome.fingerprint}) with a throw-away key")
    click.echo(
        f"verified: {len(v.signers)} signature(s), journal {v.journal.events} events, chain head {v.journal.head[:16]}…"
    )
    click.echo(f"trust file: {trust}, {TRUST_WHY}")
    click.echo(f"\nevidence in {run_dir}/")
    for path in outcome.evidence:
        click.echo(f"  {path.name}")
    click.echo(f"\nopen the report:   {run_dir / 'report.html'}")
    click.echo(f"verify it again:   drill verify {run_dir} --allowed-signers {trust}")
    click.echo(
        f"without drill:     ssh-keygen -Y verify -f {trust} -I {DEMO_SIGNER} -n drill-report-v1 "
        f"-s {run_dir}/report.json.{DEMO_SIGNER}.sig < {run_dir}/report.json"
    )
    click.echo(f"\n{verdict_sentence(results)} (exit {outcome.exit_code})")
    sys.exit(outcome.exit_code)
