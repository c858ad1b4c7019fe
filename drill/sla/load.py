"""Read a `kind: SLA` document (schemas/sla.schema.json) into drill.sla.model.Sla, or say every problem.

The YAML is read by the playbook loader (one document, YAML 1.2 core scalars, line:col of every
node), checked against the SLA schema, then against the rules a schema cannot say: credit tiers
within 0..100 % that do not overlap, a real IANA zone (never the machine's "localtime"), RRULEs
that parse, start at a local DTSTART and recur, burn-rate windows short < long, and names of
probes and contact chains that exist in the referenced playbook. Every problem is a Diagnostic
with FILE:LINE:COL; they all come together in one SlaInvalid, never as a traceback.

Percentages, money and factors are strings read with integer arithmetic only: "99.95%" is
PctMilli 99_950, "1500.00 EUR" is 150_000 cents, "14.4" is 14_400 thousandths. A YAML number
never becomes a percentage: 99.9 is a binary float, and a tier edge must fall where the contract
says, not where a rounding puts it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drill.durations import parse_duration_ms
from drill.errors import Diagnostic, PlaybookInvalid, UsageError
from drill.playbook.load import Document, JsonPath, format_path, load_document, parse_document
from drill.playbook.model import Playbook
from drill.playbook.schema import compiled
from drill.playbook.validate import explain_schema_error, load_playbook, suggest
from drill.sla.model import (
    FULL,
    BurnRateAlert,
    Credits,
    CreditTier,
    DelayKpi,
    Exclusion,
    PctMilli,
    ResponseKpi,
    Service,
    Sla,
    SliceRule,
    Threshold,
    Window,
)

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA = "sla.schema.json"
_PCT = re.compile(r"([0-9]+)(?:\.([0-9]+))?%")
_MONEY = re.compile(r"([0-9]+)(?:\.([0-9]+))? ([A-Z]{3})")
_FACTOR = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
PCT_HINT = 'write a percentage as a string with a % sign and at most 3 decimals, e.g. "99.9%"'
MONEY_HINT = 'write an amount and its ISO 4217 currency code as a string, e.g. "1500.00 EUR"'
FACTOR_HINT = 'write a burn-rate factor as a string with at most 3 decimals, e.g. "14.4"'
# ISO 4217 currencies whose minor unit is not the cent (every other code has 2 decimals)
_DECIMALS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF"), 0),
    **dict.fromkeys(("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
_POW10 = (1, 10, 100, 1000)
MAX_SLICE_MS = 30 * 60_000  # a slice divides 30 min: every period is whole slices, DST days included
HORIZON_YEARS = 5  # an RRULE must recur within this many years of its DTSTART
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_RRULE_LINES = ("DTSTART", "RRULE", "EXDATE", "RDATE")
_SHORTEST_MS = {"month": 28 * 86_400_000, "quarter": 89 * 86_400_000, "year": 365 * 86_400_000}


class SlaInvalid(UsageError):
    """Raised when an SLA document cannot be loaded or breaks a rule; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        super().__init__(
            first.message if first else "invalid SLA document", location=first.location if first else None
        )

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


# -- exact numbers ------------------------------------------------------------------------------
def _fraction(whole: str, frac: str | None, decimals: int) -> int:
    """whole.frac as an integer count of 10**-decimals (frac has at most `decimals` digits)."""
    return int(whole) * _POW10[decimals] + int((frac or "").ljust(decimals, "0") or "0")


def _not_a_string(value: object, hint: str) -> ValueError:
    if isinstance(value, bool) or value is None:
        return ValueError(f"{str(value).lower() if value is not None else 'null'} is not a string; {hint}")
    if isinstance(value, int | float):
        return ValueError(
            f"{value!r} is a YAML number; {hint} (quoted: YAML reads a number such as 99.9 as a binary"
            " float, and a contract's figures must be exact)"
        )
    return ValueError(f"expected a string; {hint}")


