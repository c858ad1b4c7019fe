"""The journal's fast readers: the orjson line check accepts only what the exact check accepts,
chain_only follows the links and names breaks exactly, and chunked reading handles any line length."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drill.clock import FakeClock
from drill.errors import JournalInvalid
from drill.evidence import journal as journal_module
from drill.evidence.events import (
    EventDraft,
    Mark,
    PayloadMismatch,
    ProbeObserved,
    decode_payload,
    payload_data,
)
from drill.evidence.journal import GENESIS, JournalWriter, read_events, verify_journal

SAFE = 2**53 - 1
HEAD = hashlib.sha256(b"line 1").hexdigest()  # has letters, so its case matters


def _write(path: Path, drafts: list[EventDraft]) -> JournalWriter:
    with JournalWriter.create(path, FakeClock()) as writer:
        for draft in drafts:
            writer.append(draft)
    return writer


def _six(path: Path) -> Path:
    _write(
        path,
        [
            EventDraft(
                ProbeObserved(
                    probe="health",
                    ok=i % 2 == 0,
                    latency_us=800,
                    tick=i,
                    scheduled_mono_ns=10**9 + i,
                    jitter_us=0,
                ),
                10**9 + i,
                "api",
            )
            for i in range(6)
        ],
    )
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _put(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _message(path: Path, *, chain_only: bool = False) -> str:
    with pytest.raises(JournalInvalid) as caught:
        verify_journal(path, chain_only=chain_only)
    return caught.value.message


# --- the orjson fast path never accepts more than the exact check -----------------------------


def test_orjson_sorted_compact_text_is_the_c_encoders_for_every_ascii_character() -> None:
    # String escaping is per character, so this pins equality for every ASCII string.
    for code in range(128):
        char = chr(code)
        value = {char: [char, code, True, None, {}]}
        assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() == journal_module._encode(value)


_keys = st.text(st.characters(max_codepoint=127), max_size=5) | st.text(max_size=3)
_scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.text(max_size=8)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
_valid = st.fixed_dictionaries(
    {
        "seq": st.just(2),
        "prev": st.just(HEAD),
        "mono_ns": st.integers(-SAFE, SAFE),
        "utc": st.text(max_size=4),
        "type": st.text(max_size=4),
        "data": st.dictionaries(_keys, _values, max_size=4),
    },
    optional={"asset": st.text(max_size=4)},
)
# One fault at most per line (none in half the cases), each a way a line can be wrong.
_FAULTS: dict[str, Any] = {
    "float": lambda raw: raw["data"].update(x=1.5),
    "whole float": lambda raw: raw["data"].update(x=[2.0]),
    "big int": lambda raw: raw["data"].update(x={"y": SAFE + 1}),
    "huge int": lambda raw: raw["data"].update(x=-(2**70)),
    "bool seq": lambda raw: raw.update(seq=True),
    "seq 3": lambda raw: raw.update(seq=3),
    "mono_ns range": lambda raw: raw.update(mono_ns=-SAFE - 1),
    "int utc": lambda raw: raw.update(utc=7),
    "null type": lambda raw: raw.update(type=None),
    "int asset": lambda raw: raw.update(asset=3),
    "list data": lambda raw: raw.update(data=[1]),
    "upper prev": lambda raw: raw.update(prev=HEAD.upper()),
    "unknown field": lambda raw: raw.update(note=""),
    "missing field": lambda raw: raw.pop("utc"),
}
_faults = st.sampled_from(["none"] * len(_FAULTS) + sorted(_FAULTS))
_spellings = st.sampled_from(["canonical"] * 3 + ["spaced", "unsorted", "ascii-escaped", "duplicate-key"])


def _spell(raw: dict[str, Any], how: str) -> bytes:
    if how == "spaced":
        return json.dumps(raw, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "unsorted":
        return json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == "ascii-escaped":
        return json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if how == "duplicate-key":
        text = text.replace("{", '{"seq":0,', 1)
    return text.encode("utf-8", "surrogatepass")


_ASTRAL = {
    "seq": 2,
    "prev": HEAD,
    "mono_ns": 1,
    "utc": "",
    "type": "",
    "data": {"\U0001f600": 1, "\ufb01": 2},
}


@settings(max_examples=500, deadline=None)
@given(_valid, _faults, _spellings)
@example(_ASTRAL, "none", "canonical")  # code-point key order, which RFC 8785 (UTF-16 order) is not
def test_the_fast_path_accepts_only_lines_the_exact_check_accepts(
    raw: dict[str, Any], fault: str, how: str
) -> None:
    if fault != "none":
        _FAULTS[fault](raw)
    line = _spell(raw, how)
    scan = journal_module._Scan("journal.jsonl", False)
    scan.count, scan.head = 1, HEAD
    fast = journal_module._fast_record(line, 2, HEAD)
    try:
        exact: dict[str, Any] | None = scan.check_line(2, line)
    except JournalInvalid:
        exact = None
    if fast is not None:
        assert exact == fast
    if exact is not None and line.isascii():
        assert fast == exact  # ordinary lines do not fall back to the slow path
    if fault == "none" and line == rfc8785.dumps(raw):
        assert exact is not None  # the generator does make valid lines


def test_a_boolean_seq_is_not_line_1() -> None:
    raw = {"seq": True, "prev": GENESIS, "mono_ns": 1, "utc": "", "type": "", "data": {}}
    line = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    assert journal_module._fast_record(line, 1, GENESIS) is None
    raw["seq"] = 1
    line = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    assert journal_module._fast_record(line, 1, GENESIS) == raw


def test_a_written_non_ascii_line_takes_the_exact_path_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    states = {"\U0001f600": "1", "\ufb01": "2", "reason": "caf\u00e9 \u2028"}  # UTF-16 order != code points
    mark = Mark("caf\u00e9", "\U0001f600", states)
    _write(path, [EventDraft(mark, 1, "b\u00e4r")])
    assert not path.read_bytes().isascii()
    [event] = read_events(path)
    assert (event.payload, event.asset) == (mark, "b\u00e4r")
    assert verify_journal(path).count == verify_journal(path, chain_only=True).count == 1


# --- chain_only: the links only, breaks named exactly -----------------------------------------


def test_chain_only_gives_the_same_summary_as_the_full_check(tmp_path: Path) -> None:
    path = _six(tmp_path / "journal.jsonl")
    assert verify_journal(path, chain_only=True) == verify_journal(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("edit", "line 4: prev hash does not match line 3"),
        ("delete", "line 3: seq 4 expected 3"),
        ("reorder", "line 4: seq 5 expected 4"),
        ("insert", "line 3: seq 1 expected 3"),
        ("garbage", "line 5: not valid JSON"),
        ("genesis", "line 1: prev hash does not match the genesis hash (64 zeros)"),
    ],
)
def test_chain_only_names_the_first_broken_link(tmp_path: Path, edit: str, message: str) -> None:
    path = _six(tmp_path / "journal.jsonl")
    lines = _lines(path)
    if edit == "edit":
        lines[2] = lines[2].replace(b'"tick":2', b'"tick":7')
    elif edit == "delete":
        del lines[2]
    elif edit == "reorder":
        lines[3], lines[4] = lines[4], lines[3]
    elif edit == "insert":
        lines.insert(2, lines[0])
    elif edit == "garbage":
        lines[4] = b'{"prev":"' + hashlib.sha256(lines[3]).hexdigest().encode()
    else:
        lines[0] = lines[0].replace(b'"prev":"' + GENESIS.encode(), b'"prev":"' + b"1" * 64)
    _put(path, lines)
    assert _message(path, chain_only=True) == message == _message(path)


def test_chain_only_does_not_check_the_form_of_a_linked_line(tmp_path: Path) -> None:
    # Documented: chain_only is for a file whose SHA-256 a verified signature covers.
    path = _six(tmp_path / "journal.jsonl")
    lines = _lines(path)
    lines[5] = lines[5].replace(b'"tick":5', b'"tick":5.0')
    _put(path, lines)
    assert verify_journal(path, chain_only=True).count == 6
    assert (
        _message(path)
        == "line 6: data.tick: float 5.0: the journal holds integers only (use ms, us or basis points)"
    )


def test_chain_only_names_a_line_whose_link_is_not_where_canonical_form_puts_it(tmp_path: Path) -> None:
    # The exact check then decides, and names what is wrong.
    path = _six(tmp_path / "journal.jsonl")
    lines = _lines(path)
    lines[5] = json.dumps(json.loads(lines[5])).encode()  # spaces: "prev": "..."
    _put(path, lines)
    assert _message(path, chain_only=True) == "line 6: not in RFC 8785 canonical form (edited by hand?)"


@pytest.mark.parametrize("chain_only", [False, True])
def test_a_torn_tail_is_named_after_the_last_intact_line(tmp_path: Path, chain_only: bool) -> None:
    path = _six(tmp_path / "journal.jsonl")
    path.write_bytes(path.read_bytes()[:-10])
    assert _message(path, chain_only=chain_only).startswith("line 6: incomplete last line")
    summary = verify_journal(path, allow_torn_tail=True, chain_only=chain_only)
    assert (summary.count, summary.head) == (5, hashlib.sha256(_lines(path)[4]).hexdigest())
    assert summary.torn_bytes > 0


# --- chunked reading ----------------------------------------------------------------------------


def test_lines_longer_than_a_read_chunk_are_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    big = "x" * (journal_module._CHUNK * 2 + 17)
    drafts = [EventDraft(Mark(f"n{n}", big if n % 2 else ""), n) for n in range(1, 6)]
    writer = _write(path, drafts)
    assert [(e.seq, e.payload) for e in read_events(path)] == [(d.mono_ns, d.payload) for d in drafts]
    summary = verify_journal(path, chain_only=True)
    assert summary == verify_journal(path)
    assert (summary.count, summary.head) == (5, writer.head)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_events_equals_a_plain_json_reading(tmp_path: Path) -> None:
    path = _six(tmp_path / "journal.jsonl")
    plain = [json.loads(line) for line in _lines(path)]
    assert [
        {
            "seq": e.seq,
            "prev": e.prev,
            "mono_ns": e.mono_ns,
            "utc": e.utc,
            "type": e.type,
            "data": payload_data(e.payload),
            "asset": e.asset,
        }
        for e in read_events(path)
    ] == plain


_OBSERVED = {
    "jitter_us": 1,
    "latency_us": 2,
    "ok": True,
    "probe": "p",
    "reason": "",
    "scheduled_mono_ns": 3,
    "tick": 4,
}


@pytest.mark.parametrize(
    "change",
    [{}, {"latency_us": 2.5}, {"latency_us": 2.0}, {"tick": 2**53}, {"tick": True}, {"extra": 1}, {"ok": 1}],
    ids=["valid", "float", "whole-float", "big-int", "bool-int", "extra-field", "int-bool"],
)
def test_the_typed_fast_path_and_the_payload_check_accept_only_what_the_exact_check_accepts(
    change: dict[str, object],
) -> None:
    raw = {
        "seq": 2,
        "prev": HEAD,
        "mono_ns": 1,
        "utc": "",
        "type": "probe.observed",
        "data": {**_OBSERVED, **change},
    }
    line = json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()
    scan = journal_module._Scan("journal.jsonl", False)
    scan.count, scan.head = 1, HEAD
    fast = journal_module._fast_record(line, 2, HEAD, typed=True)
    try:
        typed_ok = fast is not None and decode_payload("probe.observed", fast["data"]) is not None
    except PayloadMismatch:
        typed_ok = False
    try:
        exact_ok = scan.check_line(2, line) is not None
    except JournalInvalid:
        exact_ok = False
    if typed_ok:
        assert exact_ok
    assert typed_ok == (change == {})


def test_a_float_in_a_typed_event_is_named_by_the_exact_check(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with JournalWriter.create(path, FakeClock()) as journal:
        journal.append(EventDraft(Mark("first"), 1))
    head = hashlib.sha256(path.read_bytes().rstrip(b"\n")).hexdigest()
    raw = {
        "seq": 2,
        "prev": head,
        "mono_ns": 2,
        "utc": "",
        "type": "probe.observed",
        "data": {**_OBSERVED, "latency_us": 2.5},
    }
    with path.open("ab") as out:
        out.write(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    with pytest.raises(JournalInvalid, match=r"line 2: data\.latency_us: float 2\.5"):
        list(read_events(path))
