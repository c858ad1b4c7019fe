"""The playbook JSON Schemas: the envelope, one fragment per probe/action/notifier kind, the bundle.

The folders schemas/probes, schemas/actions and schemas/notifiers are the list of kinds the
validator knows (a test keeps them equal to the registries). Validators are compiled once. When
jsonschema-rs is installed it answers "valid?" in microseconds; the reference implementation
(jsonschema) then runs only on documents that have errors, to describe them.
"""

from __future__ import annotations

import copy
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from drill.resources import load_schema, schema_dir

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_rs: Any
try:
    import jsonschema_rs as _rs
except ImportError:  # pragma: no cover - the reference implementation alone still works
    _rs = None

ENVELOPE = "playbook.schema.json"
FOLDERS = {"probe": "probes", "action": "actions", "notifier": "notifiers"}


@cache
def known_kinds(family: str) -> tuple[str, ...]:
    """Kinds of a family ('probe', 'action', 'notifier'): the fragment files present, sorted."""
    folder = schema_dir() / FOLDERS[family]
    return tuple(sorted(p.name.removesuffix(".schema.json") for p in folder.glob("*.schema.json")))


def fragment_name(family: str, kind: str) -> str:
    return f"{FOLDERS[family]}/{kind}.schema.json"


class CompiledSchema:
    """A schema compiled once: a fast validity check and the reference validator for messages."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._fast = _rs.validator_for(schema) if _rs is not None else None

    @cached_property
    def validator(self) -> Draft202012Validator:
        """The reference validator, built on first use: it explains errors, and importing it
        costs more than a valid playbook's whole check."""
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.schema)

    def is_valid(self, instance: object) -> bool:
        if self._fast is not None:
            try:
                return bool(self._fast.is_valid(instance))
            except (ValueError, TypeError, OverflowError):  # values JSON cannot hold (nan, huge ints)
                pass
        return bool(self.validator.is_valid(instance))


@cache
def compiled(relative: str) -> CompiledSchema:
    """The compiled schema at a path relative to the schema folder."""
    return CompiledSchema(load_schema(relative))


def bundled_schema() -> dict[str, Any]:
    """One self-contained schema for editors (yaml-language-server): fragments inlined under $defs.

    What `drill schema` prints, saved beside a playbook as a file. Every $ref is a JSON pointer
    into this document (no $id anywhere: the envelope's would name another document, and a
    fragment's would move the base its refs resolve against), and every property carries a
    title (`tier: rto`, `http probe: max_latency`) so that an editor's hover heading names the
    key under the cursor rather than the nearest titled schema above it.
    """
    bundle = copy.deepcopy(load_schema(ENVELOPE))
    bundle.pop("$id", None)  # the envelope's identity; this document is the bundle saved by the user
    defs: dict[str, Any] = bundle["$defs"]
    kinds: dict[str, dict[str, Any]] = {}
    for family in FOLDERS:
        kinds[family] = {}
        for kind in known_kinds(family):
            name = f"{family}-{kind}"
            defs[name] = _inline(load_schema(fragment_name(family, kind)), name)
            kinds[family][kind] = {"$ref": f"#/$defs/{name}"}
    probe = defs["probe"]
    probe["properties"].update(kinds["probe"])
    probe["additionalProperties"] = False
    probe["oneOf"] = [{"required": [k]} for k in kinds["probe"]]
    step_kinds = ("mark", "action", "wait_for", "pause", "manual", "parallel")
    defs["step"]["oneOf"] = [{"required": [k]} for k in step_kinds]  # editors only: drill says it better
    action = defs["step"]["properties"]["action"]
    action["properties"] = kinds["action"]
    action["additionalProperties"] = False
    action["maxProperties"] = 1
    contact = defs["contact"]
    contact["properties"]["via"] = {
        "enum": list(kinds["notifier"]),
        "description": contact["properties"]["via"]["description"],
    }
    contact["allOf"] = [
        {
            "if": {"properties": {"via": {"const": k}}, "required": ["via"]},
            "then": {"$ref": f"#/$defs/notifier-{k}"},
        }
        for k in kinds["notifier"]
    ]
    for k in kinds["notifier"]:
        # the contact's own keys sit beside the notifier's parameters
        fragment = defs[f"notifier-{k}"]
        fragment.pop("additionalProperties", None)
        fragment["properties"].update({key: True for key in ("name", "via", "ack_within", "role")})
    contact["unevaluatedProperties"] = False
    _title_properties(bundle, "playbook", (), bundle)
    for name, schema in defs.items():
        owner = schema.get("title", name)
        _title_properties(schema, owner, (), bundle)
        for local, nested in (schema.get("$defs") or {}).items():
            _title_properties(nested, f"{owner} {local}", (), bundle)
    return bundle


def _title_properties(node: object, owner: str, trail: tuple[str, ...], bundle: dict[str, Any]) -> None:
    """Give each property without a title (nor a $ref to a titled schema) `owner: dotted.key`.

    Walks nested objects, list items and alternatives of `node`; not its $defs (titled apart)
    nor `if` conditions (they select a notifier's schema, no hover shows them).
    """
    if isinstance(node, list):
        for item in node:
            _title_properties(item, owner, trail, bundle)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("$defs", "if"):
            continue
        if key == "properties" and isinstance(value, dict):
            for name, prop in value.items():
                if not isinstance(prop, dict):
                    continue  # `true`: a key allowed beside a notifier's parameters
                if "title" not in prop and "title" not in _target(prop, bundle):
                    prop["title"] = f"{owner}: {'.'.join((*trail, name))}"
                _title_properties(prop, owner, (*trail, name), bundle)
        else:
            _title_properties(value, owner, trail, bundle)


def _target(node: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
    """The schema a local $ref ('#/$defs/a/$defs/b') points at, or {} without one."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return {}
    target: Any = bundle
    for part in ref.removeprefix("#/").split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return target if isinstance(target, dict) else {}


def _inline(fragment: dict[str, Any], name: str) -> dict[str, Any]:
    """A fragment made embeddable: its own $defs moved under the bundle's name, refs rewritten."""
    fragment = copy.deepcopy(fragment)
    for key in ("$schema", "$id"):
        fragment.pop(key, None)
    local = fragment.pop("$defs", None)
    if local:
        fragment["$defs"] = local

        def rewrite(node: object) -> None:
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/$defs/"):
                    node["$ref"] = f"#/$defs/{name}/$defs/{ref.removeprefix('#/$defs/')}"
                for value in node.values():
                    rewrite(value)
            elif isinstance(node, list):
                for value in node:
                    rewrite(value)

        rewrite(fragment)
    return fragment
