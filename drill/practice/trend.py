"""Trends over the history: per asset, per tier and per contact chain, quarter over quarter (or run
by run), with the regressions ("issue discovered") and fixes ("issue fixed") named.

Pure functions over a sequence of RunRecords (the history's, `drill.practice.history`):
`compute_trend` decides which runs count and folds them into a `Trend`; `trend_data` (JSON),
`trend_csv`, `trend_text` (80 columns) and `render_trend_html` (one self-contained page, inline
SVG charts, templates/trend.html.j2) show it.

What counts, and why (each run lands in `used` or `excluded`, with the reason):
- Only verified evidence (RunRecord.countable): tampered, unsigned and unreadable folders are
  excluded with the record's problem, and never counted.
- A period is a quarter (RunRecord.quarter; a run that states none is a period of its own), or
  one run with `by="run"`. The latest verified drill of a period represents it (latest by
  start time, then run id); the period's older drills are excluded as superseded. A drill that
  did not run (verdict not-run: nothing was changed) never represents a period.
- Contact tests (mode "contacts") count for time-to-ack only: per chain and period, the
  representing drill and every verified contact test that paged the chain are samples, and the
  slowest is shown (not acknowledged is the slowest of all). A contact test used so is in
  `used` (for time-to-ack) and in `excluded` with scope "drill figures".
- `playbook=`, `asset=`, `tier=` narrow the trend; runs of other playbooks are excluded as such.

Comparisons are between an asset's consecutive *measured* periods: a not-measured period (or
one the asset was not in) is a gap, never a zero, and "last time" is the last period that
measured the objective. A regression is an RTO or RPO target met last time and missed now, or
an achieved RTO worse than last time's by more than `margin_pct` percent (integer arithmetic) and
by more than `min_slower_ms` (the probes' resolution: sub-second noise is not a regression);
a fix is a target missed last time and met now; an asset verdict from pass to fail (or back)
with no RTO/RPO change named is one too (objective "verdict": e.g. a contact chain too late).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import jinja2

from drill.clock import utc_ms
from drill.errors import UsageError
from drill.practice.records import AssetRecord, PageRecord, RunRecord
from drill.units import NOT_MEASURED, human_bp, human_ms
from drill.version import __version__

By = Literal["quarter", "run"]
BY_VALUES: tuple[str, ...] = ("quarter", "run")
DEFAULT_MARGIN_PCT = 20
# Below this an RTO change is within the probes' resolution (a probe interval on each side, the
# default 200 ms and the slowest shipped 500 ms): a percent alone would call sub-second noise a regression.
DEFAULT_MIN_SLOWER_MS = 1000

REGRESSION = "regression"
FIX = "fix"
WORDS = {REGRESSION: "issue discovered", FIX: "issue fixed"}  # Steadybit's words

# Why a run is excluded (ExcludedRun.reason); tampered/unsigned/unreadable are record statuses.
SUPERSEDED = "superseded"
CONTACTS_ONLY = "contacts-only"
OTHER_PLAYBOOK = "other-playbook"
NOT_RUN = "not-run"
NO_MATCHING_ASSET = "no-matching-asset"

SCOPE_ALL = "all"
SCOPE_DRILL = "drill figures"
FOR_DRILL = "drill figures"
FOR_ACK = "time-to-ack"

_MEASURED = ("met", "missed")
_QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])$")


# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Period:
    """One column of the trend: a quarter (or a run), and the drill that represents it."""

    key: str  # "2026-Q1"; the run id when grouped by run or when the run states no quarter
    quarter: str  # "" when the run states none
    run_id: str  # the representing drill ("" when the period has contact tests only)
    folder: str
    started_utc: str
    verdict: str  # the representing drill's verdict ("" without one)
    playbook_sha256: str
    changes: tuple[str, ...]  # what changed in the drilled assets since the previous period's drill
    basis: str  # why this run represents the period, in words
    superseded: tuple[str, ...]  # run ids of the period's older drills


@dataclass(frozen=True, slots=True)
class AssetCell:
    """One asset in one period: the representing drill's figures (None: not measured)."""

    period: str
    run_id: str
    tier: str
    verdict: str
    detection_ms: int | None
    switchover_ms: int | None
    rto_ms: int | None
    rto_target_ms: int | None
    rto_state: str | None
    rpo_ms: int | None
    rpo_target_ms: int | None
    rpo_state: str | None
    lost_writes: int | None
    availability_bp: int | None
    chain: str
    ack_ms: int | None
    definition_changed: bool  # its definition differs from the previous period that had it


@dataclass(frozen=True, slots=True)
class AssetTrend:
    """One asset over the periods: `cells[i]` is periods[i] (None: not in that period's drill)."""

    asset: str
    tier: str  # as in its latest period
    cells: tuple[AssetCell | None, ...]


@dataclass(frozen=True, slots=True)
class TierCell:
    """One tier in one period, over its assets in the representing drill."""

    period: str
    assets: int
    passed: int
    failed: int
    rto_met: int
    rto_missed: int
    worst_rto_ms: int | None  # the slowest achieved RTO (None: none measured)
    rpo_met: int
    rpo_missed: int
    worst_rpo_ms: int | None
    lost_writes: int | None  # the sum over the assets that measured it
    min_availability_bp: int | None
    verdict: str  # fail if any asset failed, else incomplete if any was not shown, else pass


