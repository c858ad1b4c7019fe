"""JSON as a type: what evidence files hold once parsed, before they are turned into dataclasses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JsonValue: TypeAlias = str | int | float | bool | Mapping[str, "JsonValue"] | Sequence["JsonValue"] | None
JsonObject: TypeAlias = Mapping[str, JsonValue]
