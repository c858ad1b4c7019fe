"""`drill due`: per asset, the last drill that tested it and when the next is due, overdue first.

Reads the history index (verified drills only count: drill/practice/due.py states the rules) and,
with --playbook, the playbooks as they are now, so that a changed asset shows NEEDS VERIFICATION
and a new one NEVER TESTED. Dates are calendar days in the stated IANA zone (--time-zone or
$DRILL_TIME_ZONE: never the machine's own). Exit 0; 1 when an asset of a gate tier is overdue (a
pipeline can gate on it); 2 for bad input (no index, an unknown zone, a bad cadence or date).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drill.cli.history import index_option
from drill.cli.output import echo_json
from drill.clock import wall_utc_now
from drill.errors import UsageError
from drill.plan import build_plan
from drill.playbook.validate import load_playbook
from drill.practice.due import (
    DEFAULT_CADENCE_TEXT,
    CurrentAsset,
    CurrentPlaybook,
    compute_due,
    due_data,
    due_text,
    parse_as_of,
    parse_cadence,
    parse_tier_cadences,
    parse_zone,
)
from drill.practice.history import History, definition_sha256
from drill.practice.records import RunRecord

ZONE_ENV = "DRILL_TIME_ZONE"


@click.command("due")
@index_option
@click.option(
    "--playbook",
    "playbooks",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A playbook as it is now (repeatable): only its assets are due, a changed one shows"
    " NEEDS VERIFICATION, a new one NEVER TESTED. Without it: every playbook of the history,"
    " as its latest verified drill had it.",
)
@click.option(
    "--time-zone",
    "zone_name",
    required=True,
    envvar=ZONE_ENV,
    show_envvar=True,
    metavar="ZONE",
    help="The IANA time zone the dates are in (Europe/Berlin, America/New_York, UTC); required:"
    " never the machine's own.",
)
@click.option(
    "--as-of",
    metavar="YYYY-MM-DD",
    help="The day to judge on, in --time-zone (default: today there); also a time with offset.",
)
@click.option(
    "--cadence",
    "cadence_text",
    default=DEFAULT_CADENCE_TEXT,
    show_default=True,
    metavar="CADENCE",
    help="How often each asset must be drilled: calendar months then days (3mo, 1mo15d, 90d, 6w, 1y).",
)
@click.option(
    "--tier-cadence",
    "tier_cadences",
    multiple=True,
    metavar="TIER=CADENCE",
    help="A tier's own cadence (repeatable), e.g. --tier-cadence data=1mo.",
)
@click.option(
    "--gate-tier",
    metavar="TIER",
    help="The tier whose overdue assets make the exit code 1 (default: each playbook's first tier).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json for programs (one document on stdout, with the runs not counted).",
)
def due(
    index: Path,
    playbooks: tuple[Path, ...],
    zone_name: str,
    as_of: str | None,
    cadence_text: str,
    tier_cadences: tuple[str, ...],
    gate_tier: str | None,
    fmt: str,
) -> None:
    """Which assets are due a drill: per asset the last verified drill that measured it, the
    next due date (quarterly unless told), overdue ones first.

    Only verified drill evidence counts (tampered, unsigned and contact-test runs are listed as
    not counted, with the reason); a failed test counts as a test. An asset whose definition
    changed since its last passing drill NEEDS VERIFICATION. Due dates are calendar days in
    --time-zone, so a DST change moves none of them.

    \b
    Example (a pipeline gate on the first tier's assets; the index from $DRILL_HISTORY):
      drill due --time-zone Europe/Berlin --playbook playbook.yaml

    Exit 0; 1 when an asset of the gate tier is overdue or never tested; 2 for bad input."""
    zone = parse_zone(zone_name)
    day = parse_as_of(as_of, zone, wall_utc_now())
    default_cadence = parse_cadence(cadence_text)
    cadences = parse_tier_cadences(tier_cadences)
    current = [current_playbook(path) for path in playbooks]
    _check_distinct(current, playbooks)
    records = _read(index)
    if not current and not any(r.countable and r.mode == "drill" for r in records):
        raise UsageError(
            f"history index {index} holds no verified drill, so no asset is known to be due",
            hint="add evidence with `drill history add DIR...`, or name the playbook with --playbook FILE",
        )
    report = compute_due(
        records,
        as_of=day,
        zone=zone,
        default_cadence=default_cadence,
        cadences=cadences,
        gate_tier=gate_tier,
        current=current,
        only_current=bool(current),
    )
    if fmt == "json":
        echo_json(due_data(report))
    else:
        for line in due_text(report):
            click.echo(line)
    sys.exit(report.exit_code)


def current_playbook(path: Path) -> CurrentPlaybook:
    """A playbook file as it is now: its assets with the definition hash a run would journal (the
    plan's asset entry, as drill/practice/history.py hashes it), and its tiers in priority order.
    PlaybookInvalid (exit 2) when it does not validate."""
    plan = build_plan(load_playbook(path))
    return CurrentPlaybook(
        name=plan.name,
        assets=tuple(CurrentAsset(a.id, a.tier, definition_sha256(a)) for a in plan.assets),
        tiers=tuple(t.name for t in sorted(plan.tiers, key=lambda t: t.rank)),
    )


def _check_distinct(current: list[CurrentPlaybook], paths: tuple[Path, ...]) -> None:
    seen: dict[str, Path] = {}
    for playbook, path in zip(current, paths, strict=True):
        if playbook.name in seen:
            raise UsageError(
                f"{path} and {seen[playbook.name]} are both playbook {playbook.name!r}",
                hint="give each playbook once (metadata.name tells them apart)",
            )
        seen[playbook.name] = path


def _read(index: Path) -> list[RunRecord]:
    with History.open(index, create=False) as history:
        return history.records()