@dataclass(frozen=True, slots=True)
class TierTrend:
    tier: str
    cells: tuple[TierCell | None, ...]


@dataclass(frozen=True, slots=True)
class AckSample:
    """One run's time-to-ack of a chain: its first acknowledgement after the chain was paged."""

    run_id: str
    folder: str
    mode: str  # drill | contacts
    ack_ms: int | None  # None: paged, nobody acknowledged


@dataclass(frozen=True, slots=True)
class ChainCell:
    """One contact chain in one period: the slowest of the period's samples (the representing
    drill and every verified contact test that paged it); not acknowledged is the slowest."""

    period: str
    run_id: str  # the run of the figure shown
    mode: str
    ack_ms: int | None  # None: a run paged the chain and nobody acknowledged
    samples: tuple[AckSample, ...]  # in run order


@dataclass(frozen=True, slots=True)
class ChainTrend:
    chain: str
    cells: tuple[ChainCell | None, ...]  # None: not paged in that period


@dataclass(frozen=True, slots=True)
class Change:
    """A regression ("issue discovered") or a fix ("issue fixed") between two measured periods."""

    kind: str  # regression | fix
    asset: str
    tier: str
    objective: str  # RTO | RPO | verdict
    basis: str  # target | margin | verdict
    before: str  # period key
    before_run: str
    after: str
    after_run: str
    before_ms: int | None
    after_ms: int | None
    before_target_ms: int | None
    after_target_ms: int | None
    before_state: str
    after_state: str
    text: str

    @property
    def words(self) -> str:
        return WORDS[self.kind]


@dataclass(frozen=True, slots=True)
class UsedRun:
    run_id: str
    folder: str
    period: str
    counts_for: tuple[str, ...]  # "drill figures" and/or "time-to-ack"
    chains: tuple[str, ...]  # the chains whose time-to-ack it gives
    reason: str


@dataclass(frozen=True, slots=True)
class ExcludedRun:
    run_id: str
    folder: str
    reason: str  # tampered | unsigned | unreadable | superseded | contacts-only | other-playbook | ...
    scope: str  # "all", or "drill figures" (a contact test still used for time-to-ack)
    detail: str


@dataclass(frozen=True, slots=True)
class Trend:
    """What `drill trend` shows; every figure comes from a run listed in `used`."""

    by: str
    margin_pct: int
    min_slower_ms: int  # a margin regression is also slower by more than this
    playbook: str  # "" when the records hold no countable run
    asset_filter: str
    tier_filter: str
    periods: tuple[Period, ...]
    assets: tuple[AssetTrend, ...]
    tiers: tuple[TierTrend, ...]
    chains: tuple[ChainTrend, ...]
    changes: tuple[Change, ...]
    used: tuple[UsedRun, ...]
    excluded: tuple[ExcludedRun, ...]

    @property
    def regressions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == REGRESSION)

    @property
    def fixes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.kind == FIX)

    @property
    def unit(self) -> str:
        return "quarter" if self.by == "quarter" else "run"

    @property
    def rule(self) -> str:
        """The regression rule, with its margin, in words."""
        return (
            f"A regression (issue discovered) is an RTO or RPO target met last time and missed now, "
            f"or an achieved RTO more than {self.margin_pct} % and more than "
            f"{human_ms(self.min_slower_ms)} slower than last time; a fix (issue "
            f"fixed) is a target missed last time and met now. Last time: the last {self.unit} "
            f"that measured it."
        )


# ---------------------------------------------------------------- computing


def compute_trend(
    records: Iterable[RunRecord],
    *,
    margin_pct: int = DEFAULT_MARGIN_PCT,
    min_slower_ms: int = DEFAULT_MIN_SLOWER_MS,
    by: str = "quarter",
    playbook: str | None = None,
    asset: str | None = None,
    tier: str | None = None,
) -> Trend:
    """The trend of `records` (any order). UsageError for a bad margin or `by`, an unknown
    playbook, asset or tier (the hint lists the known ones), or several playbooks and none chosen."""
    if by not in BY_VALUES:
        raise UsageError(f"cannot group by {by!r}", hint="use quarter or run")
    if margin_pct < 0:
        raise UsageError(f"the margin must be 0 % or more, not {margin_pct} %")
    if min_slower_ms < 0:
        raise UsageError(f"the least slowdown must be 0 ms or more, not {min_slower_ms} ms")
    runs = sorted(records, key=_run_order)
    _check_filters(runs, playbook, asset, tier)
    excluded: list[ExcludedRun] = []
    candidates: list[RunRecord] = []
    for run in runs:
        why = _refusal(run, playbook, asset, tier)
        if why is None:
            candidates.append(run)
        else:
            excluded.append(ExcludedRun(run.run_id, run.folder, why[0], SCOPE_ALL, why[1]))
    names = sorted({r.playbook for r in candidates})
    if playbook is None and len(names) > 1:
        raise UsageError(
            f"the history holds verified runs of {len(names)} playbooks: {', '.join(names)}",
            hint="choose one with --playbook NAME",
        )
    chosen = playbook if playbook is not None else (names[0] if names else "")
    groups = _group(candidates, by)
    periods, reps, ack_sources, used, more_excluded = _periods(groups, by)
    excluded.extend(more_excluded)
    asset_trends = _assets(periods, reps, asset, tier)
    periods = _definition_changes(periods, asset_trends)
    wanted_chains = _wanted_chains(asset_trends) if (asset or tier) else None
    chains = _chains(periods, ack_sources, wanted_chains)
    used = _ack_usage(used, chains)
    excluded.extend(_contacts_exclusions(candidates, used))
    return Trend(
        by=by,
        margin_pct=margin_pct,
        min_slower_ms=min_slower_ms,
        playbook=chosen,
        asset_filter=asset or "",
        tier_filter=tier or "",
        periods=tuple(periods),
        assets=tuple(asset_trends),
        tiers=tuple(_tiers(periods, asset_trends)),
        chains=tuple(chains),
        changes=tuple(c for a in asset_trends for c in _changes(a, margin_pct, min_slower_ms)),
        used=tuple(sorted(used, key=lambda u: (_period_index(periods, u.period), u.run_id, u.folder))),
        excluded=tuple(sorted(excluded, key=lambda e: (e.run_id, e.folder, e.reason))),
    )