def parse_pct(text: object) -> PctMilli:
    """'99.95%' -> 99_950 (thousandths of a percent), exactly; ValueError with words otherwise."""
    if not isinstance(text, str):
        raise _not_a_string(text, PCT_HINT)
    match = _PCT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a percentage; {PCT_HINT}")
    whole, frac = match.groups()
    if frac is not None and len(frac) > 3:
        raise ValueError(f"{text!r} has {len(frac)} decimals; percentages have at most 3 (99.999%)")
    value = _fraction(whole, frac, 3)
    if value > FULL:
        raise ValueError(f"{text!r} is above 100%")
    return value


def parse_money(text: object) -> tuple[int, str]:
    """'1500.00 EUR' -> (150_000, 'EUR'): the amount in the currency's minor unit, exactly."""
    if not isinstance(text, str):
        raise _not_a_string(text, MONEY_HINT)
    match = _MONEY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount; {MONEY_HINT}")
    whole, frac, currency = match.groups()
    decimals = _DECIMALS.get(currency, 2)
    if frac is not None and len(frac) > decimals:
        unit = "no decimals" if decimals == 0 else f"{decimals} decimals"
        raise ValueError(f"{text!r}: {currency} has {unit}, this amount has {len(frac)}")
    return _fraction(whole, frac, decimals), currency


def parse_factor(text: object) -> int:
    """'14.4' -> 14_400 (thousandths), exactly; above zero."""
    if not isinstance(text, str):
        raise _not_a_string(text, FACTOR_HINT)
    match = _FACTOR.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a factor; {FACTOR_HINT}")
    whole, frac = match.groups()
    if frac is not None and len(frac) > 3:
        raise ValueError(f"{text!r} has {len(frac)} decimals; a factor has at most 3")
    value = _fraction(whole, frac, 3)
    if value == 0:
        raise ValueError(f"{text!r}: a burn-rate factor must be above zero")
    return value


