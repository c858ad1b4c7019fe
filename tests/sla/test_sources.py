"""Timelines from the three sources: real drill journals, an incidents CSV, a real Prometheus.

Journals: a real demo drill against the embedded lab (its web front really goes down when the
primary site is lost), then a short probe-only drill as a second segment: the timeline of web
must show the outage where the journal's own asset.state events put it, and the time between
the two journals as no data. Prometheus: a real Prometheus scraping a real blackbox exporter
every second, probing an HTTP server this test turns to 503 for about 3 s (the test's own
timestamps are the truth); skipped when the binaries are missing, unless
DRILL_REQUIRE_INTEGRATION=1 (then it fails).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drill.clock import FakeClock, wall_utc_now
from drill.errors import DrillError, JournalInvalid, UsageError
from drill.evidence.events import AssetState, EventDraft, Mark, ProbeObserved
from drill.evidence.journal import JournalWriter, read_events
from drill.lab.lab import Lab
from drill.playbook.validate import load_playbook
from drill.resources import shipped_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from drill.sla.model import Span, Timeline
from drill.sla.sources import timeline_from_incidents_csv, timeline_from_journals, timeline_from_prometheus
from tests.conftest import SwitchableServer
from tests.support.prometheus import SCRAPE_INTERVAL_MS, PrometheusStack
from tests.support.servers import start_or_skip, wait_until

SEGMENT_PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata:
  name: sla-segment
  owner: tests@drill.example
  test_type: tabletop
settings:
  interval: 200ms
  timeout: 500ms
tiers:
  - {name: customer-facing, rto: 10s}
assets:
  - id: web
    tier: customer-facing
    waive: {rpo: "a probe-only segment"}
    probes:
      - name: front
        http: {url: "${env:DRILL_LAB_FRONT_URL}", expect_status: 200}
scenario:
  - name: steady state
    wait_for: {all_assets: true, state: up, within: 5s}
  - name: watch a little
    pause: 600ms
"""
INTERVAL_MS = 200  # web/front in both playbooks (demo.yaml's settings.interval)
TIMEOUT_MS = 500


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(utc: str) -> int:
    return (datetime.fromisoformat(utc) - EPOCH) // timedelta(milliseconds=1)


def now_ms() -> int:
    return (wall_utc_now() - EPOCH) // timedelta(milliseconds=1)


def assert_well_formed(timeline: Timeline) -> None:
    """Sorted, non-empty, not overlapping spans, each naming its source."""
    for span in timeline.spans:
        assert span.start_ms < span.end_ms, span
        assert span.source, span
    for before, after in zip(timeline.spans, timeline.spans[1:], strict=False):
        assert before.end_ms <= after.start_ms, (before, after)


# ---------------------------------------------------------------------------- journals


@dataclass(frozen=True, slots=True)
class Journals:
    demo: Path  # the demo drill: web is lost with the primary site, then switched over
    later: Path  # a second, probe-only run started after the demo had finished


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> Journals:
    root = tmp_path_factory.mktemp("sla-journals")
    segment = root / "segment.yaml"
    segment.write_text(SEGMENT_PLAYBOOK, encoding="utf-8")

    async def both() -> tuple[Path, Path]:
        async with Lab.start() as lab:
            options = RunOptions(
                runs_dir=root / "runs", auto_confirm=True, rollback="always", env={**os.environ, **lab.env()}
            )
            demo = await run_drill(load_playbook(Path(shipped_playbook("demo.yaml"))), options)
            later = await run_drill(load_playbook(segment), options)
        return demo.journal_path, later.journal_path

    return Journals(*asyncio.run(both()))


def web_states(journal: Path) -> list[tuple[str, int]]:
    """(state, epoch ms) of web's asset.state events after the initial one."""
    out: list[tuple[str, int]] = []
    for event in read_events(journal):
        if isinstance(event.payload, AssetState) and event.asset == "web" and not event.payload.initial:
            assert event.mono_ns == event.payload.at_mono_ns  # the event is stamped at the change
            out.append((event.payload.state, ms(event.utc)))
    return out


def web_observations(journal: Path) -> list[int]:
    return [
        ms(e.utc)
        for e in read_events(journal)
        if isinstance(e.payload, ProbeObserved) and e.asset == "web" and e.payload.probe == "front"
    ]