def known(records: Iterable[RunRecord]) -> tuple[list[str], list[str], list[str]]:
    """The playbooks, assets and tiers the records name (sorted), for hints."""
    runs = list(records)
    playbooks = sorted({r.playbook for r in runs if r.playbook})
    assets = sorted({a.asset for r in runs for a in r.assets})
    tiers = sorted({a.tier for r in runs for a in r.assets})
    return playbooks, assets, tiers


def _check_filters(runs: list[RunRecord], playbook: str | None, asset: str | None, tier: str | None) -> None:
    if playbook is not None:
        names, _, _ = known(runs)
        if playbook not in names:
            raise UsageError(
                f"no run of playbook {playbook!r} in the history", hint=_known("playbooks", names)
            )
        runs = [r for r in runs if r.playbook == playbook]
    _, assets, tiers = known(runs)
    if asset is not None and asset not in assets:
        raise UsageError(f"no asset {asset!r} in the history", hint=_known("assets", assets))
    if tier is not None and tier not in tiers:
        raise UsageError(f"no tier {tier!r} in the history", hint=_known("tiers", tiers))


def _known(what: str, names: list[str]) -> str:
    if not names:
        return f"the history names no {what}: add evidence folders with `drill history add`"
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"known {what}: {shown}"


def _run_order(run: RunRecord) -> tuple[str, str, str, str]:
    return (run.started_utc or run.generated_utc, run.generated_utc, run.run_id, run.folder)


def _refusal(
    run: RunRecord, playbook: str | None, asset: str | None, tier: str | None
) -> tuple[str, str] | None:
    """Why a run counts for nothing (reason, detail), or None when it may count."""
    if not run.countable:
        return run.status, run.problem or f"the evidence is {run.status}"
    if playbook is not None and run.playbook != playbook:
        return OTHER_PLAYBOOK, f"playbook {run.playbook!r}, not {playbook!r}"
    if run.mode == "drill" and run.verdict == "not-run":
        return NOT_RUN, f"the drill did not run: {run.verdict_reason or 'nothing was changed'}"
    if (asset or tier) and run.mode == "drill" and not any(_selected(a, asset, tier) for a in run.assets):
        return NO_MATCHING_ASSET, f"no asset matching {_filter_text(asset, tier)}"
    return None


def _filter_text(asset: str | None, tier: str | None) -> str:
    return " and ".join(x for x in (f"asset {asset}" if asset else "", f"tier {tier}" if tier else "") if x)


def _selected(record: AssetRecord, asset: str | None, tier: str | None) -> bool:
    return (asset is None or record.asset == asset) and (tier is None or record.tier == tier)


def _group(runs: list[RunRecord], by: str) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:  # in run order, so each group's last drill is its latest
        key = run.quarter if by == "quarter" and run.quarter else run.run_id
        if by == "run" and key in groups:  # two folders of one run id (a copy): keep them apart
            key = f"{run.run_id} ({run.folder})"
        groups.setdefault(key, []).append(run)
    return groups


def _period_sort(key: str, runs: list[RunRecord]) -> tuple[str, str]:
    found = _QUARTER.match(key)
    if found:  # a quarter sorts from its first day, among runs that state none
        return (f"{found[1]}-{(int(found[2]) - 1) * 3 + 1:02d}-01", key)
    return (_run_order(runs[-1])[0], key)