def format_pct(value: PctMilli) -> str:
    """99_950 -> '99.95%' (the shortest exact spelling), for messages and reports."""
    whole, frac = divmod(value, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "%"


# -- loading ------------------------------------------------------------------------------------
def load_sla(path: Path, *, warnings: list[Diagnostic] | None = None) -> Sla:
    """Load a valid SLA document; raises SlaInvalid with every diagnostic. Warnings go to `warnings`."""
    sla, diagnostics = check_sla(path)
    if sla is None:
        raise SlaInvalid(diagnostics)
    if warnings is not None:
        warnings.extend(diagnostics)
    return sla


def check_sla(path: str | Path) -> tuple[Sla | None, list[Diagnostic]]:
    """Load and check an SLA file: the Sla (None when any error) and every diagnostic, in file order."""
    try:
        doc = load_document(path)
    except PlaybookInvalid as exc:
        return None, [_reworded(d) for d in exc.diagnostics]
    return check_sla_document(doc, Path(path).parent)


def check_sla_bytes(raw: bytes, name: str, base: Path) -> tuple[Sla | None, list[Diagnostic]]:
    """An SLA document from bytes (standard input); its playbook path is relative to `base`."""
    try:
        doc = parse_document(raw, name)
    except PlaybookInvalid as exc:
        return None, [_reworded(d) for d in exc.diagnostics]
    return check_sla_document(doc, base)


def check_sla_document(doc: Document, base: Path) -> tuple[Sla | None, list[Diagnostic]]:
    """Schema, then the semantic rules; `base` is the folder the playbook path is relative to."""
    checker = _Checker(doc, base)
    sla = checker.run()
    diagnostics = sorted(
        checker.diagnostics, key=lambda d: (d.location.line, d.location.col, d.severity, d.message)
    )
    if any(d.severity == "error" for d in diagnostics):
        return None, diagnostics
    return sla, diagnostics


_LOAD_WORDS = (
    (
        "a playbook must be a YAML mapping (apiVersion: ..., kind: Playbook, ...)",
        "an SLA document must be a YAML mapping (apiVersion: drill/v1, kind: SLA, ...)",
    ),
    ("a playbook is a YAML mapping (see `drill init`)", "an SLA document is a YAML mapping"),
    ("a playbook file holds one YAML document", "an SLA file holds one YAML document"),
    ("save the playbook as", "save the file as"),
    ("a playbook is UTF-8 YAML text", "an SLA document is UTF-8 YAML text"),
)


def _reworded(d: Diagnostic) -> Diagnostic:
    """The playbook loader's words about the file itself, said of an SLA document."""
    message = d.message
    for old, new in _LOAD_WORDS:
        message = message.replace(old, new)
    return Diagnostic(d.location, d.severity, message, d.path, d.code)


@cache
def _zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def zone_problem(name: str) -> str:
    """Why `name` is not a contract's time zone ('' when it is a real IANA zone)."""
    if name in ("localtime", "posixrules") or name.startswith(("/", ".")):
        return (
            f"time zone {name!r} is the machine's, not the contract's; name the IANA zone the"
            " contract is in, e.g. Europe/Berlin"
        )
    if name in _zones():
        return ""
    return (
        f"unknown time zone {name!r}{suggest(name, sorted(_zones()))}; use an IANA name such as Europe/Berlin"
    )


def _span(tier: CreditTier) -> str:
    return f"[{format_pct(tier.lower)}, {format_pct(tier.upper)})"


def _local_time(text: str) -> dt.datetime | None:
    """An RFC 5545 local DATE-TIME (20260104T020000) or DATE (20260104), else None."""
    for form in ("%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, form)
        except ValueError:
            continue
    return None


# days, weeks, months and years in 400 Gregorian years: the calendar repeats exactly after them
_CYCLE = {"DAILY": 146_097, "WEEKLY": 20_871, "MONTHLY": 4_800, "YEARLY": 400}


def _late_twin(dtstart: dt.datetime, freq: str, interval: int) -> dt.datetime:
    """dtstart moved by whole 400-year cycles as near the year 9999 as the rule's INTERVAL phase
    allows: the rule's occurrences there mirror those after the real DTSTART exactly, and a rule
    that never matches stops at the year 9999 after a few centuries, not after eight millennia."""
    k = (dt.MAXYEAR - HORIZON_YEARS - 1 - dtstart.year) // 400
    while k > 0 and (_CYCLE[freq] * k) % interval:
        k -= 1
    return dtstart.replace(year=dtstart.year + 400 * k)


def rrule_problem(text: str, dtstart_text: str, rules: list[str]) -> str:
    """What is wrong with an RFC 5545 text of one local DTSTART and its RRULE values ('' nothing).

    A rule must parse, recur at most daily, and have an occurrence within HORIZON_YEARS of its
    DTSTART. dateutil stops at UNTIL only once a candidate passes it, so a rule that never
    matches (30 February) iterates up to the year 9999 (seconds); the check runs on the rule's
    late twin (see _late_twin), bounded by the horizon, and only then expands the rule itself.
    """
    from dateutil.rrule import rrule, rrulestr

    dtstart = _local_time(dtstart_text)
    if dtstart is None or not 1970 <= dtstart.year <= 2100:
        return f"DTSTART:{dtstart_text} is not a local time like 20260104T020000 (between 1970 and 2100)"
    checks = []
    for value in rules:
        parts = dict(part.partition("=")[::2] for part in value.upper().split(";"))
        freq, interval = parts.get("FREQ", ""), parts.get("INTERVAL", "1")
        if freq not in _FREQS:
            return f"FREQ={freq} is too fine for a maintenance window; use {', '.join(_FREQS)}"
        if parts.get("UNTIL", "").endswith("Z"):
            return f"UNTIL={parts['UNTIL']} is UTC; write the window's local time, without Z"
        if not interval.isdigit() or not 1 <= int(interval) <= 1000:
            return f"INTERVAL={interval} must be a whole number from 1 to 1000"
        if "BYEASTER" in parts:
            return "BYEASTER is not RFC 5545"
        checks.append((value, _late_twin(dtstart, freq, int(interval))))
    try:
        parsed = rrulestr(text, forceset=True)
        for value, twin in checks:
            single = cast(rrule, rrulestr(f"RRULE:{value}", dtstart=twin))
            horizon = twin + dt.timedelta(days=366 * HORIZON_YEARS)
            if next(iter(single.replace(count=None, until=horizon)), None) is None:
                return f"RRULE:{value} has no occurrence in the {HORIZON_YEARS} years after DTSTART"
        if next(iter(parsed), None) is None:  # safe now: each rule recurs within its horizon
            return "the rule has no occurrence (COUNT=0, or UNTIL before DTSTART?)"
        list(itertools.islice(parsed, 3))  # the next ones expand too (or fail here, not in a report)
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
        return f"not a valid RFC 5545 rule: {exc}"
    return ""


class _Checker:
    """Builds the Sla from a schema-valid document, collecting every problem with its place."""

    def __init__(self, doc: Document, base: Path) -> None:
        self.doc = doc
        self.base = base
        self.diagnostics: list[Diagnostic] = []
        self.playbook: Playbook | None = None
        self.chains: frozenset[str] | None = None  # None: the playbook could not be read
        self.probes: dict[str, frozenset[str]] = {}  # asset -> its probes
        self.currency = ""
        self.currency_at: JsonPath = ()
        self.faults: set[JsonPath] = set()  # where the schema found something wrong
        self.wrong_kind = False

    # -- reporting --------------------------------------------------------------------------
    def error(self, path: JsonPath, message: str, *, key: bool = False) -> None:
        loc = self.doc.location(path, key=key)
        self.diagnostics.append(Diagnostic(loc, "error", message, format_path(path), "sla"))

    def warn(self, path: JsonPath, message: str) -> None:
        loc = self.doc.location(path)
        self.diagnostics.append(Diagnostic(loc, "warning", message, format_path(path), "sla"))

    # -- passes -----------------------------------------------------------------------------
    def run(self) -> Sla | None:
        """Every section the schema found no fault in is checked too, so that one run says every
        problem; the Sla itself is built only from a document without schema errors."""
        shape_ok = self.schema()
        if self.wrong_kind:
            return None
        part = self.part
        self.read_playbook(part(str, "playbook"))
        counting = part(dict, "counting") or {}
        kpis, alerts, cost = part(dict, "kpis") or {}, part(dict, "alerts") or {}, part(dict, "cost")
        metadata = self.doc.data.get("metadata")
        sla = Sla(
            name=metadata.get("name", "") if isinstance(metadata, dict) else "",
            playbook=part(str, "playbook") or "",
            services=self.services(part(list, "services") or []),
            target=self.target(part(str, "target") or "100%"),
            window=self.window(part(dict, "window") or {"calendar": "month", "time_zone": "UTC"}),
            counting=counting.get("method", "timeslices"),
            slices=self.slices(counting),
            partial_weight=self.pct(("spec", "partial_weight"), part(str, "partial_weight") or "30%"),
            no_data=part(str, "no_data") or "down",
            exclusions=self.exclusions(part(list, "exclusions") or []),
            exclude_drills=part(bool, "exclude_drills") is not False,
            credits=self.credits(table) if (table := part(dict, "credits")) is not None else None,
            response=self.response(kpis.get("response", [])),
            delays=self.delays(kpis.get("delay", [])),
            thresholds=self.thresholds(alerts.get("thresholds", [])),
            burn_rates=self.burn_rates(alerts.get("burn_rates", [])),
            loss_per_minute_minor=self.cost(cost),
        )
        if not shape_ok:
            return None
        self.cross_rules(sla)
        return sla

    def part(self, kind: type, key: str) -> Any:
        """spec[key] when it is a `kind` and the schema found nothing wrong inside it, else None."""
        spec = self.doc.data.get("spec")
        if not isinstance(spec, dict) or not isinstance(spec.get(key), kind):
            return None
        if any(path[:2] == ("spec", key) for path in self.faults):
            return None
        return spec[key]

    def schema(self) -> bool:
        """The schema check; False when the document's shape is wrong (nothing can be built)."""
        kind = self.doc.data.get("kind")
        if kind != "SLA" and isinstance(kind, str):  # another document (a playbook): say only that
            hint = "; check a playbook with `drill validate`" if kind == "Playbook" else ""
            self.error(("kind",), f"kind: must be 'SLA', not {kind!r}: this is not an SLA document{hint}")
            self.wrong_kind = True
            return False
        schema = compiled(SCHEMA)
        if schema.is_valid(self.doc.data):
            return True
        seen: set[tuple[JsonPath, str]] = set()
        for err in schema.validator.iter_errors(self.doc.data):
            for path, message, key in _explain_sla(err, schema.schema):
                self.faults.add(tuple(err.absolute_path))
                if (path, message) not in seen:
                    seen.add((path, message))
                    self.error(path, message, key=key)
        return False

    # -- values -----------------------------------------------------------------------------
    def pct(self, path: JsonPath, text: str, *, default: PctMilli = 0) -> PctMilli:
        try:
            return parse_pct(text)
        except ValueError as exc:
            self.error(path, f"{format_path(path)}: {exc}")
            return default

    def duration(self, path: JsonPath, text: str | int) -> int:
        return parse_duration_ms(text)  # the schema's pattern is the grammar: this cannot fail

    def money(self, path: JsonPath, text: str) -> int:
        try:
            amount, currency = parse_money(text)
        except ValueError as exc:
            self.error(path, f"{format_path(path)}: {exc}")
            return 0
        if not self.currency:
            self.currency, self.currency_at = currency, path
        elif currency != self.currency:
            first = format_path(self.currency_at)
            self.error(
                path, f"{format_path(path)}: currency {currency} differs from {first}'s {self.currency}"
            )
        return amount

    # -- the referenced playbook ------------------------------------------------------------
    def read_playbook(self, written: str | None) -> None:
        path = ("spec", "playbook")
        if written is None:  # missing or not a string: the schema said so
            return
        resolved = self.base / written
        if not resolved.is_file():
            self.error(
                path,
                f"spec.playbook: no playbook at {str(resolved)!r} (the path is relative to this SLA file)",
            )
            return
        try:
            self.playbook = load_playbook(resolved)
        except PlaybookInvalid as exc:
            errors = [d for d in exc.diagnostics if d.severity == "error"]
            first = errors[0] if errors else None
            more = (
                f" (and {len(errors) - 1} more; run `drill validate {resolved}`)" if len(errors) > 1 else ""
            )
            self.error(path, f"spec.playbook: {written!r} is not a valid playbook: {first}{more}")
            return
        self.chains = frozenset(c.name for c in self.playbook.chains)
        self.probes = {a.id: frozenset(p.name for p in a.probes) for a in self.playbook.assets}

    def probe(self, path: JsonPath, ref: str) -> None:
        """An asset/probe reference must name a probe of the playbook."""
        if self.playbook is None:
            return
        asset, _, name = ref.partition("/")
        if asset not in self.probes:
            hint = suggest(asset, self.probes) or f"; its assets: {', '.join(sorted(self.probes))}"
            self.error(
                path, f"{format_path(path)}: playbook {self.doc_playbook()} has no asset {asset!r}{hint}"
            )
        elif name not in self.probes[asset]:
            known = sorted(self.probes[asset])
            hint = suggest(name, known) or f"; its probes: {', '.join(known)}"
            self.error(path, f"{format_path(path)}: asset {asset!r} has no probe {name!r}{hint}")

    def chain(self, path: JsonPath, name: str) -> None:
        """A chain must be one of the playbook's: alerts go through the existing contact chains."""
        if self.chains is None or name in self.chains:
            return
        known = sorted(self.chains)
        hint = suggest(name, known) or (
            f"; its chains: {', '.join(known)}" if known else "; it has no contacts.chains"
        )
        self.error(
            path, f"{format_path(path)}: playbook {self.doc_playbook()} has no contact chain {name!r}{hint}"
        )

    def doc_playbook(self) -> str:
        return repr(self.doc.data["spec"]["playbook"])

    def unique(self, items: list[dict[str, Any]], prefix: JsonPath, what: str) -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item["name"]
            if name in seen:
                line = self.doc.location((*prefix, seen[name])).line
                self.error((*prefix, i, "name"), f"{what} {name!r} is named twice (first at line {line})")
            else:
                seen[name] = i

    # -- the sections -----------------------------------------------------------------------
    def services(self, items: list[dict[str, Any]]) -> tuple[Service, ...]:
        self.unique(items, ("spec", "services"), "service")
        for i, item in enumerate(items):
            for j, ref in enumerate(item["probes"]):
                self.probe(("spec", "services", i, "probes", j), ref)
        return tuple(Service(item["name"], tuple(item["probes"])) for item in items)

    def target(self, text: str) -> PctMilli:
        path = ("spec", "target")
        value = self.pct(path, text, default=FULL)
        if value == 0:
            self.error(path, "spec.target: must be above 0%")
        return value

    def window(self, item: dict[str, Any]) -> Window:
        path = ("spec", "window")
        zone = item["time_zone"]
        problem = zone_problem(zone)
        if problem:
            self.error((*path, "time_zone"), f"spec.window.time_zone: {problem}")
        if "rolling" in item:
            return Window("rolling", zone, self.duration((*path, "rolling"), item["rolling"]))
        return Window(item["calendar"], zone)

    def slices(self, item: dict[str, Any]) -> SliceRule:
        path = ("spec", "counting")
        slice_ms = self.duration((*path, "slice"), item.get("slice", "1m"))
        bad_after_ms = self.duration((*path, "bad_after"), item.get("bad_after", 0))
        if item.get("method") == "occurrences":
            for key in ("slice", "bad_after"):
                if key in item:
                    self.warn((*path, key), f"spec.counting.{key}: unused when counting occurrences")
        if slice_ms < 1000:
            self.error((*path, "slice"), f"spec.counting.slice: {item.get('slice')!r} is below 1s")
        elif MAX_SLICE_MS % slice_ms:
            self.error(
                (*path, "slice"),
                f"spec.counting.slice: {item.get('slice')!r} does not divide 30 minutes evenly (use 1s, 10s,"
                " 1m, 5m, 15m or 30m, ...): every period, daylight-saving days included, must be whole slices",
            )
        if bad_after_ms > slice_ms:
            self.error(
                (*path, "bad_after"),
                f"spec.counting.bad_after: {item.get('bad_after')!r} is longer than the slice"
                f" ({item.get('slice', '1m')}): no slice could ever be bad",
            )
        return SliceRule(slice_ms, bad_after_ms)

    def exclusions(self, items: list[dict[str, Any]]) -> tuple[Exclusion, ...]:
        self.unique(items, ("spec", "exclusions"), "exclusion")
        out = []
        for i, item in enumerate(items):
            path: JsonPath = ("spec", "exclusions", i)
            rule = self.rrule((*path, "rrule"), item["rrule"])
            duration_ms = self.duration((*path, "duration"), item["duration"])
            out.append(Exclusion(item["name"], rule, duration_ms, item["reason"], item["approver"]))
        return tuple(out)

    def rrule(self, path: JsonPath, text: str) -> str:
        """RFC 5545 text: a local DTSTART, RRULEs of FREQ daily or coarser that recur, EXDATE/RDATE."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        normalised = "\n".join(lines)
        where = format_path(path)
        problems: list[str] = []
        dtstarts, rules = [], []
        for line in lines:
            name, colon, value = line.partition(":")
            word = name.split(";", 1)[0].upper()
            if not colon or word not in _RRULE_LINES:
                problems.append(f"line {line!r} is not DTSTART:, RRULE:, EXDATE: or RDATE:")
            elif ";" in name:
                problems.append(
                    f"{word} has parameters ({name[len(word) + 1 :]}); write it as a local time with"
                    " no TZID: the window's time_zone says where it is"
                )
            elif word != "RRULE" and "Z" in value.upper():
                problems.append(
                    f"{word} {value} is UTC (ends in Z); write the window's local time, without Z"
                )
            elif word == "DTSTART":
                dtstarts.append(value)
            elif word == "RRULE":
                rules.append(value)
        if not dtstarts:
            problems.append(
                "needs a DTSTART line (e.g. DTSTART:20260104T020000): without it the rule starts now"
            )
        elif len(dtstarts) > 1:
            problems.append("has more than one DTSTART")
        if not rules:
            problems.append("needs an RRULE line (e.g. RRULE:FREQ=WEEKLY;BYDAY=SU)")
        if problems:
            self.error(path, f"{where}: {problems[0]}")
            return normalised
        problem = rrule_problem(normalised, dtstarts[0], rules)
        if problem:
            self.error(path, f"{where}: {problem}")
        return normalised

    def credits(self, item: dict[str, Any]) -> Credits:
        path: JsonPath = ("spec", "credits")
        fee = self.money((*path, "monthly_fee"), item["monthly_fee"])
        minimum = self.money((*path, "minimum"), item["minimum"]) if "minimum" in item else 0
        cap = self.pct((*path, "cap"), item.get("cap", "100%"), default=FULL)
        tiers = tuple(self.tier((*path, "tiers", i), t) for i, t in enumerate(item["tiers"]))
        self.no_overlap(tiers, (*path, "tiers"))
        return Credits(fee, self.currency, tiers, minimum, cap)

    def tier(self, path: JsonPath, item: dict[str, Any]) -> CreditTier:
        lower = self.pct((*path, "from"), item["from"])
        upper = self.pct((*path, "to"), item["to"], default=FULL)
        credit = self.pct((*path, "credit"), item["credit"])
        if lower >= upper:
            self.error(
                (*path, "to"),
                f"{format_path(path)}: [{item['from']}, {item['to']}) is empty; `to` must be above `from`",
            )
        return CreditTier(lower, upper, credit)

    def no_overlap(self, tiers: tuple[CreditTier, ...], prefix: JsonPath) -> None:
        """Half-open tiers must not overlap: an availability earns one credit, not two.
        Every pair is compared (a credit table has a handful of rows); the later one is blamed."""
        for later, b in enumerate(tiers):
            for other, a in enumerate(tiers[:later]):
                if a.lower < a.upper and b.lower < b.upper and b.lower < a.upper and a.lower < b.upper:
                    self.error(
                        (*prefix, later),
                        f"{format_path((*prefix, later))}: {_span(b)} overlaps"
                        f" {format_path((*prefix, other))} {_span(a)}; an availability must fall in one tier",
                    )
                    break

    def response(self, items: list[dict[str, Any]]) -> tuple[ResponseKpi, ...]:
        prefix: JsonPath = ("spec", "kpis", "response")
        self.unique(items, prefix, "response KPI")
        for i, item in enumerate(items):
            self.chain((*prefix, i, "chain"), item["chain"])
        return tuple(
            ResponseKpi(it["name"], it["severity"], it["chain"], self.duration((), it["within"]))
            for it in items
        )

    def delays(self, items: list[dict[str, Any]]) -> tuple[DelayKpi, ...]:
        prefix: JsonPath = ("spec", "kpis", "delay")
        self.unique(items, prefix, "delay KPI")
        out = []
        for i, item in enumerate(items):
            self.probe((*prefix, i, "probe"), item["probe"])
            levels: list[tuple[int, str]] = []
            for j, level in enumerate(item.get("levels", [])):
                at: JsonPath = (*prefix, i, "levels", j)
                self.chain((*at, "chain"), level["chain"])
                after = self.duration((*at, "after"), level["after"])
                if levels and after <= levels[-1][0]:
                    self.error(
                        (*at, "after"),
                        f"{format_path(at)}.after: levels must escalate: {level['after']} is not after the level before",
                    )
                levels.append((after, level["chain"]))
            out.append(
                DelayKpi(item["name"], item["probe"], self.duration((), item["within"]), tuple(levels))
            )
        return tuple(out)

    def thresholds(self, items: list[dict[str, Any]]) -> tuple[Threshold, ...]:
        prefix: JsonPath = ("spec", "alerts", "thresholds")
        self.unique(items, prefix, "threshold")
        out = []
        for i, item in enumerate(items):
            self.chain((*prefix, i, "chain"), item["chain"])
            out.append(Threshold(self.pct((*prefix, i, "below"), item["below"]), item["chain"], item["name"]))
        return tuple(out)

    def burn_rates(self, items: list[dict[str, Any]]) -> tuple[BurnRateAlert, ...]:
        prefix: JsonPath = ("spec", "alerts", "burn_rates")
        self.unique(items, prefix, "burn-rate alert")
        out = []
        for i, item in enumerate(items):
            path: JsonPath = (*prefix, i)
            self.chain((*path, "chain"), item["chain"])
            long_ms = self.duration((*path, "long"), item["long"])
            short_ms = self.duration((*path, "short"), item["short"])
            if short_ms >= long_ms:
                self.error(
                    (*path, "short"),
                    f"{format_path(path)}.short: {item['short']} is not shorter than long ({item['long']});"
                    " the short window must be the shorter one",
                )
            try:
                factor = parse_factor(item["factor"])
            except ValueError as exc:
                self.error((*path, "factor"), f"{format_path(path)}.factor: {exc}")
                factor = 1000
            out.append(
                BurnRateAlert(
                    item["name"], factor, long_ms, short_ms, item["chain"], item.get("severity", "page")
                )
            )
        return tuple(out)

    def cost(self, item: dict[str, Any] | None) -> int:
        if item is None:
            return 0
        return self.money(("spec", "cost", "loss_per_minute"), item["loss_per_minute"])

    # -- rules across sections ----------------------------------------------------------------
    def cross_rules(self, sla: Sla) -> None:
        spec: JsonPath = ("spec",)
        if sla.window.kind == "rolling":
            if sla.window.rolling_ms % sla.slices.slice_ms:
                self.error(
                    (*spec, "window", "rolling"),
                    "spec.window.rolling: is not a whole number of slices (spec.counting.slice)",
                )
            shortest = sla.window.rolling_ms
        else:
            shortest = _SHORTEST_MS[sla.window.kind]
        for i, burn in enumerate(sla.burn_rates):
            if burn.long_ms > shortest:
                self.error(
                    (*spec, "alerts", "burn_rates", i, "long"),
                    f"spec.alerts.burn_rates[{i}].long: longer than the shortest contract period",
                )
        if sla.burn_rates and sla.target == FULL:
            self.error(
                (*spec, "target"),
                "spec.target: a 100% target leaves no error budget to burn; burn-rate alerts need a target below 100%",
            )
        if sla.credits is not None:
            for i, tier in enumerate(sla.credits.tiers):
                if tier.upper > sla.target:
                    self.warn(
                        (*spec, "credits", "tiers", i, "to"),
                        f"spec.credits.tiers[{i}]: reaches above the target ({format_pct(sla.target)}):"
                        " it pays a credit in a period that met the target",
                    )


# -- schema errors to messages -------------------------------------------------------------------
_EXACT_HINTS = {"percent": parse_pct, "money": parse_money, "factor": parse_factor}


def _explain_sla(err: ValidationError, root: dict[str, Any]) -> list[tuple[JsonPath, str, bool]]:
    """A schema error in words: percentages, money and factors say what is wrong with the value
    (a float, four decimals, no currency); the rest is worded as the playbook validator words it."""
    path: JsonPath = tuple(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    defs = root.get("$defs", {})
    for name, parse in _EXACT_HINTS.items():
        if schema is defs.get(name) or schema == defs.get(name):
            try:
                parse(err.instance)
            except ValueError as exc:
                return [(path, f"{format_path(path)}: {exc}", False)]
    if err.validator == "oneOf" and "errorMessage" in schema:
        return [(path, f"{format_path(path)}: {schema['errorMessage']}", True)]
    return explain_schema_error(err, (), root)