def test_web_is_down_where_the_journal_says(journals: Journals) -> None:
    timeline = timeline_from_journals([journals.demo], "web", ["web/front"])
    assert_well_formed(timeline)
    states = web_states(journals.demo)
    assert [s for s, _ in states] == ["down", "up"], states
    (_, down_at), (_, up_at) = states
    downs = [s for s in timeline.spans if s.health == "down"]
    assert downs, timeline.spans
    # every observed failure lies in the outage the asset states bracket (hysteresis may hide
    # a lone failure, but the demo's outage is one stretch); the first starts where it began
    assert abs(downs[0].start_ms - down_at) <= INTERVAL_MS
    assert down_at - INTERVAL_MS <= downs[0].start_ms and downs[-1].end_ms <= up_at + INTERVAL_MS
    assert abs(downs[-1].end_ms - up_at) <= INTERVAL_MS + TIMEOUT_MS
    observed = web_observations(journals.demo)
    assert timeline.spans[0].start_ms == min(observed)  # nothing before the first observation
    assert {s.health for s in timeline.spans} == {"up", "down"}  # probed every 200 ms: no gap
    assert all(s.source.startswith(f"journal {journals.demo}#") for s in timeline.spans)


def test_the_gap_between_two_segments_is_no_data(journals: Journals) -> None:
    # given out of order: the segments are put in time order
    timeline = timeline_from_journals([journals.later, journals.demo], "web", ["web/front"])
    assert_well_formed(timeline)
    demo_last = max(ms(e.utc) for e in read_events(journals.demo))
    later_first = min(web_observations(journals.later))
    assert later_first > demo_last + 100  # the lab's second run really started later
    gaps = [s for s in timeline.spans if s.health == "no-data"]
    assert len(gaps) == 1, timeline.spans
    gap = gaps[0]
    assert gap.start_ms <= demo_last and gap.end_ms == later_first
    assert gap.start_ms >= max(web_observations(journals.demo))
    assert str(journals.demo) in gap.source and str(journals.later) in gap.source
    after = [s for s in timeline.spans if s.start_ms >= later_first]
    assert after and all(s.source.startswith(f"journal {journals.later}#") for s in after)
    assert not [
        s
        for s in timeline.spans
        if s.health != "no-data" and gap.start_ms < s.end_ms and s.start_ms < gap.end_ms
    ]


