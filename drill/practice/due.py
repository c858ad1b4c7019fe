"""Drills due: per asset, the last drill that tested it, when the next is due, overdue first.

A pure fold over the history's RunRecords (`compute_due`); the CLI (`drill due`) reads them from
the index. The rules, decided here and stated in the README:

- **What counts.** Only countable drill runs: verified evidence (RunRecord.countable), mode
  "drill". A contact test, or a tampered, unsigned or unreadable folder, contributes nothing: no
  asset, no tier, no definition and no test. Each is listed as excluded, with the reason.
- **Which assets are due.** Those of each playbook's latest counted drill (the playbook as last
  verified), or, when the current playbook is given (`current`, `drill due --playbook FILE`),
  that playbook's assets as they are now: an asset added since shows as never tested.
- **Tested.** A run tested an asset when at least one of its objectives (RTO, RPO) was measured
  there: met or missed. An asset `unaffected` (the outage never reached it) or `not measured` was
  not tested. A failed test is a test: it resets the cadence (the failure itself is the
  after-action review's business) and shows as the last result.
- **The day of a test** is the calendar day, in the stated IANA zone, of the run's generated_utc
  (the signed report's time: when the run ended).
- **Due** = that day plus the tier's cadence: calendar months first (the same day of the month,
  the month's last day when it has no such day: 31 January + 1 month = 28 or 29 February), then
  days. A due date is a calendar day in the zone, so a DST change in between moves nothing.
  **Overdue**: the as-of day (in the zone) is after the due day. Never tested: overdue.
- **Needs verification** (Veeam's NEEDS VERIFIED): the asset's current definition_sha256 differs
  from the one in its last passing drill (asset verdict pass in a run that tested it), or it never
  passed one, or either definition is unknown.
- **The gate.** Per playbook, the gate tier is the one named, else the playbook's first tier in
  priority order (the current playbook's, else that of its latest counted drill, whose report
  lists the assets in plan order: tiers in priority order); `DueReport.exit_code` is 1 when any
  asset of a gate tier is overdue.
- **The zone** must be named: `localtime`, `posixrules` and `Factory` name no zone of their own
  (the machine's, another's copy, an unset one) and are refused.
"""

from __future__ import annotations

import calendar
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drill.clock import parse_utc
from drill.errors import EXIT_FAILED, EXIT_OK, UsageError
from drill.practice.records import AssetRecord, RunRecord

MEASURED = ("met", "missed")  # objective states that mean the objective was measured
DEFAULT_CADENCE_TEXT = "3mo"  # quarterly
_MAX_MONTHS = 1200  # a century: enough for any cadence, far from date.max
_MAX_DAYS = 36_600
WIDTH = 80  # the text view's lines (a long name or run id excepted)