def _periods(
    groups: dict[str, list[RunRecord]], by: str
) -> tuple[list[Period], list[RunRecord | None], list[list[RunRecord]], list[UsedRun], list[ExcludedRun]]:
    ordered = sorted(groups.items(), key=lambda kv: _period_sort(*kv))
    periods: list[Period] = []
    reps: list[RunRecord | None] = []
    ack_sources: list[list[RunRecord]] = []  # per period: runs that may give time-to-ack, latest last
    used: list[UsedRun] = []
    excluded: list[ExcludedRun] = []
    for key, runs in ordered:
        drills = [r for r in runs if r.mode == "drill"]
        rep = drills[-1] if drills else None
        older = drills[:-1]
        for run in older:
            assert rep is not None
            excluded.append(
                ExcludedRun(
                    run.run_id,
                    run.folder,
                    SUPERSEDED,
                    SCOPE_ALL,
                    f"{key} is represented by its latest verified drill, {rep.run_id}",
                )
            )
        basis = _basis(key, rep, drills, by) if rep else f"no verified drill in {key}: contact tests only"
        if rep is not None:
            used.append(UsedRun(rep.run_id, rep.folder, key, (FOR_DRILL,), (), basis))
        periods.append(
            Period(
                key=key,
                quarter=runs[-1].quarter,
                run_id=rep.run_id if rep else "",
                folder=rep.folder if rep else "",
                started_utc=rep.started_utc if rep else "",
                verdict=rep.verdict if rep else "",
                playbook_sha256=rep.playbook_sha256 if rep else "",
                changes=(),
                basis=basis,
                superseded=tuple(r.run_id for r in older),
            )
        )
        reps.append(rep)
        ack_sources.append([r for r in runs if r is rep or r.mode == "contacts"])
    return periods, reps, ack_sources, used, excluded


def _basis(key: str, rep: RunRecord, drills: list[RunRecord], by: str) -> str:
    if by == "run":
        return "this run"
    if not rep.quarter:
        return "this run (it states no quarter)"
    if len(drills) == 1:
        return f"the only verified drill of {key}"
    return f"the latest verified drill of {key} (of {len(drills)} verified drills)"


def _period_index(periods: Sequence[Period], key: str) -> int:
    return next((i for i, p in enumerate(periods) if p.key == key), len(periods))


def _assets(
    periods: list[Period], reps: list[RunRecord | None], asset: str | None, tier: str | None
) -> list[AssetTrend]:
    order: list[str] = []
    tier_order: list[str] = []
    latest_tier: dict[str, str] = {}
    for rep in reversed(reps):  # the latest drill's order first (the plan's order)
        for a in rep.assets if rep else ():
            if not _selected(a, asset, tier):
                continue
            if a.asset not in latest_tier:
                latest_tier[a.asset] = a.tier
                order.append(a.asset)
            if a.tier not in tier_order:
                tier_order.append(a.tier)
    order.sort(key=lambda name: tier_order.index(latest_tier[name]))  # stable: plan order per tier
    out = []
    for name in order:
        cells: list[AssetCell | None] = []
        last_definition = ""
        for period, rep in zip(periods, reps, strict=True):
            record = next((a for a in rep.assets if a.asset == name), None) if rep else None
            if rep is None or record is None or not _selected(record, asset, tier):
                cells.append(None)
                continue
            changed = bool(last_definition) and record.definition_sha256 != last_definition
            last_definition = record.definition_sha256 or last_definition
            cells.append(_cell(period.key, rep.run_id, record, changed))
        out.append(AssetTrend(name, latest_tier[name], tuple(cells)))
    return out


def _cell(period: str, run_id: str, a: AssetRecord, changed: bool) -> AssetCell:
    return AssetCell(
        period=period,
        run_id=run_id,
        tier=a.tier,
        verdict=a.verdict,
        detection_ms=a.detection_ms,
        switchover_ms=a.switchover_ms,
        rto_ms=a.rto_ms,
        rto_target_ms=a.rto_target_ms,
        rto_state=a.rto_state,
        rpo_ms=a.rpo_ms,
        rpo_target_ms=a.rpo_target_ms,
        rpo_state=a.rpo_state,
        lost_writes=a.lost_writes,
        availability_bp=a.availability_bp,
        chain=a.chain,
        ack_ms=a.ack_ms,
        definition_changed=changed,
    )


def _tiers(periods: list[Period], assets: list[AssetTrend]) -> list[TierTrend]:
    names: list[str] = []
    for a in assets:
        for cell in a.cells:
            if cell is not None and cell.tier not in names:
                names.append(cell.tier)
    out = []
    for name in names:
        cells: list[TierCell | None] = []
        for i, period in enumerate(periods):
            members = [c for a in assets if (c := a.cells[i]) is not None and c.tier == name]
            cells.append(_tier_cell(period.key, members) if members else None)
        out.append(TierTrend(name, tuple(cells)))
    return out