def test_a_tampered_line_is_refused(journals: Journals, tmp_path: Path) -> None:
    lines = journals.demo.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if b'"probe.observed"' in line and b'"ok":true' in line)
    lines[index] = lines[index].replace(b'"ok":true', b'"ok":false')
    tampered = tmp_path / "journal.jsonl"
    tampered.write_bytes(b"".join(lines))
    with pytest.raises(JournalInvalid) as caught:
        timeline_from_journals([journals.later, tampered], "web", ["web/front"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"journal {tampered} refused: line {index + 2}: prev hash does not match")


def test_bad_journal_arguments_are_refused(journals: Journals) -> None:
    with pytest.raises(UsageError, match=r"no journal has probe web/frnt \(probes there: .*web/front"):
        timeline_from_journals([journals.demo], "web", ["web/frnt"])
    with pytest.raises(UsageError, match="overlap in time"):
        timeline_from_journals([journals.demo, journals.demo], "web", ["web/front"])
    with pytest.raises(UsageError, match="expected asset/probe"):
        timeline_from_journals([journals.demo], "web", ["front"])


def test_several_probes_make_partial(journals: Journals) -> None:
    """Down only while every probe fails; partial while some do (web recovers before reports)."""
    timeline = timeline_from_journals([journals.demo], "site", ["web/front", "reports/health"])
    assert_well_formed(timeline)
    web = timeline_from_journals([journals.demo], "web", ["web/front"])
    reports = timeline_from_journals([journals.demo], "reports", ["reports/health"])
    for span in timeline.spans:
        if span.health in ("no-data",):
            continue
        mid = (span.start_ms + span.end_ms) // 2
        both = {health_at(web, mid), health_at(reports, mid)}
        expected = "up" if both == {"up"} else "down" if both == {"down"} else "partial"
        assert span.health == expected, (span, both)
    assert "partial" in {s.health for s in timeline.spans}


def health_at(timeline: Timeline, t: int) -> str:
    return next((s.health for s in timeline.spans if s.start_ms <= t < s.end_ms), "no-data")


def test_an_observation_holds_two_intervals_past_its_completion(tmp_path: Path) -> None:
    """Exact arithmetic on a journal written here with a fake clock (no run.started: the interval,
    1 s, comes from the ticks): the probe stalls after tick 2 and answers again at tick 6."""
    clock = FakeClock(now_ns=0)
    path = tmp_path / "segment.jsonl"
    epoch = (clock.epoch - EPOCH) // timedelta(milliseconds=1)
    with JournalWriter.create(path, clock) as journal:
        for tick, ok in ((0, True), (1, False), (2, True), (6, True)):
            start_ns = tick * 1_000_000_000
            observed = ProbeObserved("front", ok, 30_000, tick, start_ns, 0)  # 30 ms each
            journal.append(EventDraft(observed, start_ns, "web"))
        journal.append(EventDraft(Mark("end"), 6_500_000_000))
    timeline = timeline_from_journals([path], "web", ["web/front"])
    name = f"journal {path}"
    assert timeline.spans == (
        Span(epoch, epoch + 1000, "up", f"{name}#1-1"),
        Span(epoch + 1000, epoch + 2000, "down", f"{name}#2-2"),
        Span(epoch + 2000, epoch + 4030, "up", f"{name}#3-3"),  # held 2 x 1 s past its completion
        Span(epoch + 4030, epoch + 6000, "no-data", f"no observation: after {name}#3-3, before {name}#4-4"),
        Span(epoch + 6000, epoch + 6500, "up", f"{name}#4-4"),  # until the journal's last event
    )


# ---------------------------------------------------------------------- incidents CSV

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
MIN = 60_000


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "incidents.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_incidents_give_exact_spans(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "service,start,end,impact,summary\n"
        "web,2026-03-01T01:00:00+01:00,2026-03-01T00:10:00Z,down,primary lost\n"  # 00:00Z-00:10Z
        "api,2026-03-01T00:20:00Z,2026-03-01T00:30:00Z,down,not web\n"
        "web,2026-03-01T00:40:00.250Z,2026-03-01T00:45:00Z,partial,slow\n",
    )
    timeline = timeline_from_incidents_csv(path, "web", T0 - 5 * MIN, T0 + 60 * MIN)
    up = f"{path} (no monitoring data: up outside incidents)"
    assert timeline == Timeline(
        "web",
        (
            Span(T0 - 5 * MIN, T0, "up", up),
            Span(T0, T0 + 10 * MIN, "down", f"{path}:2"),
            Span(T0 + 10 * MIN, T0 + 40 * MIN + 250, "up", up),
            Span(T0 + 40 * MIN + 250, T0 + 45 * MIN, "partial", f"{path}:4"),
            Span(T0 + 45 * MIN, T0 + 60 * MIN, "up", up),
        ),
    )
    clipped = timeline_from_incidents_csv(path, "web", T0 + 5 * MIN, T0 + 42 * MIN)
    assert [(s.start_ms, s.end_ms, s.health) for s in clipped.spans] == [
        (T0 + 5 * MIN, T0 + 10 * MIN, "down"),
        (T0 + 10 * MIN, T0 + 40 * MIN + 250, "up"),
        (T0 + 40 * MIN + 250, T0 + 42 * MIN, "partial"),
    ]


def test_overlapping_incidents_merge_down_winning(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "service,start,end,impact\n"
        "web,2026-03-01T00:00:00Z,2026-03-01T00:30:00Z,partial\n"
        "web,2026-03-01T00:10:00Z,2026-03-01T00:20:00Z,down\n"
        "web,2026-03-01T00:15:00Z,2026-03-01T00:25:00Z,down\n"
        "web,2026-03-01T00:28:00Z,2026-03-01T00:40:00Z,partial\n",
    )
    timeline = timeline_from_incidents_csv(path, "web", T0, T0 + 40 * MIN)
    assert timeline.spans == (
        Span(T0, T0 + 10 * MIN, "partial", f"{path}:2"),
        Span(T0 + 10 * MIN, T0 + 25 * MIN, "down", f"{path}:3,4"),
        Span(T0 + 25 * MIN, T0 + 40 * MIN, "partial", f"{path}:2,5"),
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "web,2026-03-01T00:00:00,2026-03-01T00:10:00Z,down",
            r"incidents.csv:3: start '2026-03-01T00:00:00' has no UTC offset",
        ),
        ("web,2026-03-01T00:00:00Z,2026-03-01,down", r"incidents.csv:3: end '2026-03-01' has no UTC offset"),
        ("web,2026-03-01T00:10:00Z,2026-03-01T00:00:00Z,down", r"incidents.csv:3: end .* is not after start"),
        (
            "web,2026-03-01T00:00:00Z,2026-03-01T00:10:00Z,degraded",
            r"incidents.csv:3: impact 'degraded': expected down or partial",
        ),
        (
            "web,yesterday,2026-03-01T00:10:00Z,down",
            r"incidents.csv:3: start 'yesterday' is not an ISO 8601 time",
        ),
    ],
)
def test_bad_rows_are_refused_citing_the_line(tmp_path: Path, row: str, message: str) -> None:
    path = write_csv(
        tmp_path, f"service,start,end,impact\napi,2026-03-01T00:00:00Z,2026-03-01T00:01:00Z,down\n{row}\n"
    )
    with pytest.raises(UsageError, match=message) as caught:
        timeline_from_incidents_csv(path, "web", T0, T0 + MIN)
    assert "\n" not in str(caught.value)


