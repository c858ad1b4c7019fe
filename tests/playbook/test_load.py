"""The loader: positions for every node, plain YAML 1.2 data only, one clear line per bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from drill.errors import PlaybookInvalid
from drill.playbook import load
from drill.playbook.load import load_document, parse_document
from drill.playbook.model import Pos


def problems(raw: bytes) -> list[str]:
    with pytest.raises(PlaybookInvalid) as info:
        parse_document(raw, "f.yaml")
    return [str(d) for d in info.value.diagnostics]


def test_positions_of_values_and_keys() -> None:
    doc = parse_document(b"a:\n  b: [1, {c: x}]\n  d: |\n    text\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, {"c": "x"}], "d": "text\n"}}
    assert doc.pos(("a", "b", 1, "c")) == Pos(2, 14)
    assert doc.key_pos(("a", "b", 1, "c")) == Pos(2, 11)
    assert doc.key_pos(("a", "d")) == Pos(3, 3)
    assert doc.pos(("a", "b", 0)) == Pos(2, 7)


def test_yaml_1_2_core_scalars() -> None:
    doc = parse_document(
        b"a: yes\nb: 2026-01-15\nc: 0x1f\nd: '5'\ne: ~\nf: true\ng: 1.5\nh: on\ni: 0o17\n", "f"
    )
    assert doc.data == {
        "a": "yes",
        "b": "2026-01-15",
        "c": 31,
        "d": "5",
        "e": None,
        "f": True,
        "g": 1.5,
        "h": "on",
        "i": 15,
    }


def test_aliases_within_the_limit_are_expanded_and_share_the_anchor_positions() -> None:
    doc = parse_document(b"base: &p {host: h, port: 1}\nother: *p\n", "f")
    assert doc.data["other"] == {"host": "h", "port": 1}
    assert doc.pos(("other",)) == Pos(2, 8)
    assert doc.pos(("other", "host")) == Pos(1, 17)
    assert doc.pos(("other", "missing", 3)) == Pos(2, 8)


def test_not_utf8_names_the_byte_and_its_place() -> None:
    assert problems(b"a: 1\nb: caf\xe9\n") == [
        "f.yaml:2:7: error: not valid UTF-8 (byte 0xe9); save the playbook as UTF-8"
    ]


def test_utf16_is_rejected() -> None:
    assert problems("a: 1\n".encode("utf-16")) == [
        "f.yaml:1:1: error: file is UTF-16; save the playbook as UTF-8"
    ]


def test_binary_garbage_is_one_line() -> None:
    assert problems(b"\x7fELF\x02\x01\x01\x00\x00") == [
        "f.yaml:1:1: error: control character U+007F in the file; a playbook is UTF-8 YAML text"
    ]
    assert problems(b"a: b\x00c") == [
        "f.yaml:1:5: error: binary data (NUL byte) in the file; a playbook is UTF-8 YAML text"
    ]


def test_files_over_the_size_limit_are_refused_without_reading_them_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "MAX_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * 5000)
    with pytest.raises(PlaybookInvalid) as info:
        load_document(path)
    assert str(info.value) == f"{path}:1:1: error: file is larger than the 1000-byte limit"


def test_default_size_limit_is_10_mib() -> None:
    assert load.MAX_BYTES == 10 * 1024 * 1024
    assert problems(b"a" * (load.MAX_BYTES + 1)) == [
        "f.yaml:1:1: error: file is larger than the 10 MiB limit"
    ]


def test_bad_tagged_value() -> None:
    assert problems(b"a: !!int five\n") == ["f.yaml:1:4: error: 'five' is not a valid int"]


def test_every_duplicate_key_is_reported() -> None:
    assert problems(b"a: 1\nb: {c: 1, c: 2}\na: 3\n") == [
        "f.yaml:2:11: error: duplicate key 'c' (first defined at line 2)",
        "f.yaml:3:1: error: duplicate key 'a' (first defined at line 1)",
    ]


def test_huge_integer_stays_text_instead_of_crashing() -> None:
    doc = parse_document(b"a: " + b"9" * 5000 + b"\n", "f")
    assert doc.data["a"] == "9" * 5000
