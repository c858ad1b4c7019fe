"""The typed event catalogue through the journal: every type round-trips, the writer and the
reader refuse data that does not fit its type, and format-1 journals (drill 0.1.0) still fold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar, cast

import pytest
import rfc8785

from drill.clock import FakeClock
from drill.errors import JournalInvalid
from drill.evidence import journal as journal_module
from drill.evidence.events import (
    JOURNAL_FORMAT,
    PAYLOAD_TYPES,
    AckRefused,
    AssetState,
    CanaryWritten,
    ChainExhausted,
    EventDraft,
    FailureInjected,
    ManualAnswer,
    ManualAnswered,
    Mark,
    PageAcked,
    PageSent,
    Payload,
    PlaybookRef,
    PreviousAsset,
    PreviousDrill,
    ProbeAbandoned,
    ProbeObserved,
    ProbeOverrun,
    ProbeSites,
    ReturnChecked,
    RollbackFinished,
    RollbackStarted,
    RpoMeasured,
    RpoUnmeasured,
    RunFinished,
    RunOptionsRecord,
    RunStarted,
    RunStatus,
    SignalReceived,
    SiteDone,
    SiteLost,
    SiteSeen,
    SiteState,
    SlaAlert,
    SteadyState,
    StepAttempt,
    StepFinished,
    StepStarted,
    StepStatus,
    StopTripped,
    WaitEnded,
    WaitStarted,
    WatchGap,
    WatchSegment,
    WatchStarted,
    WatchStopped,
    payload_data,
)
from drill.evidence.journal import JournalWriter, read_events, verify_journal
from drill.evidence.snapshot import Phase, Plan, StepKind
from drill.plan import build_plan
from drill.playbook.validate import load_playbook
from drill.results import fold_journal

TESTS = Path(__file__).resolve().parents[1]
MINIMAL = TESTS / "playbook" / "valid" / "minimal.yaml"
EVIDENCE_V1 = TESTS / "fixtures" / "evidence-v1"
UTC = "2026-01-01T00:00:01.500+00:00"


def _plan() -> Plan:
    return build_plan(load_playbook(MINIMAL))


def _samples() -> list[EventDraft]:
    """One event of every type, every field (and every field of its nested records) off its default."""
    return [
        EventDraft(
            RunStarted(
                run_id="20260101T000000Z-0123abcd",
                playbook=PlaybookRef(
                    name="minimal",
                    sha256="ab" * 32,
                    path=str(MINIMAL),
                    document={
                        "metadata": {"name": "minimal"},
                        "tiers": [{"rto": "5m"}],
                        "n": [1, None, True],
                    },
                ),
                user="tester@host",
                host="host-1",
                tool_version="9.8.7",
                started_utc="2026-01-01T00:00:00.000+00:00",
                options=RunOptionsRecord(auto_confirm=True, rollback="always", allow_degraded=True),
                planned_start="2026-01-01T09:00:00+01:00",
                mode="contacts",
                plan=_plan(),
                format=JOURNAL_FORMAT,
                previous=PreviousDrill(
                    run_id="20251001T000000Z-00aa11bb",
                    report_sha256="cd" * 32,
                    generated_utc="2025-10-01T09:00:00.000+00:00",
                    verdict="fail",
                    quarter="2025-Q4",
                    assets=(PreviousAsset("api", "fail", 61_000, None),),
                ),
            ),
            1_000,
        ),
        EventDraft(RunFinished(RunStatus.FAILED, "a scenario step failed"), 2_000),
        EventDraft(
            ProbeObserved(
                probe="health",
                ok=True,
                latency_us=250_123,
                tick=42,
                scheduled_mono_ns=9_000_000_000,
                jitter_us=-1_234,
                reason="timed out after 250 ms",
                site="eu-west",
            ),
            3_000,
            asset="api",
        ),
        EventDraft(ProbeSites("health", ("eu-west", "us-east", "ap-south"), 2), 3_050, asset="api"),
        EventDraft(SiteState("eu-west", "health", "no data", 3_100, 3_050, 3_150), 3_100, asset="api"),
        EventDraft(SiteSeen("eu-west", "host-1a2b3c4d", -1_250, 640, "chrony"), 3_200),
        EventDraft(SiteLost("eu-west", "no agent answered for 2000 ms"), 3_300),
        EventDraft(SiteDone("eu-west", "host-1a2b3c4d", 120, 119, 1), 3_400),
        EventDraft(ProbeOverrun("health", 3), 4_000, asset="api"),
        EventDraft(
            ProbeAbandoned("canary", "still running 2 s after it was told to stop"), 4_500, asset="db"
        ),
        EventDraft(
            AssetState(
                state="down",
                at_mono_ns=5_000_000_000,
                lower_mono_ns=4_900_000_000,
                probe="health",
                streak=3,
                initial=True,
                upper_mono_ns=5_030_000_000,
            ),
            5_000,
            asset="api",
        ),
        EventDraft(StepStarted("fail back", StepKind.ACTION, Phase.ROLLBACK), 6_000),
        EventDraft(
            StepFinished(
                step="fail back",
                kind=StepKind.PARALLEL,
                status=StepStatus.FAILED,
                phase=Phase.ROLLBACK,
                reason="failed: promote",
                attempts=2,
                captured="10.0.0.7",
            ),
            7_000,
        ),
        EventDraft(StepAttempt("fail over", 2, True, "expected status 2xx, got 503"), 8_000),
        EventDraft(Mark("baseline", "declare", {"db": "up", "api": "unknown"}), 9_000),
        EventDraft(SteadyState(True, ("api",), True), 9_500),
        EventDraft(WaitStarted("acknowledgements", 60_000, "from chains oncall"), 9_600),
        EventDraft(WaitEnded("acknowledgements", "timed out", "not acknowledged: oncall"), 9_700),
        EventDraft(ReturnChecked(False, ("api (down)",)), 9_800),
        EventDraft(
            ManualAnswered(
                step="check",
                answer=ManualAnswer.SKIP,
                who="ana@host",
                auto=True,
                prompt="Is the banner up?",
                phase=Phase.ROLLBACK,
            ),
            10_000,
        ),
        EventDraft(FailureInjected("declare", 10_500), 11_000),
        EventDraft(StopTripped("db outage", "db down for 1 s (limit 1 s)"), 12_000, asset="db"),
        EventDraft(SignalReceived("SIGTERM"), 13_000),
        EventDraft(RollbackStarted("internal error: RuntimeError: boom"), 14_000),
        EventDraft(RollbackFinished("failed"), 15_000),
        EventDraft(
            RpoMeasured(
                probe="canary",
                last_acked_seq=17,
                last_acked_utc=UTC,
                last_surviving_seq=15,
                surviving_utc="2026-01-01T00:00:01.100+00:00",
                lost_writes=2,
                rpo_ms=400,
                at_risk_writes=3,
            ),
            16_000,
            asset="db",
        ),
        EventDraft(
            RpoUnmeasured(
                probe="canary", reason="the replica did not answer", last_acked_seq=17, last_acked_utc=UTC
            ),
            17_000,
            asset="db",
        ),
        EventDraft(CanaryWritten("canary", 17, UTC), 18_000, asset="db"),
        EventDraft(
            PageSent(
                page_id="page-1",
                chain="oncall",
                contact="Ana",
                via="webhook",
                assets=("db", "api"),
                ok=False,
                reason="503 from the webhook",
                attempts=3,
                ack_within_ms=300_000,
                chains=("oncall", "backup"),
                delivery_ms=1_500,
                trigger_mono_ns=7_000_000_000,
            ),
            19_000,
        ),
        EventDraft(
            PageAcked(
                page_id="page-1",
                chain="oncall",
                contact="Ana",
                via="webhook",
                by="ana",
                ack_ms=120_000,
                ack_within_ms=300_000,
                met=True,
                since_trigger_ms=130_000,
                chains=("oncall", "backup"),
            ),
            20_000,
        ),
        EventDraft(
            AckRefused(reason="bad token", status=403, by="mallory", peer="127.0.0.1:5555", page_id="page-1"),
            21_000,
        ),
        EventDraft(ChainExhausted("oncall", ("db",), 2, trigger_mono_ns=8_000_000_000), 22_000),
        EventDraft(
            WatchSegment(
                2, "segment-000001.jsonl", "ab" * 32, 41, "rotation", 3_600_000, _plan(), {"db": "up"}
            ),
            23_000,
        ),
        EventDraft(
            WatchStarted(
                session="20261202T171006Z-90e387f7",
                playbook=PlaybookRef("drill", "f" * 64, "playbook.yaml", {"kind": "Playbook"}),
                user="ana@host",
                host="host",
                tool_version="0.2.0",
                started_utc="2026-12-02T17:10:06.274+00:00",
                format=1,
            ),
            24_000,
        ),
        EventDraft(
            WatchGap(
                "2026-12-02T17:10:04.975+00:00",
                "2026-12-02T17:10:06.274+00:00",
                1_299,
                "segment-000001.jsonl",
                "no-data",
                "the watch was not running",
            ),
            25_000,
        ),
        EventDraft(WatchStopped("SIGTERM received"), 26_000),
        EventDraft(
            SlaAlert(
                name="page-fast",
                kind="burn",
                state="firing",
                service="web",
                chain="oncall",
                at_utc="2026-12-02T17:10:08.000+00:00",
                factor_milli=14_400,
                long_ms=3_600_000,
                short_ms=300_000,
                long_milli=15_000,
                short_milli=20_000,
                below=95_000,
                availability=94_000,
                window_ms=3_600_000,
            ),
            27_000,
        ),
    ]


def _defaults_left(record: Payload | PlaybookRef | RunOptionsRecord, where: str) -> list[str]:
    """Fields of record (and of the events module's nested records) still at their default."""
    left = []
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            left.append(f"{where}.{f.name}")
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            left.append(f"{where}.{f.name}")
        if isinstance(value, PlaybookRef | RunOptionsRecord):
            left += _defaults_left(value, f"{where}.{f.name}")
    return left


def _same_types(a: object, b: object, where: str = "payload") -> None:
    """a == b is not enough: a StrEnum equals its text and a tuple's items equal a list's."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same_types(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple | list):
        assert isinstance(b, tuple | list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_types(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where  # written in canonical key order
        for key in a:
            _same_types(a[key], b[key], f"{where}[{key!r}]")


def test_the_samples_cover_every_event_type_with_no_field_left_at_its_default() -> None:
    samples = [d.payload for d in _samples()]
    assert sorted(p.TYPE for p in samples) == sorted(PAYLOAD_TYPES)  # a new type needs a sample here
    assert all(PAYLOAD_TYPES[p.TYPE] is type(p) for p in samples)
    left = [name for p in samples for name in _defaults_left(p, p.TYPE)]
    assert left == []


def test_every_event_type_round_trips_through_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    drafts = _samples()
    with JournalWriter.create(path, FakeClock()) as writer:
        written = [writer.append(d) for d in drafts]
    read = list(read_events(path))
    assert read == written
    assert [(e.payload, e.mono_ns, e.asset) for e in read] == [
        (d.payload, d.mono_ns, d.asset) for d in drafts
    ]
    for event, draft in zip(read, drafts, strict=True):
        _same_types(event.payload, draft.payload, event.type)
        assert event.type == draft.payload.TYPE
    started = read[0].payload
    assert isinstance(started, RunStarted) and started.plan == _plan() and started.format == 2
    assert verify_journal(path).count == len(PAYLOAD_TYPES)


# --- the writer refuses a payload that does not fit its type -------------------------------------


def _observed(latency_us: int = 12, ok: bool = True) -> ProbeObserved:
    return ProbeObserved("health", ok, latency_us, 1, 1_000, 0)


# Payloads that lie about their field types, as a bug in an emitter would: the casts say so.
def _not_int(value: object) -> int:
    return cast(int, value)


@dataclasses.dataclass(frozen=True, slots=True)
class Unregistered:
    """Looks like an event (it has a TYPE) but is not in the catalogue."""

    TYPE: ClassVar[str] = "mark"
    name: str = "x"


@dataclasses.dataclass(frozen=True, slots=True)
class MarkLookalike(Mark):
    """A subclass of a registered type is not that type."""


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_observed(_not_int("12")), "probe.observed event: Expected `int`, got `str` - at `$.latency_us`"),
        (_observed(_not_int(12.0)), "probe.observed event: Expected `int`, got `float` - at `$.latency_us`"),
        (_observed(_not_int(12.5)), "probe.observed event: Expected `int`, got `float` - at `$.latency_us`"),
        (_observed(True), "probe.observed event: Expected `int`, got `bool` - at `$.latency_us`"),
        (_observed(ok=cast(bool, 1)), "probe.observed event: Expected `bool`, got `int` - at `$.ok`"),
        (
            RunFinished(cast(RunStatus, "weird")),
            "run.finished event: Invalid enum value 'weird' - at `$.status`",
        ),
        (
            Mark("m", states=cast(dict[str, str], {"db": 1})),
            "mark event: Expected `str`, got `int` - at `$.states[...]`",
        ),
        (Unregistered(), "Unregistered is not a journal event type"),
        (MarkLookalike("m"), "MarkLookalike is not a journal event type"),
    ],
    ids=[
        "str-for-int",
        "whole-float-for-int",
        "float-for-int",
        "bool-for-int",
        "int-for-bool",
        "bad-enum",
        "int-in-a-str-map",
        "unregistered-type",
        "subclass-of-a-type",
    ],
)
def test_the_writer_refuses_a_payload_that_does_not_fit_its_type(
    tmp_path: Path, payload: object, message: str
) -> None:
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        writer.append(EventDraft(Mark("before"), 1))
        size = path.stat().st_size
        with pytest.raises(TypeError) as caught:
            writer.append(EventDraft(cast(Payload, payload), 2))
        assert str(caught.value) == f"journal data: {message}"
        assert (writer.count, path.stat().st_size) == (1, size)  # nothing written
        writer.append(EventDraft(Mark("after"), 3))
    assert [e.payload for e in read_events(path)] == [Mark("before"), Mark("after")]


def test_the_writer_refuses_a_plan_that_does_not_fit_its_type(tmp_path: Path) -> None:
    started = _samples()[0].payload
    assert isinstance(started, RunStarted) and started.plan is not None
    plan = dataclasses.replace(started.plan, max_duration_ms=_not_int("1h"))
    broken = dataclasses.replace(started, plan=plan)
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        with pytest.raises(
            TypeError, match=r"run\.started event: Expected `int`, got `str` - at `\$\.plan\.max_duration_ms`"
        ):
            writer.append(EventDraft(broken, 1))
        assert writer.count == 0
    assert path.stat().st_size == 0


@pytest.mark.parametrize("payload", [object(), {"name": "x"}], ids=["object", "dict"])
def test_the_writer_refuses_an_object_that_is_no_payload_with_a_type_error(
    tmp_path: Path, payload: object
) -> None:
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        with pytest.raises(TypeError):
            writer.append(EventDraft(cast(Payload, payload), 1))
        assert writer.count == 0
    assert path.stat().st_size == 0


# --- the reader refuses a line whose data does not fit its type -----------------------------------


def _good_journal(path: Path) -> JournalWriter:
    with JournalWriter.create(path, FakeClock()) as writer:
        writer.append(EventDraft(Mark("baseline", states={"api": "up"}), 1))
        writer.append(EventDraft(_observed(), 2, asset="api"))
    return writer


def _append_by_hand(path: Path, writer: JournalWriter, kind: str, data: dict[str, object]) -> None:
    """A third line, canonical and correctly chained: only its data is wrong for its type."""
    line = journal_module._line(3, writer.head, 3, UTC, kind, "api", data)
    assert line == rfc8785.dumps(json.loads(line))
    with path.open("ab") as stream:
        stream.write(line + b"\n")


_OBSERVED = payload_data(_observed())


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("probe.observed", {**_OBSERVED, "note": "x"}, "probe.observed event: unknown field(s) note"),
        (
            "probe.observed",
            {**_OBSERVED, "n\u00f6te": "x"},
            "probe.observed event: unknown field(s) n\u00f6te",
        ),
        (
            "probe.observed",
            {**_OBSERVED, "latency_us": "12"},
            "probe.observed event: Expected `int`, got `str` - at `$.latency_us`",
        ),
        (
            "probe.observed",
            {k: v for k, v in _OBSERVED.items() if k != "tick"},
            "probe.observed event: Object missing required field `tick`",
        ),
        (
            "run.finished",
            {"status": "weird"},
            "run.finished event: Invalid enum value 'weird' - at `$.status`",
        ),
        ("probe.exploded", {}, "unknown event type 'probe.exploded'"),
    ],
    ids=[
        "unknown-field",
        "unknown-non-ascii-field",
        "wrong-type",
        "missing-field",
        "bad-enum",
        "unknown-type",
    ],
)
def test_the_reader_refuses_a_line_whose_data_does_not_fit_its_type(
    tmp_path: Path, kind: str, data: dict[str, object], message: str
) -> None:
    path = tmp_path / "journal.jsonl"
    _append_by_hand(path, _good_journal(path), kind, data)
    with pytest.raises(JournalInvalid) as caught:
        verify_journal(path)
    assert caught.value.message == f"line 3: {message}"
    seen = []
    with pytest.raises(JournalInvalid, match=r"^.*line 3: "):
        for event in read_events(path):
            seen.append(event.seq)
    assert seen == [1, 2]
    # Documented: chain_only follows the links only (for bytes a verified signature pins).
    assert verify_journal(path, chain_only=True).count == 3


# --- format 1 (drill 0.1.0) ---------------------------------------------------------------------


def test_a_format_1_journal_still_reads_and_folds() -> None:
    path = EVIDENCE_V1 / "journal.jsonl"
    report = json.loads((EVIDENCE_V1 / "report.json").read_text(encoding="utf-8"))
    old = json.loads((EVIDENCE_V1 / "results.json").read_text(encoding="utf-8"))
    events = list(read_events(path))
    assert len(events) == 113 == len(path.read_bytes().splitlines()) == report["journal"]["events"]
    started = events[0].payload
    assert isinstance(started, RunStarted)
    assert (started.format, started.plan) == (1, None)
    assert verify_journal(path).head == report["journal"]["head"] == old["journal_head"]

    folded = fold_journal(events)
    results = folded.results
    assert results.verdict == report["verdict"] == "fail"
    assert (results.status, results.events) == (old["status"], old["events"])
    assert [a.id for a in results.assets] == [a["id"] for a in old["assets"]]
    for asset, before in zip(results.assets, old["assets"], strict=True):
        assert (asset.rto_ms, asset.detection_ms) == (before["rto_ms"], before["detection_ms"]), asset.id
        assert asset.switchover_ms == before["switchover_ms"], asset.id
        if (before["verdict"], asset.verdict) == ("pass", "incomplete"):
            # 0.1.0 passed an RPO target no canary measured; folded today, it is not demonstrated
            assert [o.objective for o in asset.objectives if o.undemonstrated] == ["rpo"], asset.id
        else:
            assert asset.verdict == before["verdict"], asset.id
    # The plan was rebuilt from the journalled document, as a format-2 run would have journalled it.
    assert folded.plan.name == started.playbook.name == "demo-lab-site-loss"
    assert [a.id for a in folded.plan.assets] == [a["id"] for a in old["assets"]]