def test_a_csv_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "service,begin,end\nweb,a,b\n")
    with pytest.raises(UsageError, match=r"incidents.csv:1: missing column\(s\) start, impact"):
        timeline_from_incidents_csv(path, "web", T0, T0 + MIN)
    with pytest.raises(UsageError, match="cannot read"):
        timeline_from_incidents_csv(tmp_path / "absent.csv", "web", T0, T0 + MIN)


# ------------------------------------------------------------------------- Prometheus


@pytest.fixture
def prometheus(http_server: SwitchableServer) -> Iterator[PrometheusStack]:
    stack = start_or_skip(lambda: PrometheusStack.start(f"{http_server.url}/health"))
    yield stack
    stack.stop()


def sample(stack: PrometheusStack, value: str, at_least_ms: int) -> tuple[int, str] | None:
    """The newest sample when it has `value` and was scraped at or after at_least_ms."""
    latest = stack.latest()
    return latest if latest and latest[1] == value and latest[0] >= at_least_ms else None


@pytest.mark.integration
def test_prometheus_down_span_matches_the_outage(
    prometheus: PrometheusStack, http_server: SwitchableServer
) -> None:
    first = wait_until("a first probe_success sample", prometheus.latest, timeout_s=20)
    wait_until("a second sample of 1", lambda: sample(prometheus, "1", first[0] + SCRAPE_INTERVAL_MS))
    down_at = now_ms()
    http_server.status = 503
    wait_until("3 s of the outage in Prometheus", lambda: sample(prometheus, "0", down_at + 3000))
    up_at = now_ms()
    http_server.status = 200
    last = wait_until("2 s of samples after it", lambda: sample(prometheus, "1", up_at + 2000))

    query = 'probe_success{job="blackbox"}'
    step = 1000
    start, end = first[0] - 2500, last[0] + 1
    timeline = timeline_from_prometheus(prometheus.url, query, "web", start, end, step)
    assert_well_formed(timeline)
    assert [s.health for s in timeline.spans] == ["no-data", "up", "down", "up"], timeline.spans
    assert (timeline.spans[0].start_ms, timeline.spans[-1].end_ms) == (start, end)
    tolerance = SCRAPE_INTERVAL_MS + step
    down = timeline.spans[2]
    assert abs(down.start_ms - down_at) <= tolerance and abs(down.end_ms - up_at) <= tolerance, (
        down,
        down_at,
        up_at,
    )
    assert down.source == f"prometheus {prometheus.url} query {query}"
    assert timeline.spans[0].source.endswith(": no sample")

    # 1 ms steps: more points than Prometheus answers in one query (11,000), so several queries
    fine = timeline_from_prometheus(prometheus.url, query, "web", down_at - 4000, up_at + 1000, 1)
    fine_down = [s for s in fine.spans if s.health == "down"]
    assert len(fine_down) == 1
    assert abs(fine_down[0].start_ms - down_at) <= SCRAPE_INTERVAL_MS + 1
    assert abs(fine_down[0].end_ms - up_at) <= SCRAPE_INTERVAL_MS + 1


@pytest.mark.integration
def test_prometheus_problems_are_one_line_errors(prometheus: PrometheusStack) -> None:
    secret_url = prometheus.url.replace("http://", "http://auditor:s3cret@")
    t = now_ms()
    with pytest.raises(DrillError, match=r"refused the query \(HTTP 400\): .*parse error") as caught:
        timeline_from_prometheus(secret_url, "probe_success{", "web", t - 10_000, t, 1000)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)
    closed = SwitchableServer()
    dead = closed.url
    closed.server_close()  # nothing listens there any more
    with pytest.raises(DrillError, match=f"cannot query Prometheus at {dead}: ConnectError"):
        timeline_from_prometheus(dead, "probe_success", "web", t - 10_000, t, 1000)
    with pytest.raises(UsageError, match="the step must be positive"):
        timeline_from_prometheus(prometheus.url, "probe_success", "web", t - 10_000, t, 0)
    with pytest.raises(UsageError, match="not a Prometheus URL"):
        timeline_from_prometheus("ftp://127.0.0.1", "probe_success", "web", t - 10_000, t, 1000)
    with pytest.raises(DrillError, match="expected probe_success values 0 or 1"):
        timeline_from_prometheus(prometheus.url, "vector(0.5)", "web", t - 2000, t, 1000)
