"""The SLA report: every figure of every service in every period, typed, canonical and signed.

The report is what two sides of a contract sign off on, so it carries not only the figures
(drill.sla.compute) but what they were computed from and how: the SLA's target, window and
counting method in words, the source named (journals, an incidents CSV or a Prometheus query),
each incident with the evidence it came from, and what could not be measured, said as such.

`sla-report.json` holds the report as RFC 8785 canonical bytes (integers only: percentages in
thousandths of a percent, durations in ms, money in minor units); a signature is a detached
SSHSIG over exactly those bytes in the namespace "drill-sla-report-v1" (its own namespace, so a
drill report's signature can never be passed off as an SLA report's, or the other way round),
made and checked with drill.report.sign's primitives and verifiable with plain
`ssh-keygen -Y verify`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drill.clock import ms_of, utc_iso_ms
from drill.errors import UsageError, VerificationFailed
from drill.evidence.canonical import canonical_bytes, is_canonical
from drill.report.build import write_atomically
from drill.report.sign import (
    Passphrase,
    check_principal,
    fingerprint,
    load_private_key,
    sign_bytes,
)
from drill.report.verify import SignerInfo, load_allowed_signers, verify_signature
from drill.sla.alerts import DelayTracker, level_reached
from drill.sla.calendar import Period, period_days, period_of, periods_between
from drill.sla.compute import (
    BurnEvaluation,
    PeriodFigures,
    burn_evaluations,
    burn_rate,
    compute_period,
)
from drill.sla.digest import PageRecord
from drill.sla.model import FULL, DelayKpi, PctMilli, ResponseKpi, Sla, Timeline, Window
from drill.sla.sources import JournalDigest

NAMESPACE = "drill-sla-report-v1"
REPORT_FILE = "sla-report.json"
SIG_SUFFIX = ".sig"
FORMAT = "drill-sla-report/1"

SourceKind = Literal["journals", "incidents-csv", "prometheus"]
Verdict = Literal["met", "missed", "not measured"]


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where the health came from, as the report names it (paths, or URL and query)."""

    kind: SourceKind
    detail: tuple[str, ...]
    note: str  # what this source can and cannot show


@dataclass(frozen=True, slots=True)
class DayFigure:
    """One local calendar day of a period, for the calendar and the burn-down."""

    label: str
    start_ms: int
    end_ms: int
    availability: PctMilli | None
    downtime_weighted_ms: int
    no_data_ms: int


@dataclass(frozen=True, slots=True)
class ServicePeriod:
    """One service in one period: the computed figures, the burn rates at the period's end, and
    the period's own burn rate (the whole period's bad share over the error budget)."""

    figures: PeriodFigures
    period_burn_milli: int | None
    burn: tuple[BurnEvaluation, ...]
    days: tuple[DayFigure, ...]


@dataclass(frozen=True, slots=True)
class KpiResult:
    """A KPI in a period: met, missed, or not measured (and then why, never a 0)."""

    name: str
    kind: Literal["response", "delay"]
    period: str
    within_ms: int
    verdict: Verdict
    count: int | None  # pages (response) or round trips (delay) considered
    met: int | None
    worst_ms: int | None
    note: str
    over_limit: int | None = None  # delay: round trips over within_ms (a failed one included)
    level: int | None = None  # delay: the highest alert level reached (0: none; levels by delay)


@dataclass(frozen=True, slots=True)
class YearPeriod:
    """A contract period of the year: its length and its allowance (before exclusions)."""

    label: str
    start_ms: int
    end_ms: int
    start_local: str
    end_local: str
    allowed_ms: int
    in_report: bool

    @property
    def total_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class YearService:
    """A service's weighted downtime in the reported periods of the year, against the yearly allowance."""

    service: str
    periods_reported: int
    downtime_weighted_ms: int
    remaining_ms: int