DueStatus = Literal["never tested", "overdue", "due today", "not yet due"]


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often an asset must be drilled: calendar months, then days (3mo, 1mo, 90d, 1mo15d)."""

    months: int
    days: int
    text: str  # as written, e.g. "3mo"

    def after(self, day: date) -> date:
        """The calendar day this cadence after `day` (months clamped to the month's last day);
        date.max when that is past the calendar's end (a report dated near year 9999)."""
        month_index = day.month - 1 + self.months
        year, month = day.year + month_index // 12, month_index % 12 + 1
        if year > date.max.year:
            return date.max
        last = calendar.monthrange(year, month)[1]
        try:
            return date(year, month, min(day.day, last)) + timedelta(days=self.days)
        except OverflowError:
            return date.max

    @property
    def human(self) -> str:
        """'3 months', '1 month', '90 days', '1 month 15 days'."""
        parts = []
        if self.months:
            parts.append(f"{self.months} month{'s' if self.months != 1 else ''}")
        if self.days:
            parts.append(f"{self.days} day{'s' if self.days != 1 else ''}")
        return " ".join(parts)


_CADENCE = re.compile(r"(?:(\d+)y)?(?:(\d+)mo)?(?:(\d+)w)?(?:(\d+)d)?")
_CADENCE_HINT = "use calendar months or days, largest first: 3mo, 1mo, 6w, 90d, 1y, 1mo15d"


def parse_cadence(text: str) -> Cadence:
    """A cadence from `3mo`, `1mo15d`, `90d`, `2w` or `1y` (12 months); UsageError otherwise."""
    spelled = text.strip()
    match = _CADENCE.fullmatch(spelled)
    if not spelled or match is None:
        hint = _CADENCE_HINT
        if re.fullmatch(r"\d+m", spelled):
            hint = f"'m' is minutes in drill durations; months are 'mo' ({spelled}o); " + hint
        raise UsageError(f"cadence {text!r} is not a number of months or days", hint=hint)
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    total_months, total_days = years * 12 + months, weeks * 7 + days
    if not total_months and not total_days:
        raise UsageError(f"cadence {text!r} is zero", hint=_CADENCE_HINT)
    if total_months > _MAX_MONTHS or total_days > _MAX_DAYS:
        raise UsageError(f"cadence {text!r} is longer than a century", hint=_CADENCE_HINT)
    return Cadence(total_months, total_days, spelled)


def parse_tier_cadences(pairs: Iterable[str]) -> dict[str, Cadence]:
    """{tier: cadence} from `TIER=DURATION` texts (a tier given twice: the last one wins)."""
    cadences: dict[str, Cadence] = {}
    for pair in pairs:
        tier, sep, spelled = pair.partition("=")
        if not sep or not tier.strip():
            raise UsageError(
                f"--tier-cadence {pair!r} is not TIER=CADENCE",
                hint="e.g. --tier-cadence data=1mo --tier-cadence internal=6mo",
            )
        cadences[tier.strip()] = parse_cadence(spelled)
    return cadences


_NOT_A_ZONE = {
    "localtime": "the machine's own zone",
    "posixrules": "a copy of another zone's rules",
    "Factory": "a zone for 'local time not set'",
}


def parse_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (Europe/Berlin, America/New_York, UTC); UsageError otherwise,
    also for the tz database's entries that name no zone of their own (_NOT_A_ZONE)."""
    if name.strip() in _NOT_A_ZONE:
        raise UsageError(
            f"time zone {name!r} is {_NOT_A_ZONE[name.strip()]}, not a stated IANA zone",
            hint="name the zone the dates are meant in, such as Europe/Berlin or UTC",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"time zone {name!r} is not a known IANA time zone",
            hint="name one such as UTC, Europe/Berlin or America/New_York (the tzdata database must be installed)",
        ) from None


def parse_as_of(text: str | None, zone: ZoneInfo, now: datetime) -> date:
    """The as-of day in `zone`: a date (YYYY-MM-DD, a day in the zone), a time with its offset
    (its day in the zone), or, with None, `now`'s day in the zone. UsageError otherwise."""
    if text is None:
        return now.astimezone(zone).date()
    spelled = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", spelled):
        try:
            return date.fromisoformat(spelled)
        except ValueError as exc:
            raise UsageError(f"--as-of {text!r} is not a date: {exc}") from None
    try:
        moment = datetime.fromisoformat(spelled)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(
            f"--as-of {text!r} is neither a date nor a time with its offset",
            hint="e.g. 2026-03-30 (a day in --time-zone) or 2026-03-29T01:30:00+00:00",
        )
    return moment.astimezone(zone).date()


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CurrentAsset:
    """An asset as it is now: from the playbook given, or from the latest counted drill."""

    asset: str
    tier: str
    definition_sha256: str  # "" when unknown


@dataclass(frozen=True, slots=True)
class CurrentPlaybook:
    """A playbook as it is now (`drill due --playbook FILE`): its assets and tier order."""

    name: str
    assets: tuple[CurrentAsset, ...]
    tiers: tuple[str, ...]  # priority order


@dataclass(frozen=True, slots=True)
class RunTest:
    """One run's test of one asset."""

    run_id: str
    report_sha256: str
    folder: str
    quarter: str
    generated_utc: str
    day: date  # generated_utc's calendar day in the zone
    verdict: str  # the asset's verdict in that run
    definition_sha256: str


@dataclass(frozen=True, slots=True)
class AssetDue:
    """When one asset of one playbook is next due a drill, and why."""

    playbook: str
    asset: str
    tier: str
    gate: bool  # in its playbook's gate tier
    cadence: Cadence
    last_test: RunTest | None  # None: never tested by a counted drill
    last_pass: RunTest | None
    due: date | None  # None: never tested, so due already
    days_left: int | None  # due - as_of in days (negative: overdue); None: never tested
    status: DueStatus
    needs_verification: bool
    verification_reason: str  # why it needs verification ("" when it does not)

    @property
    def overdue(self) -> bool:
        return self.status in ("never tested", "overdue")


@dataclass(frozen=True, slots=True)
class Excluded:
    """A run of the history that `drill due` did not count, and why."""

    run_id: str
    folder: str
    playbook: str
    reason: str


@dataclass(frozen=True, slots=True)
class DueReport:
    as_of: date
    time_zone: str
    default_cadence: Cadence
    cadences: tuple[tuple[str, Cadence], ...]  # per tier, as given
    gate_tiers: tuple[tuple[str, str], ...]  # (playbook, gate tier)
    assets: tuple[AssetDue, ...]  # overdue first (never tested, then most overdue), then soonest due
    used: tuple[str, ...]  # run ids of the counted drills
    excluded: tuple[Excluded, ...]
    current_playbooks: tuple[str, ...] = ()  # the playbooks given as they are now
    notes: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """1 when an asset of a gate tier is overdue (never tested included), else 0."""
        return EXIT_FAILED if any(a.gate and a.overdue for a in self.assets) else EXIT_OK


def tested(asset: AssetRecord) -> bool:
    """Did the run measure at least one of the asset's objectives (met or missed)?"""
    return asset.rto_state in MEASURED or asset.rpo_state in MEASURED


def day_in(utc_text: str, zone: ZoneInfo) -> date:
    """The calendar day in `zone` of a UTC ISO 8601 time with offset (ValueError when it is not one)."""
    return parse_utc(utc_text).astimezone(zone).date()


def compute_due(
    records: Sequence[RunRecord],
    *,
    as_of: date,
    zone: ZoneInfo,
    default_cadence: Cadence,
    cadences: Mapping[str, Cadence] | None = None,
    tier_orders: Mapping[str, Sequence[str]] | None = None,
    gate_tier: str | None = None,
    current: Sequence[CurrentPlaybook] = (),
    only_current: bool = False,
    playbook: str | None = None,
) -> DueReport:
    """Every asset's due date (see the module docstring for the rules).

    records: the history, oldest first (History.records order). tier_orders: each playbook's
    tiers in priority order, for the default gate (the first); without it, the order of the
    tiers' first assets in the playbook's latest counted drill. current: playbooks as they are
    now, whose assets and definitions replace those of their latest counted drill; only_current:
    only those playbooks are due (`drill due --playbook`: one playbook's pipeline is not gated by
    another's). playbook: only that playbook. UsageError for a cadence or gate tier no asset
    has, an unknown playbook, or a playbook whose tier order is not known and no gate tier.
    """
    cadences = dict(cadences or {})
    tier_orders = dict(tier_orders or {})
    names = {now.name for now in current} if only_current else None
    if playbook is not None:
        names = {playbook} if names is None else names & {playbook}
    counted, excluded = _split(records, zone, names)
    latest: dict[str, RunRecord] = {}
    for record in counted:
        latest[record.playbook] = record  # oldest first: the last one wins
    wanted: dict[str, tuple[CurrentAsset, ...]] = {
        name: tuple(CurrentAsset(a.asset, a.tier, a.definition_sha256) for a in record.assets)
        for name, record in latest.items()
    }
    for name, record in latest.items():
        tier_orders.setdefault(name, tuple(dict.fromkeys(a.tier for a in record.assets)))
    for now in current:
        if names is None or now.name in names:
            wanted[now.name] = now.assets
            tier_orders[now.name] = now.tiers
    if playbook is not None and playbook not in wanted:
        known = sorted({r.playbook for r in records if r.playbook})
        raise UsageError(
            f"no counted drill of playbook {playbook!r} in the history",
            hint=f"playbooks with runs: {', '.join(known)}"
            if known
            else "add evidence with `drill history add`",
        )
    tiers = {a.tier for assets in wanted.values() for a in assets}
    for tier in cadences:
        if tier not in tiers:
            raise UsageError(
                f"--tier-cadence names tier {tier!r}, which no asset due is in",
                hint=f"tiers: {', '.join(sorted(tiers)) or '(none)'}",
            )
    if gate_tier is not None and wanted and gate_tier not in tiers:
        raise UsageError(
            f"--gate-tier {gate_tier!r} is no tier of an asset due",
            hint=f"tiers: {', '.join(sorted(tiers)) or '(none)'}",
        )
    gates = {name: _gate(name, gate_tier, tier_orders, assets) for name, assets in wanted.items()}
    tests = _tests(counted, zone)
    rows = [
        _asset_due(name, item, gates[name], cadences.get(item.tier, default_cadence), tests, as_of)
        for name, assets in wanted.items()
        for item in assets
    ]
    rows.sort(key=_order)
    return DueReport(
        as_of=as_of,
        time_zone=zone.key,
        default_cadence=default_cadence,
        cadences=tuple(cadences.items()),
        gate_tiers=tuple(sorted(gates.items())),
        assets=tuple(rows),
        used=tuple(r.run_id for r in counted),
        excluded=tuple(excluded),
        current_playbooks=tuple(now.name for now in current),
    )


def _split(
    records: Sequence[RunRecord], zone: ZoneInfo, names: set[str] | None
) -> tuple[list[RunRecord], list[Excluded]]:
    counted: list[RunRecord] = []
    excluded: list[Excluded] = []
    for record in records:
        if names is not None and record.playbook not in names:
            continue
        reason = ""
        if not record.countable:
            reason = f"{record.status}: {record.problem}" if record.problem else record.status
        elif record.mode != "drill":
            reason = "a contact test: it pages people and tests no asset"
        else:
            try:
                day_in(record.generated_utc, zone)
            except ValueError:
                reason = f"its generated_utc {record.generated_utc!r} is no time with an offset"
        if reason:
            excluded.append(Excluded(record.run_id, record.folder, record.playbook, reason))
        else:
            counted.append(record)
    return counted, excluded


def _gate(
    playbook: str,
    gate_tier: str | None,
    tier_orders: Mapping[str, Sequence[str]],
    assets: Iterable[CurrentAsset],
) -> str:
    if gate_tier is not None:
        return gate_tier
    order = tier_orders.get(playbook)
    if not order:
        raise UsageError(
            f"the tier order of playbook {playbook!r} is not known, so neither is its first tier",
            hint="name the tier that gates with --gate-tier NAME (or give the playbook with --playbook FILE)",
        )
    used = {a.tier for a in assets}  # a first tier with no asset would gate nothing: the next one does
    return next((t for t in order if t in used), order[0])


def _tests(counted: Sequence[RunRecord], zone: ZoneInfo) -> dict[tuple[str, str], list[RunTest]]:
    """(playbook, asset) -> the runs that tested it, oldest first."""
    found: dict[tuple[str, str], list[RunTest]] = {}
    for record in counted:
        day = day_in(record.generated_utc, zone)
        for asset in record.assets:
            if tested(asset):
                found.setdefault((record.playbook, asset.asset), []).append(
                    RunTest(
                        run_id=record.run_id,
                        report_sha256=record.report_sha256,
                        folder=record.folder,
                        quarter=record.quarter,
                        generated_utc=record.generated_utc,
                        day=day,
                        verdict=asset.verdict,
                        definition_sha256=asset.definition_sha256,
                    )
                )
    return found


def _asset_due(
    playbook: str,
    item: CurrentAsset,
    gate: str,
    cadence: Cadence,
    tests: Mapping[tuple[str, str], list[RunTest]],
    as_of: date,
) -> AssetDue:
    runs = tests.get((playbook, item.asset), [])
    last = runs[-1] if runs else None
    last_pass = next((t for t in reversed(runs) if t.verdict == "pass"), None)
    status: DueStatus
    if last is None:
        due, days_left, status = None, None, "never tested"
    else:
        due = cadence.after(last.day)
        days_left = (due - as_of).days
        status = "overdue" if days_left < 0 else "due today" if days_left == 0 else "not yet due"
    reason = _verification(item, last_pass, last)
    return AssetDue(
        playbook=playbook,
        asset=item.asset,
        tier=item.tier,
        gate=item.tier == gate,
        cadence=cadence,
        last_test=last,
        last_pass=last_pass,
        due=due,
        days_left=days_left,
        status=status,
        needs_verification=bool(reason),
        verification_reason=reason,
    )


def _verification(item: CurrentAsset, last_pass: RunTest | None, last: RunTest | None) -> str:
    if last_pass is None:
        return "never passed a drill" if last is not None else "never tested"
    if not item.definition_sha256 or not last_pass.definition_sha256:
        return "its definition cannot be compared with its last passing drill's (not recorded)"
    if item.definition_sha256 != last_pass.definition_sha256:
        return "its definition changed since its last passing drill"
    return ""


def _order(row: AssetDue) -> tuple[int, date, str, str]:
    """Overdue first (never tested, then the longest overdue), then the soonest due."""
    return (0 if row.overdue else 1, row.due or date.min, row.playbook, row.asset)


# ---------------------------------------------------------------- views


def due_data(report: DueReport) -> dict[str, object]:
    """The report as one JSON document (`drill due --format json`): dates are calendar days in
    `time_zone`; times are UTC ISO 8601 with offset."""

    def test(ref: RunTest | None) -> dict[str, object] | None:
        if ref is None:
            return None
        return {
            "run_id": ref.run_id,
            "report_sha256": ref.report_sha256,
            "folder": ref.folder,
            "quarter": ref.quarter,
            "generated_utc": ref.generated_utc,
            "date": ref.day.isoformat(),
            "verdict": ref.verdict,
            "definition_sha256": ref.definition_sha256,
        }

    return {
        "as_of": report.as_of.isoformat(),
        "time_zone": report.time_zone,
        "default_cadence": report.default_cadence.text,
        "cadences": {tier: c.text for tier, c in report.cadences},
        "gate_tiers": dict(report.gate_tiers),
        "current_playbooks": list(report.current_playbooks),
        "exit_code": report.exit_code,
        "overdue": sum(1 for a in report.assets if a.overdue),
        "assets": [
            {
                "playbook": a.playbook,
                "asset": a.asset,
                "tier": a.tier,
                "gate": a.gate,
                "cadence": a.cadence.text,
                "status": a.status,
                "overdue": a.overdue,
                "due_date": a.due.isoformat() if a.due else None,
                "days_left": a.days_left,
                "last_test": test(a.last_test),
                "last_pass": test(a.last_pass),
                "needs_verification": a.needs_verification,
                "verification_reason": a.verification_reason or None,
            }
            for a in report.assets
        ],
        "used": list(report.used),
        "excluded": [
            {"run_id": e.run_id, "folder": e.folder, "playbook": e.playbook, "reason": e.reason}
            for e in report.excluded
        ],
    }


def due_text(report: DueReport) -> list[str]:
    """The report for people, in lines of at most 80 columns (longer names excepted)."""
    counts = {
        s: sum(1 for a in report.assets if a.status == s) for s in ("never tested", "overdue", "due today")
    }
    lines = [
        f"Drills due as of {report.as_of.isoformat()}, dates in {report.time_zone}",
        f"{counts['overdue'] + counts['never tested']} overdue ({counts['never tested']} never tested), "
        f"{counts['due today']} due today, {len(report.assets) - sum(counts.values())} not yet due.",
    ]
    per_tier = "".join(f"; {tier} every {c.human}" for tier, c in report.cadences)
    lines.append(f"Cadence: every {report.default_cadence.human}{per_tier}.")
    gates = sorted({tier for _, tier in report.gate_tiers})
    if gates:
        lines.append(f"Gate: tier {', '.join(gates)} (exit 1 when one of its assets is overdue).")
    kinds: dict[str, int] = {}
    for e in report.excluded:
        kind = "contact test" if e.reason.startswith("a contact test") else e.reason.split(":")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    not_counted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    lines.append(f"Counted: {len(report.used)} verified drill{'s' if len(report.used) != 1 else ''}.")
    lines += textwrap.wrap(
        f"Not counted: {len(report.excluded)}{f' ({not_counted})' if not_counted else ''}.",
        WIDTH,
        subsequent_indent="  ",
    )
    for name in report.current_playbooks:
        lines.append(f"Playbook {name}: its assets as they are now (the file given).")
    if not report.assets:
        lines += ["", "No asset is due: the history holds no counted drill."]
    for name in sorted({a.playbook for a in report.assets}):
        lines += ["", name]
        for a in (a for a in report.assets if a.playbook == name):
            lines += _asset_lines(a)
    return lines


_STATUS_TAG = {
    "never tested": "NEVER TESTED",
    "overdue": "OVERDUE",
    "due today": "DUE TODAY",
    "not yet due": "due",
}


def _asset_lines(a: AssetDue) -> list[str]:
    gate = ", gate" if a.gate else ""
    if a.due is None or a.days_left is None:
        when = "due now"
    elif a.days_left < 0:
        when = f"due {a.due.isoformat()}, {-a.days_left} day{'s' if a.days_left != -1 else ''} ago"
    elif a.days_left == 0:
        when = f"due {a.due.isoformat()}, today"
    else:
        when = f"due {a.due.isoformat()}, in {a.days_left} day{'s' if a.days_left != 1 else ''}"
    head = f"  {_STATUS_TAG[a.status]:<13}{a.asset} ({a.tier}{gate})"
    lines = [f"{head:<50}{when}" if len(head) < 50 else f"{head}  {when}"]
    pad = " " * 15
    if a.last_test is None:
        lines.append(f"{pad}no counted drill measured its objectives")
    else:
        t = a.last_test
        quarter = f" ({t.quarter})" if t.quarter else ""
        tested_line = f"{pad}last tested {t.day.isoformat()}{quarter}: {t.verdict}"
        run = f"run {t.run_id}"
        if len(tested_line) + 2 + len(run) <= WIDTH:
            lines.append(f"{tested_line}, {run}")
        else:  # the run id on a line of its own: it is copied, not read
            lines += [tested_line, f"{pad}  {run}"]
    if a.needs_verification and a.last_test is not None:  # never tested says it already
        since = f" (last passed in {a.last_pass.run_id})" if a.last_pass is not None else ""
        lines += textwrap.wrap(
            f"NEEDS VERIFICATION: {a.verification_reason}{since}",
            WIDTH,
            initial_indent=pad,
            subsequent_indent=pad + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines
