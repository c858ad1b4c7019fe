"""The hash-chained journal: canonical lines, chain checks naming the broken line, torn tails, redaction."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click.testing
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drill.clock import FakeClock, SystemClock, utc_iso
from drill.errors import DrillError, JournalInvalid
from drill.evidence import journal as journal_module
from drill.evidence.events import (
    AssetState,
    ChainExhausted,
    Event,
    EventDraft,
    Mark,
    PlaybookRef,
    ProbeObserved,
    RunStarted,
    StepAttempt,
    StepStarted,
    payload_data,
)
from drill.evidence.journal import (
    GENESIS,
    JournalWriter,
    canonical_line,
    file_sha256,
    read_events,
    verify_journal,
)
from drill.evidence.snapshot import Phase, StepKind
from drill.secrets import REDACTED, Secrets

SAFE = 2**53 - 1


def _drafts(n: int) -> list[EventDraft]:
    return [
        EventDraft(
            ProbeObserved(
                probe="health",
                ok=i % 3 != 0,
                reason="",
                latency_us=900 + i,
                tick=i,
                scheduled_mono_ns=1_000_000_000 + i * 250_000_000,
                jitter_us=0,
            ),
            1_000_000_000 + i * 250_000_000,
            asset="api",
        )
        for i in range(n)
    ]


def _as_dict(event: Event) -> dict[str, object]:
    """The journal line of an event as a JSON object (what json.loads of the line gives)."""
    out: dict[str, object] = {
        "seq": event.seq,
        "prev": event.prev,
        "mono_ns": event.mono_ns,
        "utc": event.utc,
        "type": event.type,
        "data": payload_data(event.payload),
    }
    if event.asset is not None:
        out["asset"] = event.asset
    return out


def _document(document: dict[str, object]) -> RunStarted:
    """A run.started whose playbook document (free-form JSON in the journal) is `document`."""
    return RunStarted(
        run_id="r1",
        playbook=PlaybookRef("t", "ab" * 32, "t.yaml", document),
        user="tester@host",
        host="host",
        tool_version="0.0.0",
        started_utc="2026-01-01T00:00:00.000+00:00",
    )


def _write(
    path: Path, drafts: list[EventDraft], redact: journal_module.Redactor | None = None
) -> tuple[JournalWriter, list[Event]]:
    with JournalWriter.create(path, FakeClock(), redact) as writer:
        events = [writer.append(d) for d in drafts]
    return writer, events


@pytest.fixture
def six(tmp_path: Path) -> Path:
    path = tmp_path / "journal.jsonl"
    _write(path, _drafts(6))
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _put(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _broken(path: Path) -> str:
    with pytest.raises(JournalInvalid) as caught:
        verify_journal(path)
    return caught.value.message


# --- the chain as written ---------------------------------------------------------------------


def test_chain_links_every_line_to_its_predecessor(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer, events = _write(path, _drafts(6))
    lines = _lines(path)
    assert [json.loads(line)["prev"] for line in lines] == [
        GENESIS,
        *(hashlib.sha256(line).hexdigest() for line in lines[:-1]),
    ]
    summary = verify_journal(path)
    assert summary.count == writer.count == 6
    assert summary.head == writer.head == hashlib.sha256(lines[-1]).hexdigest()
    assert summary.sha256 == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary.torn_bytes == 0
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]


def test_lines_are_rfc8785_canonical_and_match_the_returned_events(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    _, events = _write(path, _drafts(3))
    for line, event in zip(_lines(path), events, strict=True):
        assert line == rfc8785.dumps(json.loads(line)) == canonical_line(event)
        assert json.loads(line) == _as_dict(event)
    assert list(read_events(path)) == events


def test_utc_is_the_clock_time_of_the_events_instant(tmp_path: Path) -> None:
    clock = FakeClock()
    with JournalWriter.create(tmp_path / "j.jsonl", clock) as writer:
        event = writer.append(EventDraft(Mark("x"), 3_600_123_456_789))
    assert event.utc == "2026-01-01T01:00:00.123+00:00" == utc_iso(clock.utc_at(3_600_123_456_789))


def test_an_empty_journal_verifies_with_the_genesis_head(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        assert (writer.count, writer.head) == (0, GENESIS)
    assert verify_journal(path) == journal_module.JournalSummary(hashlib.sha256(b"").hexdigest(), 0, GENESIS)


# --- tampering is found, and the first broken line named --------------------------------------


def test_an_edited_line_breaks_the_link_of_the_next_one(six: Path) -> None:
    lines = _lines(six)
    lines[2] = lines[2].replace(b'"latency_us":902', b'"latency_us":100')
    _put(six, lines)
    assert _broken(six) == "line 4: prev hash does not match line 3"


def test_an_edited_last_line_changes_the_head(six: Path) -> None:
    before = verify_journal(six)
    lines = _lines(six)
    lines[5] = lines[5].replace(b'"ok":true', b'"ok":false')
    _put(six, lines)
    # Nothing follows the last line, so only the head (kept in the signed report) shows the edit.
    assert verify_journal(six).head != before.head


def test_a_deleted_line_is_named(six: Path) -> None:
    lines = _lines(six)
    del lines[2]
    _put(six, lines)
    assert _broken(six) == "line 3: seq 4 expected 3"


def test_reordered_lines_are_named(six: Path) -> None:
    lines = _lines(six)
    lines[3], lines[4] = lines[4], lines[3]
    _put(six, lines)
    assert _broken(six) == "line 4: seq 5 expected 4"


def test_an_inserted_line_is_named_even_when_it_links_correctly(six: Path) -> None:
    lines = _lines(six)
    forged = rfc8785.dumps(
        {
            "seq": 3,
            "prev": hashlib.sha256(lines[1]).hexdigest(),
            "mono_ns": 1,
            "utc": "2026-01-01T00:00:00.000+00:00",
            "type": "mark",
            "data": {"name": "forged"},  # a valid event: only its place in the chain is wrong
        }
    )
    lines.insert(2, forged)
    _put(six, lines)
    assert _broken(six) == "line 4: seq 3 expected 4"


def test_a_rewritten_first_line_must_start_from_genesis(six: Path) -> None:
    lines = _lines(six)
    raw = json.loads(lines[0])
    raw["prev"] = "1" * 64
    lines[0] = rfc8785.dumps(raw)
    _put(six, lines)
    assert _broken(six) == "line 1: prev hash does not match the genesis hash (64 zeros)"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"seq": 5', "line 5: not valid JSON"),
        (b"\xff\xfe", "line 5: not valid JSON"),
        (b"[1,2]", "line 5: not a JSON object"),
        (b'{"seq":5}', "line 5: missing field(s) data, mono_ns, prev, type, utc"),
    ],
)
def test_garbage_lines_are_named(six: Path, line: bytes, message: str) -> None:
    lines = _lines(six)
    lines[4] = line
    _put(six, lines)
    assert _broken(six) == message


def _rewrite_line(path: Path, index: int, change: Callable[[dict[str, Any]], None]) -> None:
    lines = _lines(path)
    raw = json.loads(lines[index])
    change(raw)
    lines[index] = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    _put(path, lines)


def test_a_float_in_a_line_is_named(six: Path) -> None:
    _rewrite_line(six, 5, lambda raw: raw["data"].update(latency_us=1.5))
    assert _broken(six) == (
        "line 6: data.latency_us: float 1.5: the journal holds integers only (use ms, us or basis points)"
    )


def test_a_line_not_in_canonical_form_is_named(six: Path) -> None:
    lines = _lines(six)
    lines[5] = json.dumps(json.loads(lines[5]), sort_keys=True).encode()  # spaces after separators
    _put(six, lines)
    assert _broken(six) == "line 6: not in RFC 8785 canonical form (edited by hand?)"


def test_an_unknown_field_is_named(six: Path) -> None:
    _rewrite_line(six, 5, lambda raw: raw.update(note="x"))
    assert _broken(six) == "line 6: unknown field(s) note"


def test_the_error_names_the_file_too(six: Path) -> None:
    lines = _lines(six)
    lines[1] = b"{"
    _put(six, lines)
    with pytest.raises(JournalInvalid) as caught:
        verify_journal(six)
    assert str(caught.value) == f"{six}: line 2: not valid JSON"
    assert caught.value.exit_code == 1


def test_read_events_stops_at_the_first_broken_line(six: Path) -> None:
    lines = _lines(six)
    del lines[3]
    _put(six, lines)
    seen = []
    with pytest.raises(JournalInvalid, match="line 4: seq 5 expected 4"):
        for event in read_events(six):
            seen.append(event.seq)
    assert seen == [1, 2, 3]


# --- torn tails: a write cut short by a crash -------------------------------------------------


@pytest.mark.parametrize("keep", [1, 40, -1], ids=["one-byte", "partial", "all-but-newline"])
def test_a_torn_last_line_is_reported_or_left_out(six: Path, keep: int) -> None:
    data = six.read_bytes()
    intact = data[: data.rstrip(b"\n").rfind(b"\n") + 1]
    torn = data[len(intact) : len(data) - 1][:keep] if keep > 0 else data[len(intact) : -1]
    six.write_bytes(intact + torn)
    assert _broken(six).startswith(f"line 6: incomplete last line ({len(torn)} bytes, no newline)")
    summary = verify_journal(six, allow_torn_tail=True)
    assert summary.count == 5
    assert summary.head == hashlib.sha256(intact.splitlines()[-1]).hexdigest()
    assert summary.torn_bytes == len(torn)
    assert summary.sha256 == file_sha256(six)  # of the file as it is: what sha256sum prints
    assert [e.seq for e in read_events(six, allow_torn_tail=True)] == [1, 2, 3, 4, 5]
    with pytest.raises(JournalInvalid, match="line 6: incomplete last line"):
        list(read_events(six))


def test_a_missing_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalInvalid, match="cannot read journal"):
        verify_journal(tmp_path / "nope.jsonl")


# --- the writer -------------------------------------------------------------------------------


def test_an_existing_journal_is_never_overwritten(six: Path) -> None:
    before = six.read_bytes()
    with pytest.raises(DrillError, match="already exists; refusing to overwrite evidence"):
        JournalWriter.create(six, FakeClock())
    assert six.read_bytes() == before


def test_a_journal_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DrillError, match=r"cannot create journal .*No such file or directory"):
        JournalWriter.create(tmp_path / "no" / "journal.jsonl", FakeClock())


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"latency": 1.5}, "journal data.playbook.document.latency: float 1.5"),
        ({"probes": [{"ok": True, "ms": 0.0}]}, "journal data.playbook.document.probes[0].ms: float 0.0"),
        ({"x": float("nan")}, "journal data.playbook.document.x: float nan"),
        ({"big": 2**53}, "journal data.playbook.document.big: integer 9007199254740992 is outside"),
        ({"k": {1: "a"}}, "journal data.playbook.document.k: key 1 is not a string"),
        ({"o": object()}, "Encoding objects of type object is unsupported"),
    ],
)
def test_values_json_cannot_hold_exactly_are_rejected_before_anything_is_written(
    tmp_path: Path, document: dict[str, object], where: str
) -> None:
    # The playbook document is the one free-form part of an event: the writer's own checks guard it.
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        writer.append(EventDraft(Mark("before"), 1))
        size = path.stat().st_size
        with pytest.raises(TypeError) as caught:
            writer.append(EventDraft(_document(document), 2))
        assert str(caught.value).startswith(where)
        assert writer.count == 1 and path.stat().st_size == size
        writer.append(EventDraft(Mark("after"), 3))
    assert verify_journal(path).count == 2


def test_a_float_instant_is_rejected(tmp_path: Path) -> None:
    with JournalWriter.create(tmp_path / "j.jsonl", FakeClock()) as writer, pytest.raises(TypeError):
        writer.append(EventDraft(Mark("x"), 1.5))  # type: ignore[arg-type]


def test_redaction_applies_to_data_and_asset_before_writing(tmp_path: Path) -> None:
    secrets = Secrets(env={"TOKEN": "s3cr3t-value"})
    secrets.resolve("${env:TOKEN}")
    path = tmp_path / "journal.jsonl"
    attempt = EventDraft(
        StepAttempt("call", 1, False, "401 for https://x/?token=s3cr3t-value"), 5, asset="api-s3cr3t-value"
    )
    nested = EventDraft(ChainExhausted("oncall", ("api", "s3cr3t-value"), 2), 6)
    clean = EventDraft(Mark("nothing to hide"), 7)
    _, (first, second, third) = _write(path, [attempt, nested, clean], redact=secrets.redact_data)
    text = path.read_text(encoding="utf-8")
    assert "s3cr3t-value" not in text
    assert text.count(REDACTED) == 3
    # The returned events carry the payloads as written: redacted, and still of their types.
    assert first.payload == StepAttempt("call", 1, False, f"401 for https://x/?token={REDACTED}")
    assert first.asset == f"api-{REDACTED}"
    assert second.payload == ChainExhausted("oncall", ("api", REDACTED), 2)
    assert third.payload is clean.payload  # nothing to redact: the payload is not rebuilt
    assert list(read_events(path)) == [first, second, third]
    assert verify_journal(path).count == 3


def test_sync_fsyncs_only_what_is_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", calls.append)
    writer = JournalWriter.create(tmp_path / "j.jsonl", FakeClock())
    writer.append(EventDraft(Mark("a"), 1), sync=True)
    writer.sync()
    assert (len(calls), writer.synced) == (1, 1)
    writer.append(EventDraft(Mark("b"), 2))
    assert (len(calls), writer.synced) == (1, 1)
    writer.close()
    writer.close()
    assert (len(calls), writer.synced) == (2, 2)
    with pytest.raises(ValueError, match="closed"):
        writer.append(EventDraft(Mark("c"), 3))


def test_a_short_write_is_completed_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    calls: list[int] = []

    def short_write(fd: int, payload: bytes) -> int:
        calls.append(len(payload))
        return real_write(fd, payload[: max(1, len(payload) // 3)])  # as on a nearly full disk

    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        monkeypatch.setattr(os, "write", short_write)
        writer.append(EventDraft(Mark("a" * 100), 1))
        writer.append(EventDraft(Mark("b"), 2))
        monkeypatch.undo()
    assert len(calls) > 2
    assert verify_journal(path).count == 2


def test_a_failed_write_stops_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, payload: bytes) -> int:
        raise OSError(28, "No space left on device")

    path = tmp_path / "journal.jsonl"
    writer = JournalWriter.create(path, FakeClock())
    writer.append(EventDraft(Mark("a"), 1))
    monkeypatch.setattr(os, "write", no_space)
    with pytest.raises(
        DrillError, match=r"cannot write journal .*: No space left on device; the journal is closed"
    ):
        writer.append(EventDraft(Mark("b"), 2))
    monkeypatch.undo()
    with pytest.raises(ValueError, match="closed"):
        writer.append(EventDraft(Mark("c"), 3))
    writer.close()
    assert verify_journal(path).count == 1


def test_each_append_reaches_the_file_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as writer:
        for n in range(1, 4):
            writer.append(EventDraft(Mark(f"n{n}"), n))
            assert verify_journal(path).count == n  # read by another handle: no user-space buffer


# --- the fast paths equal their reference -----------------------------------------------------

_keys = st.text(max_size=6)  # includes astral-plane characters, where UTF-16 order matters
_scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(max_size=12)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
@example({"\U0001f600": 1, "\ufb01": 2, "a": [{"\u00e9": "\x00\u2028"}]})  # UTF-16 order != code points
def test_canonical_data_equals_rfc8785(data: dict[str, Any]) -> None:
    assert journal_module._dumps(data, "data") == rfc8785.dumps(data).decode("utf-8")


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**62), 2**62), st.integers(-(2**62), 2**62), st.integers(0, 2**40))
def test_utc_stamps_equal_utc_iso_of_the_clock(anchor: int, mono: int, step: int) -> None:
    class OtherClock:
        def monotonic_ns(self) -> int:
            return 0

        def utc_at(self, mono_ns: int) -> datetime:
            return datetime(2030, 6, 1, tzinfo=UTC) + timedelta(microseconds=mono_ns // 1000)

        async def sleep_until(self, mono_ns: int) -> None:
            return None

    system = SystemClock(
        anchor_wall_ns=1_790_000_000_000_000_000 + anchor % 10**15, anchor_mono_ns=abs(anchor)
    )
    for clock in (system, FakeClock(), OtherClock()):
        stamps = journal_module._UtcStamps(clock)
        for at in (mono, mono + step, mono + 2 * step, mono - step):
            assert stamps(at) == utc_iso(clock.utc_at(at))


_ints = st.integers(-SAFE, SAFE)
_texts = st.text(max_size=8)
# One strategy per shape of payload: scalars, enums, a str -> str mapping, a tuple, free-form JSON.
_payloads = st.one_of(
    st.builds(
        ProbeObserved,
        probe=_texts,
        ok=st.booleans(),
        latency_us=_ints,
        tick=_ints,
        scheduled_mono_ns=_ints,
        jitter_us=_ints,
        reason=_texts,
    ),
    st.builds(
        AssetState,
        state=st.sampled_from(["up", "down"]),
        at_mono_ns=_ints,
        lower_mono_ns=_ints,
        probe=_texts,
        streak=_ints,
        initial=st.booleans(),
    ),
    st.builds(StepStarted, step=_texts, kind=st.sampled_from(StepKind), phase=st.sampled_from(Phase)),
    st.builds(Mark, name=_texts, step=_texts, states=st.dictionaries(_keys, _texts, max_size=4)),
    st.builds(ChainExhausted, chain=_texts, assets=st.lists(_texts, max_size=3).map(tuple), contacts=_ints),
    st.builds(_document, st.dictionaries(_keys, _values, max_size=5)),
)
_drafts_strategy = st.lists(
    st.builds(EventDraft, payload=_payloads, mono_ns=st.integers(0, SAFE), asset=st.none() | _texts),
    max_size=20,
)


@settings(max_examples=40, deadline=None)
@given(_drafts_strategy)
def test_random_event_sequences_round_trip(drafts: list[EventDraft]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "journal.jsonl"
        writer, events = _write(path, drafts)
        assert list(read_events(path)) == events
        assert [(e.payload, e.mono_ns, e.asset) for e in events] == [
            (d.payload, d.mono_ns, d.asset) for d in drafts
        ]
        assert verify_journal(path) == journal_module.JournalSummary(
            file_sha256(path), len(drafts), writer.head
        )


# --- drill journal verify ---------------------------------------------------------------------


def test_cli_verify_prints_the_summary(six: Path) -> None:
    from drill.cli.journal import journal

    summary = verify_journal(six)
    result = click.testing.CliRunner().invoke(journal, ["verify", str(six)])
    assert result.exit_code == 0, result.output
    assert result.output == f"ok: 6 events, head {summary.head}, sha256 {summary.sha256}\n"


def test_cli_verify_raises_the_broken_line_for_the_cli_to_show(six: Path) -> None:
    from drill.cli.journal import journal

    lines = _lines(six)
    del lines[1]
    _put(six, lines)
    result = click.testing.CliRunner().invoke(journal, ["verify", str(six)])
    # The top-level group turns a DrillError into "drill: <message>" and its exit code (1 here).
    assert isinstance(result.exception, JournalInvalid)
    assert str(result.exception) == f"{six}: line 2: seq 3 expected 2"


def test_drill_journal_verify_exits_1_naming_the_line(six: Path) -> None:
    from drill.cli import cli

    lines = _lines(six)
    lines[2] = lines[2].replace(b'"tick":2', b'"tick":7')
    _put(six, lines)
    result = click.testing.CliRunner().invoke(cli, ["journal", "verify", str(six)])
    assert result.exit_code == 1
    assert result.stderr == f"drill: {six}: line 4: prev hash does not match line 3\n"


def test_cli_verify_accepts_a_torn_tail_when_asked(six: Path) -> None:
    from drill.cli.journal import journal

    six.write_bytes(six.read_bytes()[:-5])
    result = click.testing.CliRunner().invoke(journal, ["verify", "--allow-torn-tail", str(six)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 5 events")
    assert "ignored an incomplete last line" in result.output
