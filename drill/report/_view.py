"""Formatting shared by the renderers: durations, percentages, grouping, the timeline geometry.

Renderers read the typed Report only (never the playbook or the journal), so every view of a
report shows the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from drill.clock import parse_utc
from drill.report.model import Report
from drill.report.signoff import PREPARER, SignOff
from drill.results import AssetResult, ObjectiveResult, ObjectiveState, SiteChange, SiteResult, TierResult
from drill.units import human_ms, human_pm

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def fmt_utc(text: str | None) -> str:
    """A UTC timestamp, shortened for tables: 2026-11-20 09:00:35.010Z."""
    if not text:
        return "—"
    return text.replace("T", " ").replace("+00:00", "Z")


def fmt_clock(text: str | None) -> str:
    """Time of day of a UTC timestamp (09:00:35.010), for tables whose date is in the header."""
    if not text:
        return "—"
    return text.partition("T")[2].removesuffix("+00:00").removesuffix("Z")


def objectives(asset: AssetResult) -> tuple[ObjectiveResult, ...]:
    """The asset's objectives; for a report written before they were recorded (drill 0.1),
    derived from its timings the way that version judged them."""
    if asset.objectives:
        return asset.objectives
    reasons = "; ".join(asset.reasons) or "no outage observed"
    target, rto = asset.targets.rto_ms, asset.rto_ms
    if rto is not None:
        out = [ObjectiveResult("rto", "missed" if rto > target else "met", target, rto, "")]
    elif asset.t_detect_utc:
        out = [ObjectiveResult("rto", "missed", target, None, "did not recover")]
    else:
        out = [ObjectiveResult("rto", "not-measured", target, None, reasons)]
    rpo_target, rpo = asset.targets.rpo_ms, asset.rpo
    if rpo_target is not None and rpo is not None:
        state: ObjectiveState = "missed" if rpo.rpo_ms > rpo_target else "met"
        out.append(ObjectiveResult("rpo", state, rpo_target, rpo.rpo_ms, ""))
    elif rpo_target is not None:
        out.append(ObjectiveResult("rpo", "not-measured", rpo_target, None, "no canary probe"))
    return tuple(out)


def _unmeasured_text(o: ObjectiveResult) -> str:
    if o.state == "unaffected":
        return "unaffected"
    if o.state == "missed":
        return "not recovered"
    return "not measured (waived)" if o.waived else "not measured"


def rto_text(asset: AssetResult) -> str:
    """RTO achieved ± its uncertainty, or what the evidence says instead (never a made-up 0)."""
    rto = next((o for o in objectives(asset) if o.objective == "rto"), None)
    if rto is None or rto.achieved_ms is None:
        return "—" if rto is None else _unmeasured_text(rto)
    return human_pm(rto.achieved_ms, asset.uncertainty_ms)


def rpo_text(asset: AssetResult) -> str:
    rpo = asset.rpo
    objective = next((o for o in objectives(asset) if o.objective == "rpo"), None)
    if rpo is None:
        return "—" if objective is None else _unmeasured_text(objective)
    lost = rpo.lost_writes
    risk = f", {rpo.at_risk_writes} at risk" if rpo.at_risk_writes else ""
    return f"{human_ms(rpo.rpo_ms)} ({lost} lost write{'s' if lost != 1 else ''}{risk})"


def ack_text(asset: AssetResult) -> str:
    ack = asset.ack
    if ack is None:
        return "—"
    return "no ack" if ack.ack_ms is None else human_ms(ack.ack_ms)


_NO_TIER = TierResult("(no tier)", 0, 0, None, 0, "not-measured")


def assets_by_tier(report: Report) -> list[tuple[TierResult, list[AssetResult]]]:
    """Tiers in priority order, each with its assets (assets of an unknown tier come last)."""
    tiers = list(report.scope.tiers)
    known = {t.name for t in tiers}
    groups = [(t, [a for a in report.assets if a.tier == t.name]) for t in tiers]
    strays = [a for a in report.assets if a.tier not in known]
    if strays:
        groups.append((_NO_TIER, strays))
    return [(t, members) for t, members in groups if members]


def findings_by_severity(report: Report) -> list[tuple[str, int]]:
    counts = report.summary.findings
    return [(s, int(getattr(counts, s))) for s in SEVERITY_ORDER]


@dataclass(frozen=True, slots=True)
class Bar:
    """One asset's row in the timeline chart, in ms after the first t_inject."""

    asset: str
    tier: str
    verdict: str
    detect_ms: int | None  # t_detect - t0
    recover_ms: int | None  # t_recover - t0
    inject_ms: int | None
    target_end_ms: int  # inject + target RTO
    uncertainty_ms: int
    rto_met: bool = False  # only then is the target band drawn as "within target"


