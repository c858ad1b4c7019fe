"""`drill demo`: a whole drill against the embedded lab, ending with a verified signed report."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from drill.cli.live import LiveDisplay, LogSink
from drill.cli.summary import print_summary
from drill.demo import DEMO_SIGNER, demo_playbook, run_demo
from drill.log import configure_logging


@click.command("demo")
@click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True
)
def demo(runs_dir: Path) -> None:
    """Run the demo drill over the embedded lab: live view, signed report, verification, HTML."""
    configure_logging("auto")
    playbook = demo_playbook()
    display = LiveDisplay(playbook) if sys.stderr.isatty() else None
    sinks = [display] if display is not None else [LogSink()]
    click.echo(f"drill demo: {playbook.metadata.description}", err=True)
    with display if display is not None else contextlib.nullcontext():
        outcome = asyncio.run(run_demo(playbook, runs_dir, sinks))
    results = outcome.run.results
    print_summary(results)
    run_dir = outcome.run.run_dir
    v = outcome.verification
    click.echo(f"\nsigned by {DEMO_SIGNER} ({outcome.fingerprint}) with a throw-away key")
    click.echo(
        f"verified: {len(v.signers)} signature(s), journal {v.journal.events} events, chain head {v.journal.head[:16]}…"
    )
    click.echo(f"\nevidence in {run_dir}/")
    for path in outcome.evidence:
        click.echo(f"  {path.name}")
    click.echo(f"  {outcome.allowed_signers.name}")
    click.echo(f"\nopen the report:   {run_dir / 'report.html'}")
    click.echo(f"verify it again:   drill verify {run_dir} --allowed-signers {outcome.allowed_signers}")
    click.echo(
        f"without drill:     ssh-keygen -Y verify -f {outcome.allowed_signers} -I {DEMO_SIGNER} -n drill-report-v1 "
        f"-s {run_dir}/report.json.{DEMO_SIGNER}.sig < {run_dir}/report.json"
    )
