"""The bundled schema (`drill schema`) as an editor reads it: valid 2020-12, one self-contained
document, a title and a description on every property, one example where there are examples,
the duration words on every duration, and it accepts every playbook drill ships."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from drill.durations import DURATION_HINT, DURATION_PATTERN, UNITS_PATTERN
from drill.playbook.load import load_document
from drill.playbook.schema import bundled_schema
from drill.playbook.starter import SCHEMA_LINE, lab_starter_playbook, starter_playbook

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "playbooks").glob("*.yaml"))
VALID = sorted((Path(__file__).parent / "valid").glob("*.yaml"))
# keywords that name or reach another document (or move the base a $ref resolves against)
_EXTERNAL = ("$id", "$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveRef", "$recursiveAnchor")


def nodes(node: object, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object in the document with its JSON pointer (the root's $schema included)."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from nodes(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from nodes(value, f"{where}/{i}")


def properties(bundle: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, node in nodes(bundle):
        props = node.get("properties")
        if where.endswith("/properties") or "/if/" in f"{where}/" or not isinstance(props, dict):
            continue  # a property named `properties`; an `if` condition (no hover shows it)
        for name, prop in props.items():
            if isinstance(prop, dict):
                yield f"{where}/properties/{name}", prop


def resolve(bundle: dict[str, Any], ref: str) -> dict[str, Any]:
    """The target of a local $ref, failing when it points elsewhere or nowhere."""
    assert ref.startswith("#/"), f"$ref {ref!r} leaves the document"
    target: Any = bundle
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(target, dict) and part in target, f"$ref {ref!r} points at nothing"
        target = target[part]
    assert isinstance(target, dict)
    return target


def ref_chain(bundle: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """node, then the schemas its $ref leads to in turn (what an editor merges for a hover)."""
    chain = [node]
    while isinstance(chain[-1].get("$ref"), str):
        chain.append(resolve(bundle, chain[-1]["$ref"]))
        assert len(chain) < 10, "a $ref cycle"
    return chain


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return bundled_schema()


def test_the_bundle_is_a_valid_draft_2020_12_schema(bundle: dict[str, Any]) -> None:
    assert bundle["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    assert [e.message for e in meta.iter_errors(bundle)] == []
    Draft202012Validator.check_schema(bundle)


def test_every_ref_stays_in_the_document_and_nothing_names_another(bundle: dict[str, Any]) -> None:
    refs = 0
    for where, node in nodes(bundle):
        assert not [k for k in _EXTERNAL if k in node], f"{where} has {[k for k in _EXTERNAL if k in node]}"
        if "$ref" in node:
            resolve(bundle, node["$ref"])
            refs += 1
    assert refs > 50  # the envelope's own $defs and the inlined fragments'
    assert "://" not in json.dumps([n["$ref"] for _w, n in nodes(bundle) if "$ref" in n])


def test_every_property_has_a_title_and_a_description(bundle: dict[str, Any]) -> None:
    bare: list[str] = []
    for where, prop in properties(bundle):
        chain = ref_chain(bundle, prop)
        if not any("title" in s for s in chain) or not any("description" in s for s in chain):
            bare.append(where)
    assert bare == []
    tier = bundle["$defs"]["tier"]["properties"]
    assert (tier["rto"]["title"], bundle["$defs"]["probe-http"]["properties"]["max_latency"]["title"]) == (
        "tier: rto",
        "http probe: max_latency",
    )


def test_every_property_with_examples_has_exactly_one(bundle: dict[str, Any]) -> None:
    """A hover shows the examples of the property and of what its $ref leads to: one in all."""
    with_examples = 0
    for where, prop in properties(bundle):
        shown = [e for schema in ref_chain(bundle, prop) for e in schema.get("examples", [])]
        assert len(shown) <= 1, f"{where} shows {len(shown)} examples: {shown}"
        with_examples += bool(shown)
    for where, node in nodes(bundle):
        if "examples" in node:
            assert len(node["examples"]) == 1, where
    assert with_examples > 40
    assert bundle["$defs"]["tier"]["properties"]["rto"]["examples"] == ["15m"]


def test_every_duration_property_describes_the_grammar_in_words(bundle: dict[str, Any]) -> None:
    durations = 0
    for where, prop in properties(bundle):
        chain = ref_chain(bundle, prop)
        if chain[-1].get("pattern") in (DURATION_PATTERN, UNITS_PATTERN):
            durations += 1
            assert DURATION_HINT in prop["description"], where  # the property's own: what a hover shows
            assert len(prop["examples"]) == 1, where
    assert durations == 20


@pytest.mark.parametrize("path", [*SHIPPED, *VALID], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_bundle_accepts_every_shipped_and_valid_playbook(bundle: dict[str, Any], path: Path) -> None:
    validator = Draft202012Validator(bundle)
    assert [e.message for e in validator.iter_errors(load_document(path).data)] == []


@pytest.mark.parametrize("text", [starter_playbook("playbook.yaml"), lab_starter_playbook("lab.yaml")])
def test_the_bundle_accepts_the_starter_playbooks(bundle: dict[str, Any], text: str) -> None:
    assert text.splitlines()[0] == SCHEMA_LINE  # the editor's modeline goes first: it names the bundle
    assert list(Draft202012Validator(bundle).iter_errors(yaml.safe_load(text))) == []


def test_shipped_playbooks_are_all_checked() -> None:
    assert {p.stem for p in SHIPPED} >= {"demo", "enterprise", "haproxy", "postgres", "redis-sentinel"}


def test_the_bundle_checks_a_kind_s_parameters_as_drill_does(bundle: dict[str, Any]) -> None:
    validator = Draft202012Validator(bundle)
    doc = load_document(ROOT / "playbooks" / "demo.yaml").data
    doc["assets"][0]["probes"][0] = {"name": "port", "tcp": {"host": "127.0.0.1", "port": 6379}}
    assert validator.is_valid(doc)
    doc["assets"][0]["probes"][0]["tcp"] = {"host": "127.0.0.1", "prot": 6379}  # a typo in a kind's key
    assert not validator.is_valid(doc)
