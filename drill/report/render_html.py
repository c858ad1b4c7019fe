"""Render a report as one self-contained HTML file: inline CSS and SVG, no network, no JavaScript.

The page opens with the verdict, then targets vs achieved per tier, a timeline chart, findings,
people, the step timeline, scope, the sign-off (every signature beside report.json, or "Not
signed") and the verification block; print CSS makes a clean PDF (drill/report/pdf.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import jinja2

from drill.report import _view as view
from drill.report.build import report_bytes
from drill.report.model import Report
from drill.report.signoff import SignOff
from drill.units import human_bp, human_ms, human_pm

# Chart geometry (px). Rows shrink for big drills so 1,000 assets stay readable and light.
_LABEL_W = 190
_PLOT_W = 700
_RIGHT_PAD = 20
_TOP = 34
_BOTTOM = 30


@dataclass(frozen=True, slots=True)
class _Row:
    y: int
    h: int
    label: str
    tier: str
    verdict: str
    inject_x: int | None
    detect_x: int | None
    recover_x: int | None
    end_x: int | None  # outage still open at the end of the drill
    target_x: int
    target_clipped: str  # the target's text when its deadline lies beyond the chart
    unc_lo: int | None
    unc_hi: int | None
    late: bool
    title: str
    band_met: bool  # the target band is green only when the asset recovered within it


@dataclass(frozen=True, slots=True)
class _Chart:
    width: int
    height: int
    plot_x: int
    plot_w: int
    plot_top: int
    plot_bottom: int
    rows: list[_Row]
    ticks: list[tuple[int, str]]
    tier_breaks: list[tuple[int, str]]


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drill.report", "templates"),
        autoescape=True,  # every value in a report is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        ms=human_ms,
        pm=human_pm,
        bp=human_bp,
        utc=view.fmt_utc,
        clock=view.fmt_clock,
        rpo=view.rpo_text,
        ack=view.ack_text,
        rto=view.rto_text,
    )
    return env


def render_html(report: Report, sign_offs: Sequence[SignOff] = ()) -> str:
    """The report as a standalone HTML document (deterministic: same report and sign-offs, same
    bytes); `sign_offs` are the signatures present beside report.json."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        r=report,
        groups=view.assets_by_tier(report),
        severities=view.findings_by_severity(report),
        chart=_chart(report),
        sign_off=view.sign_off_block(report, sign_offs),
        previous_head=view.PREVIOUS_HEAD,
        previous_rows=view.previous_rows(report),
        previous_title=view.previous_title(report),
        sites_head=view.SITES_HEAD,
        site_rows=view.site_rows(report),
        site_views_head=view.SITE_VIEWS_HEAD,
        site_view_rows=view.site_view_rows(report),
        report_sha256=hashlib.sha256(report_bytes(report)).hexdigest(),
    )


def _chart(report: Report) -> _Chart | None:
    bars, span = view.timeline_bars(report)
    if not bars:
        return None
    row_h = 24 if len(bars) <= 40 else (16 if len(bars) <= 200 else 10)
    span = int(span * 1.08) + 1

    def x(ms: int | None) -> int | None:
        return None if ms is None else _LABEL_W + min(_PLOT_W, max(0, ms * _PLOT_W // span))

    rows: list[_Row] = []
    breaks: list[tuple[int, str]] = []
    y = _TOP
    tier = None
    for bar in bars:
        if bar.tier != tier:
            breaks.append((y, bar.tier))
            tier = bar.tier
            y += 16 if row_h > 10 else 12
        open_end = bar.detect_ms is not None and bar.recover_ms is None
        late = bar.recover_ms is not None and bar.recover_ms > bar.target_end_ms
        unc = bar.uncertainty_ms
        rows.append(
            _Row(
                y=y,
                h=row_h,
                label=bar.asset,
                tier=bar.tier,
                verdict=bar.verdict,
                inject_x=x(bar.inject_ms),
                detect_x=x(bar.detect_ms),
                recover_x=x(bar.recover_ms),
                end_x=x(span) if open_end else None,
                target_x=x(bar.target_end_ms) or _LABEL_W,
                target_clipped=f"RTO {human_ms(bar.target_end_ms - (bar.inject_ms or 0))} →"
                if bar.target_end_ms > span
                else "",
                unc_lo=x(bar.recover_ms - unc) if bar.recover_ms is not None and unc else None,
                unc_hi=x(bar.recover_ms + unc) if bar.recover_ms is not None and unc else None,
                late=late or open_end,
                title=_bar_title(bar),
                band_met=bar.rto_met,
            )
        )
        y += row_h
    ticks = [(x(t) or _LABEL_W, "t₀" if t == 0 else f"+{human_ms(t)}") for t in view.nice_ticks(span)]
    return _Chart(
        width=_LABEL_W + _PLOT_W + _RIGHT_PAD,
        height=y + _BOTTOM,
        plot_x=_LABEL_W,
        plot_w=_PLOT_W,
        plot_top=_TOP,
        plot_bottom=y,
        rows=rows,
        ticks=ticks,
        tier_breaks=breaks,
    )


def _bar_title(bar: view.Bar) -> str:
    def rel(ms: int | None) -> str:
        return "—" if ms is None else f"t₀+{human_ms(ms)}"

    return (
        f"{bar.asset}: injected {rel(bar.inject_ms)}, detected {rel(bar.detect_ms)}, "
        f"recovered {rel(bar.recover_ms)} (± {human_ms(bar.uncertainty_ms)}), "
        f"RTO deadline {rel(bar.target_end_ms)}"
    )