@dataclass(frozen=True, slots=True)
class YearView:
    """The year around the reported periods: 99.9 % of 365 days allows 8.76 h."""

    label: str
    start_ms: int
    end_ms: int
    allowed_ms: int
    periods: tuple[YearPeriod, ...]
    services: tuple[YearService, ...]

    @property
    def total_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class Preparer:
    principal: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SlaReport:
    sla: Sla
    sources: tuple[SourceInfo, ...]
    periods: tuple[Period, ...]
    services: tuple[ServicePeriod, ...]  # period by period, services in the SLA's order
    kpis: tuple[KpiResult, ...]
    years: tuple[YearView, ...]
    notes: tuple[str, ...]
    generated_utc: str
    prepared_by: Preparer | None = None

    @property
    def no_data_measured(self) -> bool:
        """Can the sources show time without data? An incidents CSV cannot: outside its
        incidents the service counts as up, so its no-data time is not measured (never 0)."""
        return any(s.kind != "incidents-csv" for s in self.sources)

    @property
    def breached(self) -> tuple[ServicePeriod, ...]:
        return tuple(s for s in self.services if s.figures.status == "breached")


# ---------------------------------------------------------------- building


def build_report(
    sla: Sla,
    timelines: Sequence[Timeline],
    periods: Sequence[Period],
    sources: Sequence[SourceInfo],
    *,
    generated_utc: str,
    journals: Sequence[JournalDigest] = (),
    drill_windows: Sequence[tuple[int, int]] = (),
    prepared_by: Preparer | None = None,
    notes: Sequence[str] = (),
) -> SlaReport:
    """Compute every service in every period. `journals` (when the source is drill journals)
    give the KPIs their pages, acknowledgements and round trips."""
    if not periods:
        raise UsageError("the report covers no period")
    by_name = {t.service: t for t in timelines}
    missing = [s.name for s in sla.services if s.name not in by_name]
    if missing:
        raise UsageError(f"no timeline for service {', '.join(missing)}")
    rows = [
        _service_period(sla, by_name[service.name], period, drill_windows)
        for period in periods
        for service in sla.services
    ]
    kpis = _kpis(sla, periods, journals)
    all_notes = list(notes)
    if sla.exclude_drills and not drill_windows:
        all_notes.append(
            "The SLA excludes drill windows, but no drill window was given to this report: none is excluded."
        )
    all_notes += _caveats(rows, generated_utc)
    return SlaReport(
        sla=sla,
        sources=tuple(sources),
        periods=tuple(periods),
        services=tuple(rows),
        kpis=kpis,
        years=_years(sla, periods, rows),
        notes=tuple(all_notes),
        generated_utc=generated_utc,
        prepared_by=prepared_by,
    )


def _caveats(rows: Sequence[ServicePeriod], generated_utc: str) -> list[str]:
    """What a reader must know before acting on a figure: a period not over yet, and figures
    whose no-data share makes them insufficient (their credit follows the no-data policy)."""
    out: list[str] = []
    try:
        now = ms_of(datetime.fromisoformat(generated_utc))
    except ValueError:
        raise UsageError(f"generated_utc {generated_utc!r} is not an ISO 8601 time") from None
    seen: set[str] = set()
    for row in rows:
        f = row.figures
        if f.period.end_ms > now and f.period.label not in seen:
            seen.add(f.period.label)
            out.append(
                f"Period {f.period.label} had not ended when this report was generated "
                f"({generated_utc}): the time after it has no data yet."
            )
        if f.status == "insufficient-data":
            out.append(
                f"{f.service} in {f.period.label}: insufficient data ({f.no_data_ms} ms without data); "
                f"its availability, credit and cost count that time as the no-data policy says "
                f"({f.no_data_policy}), and are not a measurement."
            )
    return out


