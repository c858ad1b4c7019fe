"""Where a service's health comes from: drill journals, an incidents CSV, or Prometheus.

Each source becomes a `Timeline` (drill.sla.model): spans of up, down, partial or no-data in
[start_ms, end_ms) UTC epoch milliseconds, each naming the evidence it came from, so that a
signed SLA report can say which journal lines, which CSV rows or which query stand behind every
minute it counts. The rules each source follows are stated here once, because they are part of
the counting method a report prints:

Journals (`timeline_from_journals`). Every journal is verified in full (form and hash chain)
before anything of it is used; a broken one is refused with a one-line JournalInvalid. A
`probe.observed` event starts at its `utc` (the journal stamps it from the probe's start) and
holds the probe's answer until the same probe's next observation starts, but at most two probe
intervals after it completed (the next tick comes at most one interval after completion; beyond
that the probe loop stalled or the watcher died) and never past the journal's last event: the
time between two journals (segments) is no data, never up. One exception: a `drill watch` segment
opened by a *rotation* (its `watch.segment` names the journal before it, same process) continues
that journal, so the previous segment's last observations hold across the boundary (to the next
observation, within the same two-interval bound); after a restart, nothing is carried over. The interval is the plan's (in
`run.started`), else what the observations' own ticks show (scheduled instants / tick numbers);
with neither an observation covers only its own duration. At an instant the service is
  - no-data when any of its probes has no observation covering it (its health is a statement
    about all of its probes);
  - up when every probe's covering observation is ok;
  - down when every one failed;
  - partial when some failed and some did not (possible only with several probes).

Incidents CSV (`timeline_from_incidents_csv`): columns service,start,end,impact; outside its
incidents the service is up, and the up spans say so ("no monitoring data"): this source
cannot show a monitoring gap. Overlapping incidents merge, down winning over partial.

Prometheus (`timeline_from_prometheus`): a range query of `probe_success` (values 0 or 1): a
sample at t covers [t, t + step); a step without a sample is no data; when the query returns
several series (several instances or targets) the service is down at a step if any of them is
0, up when all present ones are 1. Prometheus holds a last value for its lookback delta (5 min
by default) when its own scraping stopped; `last_over_time(probe_success[2s])`-style queries
bound that.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Literal

import httpx

from drill.clock import ms_of
from drill.errors import DrillError, JournalInvalid, UsageError
from drill.evidence.events import Event, ProbeObserved, RunStarted, WatchSegment
from drill.evidence.journal import JournalStream
from drill.evidence.snapshot import Plan
from drill.sla.model import Health, Span, Timeline

__all__ = [
    "timeline_from_incidents_csv",
    "timeline_from_journals",
    "timeline_from_prometheus",
    "timelines_from_journals",
]

# ------------------------------------------------------------------------- journals


@dataclass(frozen=True, slots=True)
class _Piece:
    """One observation's reach: [start_ms, end_ms) where `ok` held, from journal line `seq`."""

    start_ms: int
    end_ms: int
    ok: bool
    seq: int


@dataclass(slots=True)
class _Raw:
    start_ms: int
    done_ms: int
    ok: bool
    seq: int
    tick: int
    scheduled_ns: int


@dataclass(slots=True)
class _Segment:
    """What one verified journal says about the wanted probes."""

    path: Path
    first_ms: int = 0
    last_ms: int = 0
    count: int = 0
    intervals: dict[str, int] = field(default_factory=dict)  # "asset/probe" -> ms, from the plan
    seen: set[str] = field(default_factory=set)  # every "asset/probe" the journal knows
    raw: dict[str, list[_Raw]] = field(default_factory=dict)
    utc_ms: _UtcMs = field(default_factory=lambda: _UtcMs())
    continues: str = ""  # the file name of the segment this one continues (a watch rotation)

    @property
    def name(self) -> str:
        return f"journal {self.path}"