def _tier_cell(period: str, members: list[AssetCell]) -> TierCell:
    def worst(values: Iterable[int | None]) -> int | None:
        return max((v for v in values if v is not None), default=None)

    lost = [c.lost_writes for c in members if c.lost_writes is not None]
    avail = [c.availability_bp for c in members if c.availability_bp is not None]
    verdicts = [c.verdict for c in members]
    if "fail" in verdicts:
        verdict = "fail"
    elif all(v in ("pass", "unaffected") for v in verdicts):
        verdict = "pass" if "pass" in verdicts else "unaffected"
    else:
        verdict = "incomplete"
    return TierCell(
        period=period,
        assets=len(members),
        passed=verdicts.count("pass"),
        failed=verdicts.count("fail"),
        rto_met=sum(c.rto_state == "met" for c in members),
        rto_missed=sum(c.rto_state == "missed" for c in members),
        worst_rto_ms=worst(c.rto_ms for c in members),
        rpo_met=sum(c.rpo_state == "met" for c in members),
        rpo_missed=sum(c.rpo_state == "missed" for c in members),
        worst_rpo_ms=worst(c.rpo_ms for c in members),
        lost_writes=sum(lost) if lost else None,
        min_availability_bp=min(avail) if avail else None,
        verdict=verdict,
    )


def _wanted_chains(assets: list[AssetTrend]) -> set[str]:
    return {c.chain for a in assets for c in a.cells if c is not None and c.chain}


def _chain_names(run: RunRecord) -> list[str]:
    names = [p.chain for p in run.pages] + [a.chain for a in run.assets if a.ack_ms is not None]
    return sorted({n for n in names if n})


def chain_ack_ms(run: RunRecord, chain: str) -> tuple[bool, int | None]:
    """(paged, first acknowledgement in ms after the chain was first paged) of one run.

    A drill's figure is the report's (its assets' `ack_ms`); otherwise it is read from the pages:
    the earliest acknowledgement instant (sent + ack_ms) less the chain's first page's sent time."""
    from_assets = [a.ack_ms for a in run.assets if a.chain == chain and a.ack_ms is not None]
    if from_assets:
        return True, min(from_assets)
    pages = [p for p in run.pages if p.chain == chain]
    if not pages:
        return False, None
    return True, _pages_ack_ms(pages)


def _pages_ack_ms(pages: list[PageRecord]) -> int | None:
    sent = {id(p): _utc_ms(p.sent_utc) for p in pages}
    firsts = [s for s in sent.values() if s is not None]
    acks = [
        s + p.ack_ms for p in pages if p.acked and p.ack_ms is not None and (s := sent[id(p)]) is not None
    ]
    if not acks or not firsts:  # not acknowledged, or times drill cannot read
        fallback = [p.ack_ms for p in pages if p.acked and p.ack_ms is not None]
        return min(fallback) if fallback else None
    return max(0, min(acks) - min(firsts))


def _utc_ms(text: str) -> int | None:
    try:
        return utc_ms(text)
    except ValueError:
        return None


def _chains(
    periods: list[Period], ack_sources: list[list[RunRecord]], wanted: set[str] | None
) -> list[ChainTrend]:
    names = sorted({n for runs in ack_sources for r in runs for n in _chain_names(r)})
    if wanted is not None:
        names = [n for n in names if n in wanted]
    out = []
    for name in names:
        cells: list[ChainCell | None] = []
        for period, runs in zip(periods, ack_sources, strict=True):
            samples = []
            for run in runs:
                paged, ack = chain_ack_ms(run, name)
                if paged:
                    samples.append(AckSample(run.run_id, run.folder, run.mode, ack))
            if not samples:
                cells.append(None)
                continue
            slowest = max(reversed(samples), key=lambda x: (x.ack_ms is None, x.ack_ms or 0))
            cells.append(ChainCell(period.key, slowest.run_id, slowest.mode, slowest.ack_ms, tuple(samples)))
        out.append(ChainTrend(name, tuple(cells)))
    return out


def _ack_usage(used: list[UsedRun], chains: list[ChainTrend]) -> list[UsedRun]:
    """`used` with each run's time-to-ack chains added, and the contact tests that gave one."""
    gives: dict[tuple[str, str, str], list[str]] = {}  # (period, run id, folder) -> chains
    for chain in chains:
        for cell in chain.cells:
            if cell is None:
                continue
            for sample in cell.samples:
                gives.setdefault((cell.period, sample.run_id, sample.folder), []).append(chain.chain)
    out = []
    for u in used:
        names = tuple(gives.pop((u.period, u.run_id, u.folder), ()))
        if names:
            u = UsedRun(u.run_id, u.folder, u.period, (*u.counts_for, FOR_ACK), names, u.reason)
        out.append(u)
    for (period, run_id, folder), chain_names in sorted(gives.items()):
        why = f"a verified contact test of {period}"
        out.append(UsedRun(run_id, folder, period, (FOR_ACK,), tuple(chain_names), why))
    return out


def _contacts_exclusions(candidates: list[RunRecord], used: list[UsedRun]) -> list[ExcludedRun]:
    using = {(u.run_id, u.folder) for u in used}
    out = []
    for run in candidates:
        if run.mode != "contacts":
            continue
        if (run.run_id, run.folder) in using:
            reason, scope, detail = CONTACTS_ONLY, SCOPE_DRILL, "a contact test: counted for time-to-ack only"
        elif not _chain_names(run):
            reason, scope, detail = CONTACTS_ONLY, SCOPE_ALL, "a contact test that paged no chain"
        else:  # its chains are not the chosen assets'
            reason, scope = NO_MATCHING_ASSET, SCOPE_ALL
            detail = "a contact test of no chain of the chosen assets"
        out.append(ExcludedRun(run.run_id, run.folder, reason, scope, detail))
    return out


