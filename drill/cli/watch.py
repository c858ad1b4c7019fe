"""`drill watch PLAYBOOK` (probe continuously into sealed segments) and `drill watch-verify FOLDER`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drill.cli.keys import read_passphrase_file
from drill.cli.output import echo_json, format_option
from drill.cli.run import read_variables, variables_options
from drill.durations import parse_duration_ms
from drill.errors import EXIT_ABORTED, EXIT_FAILED, EXIT_OK, UsageError
from drill.log import configure_logging, get_logger
from drill.playbook.validate import load_playbook
from drill.report.sign import check_principal, load_private_key
from drill.report.verify import load_allowed_signers
from drill.run.session import operator_identity
from drill.sla.load import load_sla
from drill.sla.segments import NAMESPACE, SegmentSigner, WatchVerification, verify_watch
from drill.sla.watch import HOUR_MS, WatchOptions, WatchOutcome, check_rotate, run_watch

if TYPE_CHECKING:
    from drill.playbook.model import Playbook
    from drill.sla.metrics import Listen, MetricsServer, WatchMetrics


def _duration(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = parse_duration_ms(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if value <= 0:
        raise UsageError(f"{option}: must be longer than 0")
    return value


@click.command("watch")
@click.argument("playbook", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Watch folder (default: watch/<playbook name>/). A folder with segments is resumed.",
)
@click.option(
    "--rotate",
    metavar="DURATION",
    default="1h",
    show_default=True,
    help="Start a new segment at every multiple of this in UTC (1h: the top of each hour; 1d: UTC midnight).",
)
@click.option(
    "--duration",
    metavar="DURATION",
    help="Stop after this long (tests, cron); default: until SIGTERM/SIGINT.",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"OpenSSH Ed25519 key signing each seal (SSHSIG, namespace {NAMESPACE}).",
)
@click.option("--signer", default="operator", show_default=True, help="Principal name of the signer.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the signing key's passphrase (its first line).",
)
@click.option(
    "--metrics",
    "metrics_at",
    metavar="[HOST:]PORT",
    help="Serve the watch's state for Prometheus at http://HOST:PORT/metrics "
    "(HOST defaults to 127.0.0.1; another address is reachable from beyond this host).",
)
@click.option(
    "--sla",
    "sla_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SLA document (kind: SLA) whose burn-rate and threshold alerts page the playbook's "
    "contact chains while watching (each alert once per episode; sla.alert journalled).",
)
@format_option
@variables_options
def watch(
    playbook: Path,
    out: Path | None,
    rotate: str,
    duration: str | None,
    sign_key: Path | None,
    signer: str,
    passphrase_file: Path | None,
    metrics_at: str | None,
    sla_file: Path | None,
    fmt: str,
    var_pairs: tuple[str, ...],
    vars_file: Path | None,
) -> None:
    """Run PLAYBOOK's probes continuously (no scenario) into rotated, sealed journal segments.

    Every segment names the previous one's chain head; each closed segment gets
    segment-N.seal (RFC 8785: file, events, head, sha256, first/last UTC) and, with --sign-key,
    segment-N.seal.SIGNER.sig. A restart seals a segment a crash left open and records the time
    the watch was not running as no data, never as up. SIGTERM or Ctrl-C stops it: the last
    segment is sealed and drill exits 0 (3 when the journal could not be written, 2 bad input).

    With --metrics, drill_probe_success, drill_probe_duration_seconds,
    drill_probe_observations_total, drill_asset_up and drill_watch_segment(_events) are served
    for Prometheus (a live view: the segments stay the evidence). A port in use exits 3.

    With --sla, the SLA's burn-rate pairs and thresholds are evaluated on what this watch
    observes (a service is down when the latest observation of any of its probes failed):
    a burn pair once the watch has seen its whole long window, a threshold on the contract
    period that contains now (what this folder's watches saw of it, earlier segments included,
    against the whole period: it fires only once the period is certain to end below it).
    A rising edge journals sla.alert (firing) and pages the alert's chain; clearing journals
    sla.alert (resolved).

    \b
    Example:
      drill watch playbooks/demo.yaml --out watch/demo --rotate 1h --sign-key ~/.ssh/drill --signer ops
      drill watch playbooks/demo.yaml --metrics 127.0.0.1:9464
      drill watch playbooks/demo.yaml --sla examples/sla-lab.yaml
      drill watch-verify watch/demo
    """
    rotate_ms = check_rotate(_duration("--rotate", rotate) or HOUR_MS)
    duration_ms = _duration("--duration", duration)
    listen = _listen(metrics_at)
    loaded = load_playbook(playbook)
    sla = load_sla(sla_file) if sla_file is not None else None
    variables = read_variables(var_pairs, vars_file)
    segment_signer = None
    if sign_key is not None:
        key = load_private_key(sign_key, read_passphrase_file(passphrase_file))
        segment_signer = SegmentSigner(key, check_principal(signer))
    folder = out if out is not None else Path("watch") / loaded.metadata.name
    configure_logging()
    metrics, server = _serve_metrics(listen, loaded)
    options = WatchOptions(
        out=folder,
        rotate_ms=rotate_ms,
        duration_ms=duration_ms,
        signer=segment_signer,
        variables=variables,
        operator=operator_identity(),
        metrics=metrics,
        sla=sla,
    )
    try:
        outcome = asyncio.run(run_watch(loaded, options))
    finally:
        if server is not None:
            server.stop()
    if fmt == "json":
        echo_json({**_outcome_data(outcome), "metrics": str(listen) if listen is not None else None})
    else:
        _print_outcome(outcome)
    if outcome.journal_error:
        click.echo(f"drill: aborted: {outcome.journal_error}", err=True)
        sys.exit(EXIT_ABORTED)
    sys.exit(EXIT_OK)


def _listen(text: str | None) -> Listen | None:
    """The --metrics address, checked before anything starts (prometheus_client is imported
    only here: a watch without --metrics does not pay for it)."""
    if text is None:
        return None
    from drill.sla.metrics import parse_listen

    return parse_listen(text)


def _serve_metrics(
    listen: Listen | None, playbook: Playbook
) -> tuple[WatchMetrics | None, MetricsServer | None]:
    if listen is None:
        return None, None
    from drill.sla.metrics import MetricsServer, WatchMetrics

    metrics = WatchMetrics((a.id, p.name) for a in playbook.assets for p in a.probes)
    server = MetricsServer.start(listen, metrics)
    if not listen.loopback:
        click.echo(
            f"drill: warning: --metrics {listen} is not a loopback address: whoever can reach it "
            "reads this watch's asset and probe names and states",
            err=True,
        )
    get_logger("drill.watch").info("serving metrics", url=f"http://{listen}/metrics")
    return metrics, server


def _outcome_data(outcome: WatchOutcome) -> dict[str, object]:
    gap = outcome.gap
    resumed = outcome.resumed.sealed_now
    return {
        "folder": str(outcome.folder),
        "first_segment": outcome.first_segment,
        "last_segment": outcome.last_segment,
        "stop_reason": outcome.stop_reason,
        "sealed_after_restart": resumed.file if resumed is not None else None,
        "gap": None
        if gap is None
        else {
            "from_utc": gap.from_utc,
            "to_utc": gap.to_utc,
            "duration_ms": gap.duration_ms,
            "health": gap.health,
        },
        "journal_error": outcome.journal_error or None,
    }


def _print_outcome(outcome: WatchOutcome) -> None:
    click.echo(f"watch folder: {outcome.folder}")
    sealed = "the last one left for the next start to seal" if outcome.journal_error else "each sealed"
    click.echo(f"segments written: {outcome.first_segment} to {outcome.last_segment}, {sealed}")
    if outcome.resumed.sealed_now is not None:
        click.echo(f"sealed after restart: {outcome.resumed.sealed_now.file}")
    if outcome.gap is not None:
        gap = outcome.gap
        click.echo(f"gap (no data): {gap.from_utc} to {gap.to_utc} ({gap.duration_ms} ms)")
    click.echo(f"stopped: {outcome.stop_reason}")


@click.command("watch-verify")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--allowed-signers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH allowed_signers file: seal signatures must also be by a trusted key.",
)
@format_option
def watch_verify(folder: Path, allowed_signers: Path | None, fmt: str) -> None:
    """Verify a watch folder: every segment's chain, the links between segments, the seals
    and their signatures; list the gaps (no data). Exit 0 verified, 1 not.

    \b
    Example:
      drill watch-verify watch/demo --allowed-signers allowed_signers
    """
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    allowed = load_allowed_signers(allowed_signers) if allowed_signers is not None else None
    result = verify_watch(folder, allowed_signers=allowed)
    if fmt == "json":
        echo_json(_verification_data(result))
    else:
        _print_verification(result)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


def _verification_data(result: WatchVerification) -> dict[str, object]:
    return {
        "folder": result.folder,
        "verified": result.ok,
        "signatures_trusted": result.signatures_trusted,
        "segments": [
            {
                "file": s.file,
                "segment": s.segment,
                "events": s.events,
                "head": s.head,
                "sha256": s.sha256,
                "first_utc": s.first_utc or None,
                "last_utc": s.last_utc or None,
                "sealed": s.sealed or None,
                "torn_bytes": s.torn_bytes,
                "signed_by": list(s.signed_by),
            }
            for s in result.segments
        ],
        "gaps": [
            {
                "file": g.file,
                "from_utc": g.from_utc,
                "to_utc": g.to_utc,
                "duration_ms": g.duration_ms,
                "health": "no-data",
            }
            for g in result.gaps
        ],
        "problems": [{"file": p.file, "line": p.line or None, "message": p.message} for p in result.problems],
    }


def _print_verification(result: WatchVerification) -> None:
    for s in result.segments:
        sealed = f"sealed {s.sealed}" if s.sealed else "open (not sealed yet)"
        signed = f", signed by {', '.join(s.signed_by)}" if s.signed_by else ""
        torn = f", {s.torn_bytes} torn bytes at the end" if s.torn_bytes else ""
        click.echo(
            f"{s.file}: {s.events} events, {s.first_utc or '-'} to {s.last_utc or '-'}, {sealed}{signed}{torn}"
        )
    for g in result.gaps:
        click.echo(f"gap (no data): {g.from_utc} to {g.to_utc} ({g.duration_ms} ms), recorded in {g.file}")
    for p in result.problems:
        click.echo(f"problem: {p}")
    trust = (
        ""
        if result.signatures_trusted
        else " (signatures checked for integrity only: pass --allowed-signers)"
    )
    click.echo(("verified" if result.ok else "NOT verified") + trust)
