"""Views of an SLA report: a text summary for people, Markdown, CSV and self-contained HTML.

Every view is rendered from the typed SlaReport alone (no clock, no environment), so the same
report always gives the same bytes and a reader can re-render a view from the signed JSON's
figures. What was not measured is written as "not measured" (text, Markdown, HTML) or left
empty (CSV), never as 0. The HTML has no script and fetches nothing: inline SVG for the calendar
of daily availability, the budget burn-down and nothing else, so it opens the same in a mail
client, an archive and a browser with scripts off.
"""

from __future__ import annotations

import csv
import io
import textwrap
from datetime import date
from html import escape

from drill.clock import utc_iso_ms
from drill.sla.compute import Incident, PeriodFigures
from drill.sla.load import _DECIMALS, format_pct
from drill.sla.model import PctMilli, Sla
from drill.sla.report import ServicePeriod, SlaReport
from drill.units import human_ms

NOT_MEASURED = "not measured"


# ---------------------------------------------------------------- words and numbers


def pct(value: PctMilli | None) -> str:
    """99_000 -> "99.000 %": always three decimals, the grid every figure is rounded to."""
    if value is None:
        return NOT_MEASURED
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 1000)
    return f"{sign}{whole}.{frac:03d} %"


def money(minor: int | None, currency: str) -> str:
    """150_00 in EUR -> "150.00 EUR" (the currency's own decimals)."""
    if minor is None:
        return NOT_MEASURED
    decimals = _DECIMALS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    if decimals == 0:
        return f"{sign}{abs(minor)} {currency}"
    whole, frac = divmod(abs(minor), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d} {currency}"


def duration(ms: int | None) -> str:
    return NOT_MEASURED if ms is None else human_ms(ms)


def exact(ms: int | None) -> str:
    """Readable and exact: "43 min 59 s (2638800 ms)"; the readable part is rounded, the ms are not."""
    return NOT_MEASURED if ms is None else f"{human_ms(ms)} ({ms} ms)"


def burn(milli: int | None) -> str:
    if milli is None:
        return NOT_MEASURED
    whole, frac = divmod(milli, 1000)
    return f"{whole}.{frac:03d}x"


def window_words(sla: Sla) -> str:
    w = sla.window
    if w.kind == "rolling":
        return f"rolling {human_ms(w.rolling_ms)}, {w.time_zone}"
    return f"calendar {w.kind}, {w.time_zone}"


def credit_words(f: PeriodFigures, *, short: bool = False) -> str:
    """The credit earned: its share of the fee and the amount; "none" when no tier applies or the
    amount is below the minimum (with the amount, so 0.00 is seen to be a computed 0)."""
    c = f.credit
    if c is None:
        return "no credit schedule"
    if c.amount_minor is None or c.share is None:
        return NOT_MEASURED
    if c.tier is None or c.amount_minor == 0:
        return f"none ({money(c.amount_minor, c.currency)})"
    share = format_pct(c.share).replace("%", " %") if short else pct(c.share)
    return f"{share} = {money(c.amount_minor, c.currency)}"


def _cost(report: SlaReport, f: PeriodFigures) -> str:
    if f.cost_minor is None:
        return "no cost model"
    currency = report.sla.credits.currency if report.sla.credits else ""
    return money(f.cost_minor, currency) if currency else f"{f.cost_minor} (minor units)"


# ---------------------------------------------------------------- text (80 columns)


def render_text(report: SlaReport) -> str:
    """A summary for people: per period and service, availability vs target, budget, status, credit."""
    sla = report.sla
    lines = [
        _fit(f"SLA {sla.name}: target {pct(sla.target)}, {window_words(sla)}, {sla.counting}"),
    ]
    for source in report.sources:
        lines.append(_fit(f"source: {source.kind} {', '.join(source.detail)}"))
    head = f"  {'SERVICE':<14} {'AVAILABLE':>10} {'BUDGET LEFT':>13} {'STATUS':<17} CREDIT"
    for period in report.periods:
        lines += ["", _fit(f"{period.label}: {period.start_local} to {period.end_local}"), head]
        for row in report.services:
            f = row.figures
            if f.period.label != period.label:
                continue
            name = f.service if len(f.service) <= 14 else f.service[:13] + "…"
            shown = "—" if f.availability is None else pct(f.availability)  # — : not measured
            lines.append(
                _fit(
                    f"  {name:<14} {shown:>10} {duration(f.budget_remaining_ms):>13} "
                    f"{f.status:<17} {credit_words(f, short=True)}"
                )
            )
    for note in report.notes:
        lines += textwrap.wrap(note, 80, initial_indent="note: ", subsequent_indent="  ")
    breached = report.breached
    lines.append("")
    if breached:
        names = ", ".join(f"{r.figures.service} ({r.figures.period.label})" for r in breached)
        lines.append(_fit(f"breached: {names}"))
    else:
        lines.append("no service breached its target")
    return "\n".join(lines) + "\n"


