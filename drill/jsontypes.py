"""JSON as a type: what evidence files hold once parsed, before they are turned into dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JsonValue: TypeAlias = str | int | float | bool | Mapping[str, "JsonValue"] | Sequence["JsonValue"] | None
JsonObject: TypeAlias = Mapping[str, JsonValue]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # what `dig` returns where a path leads nowhere (None is a JSON value)


def dig(document: object, path: str) -> object:
    """Follow a dotted path into parsed JSON; integer parts index lists (items.0.id, items.-1.id)."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node