def _definition_changes(periods: list[Period], assets: list[AssetTrend]) -> list[Period]:
    """The periods with what changed in the drilled assets since the previous period's drill:
    a definition (targets, probes, dependencies), an asset new to the drill or no longer in it."""
    out = []
    previous: int | None = None  # index of the previous period with a drill
    for i, period in enumerate(periods):
        if not period.run_id:
            out.append(period)
            continue
        changes = []
        for a in assets:
            cell = a.cells[i]
            before = a.cells[previous] if previous is not None else None
            if cell is not None and cell.definition_changed:
                changes.append(f"{a.asset}: definition changed")
            elif previous is not None and cell is not None and before is None:
                changes.append(f"{a.asset}: new in the drill")
            elif cell is None and before is not None:
                changes.append(f"{a.asset}: no longer in the drill")
        out.append(dataclasses.replace(period, changes=tuple(changes)))
        previous = i
    return out


def _changes(trend: AssetTrend, margin_pct: int, min_slower_ms: int) -> list[Change]:
    out: list[Change] = []
    last: dict[str, AssetCell] = {}  # objective -> the last cell that measured it
    last_rto: AssetCell | None = None
    last_verdict: AssetCell | None = None
    for cell in trend.cells:
        if cell is None:
            continue
        named: list[Change] = []
        for objective in ("RTO", "RPO"):
            state = cell.rto_state if objective == "RTO" else cell.rpo_state
            if state not in _MEASURED:
                continue
            prev = last.get(objective)
            if prev is not None:
                prev_state = prev.rto_state if objective == "RTO" else prev.rpo_state
                if prev_state != state:
                    kind = REGRESSION if state == "missed" else FIX
                    named.append(_target_change(kind, trend, objective, prev, cell))
            last[objective] = cell
        if cell.rto_ms is not None:
            prev_rto = last_rto
            if (
                prev_rto is not None
                and prev_rto.rto_ms
                and not any(c.objective == "RTO" for c in named)
                and cell.rto_ms * 100 > prev_rto.rto_ms * (100 + margin_pct)
                and cell.rto_ms - prev_rto.rto_ms > min_slower_ms
            ):
                named.append(_margin_change(trend, prev_rto, cell, margin_pct))
            last_rto = cell
        if cell.verdict in ("pass", "fail"):
            if last_verdict is not None and last_verdict.verdict != cell.verdict and not named:
                kind = REGRESSION if cell.verdict == "fail" else FIX
                named.append(_verdict_change(kind, trend, last_verdict, cell))
            last_verdict = cell
        out.extend(named)
    return out


def _figures(cell: AssetCell, objective: str) -> tuple[int | None, int | None, str]:
    if objective == "RTO":
        return cell.rto_ms, cell.rto_target_ms, cell.rto_state or ""
    return cell.rpo_ms, cell.rpo_target_ms, cell.rpo_state or ""


def _target_change(kind: str, trend: AssetTrend, objective: str, prev: AssetCell, cell: AssetCell) -> Change:
    b_ms, b_target, b_state = _figures(prev, objective)
    a_ms, a_target, a_state = _figures(cell, objective)
    text = (
        f"{trend.asset} {objective}: {b_state} in {prev.period} ({human_ms(b_ms)}, target "
        f"{human_ms(b_target)}), {a_state} in {cell.period} ({human_ms(a_ms)}, target {human_ms(a_target)})"
    )
    return Change(
        kind, trend.asset, cell.tier, objective, "target", prev.period, prev.run_id, cell.period,
        cell.run_id, b_ms, a_ms, b_target, a_target, b_state, a_state, text,
    )  # fmt: skip


def _margin_change(trend: AssetTrend, prev: AssetCell, cell: AssetCell, margin_pct: int) -> Change:
    assert prev.rto_ms and cell.rto_ms is not None
    pct = (cell.rto_ms - prev.rto_ms) * 100 // prev.rto_ms
    text = (
        f"{trend.asset} RTO: {human_ms(prev.rto_ms)} in {prev.period}, {human_ms(cell.rto_ms)} in "
        f"{cell.period}: {pct} % slower (margin {margin_pct} %)"
    )
    return Change(
        REGRESSION, trend.asset, cell.tier, "RTO", "margin", prev.period, prev.run_id, cell.period,
        cell.run_id, prev.rto_ms, cell.rto_ms, prev.rto_target_ms, cell.rto_target_ms,
        prev.rto_state or "", cell.rto_state or "", text,
    )  # fmt: skip


def _verdict_change(kind: str, trend: AssetTrend, prev: AssetCell, cell: AssetCell) -> Change:
    text = (
        f"{trend.asset} verdict: {prev.verdict.upper()} in {prev.period}, {cell.verdict.upper()} in "
        f"{cell.period}, with no RTO or RPO change (see the report of {cell.run_id})"
    )
    return Change(
        kind, trend.asset, cell.tier, "verdict", "verdict", prev.period, prev.run_id, cell.period,
        cell.run_id, None, None, None, None, prev.verdict, cell.verdict, text,
    )  # fmt: skip