def _fit(line: str) -> str:
    return line if len(line) <= 80 else line[:79] + "…"


# ---------------------------------------------------------------- CSV


CSV_COLUMNS = (
    "period",
    "service",
    "start_utc",
    "end_utc",
    "start_local",
    "end_local",
    "total_ms",
    "excluded_ms",
    "eligible_ms",
    "no_data_ms",
    "no_data_policy",
    "downtime_raw_ms",
    "downtime_weighted_ms",
    "availability_pct",
    "target_pct",
    "allowed_downtime_ms",
    "budget_remaining_ms",
    "budget_consumed_pct",
    "period_burn_rate",
    "status",
    "credit_pct",
    "credit_minor",
    "currency",
    "cost_minor",
    "incidents",
)


def _plain_pct(value: PctMilli | None) -> str:
    if value is None:
        return ""
    whole, frac = divmod(value, 1000)
    return f"{whole}.{frac:03d}"


def _cell(value: int | None) -> str:
    return "" if value is None else str(value)


def _no_data_text(report: SlaReport, ms: int, policy: str, *, exact: bool) -> str:
    if not report.no_data_measured:
        return "not measured: an incidents CSV cannot show a monitoring gap"
    return f"{human_ms(ms)} ({ms} ms), counted {policy}" if exact else f"{human_ms(ms)} (counted {policy})"