def _service_period(
    sla: Sla, timeline: Timeline, period: Period, drill_windows: Sequence[tuple[int, int]]
) -> ServicePeriod:
    figures = compute_period(sla, timeline, period, drill_windows=drill_windows)
    days = []
    for day in period_days(period):
        # the period's exclusions, as computed once (an occurrence crossing midnight is clipped)
        f = compute_period(sla, timeline, day, exclusions=figures.excluded)
        days.append(
            DayFigure(
                day.label, day.start_ms, day.end_ms, f.availability, f.downtime_weighted_ms, f.no_data_ms
            )
        )
    return ServicePeriod(
        figures=figures,
        period_burn_milli=burn_rate(
            sla, timeline, period.end_ms, period.duration_ms, drill_windows=drill_windows
        ),
        burn=tuple(burn_evaluations(sla, timeline, period.end_ms, drill_windows=drill_windows)),
        days=tuple(days),
    )


def _years(sla: Sla, periods: Sequence[Period], rows: Sequence[ServicePeriod]) -> tuple[YearView, ...]:
    """The year view of each calendar year the periods start in (none for rolling windows)."""
    if sla.window.kind == "rolling":
        return ()
    year_window = Window("year", sla.window.time_zone)
    years: dict[str, Period] = {}
    for period in periods:
        year = period_of(year_window, period.start_ms)
        years.setdefault(year.label, year)
    reported = {p.label for p in periods}
    views = []
    for year in years.values():
        inside = periods_between(sla.window, year.start_ms, year.end_ms)
        allowed = year.duration_ms * (FULL - sla.target) // FULL
        services = []
        for service in sla.services:
            mine = [
                r
                for r in rows
                if r.figures.service == service.name
                and year.start_ms <= r.figures.period.start_ms < year.end_ms
            ]
            down = sum(r.figures.downtime_weighted_ms for r in mine)
            services.append(YearService(service.name, len(mine), down, allowed - down))
        views.append(
            YearView(
                label=year.label,
                start_ms=year.start_ms,
                end_ms=year.end_ms,
                allowed_ms=allowed,
                periods=tuple(
                    YearPeriod(
                        p.label,
                        p.start_ms,
                        p.end_ms,
                        p.start_local,
                        p.end_local,
                        p.duration_ms * (FULL - sla.target) // FULL,
                        p.label in reported,
                    )
                    for p in inside
                ),
                services=tuple(services),
            )
        )
    return tuple(views)


# ---------------------------------------------------------------- KPIs