def timeline_from_journals(paths: Sequence[Path], service: str, probes: Sequence[str]) -> Timeline:
    """The health of `service` (defined by `probes`, each "asset/probe") from drill journals.

    Every journal is verified first (JournalInvalid, one line, at the first broken one); the
    journals may come in any order but must not overlap in time. See the module docstring for
    how observations become spans. UsageError for a probe no journal knows.
    """
    return timelines_from_journals(paths, [(service, probes)])[0]


def timelines_from_journals(
    paths: Sequence[Path], services: Sequence[tuple[str, Sequence[str]]]
) -> list[Timeline]:
    """As timeline_from_journals, for several (service, probes) at once: each journal is read and
    verified once for all of them, not once per service."""
    wanted = {service: _probe_names(probes) for service, probes in services}
    if not wanted:
        return []
    if not paths:
        raise UsageError(f"service {services[0][0]}: no journal given")
    every = tuple(dict.fromkeys(p for probes in wanted.values() for p in probes))
    segments = sorted((_read_segment(Path(p), every) for p in paths), key=lambda s: (s.first_ms, s.last_ms))
    _check_disjoint(segments)
    for service, probes in wanted.items():
        _check_known(segments, probes, service)
    return [Timeline(service, _spans(segments, probes)) for service, probes in wanted.items()]


def _spans(segments: list[_Segment], wanted: tuple[str, ...]) -> tuple[Span, ...]:
    spans: list[Span] = []
    for i, segment in enumerate(segments):  # each names its own lines; see the docstring on rotation
        after = segments[i + 1] if i + 1 < len(segments) else None
        carried = after is not None and after.continues == segment.path.name
        reach = {probe: _next_start(after, probe) if carried else None for probe in wanted}
        runs = _runs({probe: _pieces(segment, probe, reach[probe]) for probe in wanted})
        spans.extend(_span(segment.name, run) for run in _merge_runs(runs))
    return tuple(_with_gaps(spans))


def _probe_names(probes: Sequence[str]) -> tuple[str, ...]:
    if not probes:
        raise UsageError("a service needs at least one probe (asset/probe)")
    for probe in probes:
        asset, _, name = probe.partition("/")
        if not asset or not name:
            raise UsageError(f"probe {probe!r}: expected asset/probe, e.g. web/front")
    return tuple(dict.fromkeys(probes))  # once each, in the order given


def _read_segment(path: Path, wanted: tuple[str, ...]) -> _Segment:
    """Verify the whole journal while reading it: nothing of it is used unless every line holds."""
    segment = _Segment(path, raw={probe: [] for probe in wanted})
    try:
        for event in JournalStream(path):
            _take(segment, event)
    except DrillError as exc:  # JournalInvalid, or an unreadable file
        raise JournalInvalid(f"journal {path} refused: {exc.message}") from None
    if segment.count == 0:
        raise JournalInvalid(f"journal {path} refused: it holds no event")
    return segment


class _UtcMs:
    """A journal's `utc` text as epoch ms, parsing each second once: drill writes
    "YYYY-MM-DDTHH:MM:SS.mmm+00:00" and events come many per second; any other form is parsed
    in full."""

    __slots__ = ("_second", "_second_ms")

    def __init__(self) -> None:
        self._second = ""
        self._second_ms = 0

    def __call__(self, utc: str) -> int:
        if len(utc) != 29 or utc[19] != "." or not utc.endswith("+00:00") or not utc[20:23].isdigit():
            return ms_of(datetime.fromisoformat(utc))
        second = utc[:19]
        if second != self._second:
            self._second, self._second_ms = second, ms_of(datetime.fromisoformat(second + "+00:00"))
        return self._second_ms + int(utc[20:23])