def render_csv(report: SlaReport) -> str:
    """One row per service × period; an empty cell is "not measured" (never 0)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.services:
        f = row.figures
        p = f.period
        c = f.credit
        writer.writerow(
            [
                p.label,
                f.service,
                p.start_utc,
                p.end_utc,
                p.start_local,
                p.end_local,
                f.total_ms,
                f.excluded_total_ms,
                f.eligible_ms,
                f.no_data_ms if report.no_data_measured else "",
                f.no_data_policy,
                f.downtime_raw_ms,
                f.downtime_weighted_ms,
                _plain_pct(f.availability),
                _plain_pct(report.sla.target),
                _cell(f.allowed_downtime_ms),
                _cell(f.budget_remaining_ms),
                _plain_pct(f.budget_consumed),
                "" if row.period_burn_milli is None else burn(row.period_burn_milli).rstrip("x"),
                f.status,
                "" if c is None else _plain_pct(c.share),
                "" if c is None else _cell(c.amount_minor),
                "" if c is None else c.currency,
                _cell(f.cost_minor),
                len(f.incidents),
            ]
        )
    return out.getvalue()


# ---------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: SlaReport) -> str:
    sla = report.sla
    out = [f"# SLA report: {_md(sla.name)}", ""]
    out += [
        f"- Target: {pct(sla.target)} per {window_words(sla)}",
        f"- Counting: {sla.counting}; no data counts as {sla.no_data}; partial outage weight {pct(sla.partial_weight)}",
        f"- Generated: {report.generated_utc}",
    ]
    if report.prepared_by is not None:
        out.append(
            f"- Prepared and signed by: {report.prepared_by.principal} ({report.prepared_by.fingerprint})"
        )
    for source in report.sources:
        out.append(f"- Source: {source.kind} {_md(', '.join(source.detail))} ({_md(source.note)})")
    for note in report.notes:
        out.append(f"- Note: {_md(note)}")
    out.append("")
    out += ["## Summary", "", "| Period | Service | Availability | Budget left | Status | Credit | Cost |"]
    out.append("|---|---|---:|---:|---|---|---:|")
    for row in report.services:
        f = row.figures
        out.append(
            f"| {f.period.label} | {_md(f.service)} | {pct(f.availability)} | {duration(f.budget_remaining_ms)} "
            f"| {f.status} | {credit_words(f)} | {_cost(report, f)} |"
        )
    out.append("")
    for row in report.services:
        out += _md_service(report, row)
    if report.kpis:
        out += [
            "## KPIs",
            "",
            "| Period | KPI | Within | Verdict | Met | Worst | Note |",
            "|---|---|---:|---|---:|---:|---|",
        ]
        for k in report.kpis:
            met = "—" if k.met is None or k.count is None else f"{k.met} of {k.count}"
            out.append(
                f"| {k.period} | {_md(k.name)} ({k.kind}) | {human_ms(k.within_ms)} | {k.verdict} | {met} "
                f"| {duration(k.worst_ms) if k.count else '—'} | {_md(k.note)} |"
            )
        out.append("")
    for year in report.years:
        out += [
            f"## Year {year.label}",
            "",
            f"Allowed downtime in the year at {pct(sla.target)}: {exact(year.allowed_ms)} "
            f"of {human_ms(year.total_ms)}, before exclusions.",
            "",
            "| Period | Length | Allowance | In this report |",
            "|---|---:|---:|---|",
        ]
        for p in year.periods:
            out.append(
                f"| {p.label} | {human_ms(p.total_ms)} | {human_ms(p.allowed_ms)} | {'yes' if p.in_report else 'no'} |"
            )
        out += [
            "",
            "| Service | Periods reported | Downtime (weighted) | Yearly allowance left |",
            "|---|---:|---:|---:|",
        ]
        for s in year.services:
            out.append(
                f"| {_md(s.service)} | {s.periods_reported} | {human_ms(s.downtime_weighted_ms)} | {human_ms(s.remaining_ms)} |"
            )
        out.append("")
    return "\n".join(out)


def _md_service(report: SlaReport, row: ServicePeriod) -> list[str]:
    f = row.figures
    rows = [
        ("Start", f"{f.period.start_utc} ({f.period.start_local})"),
        ("End", f"{f.period.end_utc} ({f.period.end_local})"),
        ("Total", f"{human_ms(f.total_ms)} ({f.total_ms} ms)"),
    ]
    for name, ms in f.excluded_ms:
        rows.append((f"Excluded: {name}", f"{human_ms(ms)} ({ms} ms)"))
    rows += [
        ("Excluded in all", f"{human_ms(f.excluded_total_ms)} ({f.excluded_total_ms} ms)"),
        ("Eligible", f"{human_ms(f.eligible_ms)} ({f.eligible_ms} ms)"),
        ("No data", _no_data_text(report, f.no_data_ms, f.no_data_policy, exact=True)),
        ("Downtime (raw)", f"{human_ms(f.downtime_raw_ms)} ({f.downtime_raw_ms} ms)"),
        ("Downtime (weighted)", f"{human_ms(f.downtime_weighted_ms)} ({f.downtime_weighted_ms} ms)"),
        ("Availability", pct(f.availability)),
        ("Allowed downtime", exact(f.allowed_downtime_ms)),
        ("Budget remaining", exact(f.budget_remaining_ms)),
        ("Budget consumed", pct(f.budget_consumed)),
        ("Burn rate over the period", burn(row.period_burn_milli)),
        (
            "Status",
            f.status + (f" (thresholds: {', '.join(f.thresholds_crossed)})" if f.thresholds_crossed else ""),
        ),
        ("Credit", credit_words(f) + ("" if f.credit is None else f": {f.credit.note}")),
        ("Cost", _cost(report, f)),
    ]
    for b in row.burn:
        state = "firing" if b.firing else "not firing"
        rows.append(
            (
                f"Burn rate {b.alert.name} at period end",
                f"{burn(b.long_milli)} over {human_ms(b.alert.long_ms)}, {burn(b.short_milli)} over "
                f"{human_ms(b.alert.short_ms)} (fires at {burn(b.alert.factor_milli)}): {state}",
            )
        )
    out = [f"## {_md(f.service)}, {f.period.label}", "", "| Figure | Value |", "|---|---|"]
    out += [f"| {_md(k)} | {_md(v)} |" for k, v in rows]
    out += ["", "### Incidents", ""]
    if f.incidents:
        out += [
            "| Start (UTC) | End (UTC) | Duration | Health | Excluded | Evidence |",
            "|---|---|---:|---|---:|---|",
        ]
        for i in f.incidents:
            out.append(
                f"| {utc_iso_ms(i.start_ms)} | {utc_iso_ms(i.end_ms)} | {human_ms(i.duration_ms)} | {i.health} "
                f"| {human_ms(i.excluded_ms)} | {_md('; '.join(i.sources))} |"
            )
    else:
        out.append("No incident in the period.")
    out += ["", "### Counting method", "", f.method_text, ""]
    return out


# ---------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#1b1b1b;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}h2{margin-top:2em;border-bottom:1px solid #ccc}
.ok{color:#1a7f37}.warning{color:#9a6700}.breached{color:#cf222e}.insufficient-data{color:#57606a}
.small{font-size:12px;color:#57606a}svg{display:block;margin:.5em 0}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _day_colour(sla: Sla, availability: PctMilli | None, no_data_ms: int) -> str:
    if availability is None:
        return "#d0d7de"  # nothing eligible that day
    if availability >= sla.target:
        return "#8fd19e" if no_data_ms == 0 else "#c6e9cf"
    if availability >= 95_000:
        return "#f5c542"
    return "#e5534b"


def calendar_svg(sla: Sla, row: ServicePeriod) -> str:
    """Weeks as rows (Monday first), days as squares coloured by the day's availability."""
    size, gap, top = 26, 3, 16
    cells = []
    weekdays = "MTWTFSS"
    header = "".join(
        f'<text x="{i * (size + gap) + size // 2}" y="11" text-anchor="middle" font-size="10">{d}</text>'
        for i, d in enumerate(weekdays)
    )
    first = date.fromisoformat(row.days[0].label) if row.days else None
    week = 0
    for d in row.days:
        day = date.fromisoformat(d.label)
        col = day.weekday()
        if first is not None:
            week = ((day - first).days + first.weekday()) // 7
        x, y = col * (size + gap), top + week * (size + gap)
        colour = _day_colour(sla, d.availability, d.no_data_ms)
        title = f"{d.label}: {pct(d.availability)}, downtime {human_ms(d.downtime_weighted_ms)}"
        if d.no_data_ms:
            title += f", no data {human_ms(d.no_data_ms)}"
        cells.append(
            f'<g><title>{_e(title)}</title><rect x="{x}" y="{y}" width="{size}" height="{size}" rx="3" '
            f'fill="{colour}"/><text x="{x + size // 2}" y="{y + 17}" text-anchor="middle" '
            f'font-size="10">{day.day}</text></g>'
        )
    weeks = week + 1 if row.days else 0
    width, height = 7 * (size + gap), top + weeks * (size + gap)
    return (
        f'<svg class="calendar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="daily availability of {_e(row.figures.service)}">'
        f"{header}{''.join(cells)}</svg>"
    )


