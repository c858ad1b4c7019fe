"""Durations as written in playbooks (`250ms`, `90s`, `15m`, `4h`, `1h30m`, `2d`) to exact milliseconds.

The one grammar of durations, in the foundation so that probe kinds parsing their own parameters
(max_latency, wait_timeout) read them exactly as the playbook loader does.
"""

from __future__ import annotations

import re

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
DURATION_PATTERN = r"^(0|([0-9]+(ms|s|m|h|d))+)$"


def parse_duration_ms(text: str) -> int:
    """Exact milliseconds of a duration string; raises ValueError with a readable message.

    Units must appear largest first and at most once each (`1h30m`, not `30m1h`).
    """
    if not isinstance(text, str):
        raise ValueError(f"a duration must be a string like '90s', not {type(text).__name__}")
    s = text.strip()
    if s == "0":
        return 0
    pos, total = 0, 0
    seen: list[str] = []
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        unit = match.group(2)
        if seen and _UNIT_MS[unit] >= _UNIT_MS[seen[-1]]:
            raise ValueError(f"invalid duration {text!r}: units must go from largest to smallest")
        seen.append(unit)
        total += int(match.group(1)) * _UNIT_MS[unit]
        pos = match.end()
    if pos != len(s) or not seen:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 250ms, 90s, 15m, 4h, 1h30m")
    return total


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of a millisecond count (inverse of parse_duration_ms)."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        size = _UNIT_MS[unit]
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)
