"""`drill history`: index evidence folders (each verified on the way in), list and show them.

The index is an SQLite file (`--index`, else $DRILL_HISTORY, else drill-history.sqlite here);
the evidence folders stay the source of truth and `rebuild` recreates the index from them. A
folder that does not verify is indexed with its status in capitals (TAMPERED, UNSIGNED,
UNREADABLE) and the reason, and is never counted. Text fits 80 columns; `--format json` is one
document, `csv` one row per asset of each run (a run without assets: one row).

Exit codes: 0 ok; add and rebuild 1 when a folder did not verify (it is still indexed, flagged);
2 bad input (no such folder, an unreadable trust file, no index, no such run).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

from drill.cli.output import echo_json
from drill.errors import UsageError, VerificationFailed
from drill.practice.history import (
    DEFAULT_INDEX,
    INDEX_ENV,
    RUN_COLUMNS,
    STATUSES,
    History,
    add_folders,
    evidence_folders,
    rebuild,
)
from drill.practice.records import VERIFIED, AssetRecord, RunRecord
from drill.units import human_bp, human_count, human_ms

WIDTH = 80
VERDICTS = ("pass", "fail", "incomplete", "aborted", "not-run")
_LABEL = 13  # the labels of `show`'s key/value lines
_CSV_RUN = RUN_COLUMNS
_CSV_ASSET = tuple(f.name for f in dataclasses.fields(AssetRecord))

index_option = click.option(
    "--index",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=INDEX_ENV,
    default=DEFAULT_INDEX,
    show_default=True,
    show_envvar=True,
    help="The history index (an SQLite file).",
)
_trust_options = (
    click.option(
        "--allowed-signers",
        required=True,
        type=click.Path(path_type=Path),
        help="The auditor's OpenSSH allowed_signers file: whose signatures count.",
    ),
    click.option("--revoked", type=click.Path(path_type=Path), help="Revoked public keys, one per line."),
)


F = TypeVar("F", bound=Callable[..., object])


def _trusted(command: F) -> F:
    for option in reversed(_trust_options):
        command = option(command)
    return command


def _format(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        help="text for people; json for programs (one document on stdout)"
        + ("; csv for spreadsheets (a row per asset of each run)." if "csv" in choices else "."),
    )


@click.group("history")
def history() -> None:
    """Index verified evidence folders; list and show them.

    Each folder is verified on the way in against the auditor's allowed_signers (signatures,
    journal digest and chain, the report against the journal's fold). A tampered, unsigned or
    unreadable folder is indexed as such, with the reason, and never counted in a trend, a due
    date or a closure. The folders stay the source of truth: `rebuild` recreates the index."""


@history.command("add")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_trusted
@index_option
@_format("text", "json")
def add_cmd(
    dirs: tuple[Path, ...], allowed_signers: Path, revoked: Path | None, index: Path, fmt: str
) -> None:
    """Verify and index each DIR: an evidence folder (runs/RUN_ID), or a runs folder holding them
    (its `latest` symlink is skipped; a folder is indexed once however it is named).

    Adding a folder again replaces its entry; a verified run copied or moved is one entry (the
    same signed report), under the folder added last. Exit 0 when every folder verified, 1 when
    one did not (it is indexed, flagged), 2 for bad input."""
    folders = evidence_folders(dirs)
    _report_added(add_folders(index, folders, allowed_signers, revoked), index, fmt, "indexed")


@history.command("rebuild")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_trusted
@index_option
@_format("text", "json")
def rebuild_cmd(
    dirs: tuple[Path, ...], allowed_signers: Path, revoked: Path | None, index: Path, fmt: str
) -> None:
    """Recreate the index from the evidence folders DIR... alone (as `add` reads them); the old
    index is replaced only once the new one is complete. Exit codes as for `add`."""
    folders = evidence_folders(dirs)
    _report_added(rebuild(index, folders, allowed_signers, revoked), index, fmt, "rebuilt")


def _report_added(records: Sequence[RunRecord], index: Path, fmt: str, done: str) -> None:
    bad = [r for r in records if r.status != VERIFIED]
    if fmt == "json":
        echo_json(
            {
                "index": str(index),
                "folders": len(records),
                "verified": len(records) - len(bad),
                "not_verified": len(bad),
                "runs": [record_data(r) for r in records],
            }
        )
    else:
        for record in records:
            click.echo(_added_line(record))
            if record.status != VERIFIED:
                click.echo(_wrapped(record.problem, "          "))
        counts = _status_counts(records)
        click.echo(f"{done} {human_count(len(records), 'folder')} in {index}: {counts}")
    if bad:
        raise VerificationFailed(
            f"{len(bad)} of {human_count(len(records), 'folder')} did not verify "
            "(indexed with their status; never counted)"
        )


def _added_line(record: RunRecord) -> str:
    status = _status_text(record)
    return (
        f"{status:<10}{record.quarter or '—':<9}{record.run_id or '—':<27}{_verdict_text(record):<11}"
        f"{shown_path(record.folder)}"
    )


def shown_path(folder: str) -> str:
    """A folder as people read it: relative to the current folder when inside it, else absolute."""
    try:
        relative = os.path.relpath(folder)
    except ValueError:  # another drive (Windows)
        return folder
    return folder if relative.startswith("..") else relative


def _status_counts(records: Sequence[RunRecord]) -> str:
    counts = {s: sum(1 for r in records if r.status == s) for s in STATUSES}
    return ", ".join(f"{n} {s if s == VERIFIED else s.upper()}" for s, n in counts.items() if n) or "nothing"


# ---------------------------------------------------------------- list


@history.command("list")
@click.option("--playbook", help="Only this playbook's runs (metadata.name).")
@click.option("--asset", help="Only runs that include this asset (its id).")
@click.option("--tier", help="Only runs with an asset in this tier.")
@click.option("--quarter", help="Only this quarter's runs (metadata.quarter, e.g. 2026-Q3).")
@click.option("--verdict", type=click.Choice(VERDICTS), help="Only runs with this verdict.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs whose evidence has this status.")
@_format("text", "json", "csv")
@index_option
def list_cmd(
    playbook: str | None,
    asset: str | None,
    tier: str | None,
    quarter: str | None,
    verdict: str | None,
    status: str | None,
    fmt: str,
    index: Path,
) -> None:
    """The indexed runs, oldest first, grouped by playbook; TAMPERED, UNSIGNED and UNREADABLE
    folders with the reason. Exit 0 (also when nothing matches), 2 for bad input (no index)."""
    filters = {
        "playbook": playbook,
        "asset": asset,
        "tier": tier,
        "quarter": quarter,
        "verdict": verdict,
        "status": status,
    }
    with History.open(index, create=False) as opened:
        records = opened.records(**filters)
    if fmt == "json":
        given = {k: v for k, v in filters.items() if v is not None}
        echo_json(
            {
                "index": str(index),
                "filters": given,
                "count": len(records),
                "runs": [record_data(r) for r in records],
            }
        )
    elif fmt == "csv":
        click.echo(records_csv(records), nl=False)
    else:
        for line in list_text(records, index):
            click.echo(line)


def list_text(records: Sequence[RunRecord], index: Path) -> list[str]:
    """`history list` for people: per playbook, a row per run and a line saying what it showed."""
    if not records:
        return [f"no run in {index} matches"]
    groups: dict[str, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.playbook, []).append(record)
    lines: list[str] = []
    for playbook, runs in groups.items():
        verified = sum(1 for r in runs if r.status == VERIFIED)
        if lines:
            lines.append("")
        lines.append(
            f"{playbook or '(playbook unknown)'}: {human_count(len(runs), 'run')}, {verified} verified"
        )
        lines.append(f"  {'QUARTER':<9}{'RUN':<27}{'VERDICT':<11}{'EVIDENCE':<11}SIGNED BY")
        for record in runs:
            lines.append(
                f"  {record.quarter or '—':<9}{record.run_id or '—':<27}{_verdict_text(record):<11}"
                f"{_status_text(record):<11}{', '.join(record.signers)}".rstrip()
            )
            indent = " " * 11
            if record.status == VERIFIED:
                lines.append(_wrapped(_what_it_showed(record), indent))
            else:
                lines.append(_wrapped(record.problem, indent))
                if record.folder not in record.problem:
                    lines.append(_wrapped(f"folder: {shown_path(record.folder)}", indent))
    return lines


def _status_text(record: RunRecord) -> str:
    return record.status if record.status == VERIFIED else record.status.upper()


def _verdict_text(record: RunRecord) -> str:
    if not record.verdict:
        return "—"
    return record.verdict if record.verdict == "pass" else record.verdict.upper()


def _what_it_showed(record: RunRecord) -> str:
    """One sentence: the assets' verdicts and the slowest RTO, or the contact test's pages."""
    acked = [p for p in record.pages if p.acked]
    if record.mode == "contacts":
        first = min((p.ack_ms for p in acked if p.ack_ms is not None), default=None)
        text = f"contact test: {human_count(len(record.pages), 'page')}, {len(acked)} acknowledged"
        return text + (f", the first after {human_ms(first)}" if first is not None else "")
    verdicts: dict[str, list[str]] = {}
    for asset in record.assets:
        verdicts.setdefault(asset.verdict, []).append(asset.asset)
    parts = [
        f"{len(names)} {verdict}" + ("" if verdict == "pass" else f" ({', '.join(names)})")
        for verdict, names in verdicts.items()
    ]
    text = f"{human_count(len(record.assets), 'asset')}: {', '.join(parts)}" if parts else "no asset"
    measured = [a for a in record.assets if a.rto_ms is not None and a.rto_target_ms]
    if measured:  # the asset whose RTO came nearest its target (or went furthest past it)
        tight = max(measured, key=lambda a: (a.rto_ms or 0) / (a.rto_target_ms or 1))
        text += (
            f"; tightest RTO {tight.asset} {human_ms(tight.rto_ms)} of {human_ms(tight.rto_target_ms)}"
            f" ({tight.rto_state or '—'})"
        )
    if record.verdict != "pass" and record.verdict_reason:
        text += f"; {record.verdict_reason}"
    return text


def _wrapped(text: str, indent: str, hang: str = "  ") -> str:
    """text wrapped at WIDTH, its later lines indented by `hang` more; a path or a digest longer
    than a line is kept whole (it is copied, not read)."""
    lines = textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + hang,
        break_on_hyphens=False,
        break_long_words=False,
    )
    return "\n".join(lines) or indent.rstrip()


# ---------------------------------------------------------------- show


@history.command("show")
@click.argument("run_id")
@_format("text", "json")
@index_option
def show_cmd(run_id: str, fmt: str, index: Path) -> None:
    """One run in full: its evidence, verdict, every asset's figures and every page. RUN_ID is a
    run id or the start of one; every indexed folder of that run is shown (a tampered copy
    beside the verified run). Exit 0, 2 when the index holds no such run."""
    with History.open(index, create=False) as opened:
        records = opened.records(run_id=run_id)
    ids = sorted({r.run_id for r in records})
    if not records:
        raise UsageError(f"no run {run_id!r} in {index}", hint="`drill history list` shows the run ids")
    if len(ids) > 1:
        raise UsageError(
            f"{run_id!r} is the start of {len(ids)} run ids in {index}: {', '.join(ids[:5])}"
            + (", ..." if len(ids) > 5 else ""),
            hint="give more of the run id",
        )
    if fmt == "json":
        echo_json({"index": str(index), "runs": [record_data(r) for r in records]})
        return
    for number, record in enumerate(sorted(records, key=lambda r: r.status != VERIFIED)):
        if number:
            click.echo("")
        for line in show_text(record):
            click.echo(line)


def show_text(record: RunRecord) -> list[str]:
    """`history show` for people, at most 80 columns but for long identifiers."""
    head = f"run {record.run_id or '—'}: {record.playbook or '(playbook unknown)'}"
    head += f" {record.quarter}" if record.quarter else ""
    head += f", verdict {_verdict_text(record)}" if record.verdict else ""
    signed = f", signed by {', '.join(record.signers)}" if record.signers else ""
    lines = [head]
    rows = [
        ("evidence", f"{_status_text(record)}{signed}" + ("" if record.countable else " (never counted)")),
        ("why", record.problem),
        ("mode", f"{record.mode}" + (f" ({record.test_type})" if record.test_type else "")),
        ("started", record.started_utc),
        ("generated", record.generated_utc),
        ("report", record.report_id),
        ("report sha", record.report_sha256),
        ("playbook sha", record.playbook_sha256),
        ("verdict", record.verdict_reason),
        ("folder", record.folder),
    ]
    for label, value in rows:
        if value:
            lines.append(_wrapped(f"{label:<{_LABEL}}{value}", "  ", " " * _LABEL))
    if record.assets:
        lines.append("assets")
        for asset in record.assets:
            lines.extend(_asset_lines(asset))
    if record.pages:
        lines.append("pages")
        for page in record.pages:
            if page.delivered:
                outcome = f"acknowledged after {human_ms(page.ack_ms)}" if page.acked else "not acknowledged"
                text = f"delivered, {outcome}"
            else:
                text = f"NOT delivered: {page.reason}"
            lines.append(
                _wrapped(f"{page.chain} -> {page.contact} ({page.via}) {page.sent_utc}: {text}", "  ")
            )
    return lines


def _asset_lines(asset: AssetRecord) -> list[str]:
    verdict = asset.verdict if asset.verdict in ("pass", "unaffected") else asset.verdict.upper()
    lines = [f"  {asset.asset} (tier {asset.tier}): {verdict}"]
    rto = f"RTO {human_ms(asset.rto_ms)}, target {human_ms(asset.rto_target_ms)}: {asset.rto_state or '—'}"
    rto += f"; detection {human_ms(asset.detection_ms)}, switchover {human_ms(asset.switchover_ms)}"
    lines.append(_wrapped(rto, "    "))
    data = []
    if asset.rpo_state is not None:
        data.append(
            f"RPO {human_ms(asset.rpo_ms)}, target {human_ms(asset.rpo_target_ms)}: {asset.rpo_state}"
        )
    if asset.lost_writes is not None:
        data.append(human_count(asset.lost_writes, "write") + " lost")
    data.append(f"availability {human_bp(asset.availability_bp)}")
    lines.append(_wrapped("; ".join(data), "    "))
    chain = f"chain {asset.chain}: first ack after {human_ms(asset.ack_ms)}; " if asset.chain else ""
    lines.append(_wrapped(f"{chain}definition {asset.definition_sha256[:12] or '—'}", "    "))
    return lines


# ---------------------------------------------------------------- machine output


def record_data(record: RunRecord) -> dict[str, object]:
    """A record as JSON data: every field (durations in integer ms), and whether it counts."""
    data = dataclasses.asdict(record)
    data["signers"] = list(record.signers)
    data["countable"] = record.countable
    return data


def records_csv(records: Sequence[RunRecord]) -> str:
    """One row per asset of each run (the run's columns repeated), one row for a run without
    assets. A text cell that a spreadsheet would run as a formula (= + - @) gets a leading '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    asset_columns = [c if c not in ("verdict",) else "asset_verdict" for c in _CSV_ASSET]
    writer.writerow([*_CSV_RUN, "countable", "signers", "pages", "pages_acked", *asset_columns])
    for record in records:
        run = [
            *(getattr(record, c) for c in _CSV_RUN),
            record.countable,
            " ".join(record.signers),
            len(record.pages),
            sum(1 for p in record.pages if p.acked),
        ]
        assets: list[list[object]] = [[getattr(a, c) for c in _CSV_ASSET] for a in record.assets]
        for asset in assets or [[None] * len(_CSV_ASSET)]:
            writer.writerow([_cell(v) for v in (*run, *asset)])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