def _legend(sla: Sla) -> str:
    keys = [
        ("#8fd19e", f"at or above {pct(sla.target)}"),
        ("#c6e9cf", "at or above, with some time without data"),
        ("#f5c542", "below target, at or above 95 %"),
        ("#e5534b", "below 95 %"),
        ("#d0d7de", "nothing eligible"),
    ]
    items = "".join(
        f'<svg width="10" height="10" style="display:inline"><rect width="10" height="10" fill="{c}"/></svg> {_e(t)} '
        for c, t in keys
    )
    return f'<p class="small">{items}</p>'


def burndown_svg(row: ServicePeriod) -> str:
    """The error budget left at the end of each day (the line), against the even burn (dashed)."""
    f = row.figures
    allowed = f.allowed_downtime_ms
    if allowed is None or allowed <= 0 or not row.days:
        return '<p class="small">No burn-down: the budget is not expressed in time (or is zero).</p>'
    width, height, pad = 560, 160, 30
    points = [(f.period.start_ms, allowed)]
    left = allowed
    for d in row.days:
        left -= d.downtime_weighted_ms
        points.append((d.end_ms, left))
    low = min(0, min(v for _, v in points))
    span_t = f.period.end_ms - f.period.start_ms
    span_v = allowed - low or 1

    def xy(t: int, v: int) -> str:
        x = pad + (t - f.period.start_ms) * (width - 2 * pad) // span_t
        y = pad // 2 + (allowed - v) * (height - pad) // span_v
        return f"{x},{y}"

    line = " ".join(xy(t, v) for t, v in points)
    even = f"{xy(f.period.start_ms, allowed)} {xy(f.period.end_ms, 0)}"
    zero_y = xy(f.period.start_ms, 0).split(",")[1]
    return (
        f'<svg class="burndown" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="error budget burn-down of {_e(f.service)}">'
        f'<line x1="{pad}" y1="{zero_y}" x2="{width - pad}" y2="{zero_y}" stroke="#999"/>'
        f'<polyline points="{even}" fill="none" stroke="#999" stroke-dasharray="4 3"/>'
        f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="2"/>'
        f'<text x="{pad}" y="11" font-size="10">{_e(human_ms(allowed))} allowed</text>'
        f'<text x="{width - pad}" y="{height - 2}" font-size="10" text-anchor="end">'
        f"{_e(human_ms(left))} left at the end</text></svg>"
    )


