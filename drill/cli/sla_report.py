"""`drill sla report` (the signed SLA report of a period) and `drill sla verify` (check one).

The report is computed from one source: drill journals (`--journal`, repeatable: watch segments
or drill runs), an incidents CSV (`--incidents`), or a Prometheus range query of probe_success
(`--prometheus URL --query Q`). It writes sla-report.json (RFC 8785 canonical bytes), .md, .csv
and .html into --out, and with --sign-key/--signer a detached SSHSIG over sla-report.json in
the namespace drill-sla-report-v1. Exit 1 when a service breached its target in a period (so a
finance pipeline can gate on it), 2 for bad input (a journal refused as altered or broken too).
"""

from __future__ import annotations

import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drill.cli.keys import passphrase_for, passphrase_option
from drill.cli.output import echo_json, format_option
from drill.errors import EXIT_FAILED, EXIT_OK, DrillError, UsageError

if TYPE_CHECKING:
    from drill.sla.model import Sla, Timeline, WindowKind
    from drill.sla.report import SourceInfo
    from drill.sla.sources import JournalDigest

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_YEAR = re.compile(r"(\d{4})")


@click.command("report")
@click.argument("sla_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--period", help="2026-03 (month), 2026-Q1 (quarter) or 2026 (year), in the contract's zone.")
@click.option(
    "--from", "from_", help="Start: a date (local midnight in the contract's zone) or a time with offset."
)
@click.option("--to", "to", help="End (exclusive), as --from.")
@click.option(
    "--journal",
    "journals",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A drill journal, or a folder of them such as a watch folder (its *.jsonl); repeatable.",
)
@click.option(
    "--trust-seals",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An allowed_signers file: a watch segment whose seal a key in it signed is taken from the"
    " seal's digest (its SHA-256 checked), not re-read line by line.",
)
@click.option(
    "--incidents",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An incidents CSV: service,start,end,impact.",
)
@click.option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090.")
@click.option(
    "--query",
    "queries",
    multiple=True,
    help="PromQL of probe_success; SERVICE=QUERY for one service, a bare QUERY for the others (repeatable).",
)
@click.option("--step", default="60s", show_default=True, help="Prometheus range-query step.")
@click.option(
    "--history",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The drill history index (`drill history add`): its verified drills of the SLA's playbook are"
    " planned windows, excluded when the SLA says exclude_drills.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Folder to write the report files into."
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH Ed25519 private key to sign with.",
)
@click.option("--signer", help="The signer's name (the principal in allowed_signers).")
@passphrase_option
@format_option
def report(
    sla_file: Path,
    period: str | None,
    from_: str | None,
    to: str | None,
    journals: tuple[Path, ...],
    trust_seals: Path | None,
    incidents: Path | None,
    prometheus: str | None,
    queries: tuple[str, ...],
    step: str,
    history: Path | None,
    out: Path | None,
    sign_key: Path | None,
    signer: str | None,
    passphrase_file: Path | None,
    fmt: str,
) -> None:
    """The SLA report of a period: availability, budget, status, credits, incidents, KPIs.

    Exit 0 when no service breached its target, 1 when one did, 2 for bad input.

    \b
    Examples:
      drill sla report examples/sla-lab.yaml --period 2026-03 --journal watch/
      drill sla report sla.yaml --period 2026-03 --incidents incidents.csv \\
          --out sla-2026-03 --sign-key ~/.ssh/id_ed25519 --signer ana@example.com
      drill sla report sla.yaml --from 2026-03-01 --to 2026-03-15 \\
          --prometheus http://127.0.0.1:9090 --query 'probe_success{job="web"}' --step 60s
    """
    from drill.clock import wall_utc_now
    from drill.sla.load import load_sla
    from drill.sla.render import render_csv, render_html, render_markdown, render_text
    from drill.sla.report import (
        REPORT_FILE,
        build_report,
        preparer_of,
        report_data,
        report_json_bytes,
        sign_report_bytes,
        signing_key,
        write_file,
    )

    if (sign_key is None) != (signer is None):
        raise UsageError("--sign-key and --signer go together")
    if sign_key is not None and out is None:
        raise UsageError("signing needs --out DIR (the signature is a file beside sla-report.json)")
    key = signing_key(sign_key, passphrase_for(sign_key, passphrase_file)) if sign_key is not None else None
    preparer = preparer_of(key, signer) if key is not None and signer is not None else None
    sla = load_sla(sla_file)
    start_ms, end_ms = _range(sla.window.time_zone, period, from_, to)
    from drill.sla.calendar import periods_between

    periods = periods_between(sla.window, start_ms, end_ms)
    lo, hi = periods[0].start_ms, periods[-1].end_ms
    _one_source(journals, incidents, prometheus, queries)
    journals = _journal_files(journals)
    if trust_seals is not None and not journals:
        raise UsageError("--trust-seals goes with --journal (the seals of watch segments)")
    if journals:
        timelines, sources, digests = _from_journals(sla, journals, trust_seals)
    else:
        timelines, sources = _timelines(sla, lo, hi, incidents, prometheus, queries, step)
        digests = []
    windows, window_notes = _drill_windows(history, sla_file, sla.playbook) if history else ((), ())
    built = build_report(
        sla,
        timelines,
        periods,
        sources,
        generated_utc=wall_utc_now().isoformat(timespec="milliseconds"),
        journals=digests,
        drill_windows=windows,
        prepared_by=preparer,
        notes=window_notes,
    )
    data = report_json_bytes(built)
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {out}: {exc.strerror}") from None
        write_file(out / REPORT_FILE, data)
        write_file(out / "sla-report.md", render_markdown(built).encode())
        write_file(out / "sla-report.csv", render_csv(built).encode())
        write_file(out / "sla-report.html", render_html(built).encode())
        if key is not None and signer is not None:
            sign_report_bytes(out, data, key, signer)
    if fmt == "json":
        echo_json(report_data(built))
    else:
        click.echo(render_text(built), nl=False)
        if out is not None:
            click.echo(f"written: {out / REPORT_FILE} (+ .md .csv .html{', signed' if sign_key else ''})")
    sys.exit(EXIT_FAILED if built.breached else EXIT_OK)


