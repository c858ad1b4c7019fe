"""Durations as written in playbooks (`250ms`, `90s`, `15m`, `4h`, `1h30m`, `2d`) to exact milliseconds.

The one grammar of durations, in the foundation so that probe kinds parsing their own parameters
(max_latency, wait_timeout) read them exactly as the playbook loader does. The JSON Schemas spell
the same grammar as DURATION_PATTERN (a duration or 0) and UNITS_PATTERN (at least one unit;
with a `not` of ZERO_PATTERN for durations above zero); tests/playbook/test_durations.py keeps
the patterns, the schemas and parse_duration_ms in step. Every message about a bad duration ends
with DURATION_HINT, the words the schemas' descriptions carry too.
"""

from __future__ import annotations

import re

_UNITS = ("d", "h", "m", "s", "ms")  # largest first
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")

DURATION_HINT = "use a number and a unit, largest first, e.g. 90s or 1h30m"


def _units_pattern() -> str:
    """Each unit at most once, largest first: one alternative per largest unit present."""
    alternatives = [
        f"[0-9]+{unit}" + "".join(f"([0-9]+{smaller})?" for smaller in _UNITS[i + 1 :])
        for i, unit in enumerate(_UNITS)
    ]
    return "|".join(alternatives)


UNITS_PATTERN = f"^({_units_pattern()})$"
DURATION_PATTERN = f"^(0|{_units_pattern()})$"
ZERO_PATTERN = "^[^1-9]*$"  # a duration written with units whose every number is zero, e.g. 0s or 0m0s


def parse_duration_ms(text: object) -> int:
    """Exact milliseconds of a duration string; raises ValueError with a message for a person.

    Units must appear largest first and at most once each (`1h30m`, not `30m1h`). The integer
    0 is accepted as YAML writes it (`rpo: 0`); any other number lacks a unit.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text == 0:
            return 0
        raise ValueError(f"invalid duration {text}: no unit; {DURATION_HINT}")
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: {DURATION_HINT}")
    s = text.strip()
    if s == "0":
        return 0
    if s.isdigit():
        raise ValueError(f"invalid duration {text!r}: no unit; {DURATION_HINT}")
    pos, total = 0, 0
    seen: list[tuple[str, str]] = []  # (unit, the part as written)
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        unit = match.group(2)
        if seen:
            last_unit, last_part = seen[-1]
            if unit == last_unit:
                raise ValueError(f"invalid duration {text!r}: {unit} is given twice; {DURATION_HINT}")
            if _UNIT_MS[unit] > _UNIT_MS[last_unit]:
                raise ValueError(
                    f"invalid duration {text!r}: {match.group()} comes after {last_part}; {DURATION_HINT}"
                )
        seen.append((unit, match.group()))
        total += int(match.group(1)) * _UNIT_MS[unit]
        pos = match.end()
    if pos != len(s) or not seen:
        raise ValueError(f"invalid duration {text!r}: {DURATION_HINT}")
    return total


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of a millisecond count (inverse of parse_duration_ms)."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in _UNITS:
        size = _UNIT_MS[unit]
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)