def _html_incidents(incidents: tuple[Incident, ...]) -> str:
    if not incidents:
        return "<p>No incident in the period.</p>"
    rows = "".join(
        f"<tr><td>{_e(utc_iso_ms(i.start_ms))}</td><td>{_e(utc_iso_ms(i.end_ms))}</td>"
        f'<td class="n">{_e(human_ms(i.duration_ms))}</td><td>{_e(i.health)}</td>'
        f'<td class="n">{_e(human_ms(i.excluded_ms))}</td><td>{_e("; ".join(i.sources))}</td></tr>'
        for i in incidents
    )
    return (
        "<table><tr><th>Start (UTC)</th><th>End (UTC)</th><th>Duration</th><th>Health</th>"
        f"<th>Excluded</th><th>Evidence</th></tr>{rows}</table>"
    )


def _html_service(report: SlaReport, row: ServicePeriod) -> str:
    f = row.figures
    figures = [
        ("Period (UTC)", f"{f.period.start_utc} to {f.period.end_utc}"),
        ("Period (contract zone)", f"{f.period.start_local} to {f.period.end_local}"),
        ("Total", human_ms(f.total_ms)),
        (
            "Excluded",
            human_ms(f.excluded_total_ms) + "".join(f"; {n}: {human_ms(ms)}" for n, ms in f.excluded_ms),
        ),
        ("Eligible", human_ms(f.eligible_ms)),
        ("No data", _no_data_text(report, f.no_data_ms, f.no_data_policy, exact=False)),
        ("Downtime raw", exact(f.downtime_raw_ms)),
        ("Downtime weighted", exact(f.downtime_weighted_ms)),
        ("Availability", pct(f.availability)),
        ("Allowed downtime", exact(f.allowed_downtime_ms)),
        ("Budget remaining", exact(f.budget_remaining_ms)),
        ("Burn rate over the period", burn(row.period_burn_milli)),
        ("Credit", credit_words(f)),
        ("Cost", _cost(report, f)),
    ]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in figures)
    return (
        f'<section class="service"><h2>{_e(f.service)}, {_e(f.period.label)}: '
        f'<span class="{_e(f.status)}">{_e(f.status)}</span></h2>'
        f"<table>{table}</table>"
        f"<h3>Daily availability</h3>{calendar_svg(report.sla, row)}{_legend(report.sla)}"
        f"<h3>Error budget burn-down</h3>{burndown_svg(row)}"
        f"<h3>Incidents</h3>{_html_incidents(f.incidents)}"
        f'<h3>Counting method</h3><p class="small">{_e(f.method_text)}</p></section>'
    )


def render_html(report: SlaReport) -> str:
    sla = report.sla
    meta = [
        f"Target {pct(sla.target)} per {window_words(sla)}; counting {sla.counting}.",
        f"Generated {report.generated_utc}.",
    ]
    if report.prepared_by is not None:
        meta.append(f"Signed by {report.prepared_by.principal} ({report.prepared_by.fingerprint}).")
    meta += [f"Source: {s.kind} {', '.join(s.detail)} ({s.note})." for s in report.sources]
    meta += list(report.notes)
    summary = "".join(
        f"<tr><td>{_e(r.figures.period.label)}</td><td>{_e(r.figures.service)}</td>"
        f'<td class="n">{_e(pct(r.figures.availability))}</td>'
        f'<td class="n">{_e(duration(r.figures.budget_remaining_ms))}</td>'
        f'<td class="{_e(r.figures.status)}">{_e(r.figures.status)}</td><td>{_e(credit_words(r.figures))}</td></tr>'
        for r in report.services
    )
    years = "".join(
        f"<h2>Year {_e(y.label)}</h2><p>Allowed downtime in the year: {_e(human_ms(y.allowed_ms))}.</p><table>"
        "<tr><th>Service</th><th>Periods reported</th><th>Downtime (weighted)</th><th>Allowance left</th></tr>"
        + "".join(
            f'<tr><td>{_e(s.service)}</td><td class="n">{s.periods_reported}</td>'
            f'<td class="n">{_e(human_ms(s.downtime_weighted_ms))}</td><td class="n">{_e(human_ms(s.remaining_ms))}</td></tr>'
            for s in y.services
        )
        + "</table>"
        for y in report.years
    )
    body = (
        f"<h1>SLA report: {_e(sla.name)}</h1>"
        + "".join(f"<p>{_e(m)}</p>" for m in meta)
        + "<table><tr><th>Period</th><th>Service</th><th>Availability</th><th>Budget left</th>"
        f"<th>Status</th><th>Credit</th></tr>{summary}</table>"
        + "".join(_html_service(report, r) for r in report.services)
        + years
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>SLA report: {_e(sla.name)}</title>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )
