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

How a journal is read: drill.sla.digest turns its events, in order, into each probe's pieces (an
observation's reach, adjacent ones of one answer merged, naming the lines behind them); a span of
a service of several probes names the lines of every piece covering it, which may begin before it
and end after it. A watch seals every segment with that digest, so `journal_digests` may take a
segment from a seal whose signature a given allowed_signers file trusts (drill.sla.segments.
SealReader: the file's SHA-256 is still checked) instead of re-reading its lines; the figures are
the same either way.

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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Literal

import httpx

from drill.clock import ms_of, utc_ms
from drill.errors import DrillError, JournalInvalid, UsageError
from drill.evidence.journal import JournalStream
from drill.sla.digest import DigestBuilder, Piece, SegmentDigest
from drill.sla.model import Health, Span, Timeline
from drill.sla.segments import SealReader, read_seal, segments_in

__all__ = [
    "JournalDigest",
    "journal_digests",
    "timeline_from_incidents_csv",
    "timeline_from_journals",
    "timeline_from_prometheus",
    "timelines_from_digests",
    "timelines_from_journals",
]

# ------------------------------------------------------------------------- journals


@dataclass(frozen=True, slots=True)
class JournalDigest:
    """One journal's digest and where it came from: its lines, each verified (`read`), or its
    seal's digest, the seal signed by a trusted key and the file's SHA-256 checked (`seal`)."""

    path: Path
    digest: SegmentDigest
    how: Literal["read", "seal"] = "read"

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
    every = tuple(dict.fromkeys(p for _, probes in services for p in _probe_names(probes)))
    if not services:
        return []
    if not paths:
        raise UsageError(f"service {services[0][0]}: no journal given")
    return timelines_from_digests(journal_digests(paths, every), services)


def journal_digests(
    paths: Sequence[Path],
    wanted: Sequence[str],
    tracked: Sequence[str] = (),
    seals: SealReader | None = None,
) -> list[JournalDigest]:
    """Each journal's digest (pieces of the `wanted` probes, round trips of the `tracked` ones), in
    time order, checked not to overlap. A journal is verified in full while it is read, unless
    `seals` trusts its seal's digest (drill.sla.segments.SealReader); a torn last line is allowed
    only where the journal's seal records it."""
    seals = seals if seals is not None else SealReader()
    digests: list[JournalDigest] = []
    for path in map(Path, paths):
        from_seal = seals.digest(path, tracked)
        if from_seal is not None:
            digests.append(JournalDigest(path, from_seal, "seal"))
        else:
            digests.append(JournalDigest(path, _read_journal(path, wanted, tracked, seals.torn_bytes(path))))
    digests.sort(key=lambda d: (d.digest.first_ms, d.digest.last_ms))
    _check_disjoint(digests)
    return digests


def timelines_from_digests(
    digests: Sequence[JournalDigest], services: Sequence[tuple[str, Sequence[str]]]
) -> list[Timeline]:
    wanted = {service: _probe_names(probes) for service, probes in services}
    for service, probes in wanted.items():
        _check_known(digests, probes, service)
    return [Timeline(service, _spans(digests, probes)) for service, probes in wanted.items()]


def _spans(digests: Sequence[JournalDigest], wanted: tuple[str, ...]) -> tuple[Span, ...]:
    spans: list[Span] = []
    for i, journal in enumerate(digests):  # each names its own lines; see the docstring on rotation
        after = digests[i + 1] if i + 1 < len(digests) else None
        carried = after is not None and after.digest.continues == journal.path.name
        pieces = {
            probe: _reach(journal.digest, probe, after.digest if carried and after else None)
            for probe in wanted
        }
        spans.extend(_span(journal.name, run) for run in _merge_runs(_runs(pieces)))
    return tuple(_with_gaps(spans))


def _reach(digest: SegmentDigest, probe: str, continued: SegmentDigest | None) -> tuple[Piece, ...]:
    """The probe's pieces: the last observation's reaching to the journal's last event, or, when a
    rotation continued it, to the probe's first observation in the next segment (module docstring)."""
    mine = digest.probes.get(probe)
    if mine is None:
        return ()
    bound = digest.last_ms
    if continued is not None:
        after = continued.probes.get(probe)
        if after is not None and after.first_start_ms is not None:
            bound = after.first_start_ms
    return mine.reach(bound)


def watch_timelines_since(
    folder: Path, services: Sequence[tuple[str, Sequence[str]]], since_ms: int
) -> list[Timeline]:
    """A watch folder's own record from `since_ms` on, for a restarted watch's live view: each
    closed segment ending after it, newest back, from its seal's digest. Not re-verified (the
    watch refuses to resume a folder whose last segment was altered, and the signed report
    verifies everything). A segment whose seal has no digest (format 1) is left out rather than
    re-read (an hour of 100 probes takes seconds to read, and the probes wait): its downtime is
    not counted, so a live threshold can only fire later. A service whose probes the segments do
    not know is left out. Spans are cut at `since_ms`."""
    journals: list[JournalDigest] = []
    for _, path in reversed(segments_in(folder)):
        try:
            seal = read_seal(path)
        except (ValueError, OSError):
            continue  # not a usable seal: left out here; `drill watch-verify` names it
        if seal is None or not seal.last_utc:
            continue
        if seal.digest is not None:
            journals.insert(0, JournalDigest(path, seal.digest, "seal"))
        if utc_ms(seal.last_utc) < since_ms:
            # The first segment that ends before the instant is the last one read: its last
            # observation may reach past its last event into the next (a rotation's carry-over).
            # Every earlier one ends earlier still.
            break
    out = []
    for service, probes in services:
        try:
            (timeline,) = timelines_from_digests(journals, [(service, probes)])
        except UsageError:
            continue
        cut = (Span(max(s.start_ms, since_ms), s.end_ms, s.health, s.source) for s in timeline.spans)
        out.append(Timeline(service, tuple(s for s in cut if s.end_ms > s.start_ms)))
    return out


def _probe_names(probes: Sequence[str]) -> tuple[str, ...]:
    if not probes:
        raise UsageError("a service needs at least one probe (asset/probe)")
    for probe in probes:
        asset, _, name = probe.partition("/")
        if not asset or not name:
            raise UsageError(f"probe {probe!r}: expected asset/probe, e.g. web/front")
    return tuple(dict.fromkeys(probes))  # once each, in the order given


def _read_journal(
    path: Path, wanted: Sequence[str], tracked: Sequence[str], torn_bytes: int
) -> SegmentDigest:
    """Verify the whole journal while reading it: nothing of it is used unless every line holds
    (a torn last line, of the length its seal records, is left unread as the seal says)."""
    builder = DigestBuilder(wanted, tracked)
    stream = JournalStream(path, allow_torn_tail=torn_bytes > 0)
    try:
        for event in stream:
            builder.take(event)
    except DrillError as exc:  # JournalInvalid, or an unreadable file
        raise JournalInvalid(f"journal {path} refused: {exc.message}") from None
    if stream.summary.torn_bytes != torn_bytes:
        raise JournalInvalid(
            f"journal {path} refused: it ends in {stream.summary.torn_bytes} torn bytes, its seal says {torn_bytes}"
        )
    if builder.count == 0:
        raise JournalInvalid(f"journal {path} refused: it holds no event")
    return builder.finish()


def _check_disjoint(digests: list[JournalDigest]) -> None:
    for before, after in pairwise(digests):
        if after.digest.first_ms < before.digest.last_ms:
            raise UsageError(
                f"journals {before.path} and {after.path} overlap in time: "
                "give each segment once, and journals of one watch or drill at a time"
            )


def _check_known(digests: Sequence[JournalDigest], wanted: tuple[str, ...], service: str) -> None:
    seen = {name for d in digests for name in d.digest.seen}
    unknown = [p for p in wanted if p not in seen]
    if unknown:
        known = ", ".join(sorted(seen)) or "none"
        raise UsageError(
            f"service {service}: no journal has probe {', '.join(unknown)} (probes there: {known})"
        )


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


def _runs(pieces: dict[str, tuple[Piece, ...]]) -> Iterator[_Run]:
    """Sweep the probes' pieces together: one run per stretch where each probe's state holds.
    A run names the lines of every piece covering it: with several probes, a piece is a probe's
    whole stretch of one answer, so the lines may start before the run and end after it."""
    if len(pieces) == 1:  # the common case, a service of one probe: its pieces are the runs
        for p in next(iter(pieces.values())):
            yield _Run(p.start_ms, p.end_ms, "up" if p.ok else "down", p.lo, p.hi)
        return
    cuts = sorted({t for ps in pieces.values() for p in ps for t in (p.start_ms, p.end_ms)})
    at = dict.fromkeys(pieces, 0)
    for start, end in pairwise(cuts):
        covering: list[Piece] = []
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
        ok = sum(p.ok for p in covering)
        health: Health = (
            "no-data" if missing else "up" if ok == len(covering) else "down" if ok == 0 else "partial"
        )
        lo, hi = min(p.lo for p in covering), max(p.hi for p in covering)
        yield _Run(start, end, health, lo, hi, tuple(missing))


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
