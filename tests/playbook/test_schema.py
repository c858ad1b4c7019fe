"""The schema folders are the list of kinds, in step with the registries; every property is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from drill.actions.registry import ACTION_KINDS
from drill.errors import PlaybookInvalid
from drill.playbook.load import load_document
from drill.playbook.schema import ENVELOPE, FOLDERS, bundled_schema, compiled, known_kinds
from drill.probes.registry import PROBE_KINDS
from drill.resources import load_schema, schema_dir


def test_probe_fragments_match_the_probe_registry() -> None:
    assert set(known_kinds("probe")) == set(PROBE_KINDS)


def test_action_fragments_match_the_action_registry() -> None:
    assert set(known_kinds("action")) == set(ACTION_KINDS)


def test_notifier_fragments_match_the_notifier_registry() -> None:
    registry = pytest.importorskip("drill.notify.registry")
    kinds = next(v for k, v in vars(registry).items() if k.isupper() and isinstance(v, dict))
    assert set(known_kinds("notifier")) == set(kinds)


def all_schema_files() -> list[str]:
    files = ["playbook.schema.json"]
    for folder in FOLDERS.values():
        files += sorted(f"{folder}/{p.name}" for p in (schema_dir() / folder).glob("*.schema.json"))
    return files


def undocumented(node: object, where: str) -> list[str]:
    missing: list[str] = []
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if isinstance(prop, dict) and "description" not in prop:
                missing.append(f"{where}.{name}")
        for key, value in node.items():
            missing += undocumented(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            missing += undocumented(value, f"{where}[{i}]")
    return missing


@pytest.mark.parametrize("relative", all_schema_files())
def test_schema_is_valid_2020_12_and_every_property_has_a_description(relative: str) -> None:
    schema = load_schema(relative)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert undocumented(schema, relative) == []


def test_bundle_inlines_every_fragment() -> None:
    bundle = bundled_schema()
    Draft202012Validator.check_schema(bundle)
    for family in FOLDERS:
        for kind in known_kinds(family):
            assert f"{family}-{kind}" in bundle["$defs"]
    assert set(bundle["$defs"]["probe"]["properties"]) >= set(PROBE_KINDS)


def test_fast_check_agrees_with_the_reference_validator() -> None:
    """jsonschema-rs only answers 'valid?'; it must never accept what jsonschema rejects."""
    schema = compiled(ENVELOPE)
    folder = Path(__file__).parent
    checked = 0
    for path in sorted(folder.glob("*/*.yaml")):
        try:
            data = load_document(path).data
        except PlaybookInvalid:
            continue
        assert schema.is_valid(data) == schema.validator.is_valid(data), path.name
        checked += 1
    assert checked > 30