# ---------------------------------------------------------------- JSON and CSV


def trend_data(trend: Trend) -> dict[str, object]:
    """The trend as one JSON document: durations in integer ms, null for not measured."""

    def cells(items: Sequence[object | None]) -> list[dict[str, object]]:
        return [_plain(c) for c in items if c is not None]

    return {
        "by": trend.by,
        "playbook": trend.playbook,
        "filters": {"asset": trend.asset_filter or None, "tier": trend.tier_filter or None},
        "margin_pct": trend.margin_pct,
        "min_slower_ms": trend.min_slower_ms,
        "rule": trend.rule,
        "periods": [_plain(p) for p in trend.periods],
        "assets": [{"asset": a.asset, "tier": a.tier, "periods": cells(a.cells)} for a in trend.assets],
        "tiers": [{"tier": t.tier, "periods": cells(t.cells)} for t in trend.tiers],
        "chains": [{"chain": c.chain, "periods": cells(c.cells)} for c in trend.chains],
        "regressions": [_change_data(c) for c in trend.regressions],
        "fixes": [_change_data(c) for c in trend.fixes],
        "used": [_plain(u) for u in trend.used],
        "excluded": [_plain(e) for e in trend.excluded],
    }


def _plain(item: object) -> dict[str, object]:
    assert dataclasses.is_dataclass(item) and not isinstance(item, type)
    return {f.name: _listed(getattr(item, f.name)) for f in dataclasses.fields(item)}


