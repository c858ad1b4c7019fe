"""`drill trend`: quarter over quarter (or run by run), from the history index, verified runs only.

Text is for people and fits 80 columns (durations as `human_ms`, "—" for not measured); `json`
is one document (`trend_data`: the runs used and excluded, each with the reason), `csv` one row
per asset × period, `html` a self-contained page written to a file (default trend.html).
Exit 0 whatever the trend shows; 2 for bad input (no index, an unknown playbook, asset or tier).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from drill.cli.history import index_option
from drill.cli.output import echo_json
from drill.errors import UsageError
from drill.practice.history import History
from drill.practice.records import RunRecord
from drill.practice.trend import (
    BY_VALUES,
    DEFAULT_MARGIN_PCT,
    SCOPE_ALL,
    Trend,
    achieved_vs_target,
    badge,
    compute_trend,
    count_text,
    filter_text,
    render_trend_html,
    trend_csv,
    trend_data,
)
from drill.units import human_bp, human_ms

WIDTH = 80
FORMATS = ("text", "json", "csv", "html")
DEFAULT_HTML = Path("trend.html")


@click.command("trend")
@index_option
@click.option(
    "--playbook", help="Only this playbook's runs (metadata.name); needed when the index holds several."
)
@click.option("--asset", help="Only this asset (its id).")
@click.option("--tier", help="Only this tier's assets.")
@click.option(
    "--margin",
    "margin_pct",
    type=click.IntRange(0, 10_000),
    default=DEFAULT_MARGIN_PCT,
    show_default=True,
    help="An achieved RTO slower than last time's by more than PCT percent is a regression.",
)
@click.option(
    "--min-slower",
    "min_slower",
    metavar="DURATION",
    default="1s",
    show_default=True,
    help="...and by more than this (below it, a change is within the probes' resolution).",
)
@click.option(
    "--by",
    type=click.Choice(BY_VALUES),
    default="quarter",
    show_default=True,
    help="quarter: the latest verified drill represents each quarter; run: every verified run.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people; json (one document), csv (asset × period); html (a page, to -o).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE instead of stdout (html: default trend.html).",
)
def trend(
    index: Path,
    playbook: str | None,
    asset: str | None,
    tier: str | None,
    margin_pct: int,
    min_slower: str,
    by: str,
    fmt: str,
    output: Path | None,
) -> None:
    """Trends per asset, tier and contact chain over the history: detection, switchover, RTO and
    RPO against target, lost writes, availability, time-to-ack and verdicts, with regressions
    ("issue discovered") and fixes ("issue fixed") named.

    Only verified evidence counts; every run the index holds is listed as used or excluded, with
    the reason. Exit 0, or 2 for bad input (no index; an unknown playbook, asset or tier)."""
    min_slower_ms = _duration_ms(min_slower, "--min-slower")
    records = read_history(index)
    result = compute_trend(
        records,
        margin_pct=margin_pct,
        min_slower_ms=min_slower_ms,
        by=by,
        playbook=playbook,
        asset=asset,
        tier=tier,
    )
    if fmt == "json" and output is None:
        echo_json(trend_data(result))
        return
    if fmt == "json":
        import json

        text = json.dumps(trend_data(result), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "csv":
        text = trend_csv(result)
    elif fmt == "html":
        text = render_trend_html(result)
        output = output or DEFAULT_HTML
    else:
        text = "\n".join(trend_text(result)) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(
        f"wrote {output}: {len(result.periods)} {result.unit}s, {len(result.regressions)} issues "
        f"discovered, {len(result.fixes)} fixed",
        err=True,
    )


def _duration_ms(text: str, option: str) -> int:
    from drill.durations import parse_duration_ms

    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def read_history(index: Path) -> list[RunRecord]:
    """Every record of the index (bad evidence included: the trend lists it as excluded);
    UsageError when there is no index, it is not one, or it holds no run."""
    with History.open(index, create=False) as history:
        records = history.records()
    if not records:
        raise UsageError(
            f"history index {index} holds no run", hint="add evidence folders with `drill history add DIR...`"
        )
    return records


# ---------------------------------------------------------------- text


def trend_text(trend: Trend) -> list[str]:
    """The trend for people, in lines of at most 80 columns."""
    unit = trend.unit
    labels = _labels(trend)
    excluded = len({(e.run_id, e.folder) for e in trend.excluded if e.scope == SCOPE_ALL})
    lines = [
        f"Trend of {trend.playbook or '(no verified run)'} by {unit}: {len(trend.periods)} "
        f"{unit}{'s' if len(trend.periods) != 1 else ''}, {len(trend.used)} runs used, {excluded} excluded",
    ]
    if trend.asset_filter or trend.tier_filter:
        lines.append(f"Only {filter_text(trend.asset_filter, trend.tier_filter)}.")
    lines += [trend.rule, "", f"{unit.capitalize()}s, each represented by one drill"]
    for p, label in zip(trend.periods, labels, strict=True):
        changed = "".join(f" · {c}" for c in p.changes)
        name = p.key if label == p.key else f"{label} {p.key}"
        lines.append(f"  {name:<9} {badge(p.verdict):<12} {p.run_id or '—'}")
        lines.append(f"  {'':<9} {p.basis}{changed}")
    lines += ["", f"Issues discovered (regressions): {len(trend.regressions)}"]
    lines += [f"  {c.text}" for c in trend.regressions]
    lines += ["", f"Issues fixed: {len(trend.fixes)}"]
    lines += [f"  {c.text}" for c in trend.fixes]
    lines += ["", "Assets (achieved / target: ✓ met, ✗ missed, — not measured)"]
    for a in trend.assets:
        lines.append(f"  {a.asset} · {a.tier}")
        lines.append(f"    {unit:<9} {'verdict':<12} {'detection':<9} {'switchover':<10} {'RTO':<15} RPO")
        for period, label, cell in zip(trend.periods, labels, a.cells, strict=True):
            if cell is None:
                why = f"not in this {unit}'s drill" if period.run_id else "no verified drill"
                lines.append(f"    {label:<9} {'—':<12} {why}")
                continue
            rto = achieved_vs_target(cell.rto_ms, cell.rto_target_ms, cell.rto_state)
            rpo = achieved_vs_target(cell.rpo_ms, cell.rpo_target_ms, cell.rpo_state)
            lines.append(
                f"    {label:<9} {badge(cell.verdict):<12} {human_ms(cell.detection_ms):<9} "
                f"{human_ms(cell.switchover_ms):<10} {rto:<15} {rpo}"
            )
            chain = f" ({cell.chain})" if cell.chain else ""
            changed = " · definition changed" if cell.definition_changed else ""
            lines.append(
                f"    {'':<9} lost writes {count_text(cell.lost_writes)} · availability "
                f"{human_bp(cell.availability_bp)} · ack {human_ms(cell.ack_ms)}{chain}{changed}"
            )
    lines += ["", "Tiers"]
    for t in trend.tiers:
        lines.append(f"  {t.tier}")
        for label, tc in zip(labels, t.cells, strict=True):
            if tc is not None:
                lines.append(
                    f"    {label:<9} {badge(tc.verdict):<12} {tc.passed}/{tc.assets} passed · RTO met "
                    f"{tc.rto_met}/{tc.rto_met + tc.rto_missed}, slowest {human_ms(tc.worst_rto_ms)} · "
                    f"RPO met {tc.rpo_met}/{tc.rpo_met + tc.rpo_missed}"
                )
    lines += ["", "Time to acknowledge, per contact chain"]
    if not trend.chains:
        lines.append("  no chain was paged")
    for ch in trend.chains:
        lines.append(f"  {ch.chain}")
        for label, cc in zip(labels, ch.cells, strict=True):
            if cc is not None:
                ack = human_ms(cc.ack_ms) if cc.ack_ms is not None else "not acknowledged"
                kind = "contact test" if cc.mode == "contacts" else "drill"
                of = f", slowest of {len(cc.samples)}" if len(cc.samples) > 1 else ""
                lines.append(f"    {label:<9} {ack:<16} {kind} {cc.run_id}{of}")
    lines += ["", "Runs used"]
    for u in trend.used:
        chains = f" ({', '.join(u.chains)})" if u.chains else ""
        lines.append(f"  {u.run_id}  {u.period}: {', '.join(u.counts_for)}{chains}")
    lines += ["", "Runs excluded"]
    if not trend.excluded:
        lines.append("  none")
    for e in trend.excluded:
        scope = "" if e.scope == SCOPE_ALL else f" (from {e.scope})"
        lines.append(f"  {e.run_id or '—'}  {e.reason}{scope}: {e.detail}")
        lines.append(f"    {e.folder}")
    return [w for line in lines for w in _fit(line)]


def _labels(trend: Trend) -> list[str]:
    """Each period's name in the tables: its key, or #1, #2... when a key is too long (runs)."""
    if all(len(p.key) <= 9 for p in trend.periods):
        return [p.key for p in trend.periods]
    return [f"#{i}" for i in range(1, len(trend.periods) + 1)]


def _fit(line: str) -> list[str]:
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False) or [line]