def _take(segment: _Segment, event: Event) -> None:
    at_ms = segment.utc_ms(event.utc)
    if segment.count == 0:
        segment.first_ms = segment.last_ms = at_ms
    segment.first_ms = min(segment.first_ms, at_ms)
    segment.last_ms = max(segment.last_ms, at_ms)
    segment.count += 1
    payload = event.payload
    if isinstance(payload, ProbeObserved):
        name = f"{event.asset}/{payload.probe}"
        segment.seen.add(name)
        observed = segment.raw.get(name)
        if observed is not None:
            done_ms = at_ms + max(payload.latency_us // 1000, 1)
            observed.append(
                _Raw(at_ms, done_ms, payload.ok, event.seq, payload.tick, payload.scheduled_mono_ns)
            )
    elif isinstance(payload, RunStarted) and payload.plan is not None:
        _take_plan(segment, payload.plan)
    elif isinstance(payload, WatchSegment):
        _take_plan(segment, payload.plan)
        if payload.reason == "rotation" and segment.count == 1:
            segment.continues = payload.previous_file


def _take_plan(segment: _Segment, plan: Plan) -> None:
    for asset in plan.assets:
        for probe in asset.probes:
            name = f"{asset.id}/{probe.name}"
            segment.seen.add(name)
            segment.intervals[name] = probe.interval_ms


def _check_disjoint(segments: list[_Segment]) -> None:
    for before, after in pairwise(segments):
        if after.first_ms < before.last_ms:
            raise UsageError(
                f"journals {before.path} and {after.path} overlap in time: "
                "give each segment once, and journals of one watch or drill at a time"
            )


def _check_known(segments: list[_Segment], wanted: tuple[str, ...], service: str) -> None:
    seen = set().union(*(s.seen for s in segments))
    unknown = [p for p in wanted if p not in seen]
    if unknown:
        known = ", ".join(sorted(seen)) or "none"
        raise UsageError(
            f"service {service}: no journal has probe {', '.join(unknown)} (probes there: {known})"
        )


def _interval_ms(segment: _Segment, probe: str, raw: list[_Raw]) -> int | None:
    """The plan's interval, else what consecutive ticks show; None when neither tells."""
    planned = segment.intervals.get(probe)
    if planned:
        return planned
    by_tick = sorted(raw, key=lambda r: r.tick)
    for a, b in pairwise(by_tick):
        if b.tick > a.tick:
            return max((b.scheduled_ns - a.scheduled_ns) // (b.tick - a.tick) // 1_000_000, 1)
    return None


def _next_start(segment: _Segment | None, probe: str) -> int | None:
    """When `probe` is first observed in `segment` (None: never)."""
    starts = [r.start_ms for r in segment.raw[probe]] if segment is not None else []
    return min(starts) if starts else None


def _pieces(segment: _Segment, probe: str, carried_to: int | None = None) -> list[_Piece]:
    """Each observation's reach (module docstring): to the next start, two intervals after its
    completion, the journal's last event, whichever comes first; the last one may reach into the
    segment a rotation continued this one with, up to `carried_to` (that one's first observation)."""
    raw = sorted(segment.raw[probe], key=lambda r: (r.start_ms, r.seq))
    interval = _interval_ms(segment, probe, raw)
    pieces: list[_Piece] = []
    for i, obs in enumerate(raw):
        limit = obs.done_ms + 2 * interval if interval is not None else obs.done_ms
        last = i + 1 == len(raw)
        bound = carried_to if last and carried_to is not None else segment.last_ms
        end = min(raw[i + 1].start_ms if not last else bound, limit, bound)
        if end > obs.start_ms:
            pieces.append(_Piece(obs.start_ms, end, obs.ok, obs.seq))
    return pieces


@dataclass(slots=True)
class _Run:
    """A stretch of one health within one journal, with the seqs of the observations behind it
    and, for partial coverage, the probes nothing observed."""

    start_ms: int
    end_ms: int
    health: Health
    lo: int
    hi: int
    missing: tuple[str, ...] = ()


def _runs(pieces: dict[str, list[_Piece]]) -> Iterator[_Run]:
    """Sweep the probes' pieces together: one run per stretch where each probe's state holds."""
    if len(pieces) == 1:  # the common case, a service of one probe: its pieces are the runs
        for p in next(iter(pieces.values())):
            yield _Run(p.start_ms, p.end_ms, "up" if p.ok else "down", p.seq, p.seq)
        return
    cuts = sorted({t for ps in pieces.values() for p in ps for t in (p.start_ms, p.end_ms)})
    at = dict.fromkeys(pieces, 0)
    for start, end in pairwise(cuts):
        covering: list[_Piece] = []
        missing: list[str] = []
        for probe, ps in pieces.items():
            i = at[probe]
            while i < len(ps) and ps[i].end_ms <= start:
                i += 1
            at[probe] = i
            if i < len(ps) and ps[i].start_ms <= start:
                covering.append(ps[i])
            else:
                missing.append(probe)
        if not covering:
            continue  # nothing observed at all: a gap, which _with_gaps names
        seqs = [p.seq for p in covering]
        ok = sum(p.ok for p in covering)
        health: Health = (
            "no-data" if missing else "up" if ok == len(covering) else "down" if ok == 0 else "partial"
        )
        yield _Run(start, end, health, min(seqs), max(seqs), tuple(missing))


def _merge_runs(runs: Iterable[_Run]) -> Iterator[_Run]:
    """Adjacent runs of the same health (and the same unobserved probes) as one."""
    last: _Run | None = None
    for run in runs:
        if last and last.end_ms == run.start_ms and (last.health, last.missing) == (run.health, run.missing):
            last.end_ms, last.lo, last.hi = run.end_ms, min(last.lo, run.lo), max(last.hi, run.hi)
            continue
        if last:
            yield last
        last = run
    if last:
        yield last


def _span(journal: str, run: _Run) -> Span:
    source = f"{journal}#{run.lo}-{run.hi}"
    if run.missing:
        source += f": no observation of {', '.join(run.missing)}"
    return Span(run.start_ms, run.end_ms, run.health, source)


def _with_gaps(spans: list[Span]) -> Iterator[Span]:
    """The spans with every gap between them stated as no data, naming the evidence either side."""
    for i, span in enumerate(spans):
        if i and spans[i - 1].end_ms < span.start_ms:
            before = spans[i - 1]
            yield Span(
                before.end_ms,
                span.start_ms,
                "no-data",
                f"no observation: after {before.source}, before {span.source}",
            )
        yield span


# ---------------------------------------------------------------------- incidents CSV

_COLUMNS = ("service", "start", "end", "impact")
Impact = Literal["down", "partial"]
_IMPACTS: dict[str, Impact] = {"down": "down", "partial": "partial"}


@dataclass(frozen=True, slots=True)
class _Incident:
    start_ms: int
    end_ms: int
    impact: Impact
    line: int


def timeline_from_incidents_csv(path: Path, service: str, start_ms: int, end_ms: int) -> Timeline:
    """The health of `service` over [start_ms, end_ms) from an incidents CSV.

    Columns service,start,end,impact (down|partial), times ISO 8601 with an offset; every row is
    checked (UsageError citing FILE:LINE), including other services' rows. Up outside its
    incidents (this source states no monitoring gaps); overlapping incidents merge, down
    winning over partial; each incident span names the CSV lines it came from.
    """
    _check_range(start_ms, end_ms)
    incidents = [i for s, i in _read_incidents(Path(path)) if s == service]
    clipped = [
        _Incident(max(i.start_ms, start_ms), min(i.end_ms, end_ms), i.impact, i.line)
        for i in incidents
        if i.end_ms > start_ms and i.start_ms < end_ms
    ]
    up_source = f"{path} (no monitoring data: up outside incidents)"
    cuts = sorted({start_ms, end_ms, *(t for i in clipped for t in (i.start_ms, i.end_ms))})
    spans: list[Span] = []
    lines_of: list[set[int]] = []
    for a, b in pairwise(cuts):
        over = [i for i in clipped if i.start_ms <= a < i.end_ms]
        health: Health = "down" if any(i.impact == "down" for i in over) else "partial" if over else "up"
        lines = {i.line for i in over if i.impact == health}
        if spans and spans[-1].health == health and spans[-1].end_ms == a:
            spans[-1] = Span(spans[-1].start_ms, b, health)
            lines_of[-1] |= lines
        else:
            spans.append(Span(a, b, health))
            lines_of.append(lines)
    named = (
        Span(s.start_ms, s.end_ms, s.health, up_source if s.health == "up" else _csv_source(path, lines))
        for s, lines in zip(spans, lines_of, strict=True)
    )
    return Timeline(service, tuple(named))


def _csv_source(path: Path, lines: set[int]) -> str:
    return f"{path}:{','.join(str(n) for n in sorted(lines))}"


def _read_incidents(path: Path) -> Iterator[tuple[str, _Incident]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(_rows(path, handle))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: not a CSV file ({exc})") from None
    yield from rows


def _rows(path: Path, handle: Iterable[str]) -> Iterator[tuple[str, _Incident]]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in reader.fieldnames or ()]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise UsageError(f"{path}:1: missing column(s) {', '.join(missing)} (expected {','.join(_COLUMNS)})")
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        where = f"{path}:{line}"
        cells = {c: (row.get(c) or "").strip() for c in _COLUMNS}
        if not cells["service"]:
            raise UsageError(f"{where}: the service is empty")
        start, end = _csv_time(where, "start", cells["start"]), _csv_time(where, "end", cells["end"])
        if end <= start:
            raise UsageError(f"{where}: end {cells['end']} is not after start {cells['start']}")
        impact = _IMPACTS.get(cells["impact"])
        if impact is None:
            raise UsageError(f"{where}: impact {cells['impact']!r}: expected down or partial")
        yield cells["service"], _Incident(start, end, impact, line)


def _csv_time(where: str, column: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{where}: {column} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(
            f"{where}: {column} {text!r} has no UTC offset: write it with one, e.g. {text}Z or {text}+01:00"
        )
    return ms_of(moment)


def _check_range(start_ms: int, end_ms: int) -> None:
    if end_ms <= start_ms:
        raise UsageError(f"the period is empty: end {end_ms} is not after start {start_ms} (UTC epoch ms)")


# ------------------------------------------------------------------------- Prometheus

_MAX_POINTS = 10_000  # per query: Prometheus refuses more than 11,000 points per series


def timeline_from_prometheus(
    url: str,
    query: str,
    service: str,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    *,
    timeout_s: float = 10.0,
) -> Timeline:
    """The health of `service` over [start_ms, end_ms) from a Prometheus range query of
    `probe_success` (module docstring: a sample covers one step; no sample, no data; several
    series: down if any is 0). `url` is Prometheus' base URL (credentials in it are used, never
    shown). UsageError for bad arguments, DrillError (one line) for HTTP or JSON problems."""
    _check_range(start_ms, end_ms)
    if step_ms <= 0:
        raise UsageError(f"the step must be positive, got {step_ms} ms")
    shown = _shown_url(url)
    source = f"prometheus {shown} query {query}"
    samples: dict[int, list[bool]] = {}
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(timeout_s)) as client:
        for chunk_start, chunk_end in _chunks(start_ms, end_ms, step_ms):
            for t, ok in _query_range(client, url, shown, query, chunk_start, chunk_end, step_ms):
                samples.setdefault(t, []).append(ok)
    spans: list[Span] = []
    at = start_ms
    for t in sorted(samples):
        if t < start_ms or t >= end_ms:
            continue
        if t > at:
            _extend(spans, Span(at, t, "no-data", f"{source}: no sample"))
        health: Health = "up" if all(samples[t]) else "down"
        _extend(spans, Span(t, min(t + step_ms, end_ms), health, source))
        at = min(t + step_ms, end_ms)
    if at < end_ms:
        _extend(spans, Span(at, end_ms, "no-data", f"{source}: no sample"))
    return Timeline(service, tuple(spans))


def _extend(spans: list[Span], span: Span) -> None:
    if spans and spans[-1].end_ms == span.start_ms and spans[-1].health == span.health:
        spans[-1] = Span(spans[-1].start_ms, span.end_ms, span.health, span.source)
    else:
        spans.append(span)


def _chunks(start_ms: int, end_ms: int, step_ms: int) -> Iterator[tuple[int, int]]:
    """Query ranges (both ends inclusive, as Prometheus takes them) of at most _MAX_POINTS
    evaluation instants start + k * step, k >= 0, each instant before end_ms."""
    last = start_ms + (end_ms - 1 - start_ms) // step_ms * step_ms
    chunk = start_ms
    while chunk <= last:
        yield chunk, min(chunk + (_MAX_POINTS - 1) * step_ms, last)
        chunk += _MAX_POINTS * step_ms


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _shown_url(url: str) -> str:
    """The URL as a report or an error may show it: no credentials, no query string."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"not a Prometheus URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError("not a Prometheus URL: expected http(s)://HOST[:PORT][/PATH]")
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path.rstrip('/')}"


def _query_range(
    client: httpx.Client, url: str, shown: str, query: str, start_ms: int, end_ms: int, step_ms: int
) -> Iterator[tuple[int, bool]]:
    endpoint = httpx.URL(url).copy_with(query=None, fragment=None)
    endpoint = endpoint.copy_with(path=endpoint.path.rstrip("/") + "/api/v1/query_range")
    params = {"query": query, "start": _seconds(start_ms), "end": _seconds(end_ms), "step": _seconds(step_ms)}
    try:
        response = client.get(endpoint, params=params)
    except httpx.TimeoutException:
        raise DrillError(f"Prometheus at {shown} did not answer within the timeout") from None
    except httpx.HTTPError as exc:
        raise DrillError(f"cannot query Prometheus at {shown}: {type(exc).__name__}") from None
    body = _json(response, shown)
    if response.status_code != 200 or body.get("status") != "success":
        error = " ".join(str(body.get("error") or "no error message").split())[:300]
        raise DrillError(f"Prometheus at {shown} refused the query (HTTP {response.status_code}): {error}")
    data = body.get("data")
    if (
        not isinstance(data, dict)
        or data.get("resultType") != "matrix"
        or not isinstance(data.get("result"), list)
    ):
        raise DrillError(f"Prometheus at {shown} answered without a range (matrix) result")
    for series in data["result"]:
        yield from _samples(series, shown)


def _json(response: httpx.Response, shown: str) -> dict[str, object]:
    try:
        body = json.loads(response.content, parse_float=Decimal)  # timestamps exact, to the ms
    except ValueError:
        raise DrillError(f"Prometheus at {shown} answered HTTP {response.status_code} with no JSON") from None
    if not isinstance(body, dict):
        raise DrillError(f"Prometheus at {shown} answered JSON that is not an object")
    return body


def _samples(series: object, shown: str) -> Iterator[tuple[int, bool]]:
    values = series.get("values") if isinstance(series, dict) else None
    if not isinstance(values, list):
        raise DrillError(f"Prometheus at {shown} answered a series without values")
    for pair in values:
        try:
            stamp, value = pair
            t = int(Decimal(stamp) * 1000)
        except (TypeError, ValueError, InvalidOperation):
            raise DrillError(f"Prometheus at {shown} answered a malformed sample {str(pair)[:80]}") from None
        if value not in ("0", "1"):
            raise DrillError(
                f"the query returned {str(value)[:20]} at {_seconds(t)}: expected probe_success values 0 or 1"
            )
        yield t, value == "1"