def timeline_bars(report: Report) -> tuple[list[Bar], int]:
    """Rows for the timeline chart and the span (ms) its x axis must cover."""
    injects = [parse_utc(a.t_inject_utc) for a in report.assets if a.t_inject_utc]
    if not injects:
        return [], 0
    t0 = min(injects)

    def offset(text: str | None) -> int | None:
        if not text:
            return None
        return (parse_utc(text) - t0) // timedelta(milliseconds=1)

    bars = []
    for _, members in assets_by_tier(report):
        for a in members:
            inject = offset(a.t_inject_utc)
            bars.append(
                Bar(
                    asset=a.id,
                    tier=a.tier,
                    verdict=a.verdict,
                    detect_ms=offset(a.t_detect_utc),
                    recover_ms=offset(a.t_recover_utc),
                    inject_ms=inject,
                    target_end_ms=(inject or 0) + a.targets.rto_ms,
                    uncertainty_ms=a.uncertainty_ms,
                    rto_met=any(o.objective == "rto" and o.state == "met" for o in objectives(a)),
                )
            )
    finished = offset(report.run.finished_utc)
    # Scale to the assets that had an outage, so a 10-minute target of an asset that never went
    # down does not squash every measured bar; its target band is clipped at the edge instead.
    moved = [b for b in bars if b.detect_ms is not None] or bars
    ends = [max(b.recover_ms or 0, b.detect_ms or 0, b.target_end_ms) for b in moved]
    span = max([*ends, 1000])
    if any(b.detect_ms is not None and b.recover_ms is None for b in bars) and finished:
        span = max(span, finished)
    return bars, span


def nice_ticks(span_ms: int, count: int = 6) -> list[int]:
    """Round tick positions (ms) covering 0..span_ms."""
    steps = [1000 * m for m in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)]
    step = next((s for s in steps if span_ms / s <= count), steps[-1])
    return list(range(0, span_ms + 1, step))


# ---------------------------------------------------------------- the sign-off block

# What every view says about trust: it lists the signatures beside report.json, it cannot judge them.
TRUST_NOTE = (
    "A view lists the signatures present; it cannot know whether a key is trusted. "
    "Check them against the keys you trust with `drill verify DIR --allowed-signers FILE` or "
    "`ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n drill-report-v1 "
    "-s report.json.PRINCIPAL.sig < report.json`."
)


@dataclass(frozen=True, slots=True)
class SignOffRow:
    """One signature beside report.json, as the views show it."""

    principal: str
    role: str
    fingerprint: str  # "unreadable" when the .sig could not be parsed
    file: str
    warning: str  # "" or why this row does not say what it seems to (a preparer's other key)


@dataclass(frozen=True, slots=True)
class SignOffBlock:
    """The sign-off section: the signatures present, and the named preparer whose is missing."""

    rows: tuple[SignOffRow, ...]
    preparer: str  # report.prepared_by.principal, "" when the report names none
    preparer_fingerprint: str
    preparer_missing: bool  # the report names a preparer and no signature of theirs is present

    @property
    def signed(self) -> bool:
        return bool(self.rows)


def sign_off_block(report: Report, sign_offs: Sequence[SignOff]) -> SignOffBlock:
    """What the sign-off section shows: a function of the report and the signatures present only."""
    named = report.prepared_by
    rows = []
    for s in sign_offs:
        warning = ""
        if named is not None and s.role == PREPARER and s.fingerprint and s.fingerprint != named.fingerprint:
            warning = f"made with another key than the one the report names ({named.fingerprint})"
        rows.append(SignOffRow(s.principal, s.role, s.fingerprint or "unreadable", s.file, warning))
    preparer = named.principal if named else ""
    missing = bool(preparer) and all(s.principal != preparer for s in sign_offs)
    return SignOffBlock(tuple(rows), preparer, named.fingerprint if named else "", missing)