def _listed(value: object) -> object:
    if isinstance(value, tuple):
        return [_listed(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(value)
    return value


def _change_data(change: Change) -> dict[str, object]:
    return {**_plain(change), "words": change.words}


CSV_COLUMNS = (
    "asset", "tier", "period", "quarter", "run_id", "verdict", "detection_ms", "switchover_ms",
    "rto_ms", "rto_target_ms", "rto_state", "rpo_ms", "rpo_target_ms", "rpo_state", "lost_writes",
    "availability_bp", "chain", "ack_ms", "definition_changed", "changes", "note",
)  # fmt: skip


def trend_csv(trend: Trend) -> str:
    """One row per asset × period (empty cells: not measured); `changes` names the regressions
    and fixes that end in that period. Text that a spreadsheet would run as a formula is quoted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in trend.assets:
        for period, cell in zip(trend.periods, a.cells, strict=True):
            changes = "; ".join(
                f"{c.words}: {c.objective}"
                for c in trend.changes
                if c.asset == a.asset and c.after == period.key
            )
            if cell is None:
                note = "not in this period's drill" if period.run_id else "no drill in this period"
                row: list[object] = [a.asset, a.tier, period.key, period.quarter, period.run_id]
                row += [""] * (len(CSV_COLUMNS) - len(row) - 2) + [changes, note]
            else:
                row = [
                    a.asset, cell.tier, period.key, period.quarter, cell.run_id, cell.verdict,
                    cell.detection_ms, cell.switchover_ms, cell.rto_ms, cell.rto_target_ms,
                    cell.rto_state, cell.rpo_ms, cell.rpo_target_ms, cell.rpo_state, cell.lost_writes,
                    cell.availability_bp, cell.chain, cell.ack_ms,
                    "yes" if cell.definition_changed else "no", changes, "",
                ]  # fmt: skip
            writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# ---------------------------------------------------------------- shared by the views

BADGE = {
    "pass": "PASS",
    "fail": "FAIL",
    "incomplete": "INCOMPLETE",
    "unaffected": "UNAFFECTED",
    "not-measured": "NOT MEASURED",
    "aborted": "ABORTED",
    "not-run": "NOT RUN",
    "": "—",
}
_MARK = {"met": " ✓", "missed": " ✗"}


def badge(verdict: str) -> str:
    """A verdict as the views show it: PASS, FAIL, NOT MEASURED, ... ('—' for none)."""
    return BADGE.get(verdict, verdict.upper())


def achieved_vs_target(ms: int | None, target: int | None, state: str | None) -> str:
    """'1.6 s / 5 s ✓' (met), '7 s / 5 s ✗' (missed), '— / 5 s' (not measured)."""
    text = f"{human_ms(ms)} / {human_ms(target)}" if target is not None else human_ms(ms)
    return text + _MARK.get(state or "", "")


def count_text(n: int | None) -> str:
    """A count, or '—' when it was not measured."""
    return NOT_MEASURED if n is None else str(n)


def filter_text(asset: str, tier: str) -> str:
    """'asset web and tier tier-0' (either may be empty)."""
    return _filter_text(asset or None, tier or None)


# ---------------------------------------------------------------- HTML

# Chart geometry (px)
_CHART_LEFT = 78
_CHART_TOP = 28
_PLOT_H = 170
_SLOT_MIN = 110
_PLOT_W_MIN = 640
_CHART_BOTTOM = 58
_RIGHT = 96


@dataclass(frozen=True, slots=True)
class _Point:
    x: int
    y: int | None  # None: not measured (a gap)
    label: str  # the period, shortened to its slot
    sub: str  # under it: the run's quarter when grouped by run
    value: str
    state: str  # met | missed | other
    verdict: str
    gap: str  # "not measured" | "not in drill" | "no drill" ("" when measured)
    title: str
    mark: str  # e.g. "issue discovered: RPO" ("" when nothing changed)


@dataclass(frozen=True, slots=True)
class _Chart:
    asset: str
    width: int
    height: int
    left: int
    top: int
    bottom: int  # y of the x axis
    right: int
    slot: int
    points: tuple[_Point, ...]
    segments: tuple[tuple[int, int, int, int], ...]  # achieved RTO between adjacent measured periods
    targets: tuple[tuple[int, int, int], ...]  # (x1, x2, y) of the target across each period's slot
    target_label: str
    ticks: tuple[tuple[int, str], ...]


_TICK_STEPS = (
    10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 86_400_000,
)  # fmt: skip


def _ticks(top_ms: int) -> list[int]:
    step = next((s for s in _TICK_STEPS if top_ms / s <= 5), _TICK_STEPS[-1])
    return list(range(0, top_ms + 1, step))


def _asset_chart(trend: Trend, a: AssetTrend) -> _Chart:
    n = max(1, len(trend.periods))
    slot = max(_SLOT_MIN, _PLOT_W_MIN // n)
    plot_w = slot * n
    values = [v for c in a.cells if c is not None for v in (c.rto_ms, c.rto_target_ms) if v is not None]
    top_ms = max(values, default=1000)
    top_ms = max(1, top_ms + top_ms // 8)
    ticks = _ticks(top_ms)
    top_ms = max(top_ms, ticks[-1])
    bottom = _CHART_TOP + _PLOT_H

    def y(ms: int) -> int:
        return bottom - ms * _PLOT_H // top_ms

    marks: dict[str, list[str]] = {}
    for change in trend.changes:
        if change.asset == a.asset:
            marks.setdefault(change.after, []).append(f"{change.words}: {change.objective}")
    points: list[_Point] = []
    targets: list[tuple[int, int, int]] = []
    for i, (period, cell) in enumerate(zip(trend.periods, a.cells, strict=True)):
        x = _CHART_LEFT + i * slot + slot // 2
        label = period.key if len(period.key) <= slot // 7 else period.key[: slot // 7 - 1] + "…"
        sub = period.quarter if trend.by == "run" else ""
        if cell is None:
            gap = "not in drill" if period.run_id else "no drill"
            title = (
                f"{a.asset} in {period.key}: {'not in this drill' if period.run_id else 'no verified drill'}"
            )
            points.append(_Point(x, None, label, sub, "", "other", "", gap, title, ""))
            continue
        if cell.rto_target_ms is not None:
            targets.append((_CHART_LEFT + i * slot, _CHART_LEFT + (i + 1) * slot, y(cell.rto_target_ms)))
        state = cell.rto_state if cell.rto_state in _MEASURED else "other"
        measured = cell.rto_ms is not None
        title = (
            f"{a.asset} in {period.key} (run {cell.run_id}): achieved RTO {human_ms(cell.rto_ms)}, target "
            f"{human_ms(cell.rto_target_ms)}, {cell.rto_state or 'no RTO objective'}; verdict {badge(cell.verdict)}"
        )
        points.append(
            _Point(
                x=x,
                y=y(cell.rto_ms) if cell.rto_ms is not None else None,
                label=label,
                sub=sub,
                value=human_ms(cell.rto_ms) if measured else "",
                state=state or "other",
                verdict=cell.verdict,
                gap="" if measured else "not measured",
                title=title,
                mark="; ".join(marks.get(period.key, ())),
            )
        )
    segments = tuple(
        (p.x, p.y, q.x, q.y) for p, q in itertools.pairwise(points) if p.y is not None and q.y is not None
    )
    last_target = next(
        (c.rto_target_ms for c in reversed(a.cells) if c and c.rto_target_ms is not None), None
    )
    return _Chart(
        asset=a.asset,
        width=_CHART_LEFT + plot_w + _RIGHT,
        height=bottom + _CHART_BOTTOM,
        left=_CHART_LEFT,
        top=_CHART_TOP,
        bottom=bottom,
        right=_CHART_LEFT + plot_w,
        slot=slot,
        points=tuple(points),
        segments=segments,
        targets=tuple(targets),
        target_label=f"target {human_ms(last_target)}" if last_target is not None else "",
        ticks=tuple((y(t), human_ms(t)) for t in ticks),
    )


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drill.practice", "templates"),
        autoescape=True,  # every name in a trend is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(ms=human_ms, bp=human_bp, badge=badge, count=count_text)
    return env


def render_trend_html(trend: Trend) -> str:
    """The trend as one self-contained HTML page (inline CSS and SVG, no script, no network);
    deterministic: the same trend gives the same bytes."""
    return (
        _environment()
        .get_template("trend.html.j2")
        .render(
            t=trend,
            charts=[_asset_chart(trend, a) for a in trend.assets],
            excluded_runs=len({(e.run_id, e.folder) for e in trend.excluded if e.scope == SCOPE_ALL}),
            version=__version__,
            vs=achieved_vs_target,
        )
    )