def _kpis(sla: Sla, periods: Sequence[Period], journals: Sequence[JournalDigest]) -> tuple[KpiResult, ...]:
    pages, trips = _read_journals(journals, sla.delays) if journals else (None, None)
    out: list[KpiResult] = []
    for period in periods:
        for kpi in sla.response:
            out.append(_response(kpi, period, pages))
        for delay in sla.delays:
            out.append(_delay(delay, period, None if trips is None else trips[delay.name]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _RoundTrip:
    """One observation of a delay KPI's probe: when, whether it completed, and its delay (for a
    failed one: at least this long, counted from the first failed round trip of its run)."""

    at_ms: int
    ok: bool
    delay_ms: int


def _read_journals(
    journals: Sequence[JournalDigest], delays: Sequence[DelayKpi]
) -> tuple[list[_Page], dict[str, list[_RoundTrip]]]:
    """The pages and every delay KPI's round trips from the journals' digests. A watch's segments
    continued by rotation are one process: a page answered after a rotation is answered, and a run
    of failed round trips goes on across it."""
    calls: dict[tuple[str, str], _Page] = {}
    trips: dict[str, list[_RoundTrip]] = {d.name: [] for d in delays}
    run = ""
    acks: dict[str, int] = {}
    sent: list[PageRecord] = []
    trackers: dict[str, DelayTracker] = {}
    for i, journal in enumerate(journals):
        digest = journal.digest
        if not (i and digest.continues == journals[i - 1].path.name):
            _add_calls(calls, run, sent, acks)
            run, acks, sent = str(journal.path), {}, []
            trackers = {d.name: DelayTracker() for d in delays}
        sent.extend(digest.pages)
        for page_id, ack in digest.acks.items():
            acks.setdefault(page_id, ack)
        for kpi in delays:
            for trip in digest.trips.get(kpi.probe, ()):
                delay = trackers[kpi.name].delay_ms(trip.ok, trip.latency_ms, trip.at_ms)
                trips[kpi.name].append(_RoundTrip(trip.at_ms, trip.ok, delay))
    _add_calls(calls, run, sent, acks)
    return sorted(calls.values(), key=lambda p: p.sent_ms), trips


def _delay(kpi: DelayKpi, period: Period, trips: list[_RoundTrip] | None) -> KpiResult:
    """Met when no round trip of the period took longer than within_ms; a failed round trip did
    not complete and counts as over the limit. Worst: the slowest completed round trip."""

    def result(verdict: Verdict, note: str, *figures: int | None) -> KpiResult:
        count, met, worst, over, level = figures if figures else (None,) * 5
        return KpiResult(
            kpi.name, "delay", period.label, kpi.within_ms, verdict, count, met, worst, note, over, level
        )

    if trips is None:
        return result("not measured", "not measured: these sources carry no round-trip times")
    mine = [t for t in trips if period.start_ms <= t.at_ms < period.end_ms]
    if not mine:
        return result("not measured", f"no round trip of {kpi.probe} in the journals in this period")
    failed = sum(not t.ok for t in mine)
    over = sum(not t.ok or t.delay_ms > kpi.within_ms for t in mine)
    done = [t.delay_ms for t in mine if t.ok]
    worst = max(done) if done else None
    level: int | None = max(level_reached(kpi, t.delay_ms, t.ok) for t in mine)
    note = f"round trips of {kpi.probe} in the journals (its latency); {over} over {kpi.within_ms} ms"
    if failed:
        note += f"; {failed} did not complete (the probe failed): counted as over the limit"
        note += "" if done else "; none completed, so no worst delay"
    if kpi.levels:
        note += f"; highest alert level reached: {level} of {len(kpi.levels)}"
    else:
        level = None
        note += "; the KPI has no alert levels"
    verdict: Verdict = "met" if over == 0 else "missed"
    return result(verdict, note, len(mine), len(mine) - over, worst, over, level)


@dataclass(frozen=True, slots=True)
class _Page:
    """One paging of a chain (all its escalations), by trigger, with the first acknowledgement."""

    chain: str
    chains: tuple[str, ...]
    sent_ms: int
    ack_ms: int | None  # since the trigger


def _add_calls(
    calls: dict[tuple[str, str], _Page], run: str, sent: Sequence[PageRecord], acks: Mapping[str, int]
) -> None:
    """Pages grouped by (process, trigger): an escalation is the same call, answered once."""
    first: set[str] = set()
    for page in sent:
        if page.page_id in first:
            continue  # a page id is once per process; a later record of it is not a new page
        first.add(page.page_id)
        key = (run, page.trigger)
        ack = acks.get(page.page_id)
        before = calls.get(key)
        if before is None:
            calls[key] = _Page(page.chain, page.chains, page.sent_ms, ack)
        elif ack is not None and (before.ack_ms is None or ack < before.ack_ms):
            calls[key] = _Page(before.chain, before.chains, before.sent_ms, ack)


def _response(kpi: ResponseKpi, period: Period, pages: list[_Page] | None) -> KpiResult:
    """Each paging of the KPI's chain in the period: met when its first acknowledgement came
    within the time, counted from the trigger; a page never acknowledged is missed."""
    if pages is None:
        return KpiResult(
            kpi.name,
            "response",
            period.label,
            kpi.within_ms,
            "not measured",
            None,
            None,
            None,
            "the source holds no contact-chain records (page and acknowledgement events come from drill journals)",
        )
    mine = [
        p
        for p in pages
        if (p.chain == kpi.chain or kpi.chain in p.chains) and period.start_ms <= p.sent_ms < period.end_ms
    ]
    note = (
        f"pages of chain {kpi.chain} in the journals; severity is not recorded on a page, so every page of "
        f"the chain counts as {kpi.severity}"
    )
    if not mine:
        return KpiResult(
            kpi.name, "response", period.label, kpi.within_ms, "met", 0, 0, None, note + "; no page was sent"
        )
    met = sum(p.ack_ms is not None and p.ack_ms <= kpi.within_ms for p in mine)
    answered = [p.ack_ms for p in mine if p.ack_ms is not None]
    worst = max(answered) if len(answered) == len(mine) else None
    if worst is None:
        note += "; at least one page was never acknowledged"
    verdict: Verdict = "met" if met == len(mine) else "missed"
    return KpiResult(kpi.name, "response", period.label, kpi.within_ms, verdict, len(mine), met, worst, note)


# ---------------------------------------------------------------- serialising


def _pct_text(value: PctMilli | None) -> str:
    if value is None:
        return "not measured"
    whole, frac = divmod(value, 1000)
    return f"{whole}.{frac:03d} %"


def report_data(report: SlaReport) -> dict[str, object]:
    """The report as JSON-ready builtins (integers and strings only)."""
    sla = report.sla
    data: dict[str, object] = {
        "format": FORMAT,
        "generated_utc": report.generated_utc,
        "sla": _sla_data(sla),
        "sources": [{"kind": s.kind, "detail": list(s.detail), "note": s.note} for s in report.sources],
        "periods": [_period_data(p) for p in report.periods],
        "services": [_service_data(s, report.no_data_measured) for s in report.services],
        "kpis": [_kpi_data(k) for k in report.kpis],
        "years": [_year_data(y) for y in report.years],
        "notes": list(report.notes),
    }
    if report.prepared_by is not None:
        data["prepared_by"] = {
            "principal": report.prepared_by.principal,
            "fingerprint": report.prepared_by.fingerprint,
        }
    return data


def _sla_data(sla: Sla) -> dict[str, object]:
    credits = sla.credits
    return {
        "name": sla.name,
        "playbook": sla.playbook,
        "services": [{"name": s.name, "probes": list(s.probes)} for s in sla.services],
        "target_pct_milli": sla.target,
        "target": _pct_text(sla.target),
        "window": {
            "kind": sla.window.kind,
            "time_zone": sla.window.time_zone,
            "rolling_ms": sla.window.rolling_ms,
        },
        "counting": sla.counting,
        "slice_ms": sla.slices.slice_ms,
        "bad_after_ms": sla.slices.bad_after_ms,
        "partial_weight_pct_milli": sla.partial_weight,
        "no_data_policy": sla.no_data,
        "exclude_drills": sla.exclude_drills,
        "exclusions": [
            {
                "name": e.name,
                "rrule": e.rrule,
                "duration_ms": e.duration_ms,
                "reason": e.reason,
                "approver": e.approver,
            }
            for e in sla.exclusions
        ],
        "credits": None
        if credits is None
        else {
            "currency": credits.currency,
            "monthly_fee_minor": credits.monthly_fee_minor,
            "minimum_minor": credits.minimum_minor,
            "cap_pct_milli": credits.cap,
            "tiers": [
                {"lower_pct_milli": t.lower, "upper_pct_milli": t.upper, "credit_pct_milli": t.credit}
                for t in credits.tiers
            ],
        },
        "loss_per_minute_minor": sla.loss_per_minute_minor,
    }


def _period_data(p: Period) -> dict[str, object]:
    return {
        "label": p.label,
        "start_utc": p.start_utc,
        "end_utc": p.end_utc,
        "start_local": p.start_local,
        "end_local": p.end_local,
        "zone": p.zone,
        "start_ms": p.start_ms,
        "end_ms": p.end_ms,
    }


def _service_data(row: ServicePeriod, no_data_measured: bool) -> dict[str, object]:
    f = row.figures
    credit = f.credit
    return {
        "service": f.service,
        "period": _period_data(f.period),
        "counting": f.counting,
        "method": f.method_text,
        "total_ms": f.total_ms,
        "excluded_ms": f.excluded_total_ms,
        "excluded_by_reason": [{"name": name, "ms": ms} for name, ms in f.excluded_ms],
        "excluded_spans": [
            {
                "start_utc": utc_iso_ms(e.start_ms),
                "end_utc": utc_iso_ms(e.end_ms),
                "name": e.name,
                "reason": e.reason,
                "approver": e.approver,
            }
            for e in f.excluded
        ],
        "eligible_ms": f.eligible_ms,
        "no_data_ms": f.no_data_ms if no_data_measured else None,  # None: not measured
        "no_data_policy": f.no_data_policy,
        "no_data_intervals": [
            {"start_utc": utc_iso_ms(a), "end_utc": utc_iso_ms(b)} for a, b in f.no_data_intervals
        ],
        "bad_ms": f.bad_ms,
        "partial_ms": f.partial_ms,
        "downtime_raw_ms": f.downtime_raw_ms,
        "downtime_weighted_ms": f.downtime_weighted_ms,
        "availability_pct_milli": f.availability,
        "availability": _pct_text(f.availability),
        "downtime_share_pct_milli": f.downtime_share,
        "allowed_downtime_ms": f.allowed_downtime_ms,
        "budget_remaining_ms": f.budget_remaining_ms,
        "budget_consumed_pct_milli": f.budget_consumed,
        "period_burn_rate_milli": row.period_burn_milli,
        "burn_rates": [
            {
                "name": b.alert.name,
                "factor_milli": b.alert.factor_milli,
                "long_ms": b.alert.long_ms,
                "short_ms": b.alert.short_ms,
                "long_milli": b.long_milli,
                "short_milli": b.short_milli,
                "firing": b.firing,
                "severity": b.alert.severity,
            }
            for b in row.burn
        ],
        "status": f.status,
        "thresholds_crossed": list(f.thresholds_crossed),
        "credit": None
        if credit is None
        else {
            "tier": None
            if credit.tier is None
            else {
                "lower_pct_milli": credit.tier.lower,
                "upper_pct_milli": credit.tier.upper,
                "credit_pct_milli": credit.tier.credit,
            },
            "share_pct_milli": credit.share,
            "amount_minor": credit.amount_minor,
            "currency": credit.currency,
            "note": credit.note,
        },
        "cost_minor": f.cost_minor,
        "events_good": f.events_good,
        "events_total": f.events_total,
        "incidents": [
            {
                "start_utc": utc_iso_ms(i.start_ms),
                "end_utc": utc_iso_ms(i.end_ms),
                "duration_ms": i.duration_ms,
                "health": i.health,
                "excluded_ms": i.excluded_ms,
                "sources": list(i.sources),
            }
            for i in f.incidents
        ],
        "days": [
            {
                "label": d.label,
                "start_utc": utc_iso_ms(d.start_ms),
                "end_utc": utc_iso_ms(d.end_ms),
                "availability_pct_milli": d.availability,
                "downtime_weighted_ms": d.downtime_weighted_ms,
                "no_data_ms": d.no_data_ms,
            }
            for d in row.days
        ],
    }


def _kpi_data(k: KpiResult) -> dict[str, object]:
    return {
        "name": k.name,
        "kind": k.kind,
        "period": k.period,
        "within_ms": k.within_ms,
        "verdict": k.verdict,
        "count": k.count,
        "met": k.met,
        "worst_ms": k.worst_ms,
        "over_limit": k.over_limit,
        "level": k.level,
        "note": k.note,
    }


def _year_data(y: YearView) -> dict[str, object]:
    return {
        "label": y.label,
        "start_utc": utc_iso_ms(y.start_ms),
        "end_utc": utc_iso_ms(y.end_ms),
        "total_ms": y.total_ms,
        "allowed_downtime_ms": y.allowed_ms,
        "periods": [
            {
                "label": p.label,
                "start_utc": utc_iso_ms(p.start_ms),
                "end_utc": utc_iso_ms(p.end_ms),
                "start_local": p.start_local,
                "end_local": p.end_local,
                "total_ms": p.total_ms,
                "allowed_downtime_ms": p.allowed_ms,
                "in_report": p.in_report,
            }
            for p in y.periods
        ],
        "services": [
            {
                "service": s.service,
                "periods_reported": s.periods_reported,
                "downtime_weighted_ms": s.downtime_weighted_ms,
                "remaining_ms": s.remaining_ms,
            }
            for s in y.services
        ],
    }


def report_json_bytes(report: SlaReport) -> bytes:
    """RFC 8785 canonical bytes: what a signature covers."""
    return canonical_bytes(report_data(report))


# ---------------------------------------------------------------- signing and verifying


def signature_path(directory: Path, principal: str) -> Path:
    return directory / f"{REPORT_FILE}.{check_principal(principal)}{SIG_SUFFIX}"


def signing_key(key_path: Path, passphrase: Passphrase = None) -> Ed25519PrivateKey:
    """The signer's key, read before the report is built (a bad key fails before anything is written)."""
    return load_private_key(key_path, passphrase)


def preparer_of(key: Ed25519PrivateKey, principal: str) -> Preparer:
    """Who signs: the report names them, so a signature by anyone else is seen to be someone else's."""
    return Preparer(check_principal(principal), fingerprint(key.public_key()))


def sign_report_bytes(directory: Path, data: bytes, key: Ed25519PrivateKey, principal: str) -> Path:
    """Write sla-report.json.<principal>.sig: an SSHSIG over `data` (the stored sla-report.json)."""
    text = sign_bytes(data, key, NAMESPACE)
    target = signature_path(directory, principal)
    _write(target, text.encode("ascii"))
    return target


def write_file(target: Path, data: bytes) -> None:
    """Atomically (a reader never sees half a file)."""
    _write(target, data)


def _write(target: Path, data: bytes) -> None:
    try:
        write_atomically(target, data)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None


def verify_report_dir(directory: Path, allowed_signers: Path) -> list[SignerInfo]:
    """Every sla-report.json.<principal>.sig in the folder must verify (as ssh-keygen -Y verify
    would, at the report's generated_utc) and there must be at least one; sla-report.json must be
    canonical. VerificationFailed (exit 1) with one line otherwise; missing files are UsageError."""
    import json

    path = directory / REPORT_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not is_canonical(data):
        raise VerificationFailed(f"{path} is not RFC 8785 canonical JSON (edited after it was written?)")
    allowed = load_allowed_signers(allowed_signers)
    signatures = sorted(directory.glob(f"{REPORT_FILE}.*{SIG_SUFFIX}"))
    if not signatures:
        raise VerificationFailed(f"{directory} holds no {REPORT_FILE}.<signer>{SIG_SUFFIX} signature")
    generated = json.loads(data).get("generated_utc", "")
    try:
        at = datetime.fromisoformat(generated)
    except (TypeError, ValueError):
        raise VerificationFailed(f"{path}: generated_utc {generated!r} is not a time") from None
    signers = []
    for sig in signatures:
        principal = sig.name.removeprefix(f"{REPORT_FILE}.").removesuffix(SIG_SUFFIX)
        try:
            check_principal(principal)
        except UsageError:
            raise VerificationFailed(f"{sig.name!a}: the file name holds no valid signer name") from None
        text = sig.read_bytes()
        signers.append(verify_signature(data, text, allowed, principal, NAMESPACE, at, source=sig.name))
    return signers
