"""Durations: one grammar in parse_duration_ms and the schemas, and every bad one explained in words.

The words are DURATION_HINT ("use a number and a unit, largest first, e.g. 90s or 1h30m"): the
end of every message about a bad duration, whichever field holds it, and never the schema's regex.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from drill.durations import (
    DURATION_HINT,
    DURATION_PATTERN,
    UNITS_PATTERN,
    ZERO_PATTERN,
    format_duration_ms,
    parse_duration_ms,
)
from drill.playbook.load import JsonPath, format_path
from drill.playbook.schema import bundled_schema
from drill.playbook.validate import check_playbook
from drill.resources import load_schema

MINIMAL = Path(__file__).parent / "valid" / "minimal.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30 minutes", f"invalid duration '30 minutes': {DURATION_HINT}"),
        ("30m4h", f"invalid duration '30m4h': 4h comes after 30m; {DURATION_HINT}"),
        ("1h1m1h", f"invalid duration '1h1m1h': 1h comes after 1m; {DURATION_HINT}"),
        ("1m1m", f"invalid duration '1m1m': m is given twice; {DURATION_HINT}"),
        ("90", f"invalid duration '90': no unit; {DURATION_HINT}"),
        (90, f"invalid duration 90: no unit; {DURATION_HINT}"),
        ("1m30", f"invalid duration '1m30': {DURATION_HINT}"),
        ("1.5h", f"invalid duration '1.5h': {DURATION_HINT}"),
        ("", f"invalid duration '': {DURATION_HINT}"),
        (True, f"invalid duration True: {DURATION_HINT}"),
    ],
)
def test_a_bad_duration_says_what_is_wrong_in_words(text: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration_ms(text)
    assert str(caught.value) == message


def test_good_durations_are_exact_milliseconds() -> None:
    cases = {"0": 0, "0s": 0, "250ms": 250, "90s": 90_000, "1h30m": 5_400_000, "2d": 172_800_000}
    assert {text: parse_duration_ms(text) for text in cases} == cases
    assert parse_duration_ms("1d2h3m4s5ms") == 93_784_005
    assert parse_duration_ms(0) == 0  # YAML's `rpo: 0`


_DURATION_TEXT = st.text(alphabet="0123456789dhms", max_size=12)


@given(_DURATION_TEXT)
def test_the_schema_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    try:
        parse_duration_ms(text)
        parses = True
    except ValueError:
        parses = False
    assert (re.fullmatch(DURATION_PATTERN, text) is not None) == parses


@given(_DURATION_TEXT)
def test_above_zero_means_units_and_not_all_zero(text: str) -> None:
    positive = re.search(UNITS_PATTERN, text) is not None and re.search(ZERO_PATTERN, text) is None
    try:
        assert positive == (parse_duration_ms(text) > 0)
    except ValueError:
        assert not positive


@given(st.integers(min_value=0, max_value=10**12))
def test_format_and_parse_round_trip(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms


def test_the_schemas_spell_the_grammar_of_drill_durations() -> None:
    duration = load_schema("playbook.schema.json")["$defs"]["duration"]
    assert duration["pattern"] == DURATION_PATTERN
    for fragment in ("probes/http.schema.json", "probes/redis.schema.json"):
        positive = load_schema(fragment)["$defs"]["positive_duration"]
        assert (positive["pattern"], positive["not"]["pattern"]) == (UNITS_PATTERN, ZERO_PATTERN)
        assert DURATION_HINT in positive["description"]
    assert DURATION_HINT in duration["description"]


# -- every duration field of a playbook, with a bad value -----------------------------------------
# (the document path, and the field's place in the bundled schema: `owner.key`)
DURATION_FIELDS: list[tuple[JsonPath, str]] = [
    (("metadata", "planned_duration"), "metadata.planned_duration"),
    (("settings", "interval"), "settings.interval"),
    (("settings", "timeout"), "settings.timeout"),
    (("settings", "max_duration"), "settings.max_duration"),
    (("tiers", 1, "rto"), "tier.rto"),
    (("tiers", 0, "rpo"), "tier.rpo"),
    (("contacts", "chains", "oncall", "respond_within"), "chain.respond_within"),
    (("contacts", "chains", "oncall", "contacts", 0, "ack_within"), "contact.ack_within"),
    (("assets", 0, "rto"), "asset.rto"),
    (("assets", 0, "rpo"), "asset.rpo"),
    (("assets", 0, "probes", 0, "interval"), "probe.interval"),
    (("assets", 0, "probes", 0, "timeout"), "probe.timeout"),
    (("scenario", 3, "pause"), "step.pause"),
    (("scenario", 4, "timeout"), "step.timeout"),
    (("scenario", 1, "retry", "wait"), "step.retry.wait"),
    (("scenario", 2, "wait_for", "within"), "wait_for.within"),
    (("scenario", 5, "wait_for", "every"), "wait_for.every"),
    (("stop_conditions", 0, "down_for"), "stop_condition.down_for"),
    (("assets", 1, "probes", 0, "http", "max_latency"), "probe-http.max_latency"),
    (("assets", 3, "probes", 0, "redis", "wait_timeout"), "probe-redis.wait_timeout"),
]
BAD_DURATIONS: list[object] = ["30 minutes", "1m30", "30m4h", 5, "1.5h", True, [1]]


def every_duration_set() -> dict[str, Any]:
    """tests/playbook/valid/minimal.yaml with a value in every duration field a playbook has."""
    doc: dict[str, Any] = yaml.safe_load(MINIMAL.read_text(encoding="utf-8"))
    doc["metadata"]["planned_duration"] = "2h"
    doc["settings"].update(timeout="1s", max_duration="4h")
    doc["assets"][0].update(rto="1m", rpo="0")
    doc["assets"][0]["probes"][0]["timeout"] = "1s"
    doc["assets"][1]["probes"][0]["http"]["max_latency"] = "1s"
    canary = {"canary": True, "wait_replicas": 1, "wait_timeout": "100ms"}
    doc["assets"].append({"id": "cache", "tier": "tier-2", "probes": [{"name": "c", "redis": canary}]})
    doc["scenario"] += [
        {"name": "settle", "pause": "1s"},
        {"name": "look", "manual": "Check the status page", "timeout": "5m"},
        {
            "name": "dr up",
            "wait_for": {"check": {"tcp": {"host": "dr", "port": 1}}, "within": "1m", "every": "1s"},
        },
    ]
    return doc


def put(doc: dict[str, Any], path: JsonPath, value: object) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def duration_fields_of(schema: dict[str, Any]) -> set[str]:
    """`owner.key` of every property of the bundled schema whose value is a duration."""
    defs = schema["$defs"]

    def is_duration(prop: dict[str, Any]) -> bool:
        ref = prop.get("$ref", "")
        target: Any = schema
        for part in ref.removeprefix("#/").split("/") if ref else ():
            target = target[part]
        pattern = (target if ref else prop).get("pattern")
        return pattern in (DURATION_PATTERN, UNITS_PATTERN)

    found: set[str] = set()

    def walk(node: object, owner: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, owner)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    for name, prop in value.items():
                        if isinstance(prop, dict):
                            if is_duration(prop):
                                found.add(f"{owner}.{name}")
                            walk(prop, f"{owner}.{name}")
                elif key != "$defs":
                    walk(value, owner)

    walk({k: v for k, v in schema.items() if k != "$defs"}, "playbook")
    for name, node in defs.items():
        walk(node, name)
    return found


def test_the_list_of_duration_fields_is_every_duration_in_the_schema() -> None:
    assert duration_fields_of(bundled_schema()) == {owner_key for _path, owner_key in DURATION_FIELDS}


def test_the_document_with_every_duration_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "durations.yaml"
    path.write_text(yaml.safe_dump(every_duration_set()), encoding="utf-8")
    playbook, diagnostics = check_playbook(path)
    assert diagnostics == [] and playbook is not None


@pytest.mark.parametrize(("path", "field"), DURATION_FIELDS, ids=[f for _p, f in DURATION_FIELDS])
def test_every_duration_field_explains_a_bad_value_in_words(
    tmp_path: Path, path: JsonPath, field: str
) -> None:
    editor = Draft202012Validator(bundled_schema())
    for bad in BAD_DURATIONS:
        doc = copy.deepcopy(every_duration_set())
        put(doc, path, bad)
        file = tmp_path / "bad.yaml"
        file.write_text(yaml.safe_dump(doc), encoding="utf-8")
        _playbook, diagnostics = check_playbook(file)
        errors = [d for d in diagnostics if d.severity == "error"]
        assert [d.path for d in errors] == [format_path(path)], (bad, errors)
        [error] = errors
        assert error.message.startswith(f"{format_path(path)}: invalid duration"), error.message
        assert error.message.endswith(DURATION_HINT), error.message
        assert "(ms|" not in error.message and "^" not in error.message and "match" not in error.message
        assert not editor.is_valid(doc), (field, bad)  # the editor's schema refuses it too


@pytest.mark.parametrize(
    ("path", "zero"),
    [
        (("assets", 1, "probes", 0, "http", "max_latency"), "0s"),
        (("assets", 3, "probes", 0, "redis", "wait_timeout"), "0"),
    ],
)
def test_a_zero_where_a_duration_above_zero_is_needed_says_so(
    tmp_path: Path, path: JsonPath, zero: str
) -> None:
    doc = every_duration_set()
    put(doc, path, zero)
    file = tmp_path / "zero.yaml"
    file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    _playbook, diagnostics = check_playbook(file)
    assert [(d.path, d.message) for d in diagnostics] == [
        (
            format_path(path),
            f"{format_path(path)}: invalid duration {zero!r}: must be above zero; {DURATION_HINT}",
        )
    ]
