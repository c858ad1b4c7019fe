"""Formatting shared by the renderers: durations, percentages, grouping, the timeline geometry.

Renderers read the report dict only (never the playbook or the journal), so every view of a
report shows the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drill.clock import parse_utc

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def fmt_ms(ms: Any) -> str:
    """A duration for people: 850 ms, 12.3 s, 4 min 05 s, 1 h 30 min; '—' when not measured."""
    if ms is None:
        return "—"
    ms = int(ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        tenths = (ms + 50) // 100
        return f"{tenths // 10}.{tenths % 10} s" if tenths < 600 else "1 min"
    if ms < 3_600_000:
        minutes, rest = divmod((ms + 500) // 1000, 60)
        return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    hours, minutes = divmod((ms + 30_000) // 60_000, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def fmt_pm(ms: Any, uncertainty: Any) -> str:
    """A measured duration with its uncertainty (one probe interval)."""
    if ms is None:
        return "—"
    return f"{fmt_ms(ms)} ± {fmt_ms(uncertainty)}" if uncertainty else fmt_ms(ms)


def fmt_bp(bp: Any) -> str:
    """Basis points as a percentage with two decimals (integer arithmetic: no float rounding)."""
    if bp is None:
        return "—"
    bp = int(bp)
    return f"{bp // 100}.{bp % 100:02d} %"


def fmt_utc(text: Any) -> str:
    """A UTC timestamp, shortened for tables: 2026-11-20 09:00:35.010Z."""
    if not text:
        return "—"
    return str(text).replace("T", " ").replace("+00:00", "Z")


def fmt_clock(text: Any) -> str:
    """Time of day of a UTC timestamp (09:00:35.010), for tables whose date is in the header."""
    if not text:
        return "—"
    return str(text).partition("T")[2].removesuffix("+00:00").removesuffix("Z")


def rpo_text(asset: Mapping[str, Any]) -> str:
    rpo = asset.get("rpo")
    if not rpo:
        return "—"
    lost = int(rpo.get("lost_writes", 0))
    return f"{fmt_ms(rpo.get('rpo_ms'))} ({lost} lost write{'s' if lost != 1 else ''})"


def ack_text(asset: Mapping[str, Any]) -> str:
    ack = asset.get("ack")
    if not ack:
        return "—"
    if ack.get("ack_ms") is None:
        return "no ack"
    return fmt_ms(ack.get("ack_ms"))


def assets_by_tier(report: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """Tiers in priority order, each with its assets (assets of an unknown tier come last)."""
    tiers = list(report["scope"]["tiers"])
    known = {t["name"] for t in tiers}
    groups = [(t, [a for a in report["assets"] if a["tier"] == t["name"]]) for t in tiers]
    strays = [a for a in report["assets"] if a["tier"] not in known]
    if strays:
        groups.append(({"name": "(no tier)", "rto_ms": 0, "rpo_ms": None, "verdict": "not-measured"}, strays))
    return [(t, members) for t, members in groups if members]


def findings_by_severity(report: Mapping[str, Any]) -> list[tuple[str, int]]:
    counts = report["summary"]["findings"]
    return [(s, int(counts.get(s, 0))) for s in SEVERITY_ORDER]


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


def timeline_bars(report: Mapping[str, Any]) -> tuple[list[Bar], int]:
    """Rows for the timeline chart and the span (ms) its x axis must cover."""
    injects = [parse_utc(a["t_inject_utc"]) for a in report["assets"] if a.get("t_inject_utc")]
    if not injects:
        return [], 0
    t0 = min(injects)

    def offset(text: Any) -> int | None:
        if not text:
            return None
        return int((parse_utc(str(text)) - t0).total_seconds() * 1000)

    bars = []
    for _, members in assets_by_tier(report):
        for a in members:
            inject = offset(a.get("t_inject_utc"))
            bars.append(
                Bar(
                    asset=str(a["id"]),
                    tier=str(a["tier"]),
                    verdict=str(a["verdict"]),
                    detect_ms=offset(a.get("t_detect_utc")),
                    recover_ms=offset(a.get("t_recover_utc")),
                    inject_ms=inject,
                    target_end_ms=(inject or 0) + int(a["targets"]["rto_ms"]),
                    uncertainty_ms=int(a.get("uncertainty_ms") or 0),
                )
            )
    finished = offset(report["run"].get("finished_utc"))
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