def sign_off_status(block: SignOffBlock) -> str:
    """One line for a view's header: who signed, or that nobody did."""
    if not block.signed:
        return "not signed"
    return ", ".join(f"{r.principal} ({r.role})" for r in block.rows)


PREVIOUS_HEAD = (
    "Asset",
    "Verdict then",
    "Verdict now",
    "RTO then",
    "RTO now",
    "RTO change",
    "RPO then",
    "RPO now",
)


def previous_title(report: Report) -> str:
    """ "Change against the previous drill: run X (quarter), report SHA-256 Y, verdict Z"."""
    p = report.previous
    if p is None:
        return ""
    quarter = f", {p.quarter}" if p.quarter else ""
    return (
        f"previous drill: run {p.run_id}{quarter}, {p.verdict.upper()}, generated {fmt_utc(p.generated_utc)},"
        f" report SHA-256 {p.report_sha256}"
    )


def previous_rows(report: Report) -> list[tuple[str, str, str, str, str, str, str, str]]:
    """One row per asset, then and now; a change only where both were measured."""
    if report.previous is None:
        return []
    rows = []
    for c in report.previous.changes:
        change = "—"
        if c.rto_then_ms is not None and c.rto_now_ms is not None:
            delta = c.rto_now_ms - c.rto_then_ms
            change = "same" if delta == 0 else ("+" if delta > 0 else "") + human_ms(delta)
        rows.append(
            (
                c.asset,
                c.verdict_then or "(not in it)",
                c.verdict_now or "(removed)",
                human_ms(c.rto_then_ms),
                human_ms(c.rto_now_ms),
                change,
                human_ms(c.rpo_then_ms),
                human_ms(c.rpo_now_ms),
            )
        )
    return rows


SITES_HEAD = ("Site", "Agents", "Clock offset", "Lost", "Observations")
SITE_VIEWS_HEAD = ("Asset", "Probe", "Quorum", "Site", "Observed", "Failed", "Changes (± window)")


def _us(us: int) -> str:
    return f"{us / 1000:+.3f} ms"


def site_clock(site: SiteResult) -> str:
    if site.clock_offset_us is None or site.clock_error_us is None:
        return "not measured: no agent of this site ever answered"
    return f"{_us(site.clock_offset_us)} ± {site.clock_error_us / 1000:.3f} ms ({site.clock_source})"


def site_count(site: SiteResult) -> str:
    if site.complete is None:
        return (
            f"{site.journalled} journalled; the agent's own count is not known"
            " (it never reported one: stopped, killed or cut off before the end)"
        )
    dropped = f", {site.dropped} dropped by the agent" if site.dropped else ""
    verdict = "all journalled" if site.complete else "NOT all journalled"
    return f"{site.journalled} of the {site.observed} the agent made ({verdict}{dropped})"


def site_rows(report: Report) -> list[tuple[str, str, str, str, str]]:
    """One row per site: who probed from it, its clock, when it was lost, what reached the journal."""
    return [
        (
            s.site,
            ", ".join(s.agents) or "—",
            site_clock(s),
            "; ".join(f"{fmt_clock(loss.at_utc)}: {loss.reason}" for loss in s.losses) or "—",
            site_count(s),
        )
        for s in report.sites
    ]


def _change(change: SiteChange) -> str:
    return f"{change.state} {fmt_clock(change.at_utc)} (± {human_ms(change.window_ms)})"


def site_view_rows(report: Report) -> list[tuple[str, str, str, str, str, str, str]]:
    """One row per asset, probe and site: each site's own view, beside the quorum that decided."""
    return [
        (
            a.id,
            v.probe,
            f"{v.quorum} of {v.sites}",
            v.site,
            str(v.observations),
            str(v.failed),
            ", ".join(_change(c) for c in v.changes) or "no change seen",
        )
        for a in report.assets
        for v in a.sites
    ]
