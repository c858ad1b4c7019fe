"""RFC 8785 canonical JSON: the exact bytes of report.json that signatures cover.

RFC 8785 (JCS) output is a single line: sorted keys, no insignificant white space, UTF-8 as
is (no \\u escapes for printable text). That is still readable as it is (`jq . report.json`
pretty-prints it) and it is what makes the signed bytes reproducible from the data.
Reports hold integers only: a float reaching here is a bug upstream, never rounded silently.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785


class FloatInReport(TypeError):
    """Raised (a bug, not a user error) when a float would be canonicalised into a signed report."""


def canonical_bytes(obj: object) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value; floats are refused (reports hold integers only)."""
    reject_floats(obj, "$")
    # reject_floats walked the value; rfc8785 itself refuses anything else that is not JSON
    return bytes(rfc8785.dumps(obj))  # type: ignore[arg-type]


def is_canonical(data: bytes) -> bool:
    """Whether data is a JSON document stored exactly in its RFC 8785 form (and float-free)."""
    try:
        value = json.loads(data)
        return canonical_bytes(value) == data
    except (ValueError, FloatInReport, rfc8785.CanonicalizationError):
        return False


def reject_floats(value: object, path: str) -> None:
    """Raise FloatInReport naming where (path first, e.g. `$` or `report`) a float sits."""
    # Iterative: a deep report must not hit the recursion limit.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            raise FloatInReport(
                f"float in report at {where}: {item!r} (report values must be integers: a bug upstream)"
            )
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