def _range(zone: str, period: str | None, from_: str | None, to: str | None) -> tuple[int, int]:
    """[start, end) in epoch ms from --period, or --from/--to (exactly one way)."""
    from drill.sla.calendar import period_of
    from drill.sla.model import Window

    if period is not None and (from_ is not None or to is not None):
        raise UsageError("give --period or --from/--to, not both")
    if period is not None:
        kind, first = _period_start(period)
        from drill.sla.calendar import local_to_ms

        chosen = period_of(Window(kind, zone), local_to_ms(first, zone))
        return chosen.start_ms, chosen.end_ms
    if from_ is None or to is None:
        raise UsageError("which period? give --period 2026-03, or --from and --to")
    start, end = _instant(from_, zone, "--from"), _instant(to, zone, "--to")
    if end <= start:
        raise UsageError(f"--to {to} is not after --from {from_}")
    return start, end


def _period_start(text: str) -> tuple[WindowKind, datetime]:
    if m := _MONTH.fullmatch(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise UsageError(f"--period {text}: no month {month}")
        return "month", datetime(year, month, 1)
    if m := _QUARTER.fullmatch(text):
        return "quarter", datetime(int(m[1]), 3 * int(m[2]) - 2, 1)
    if m := _YEAR.fullmatch(text):
        return "year", datetime(int(m[1]), 1, 1)
    raise UsageError(f"--period {text!r}: expected 2026-03, 2026-Q1 or 2026")


def _instant(text: str, zone: str, option: str) -> int:
    from drill.clock import ms_of
    from drill.sla.calendar import local_to_ms

    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None and len(text) == 10:
        return local_to_ms(datetime(day.year, day.month, day.day), zone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a date (2026-03-01) or a time with offset") from None
    if moment.tzinfo is None:
        raise UsageError(f"{option} {text!r} has no UTC offset", hint=f"e.g. {text}+01:00, or a bare date")
    return ms_of(moment)


def _one_source(
    journals: tuple[Path, ...], incidents: Path | None, prometheus: str | None, queries: tuple[str, ...]
) -> None:
    chosen = [
        name
        for name, given in (("--journal", journals), ("--incidents", incidents), ("--prometheus", prometheus))
        if given
    ]
    if len(chosen) != 1:
        raise UsageError(
            "give exactly one source: --journal FILE..., --incidents CSV, or --prometheus URL --query Q"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if queries and not prometheus:
        raise UsageError("--query goes with --prometheus")


def _from_journals(
    sla: Sla, journals: tuple[Path, ...], trust_seals: Path | None
) -> tuple[list[Timeline], list[SourceInfo], list[JournalDigest]]:
    """The timelines from drill journals (each verified in full, or its trusted seal's digest), the
    source as the report names it, and the digests (the KPIs' pages and round trips). A journal
    refused (altered, broken) is bad input, exit 2: exit 1 says a service breached its target, and
    a finance pipeline gating on it must not read a refused journal as a breach."""
    from drill.errors import JournalInvalid
    from drill.report.verify import load_allowed_signers
    from drill.sla.report import SourceInfo
    from drill.sla.segments import SealReader
    from drill.sla.sources import journal_digests, timelines_from_digests

    wanted = tuple(dict.fromkeys(p for _, probes in sla.service_probes for p in probes))
    seals = SealReader(load_allowed_signers(trust_seals) if trust_seals is not None else None)
    try:
        digests = journal_digests(journals, wanted, sla.delay_probes, seals)
    except JournalInvalid as exc:
        raise UsageError(exc.message, hint="check a watch folder with `drill watch-verify DIR`") from None
    timelines = timelines_from_digests(digests, sla.service_probes)
    read = sum(d.how == "read" for d in digests)
    note = f"drill journals: {read} of {len(digests)} verified in full (hash chain) before use"
    if seals.signed_by:
        signers = ", ".join(sorted(set(seals.signed_by.values())))
        note += (
            f"; {len(digests) - read} taken from their seals' digests, each seal signed by a key"
            f" {trust_seals} trusts ({signers}) and each file's SHA-256 matching its seal"
        )
    note += "; gaps are no data"
    return timelines, [SourceInfo("journals", tuple(str(j) for j in journals), note)], digests


def _timelines(
    sla: Sla,
    start_ms: int,
    end_ms: int,
    incidents: Path | None,
    prometheus: str | None,
    queries: tuple[str, ...],
    step: str,
) -> tuple[list[Timeline], list[SourceInfo]]:
    """One timeline per service, from exactly one source, and the source as the report names it."""
    from drill.durations import parse_duration_ms
    from drill.sla.report import SourceInfo
    from drill.sla.sources import timeline_from_incidents_csv, timeline_from_prometheus

    if incidents is not None:
        timelines = [timeline_from_incidents_csv(incidents, s.name, start_ms, end_ms) for s in sla.services]
        note = "an incidents CSV: up outside its incidents; it cannot show a monitoring gap"
        return list(timelines), [SourceInfo("incidents-csv", (str(incidents),), note)]
    assert prometheus is not None
    try:
        step_ms = parse_duration_ms(step)
    except ValueError as exc:
        raise UsageError(f"--step {step!r}: {exc}") from None
    per_service = _queries(sla, queries)
    timelines = [
        timeline_from_prometheus(prometheus, per_service[s.name], s.name, start_ms, end_ms, step_ms)
        for s in sla.services
    ]
    detail = tuple(f"{s.name}: {per_service[s.name]}" for s in sla.services)
    source = (
        timelines[0].spans[0].source.split(" query ")[0] if timelines and timelines[0].spans else "prometheus"
    )
    note = f"{source}, range query at a {step} step: a sample covers one step, a step without one is no data"
    return list(timelines), [SourceInfo("prometheus", detail, note)]


def _journal_files(given: tuple[Path, ...]) -> tuple[Path, ...]:
    """Files as given; a folder stands for its *.jsonl files (a watch folder's segments), in name order."""
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise UsageError(f"{path} holds no journal (*.jsonl)")
            files.extend(found)
        else:
            files.append(path)
    return tuple(dict.fromkeys(files))


def _queries(sla: Sla, queries: tuple[str, ...]) -> dict[str, str]:
    if not queries:
        raise UsageError("--prometheus needs --query Q (PromQL of probe_success)")
    names = {s.name for s in sla.services}
    own: dict[str, str] = {}
    default: str | None = None
    for q in queries:
        name, sep, rest = q.partition("=")
        if sep and name in names and rest:
            own[name] = rest
        elif default is None:
            default = q
        else:
            raise UsageError("more than one --query without SERVICE=: give each service its own")
    out = {}
    for s in sla.services:
        query = own.get(s.name, default)
        if query is None:
            raise UsageError(
                f"no --query for service {s.name}", hint=f"--query '{s.name}=probe_success{{...}}'"
            )
        out[s.name] = query
    return out


@click.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--allowed-signers",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='OpenSSH allowed_signers file (namespaces="drill-sla-report-v1").',
)
@format_option
def verify(directory: Path, allowed_signers: Path, fmt: str) -> None:
    """Check every signature of DIRECTORY/sla-report.json. Exit 0 verified, 1 not, 2 bad input.

    The same check as `ssh-keygen -Y verify -f FILE -I SIGNER -n drill-sla-report-v1
    -s sla-report.json.SIGNER.sig < sla-report.json`, for every signature in the folder.

    \b
    Example:
      drill sla verify sla-2026-03 --allowed-signers allowed_signers
    """
    from drill.sla.report import verify_report_dir

    signers = verify_report_dir(directory, allowed_signers)
    if fmt == "json":
        echo_json(
            {
                "verified": True,
                "signers": [
                    {"principal": s.principal, "fingerprint": s.fingerprint, "allowed_by": s.allowed_by}
                    for s in signers
                ],
            }
        )
    else:
        for s in signers:
            click.echo(f"verified: signed by {s.principal} ({s.fingerprint}), trusted by {s.allowed_by}")


def _drill_windows(
    index: Path, sla_file: Path, playbook: str
) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...]]:
    """The planned drill windows [started, finished) of the SLA's playbook: verified drills only,
    each read from its signed report (still the bytes the index verified), with a note naming them."""
    import hashlib

    from drill.clock import parse_utc
    from drill.playbook.validate import load_playbook
    from drill.practice.history import History
    from drill.report.build import load_report

    name = load_playbook(sla_file.parent / playbook).metadata.name
    with History.open(index, create=False) as opened:
        records = [r for r in opened.records(playbook=name) if r.countable and r.mode == "drill"]
    windows: list[tuple[int, int]] = []
    notes: list[str] = []
    for record in records:
        folder = Path(record.folder)
        try:
            same = hashlib.sha256((folder / "report.json").read_bytes()).hexdigest() == record.report_sha256
            run = load_report(folder).run if same else None
        except (OSError, DrillError):
            run = None
        if run is None or not run.started_utc or not run.finished_utc:
            notes.append(f"Drill {record.run_id} is not excluded: its evidence changed or cannot be read.")
            continue
        start, end = (int(parse_utc(t).timestamp() * 1000) for t in (run.started_utc, run.finished_utc))
        windows.append((start, end))
        notes.append(f"Drill {record.run_id} ({run.started_utc} to {run.finished_utc}) is a planned window.")
    return tuple(windows), tuple(notes)
