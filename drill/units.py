"""How people read numbers: the one formatter for every duration shown to a person.

CLI, live view, plan, report views and error messages all call `human_ms`, so a duration reads
the same everywhere: `250 ms`, `1.5 s`, `12 s`, `15 min`, `4 min 5 s`, `2 h 30 min`, `2 d 3 h`.
Machine formats keep their own spelling (integers in JSON, seconds in JUnit, `1h30m` in YAML).
"""

from __future__ import annotations

NOT_MEASURED = "—"

_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR


def human_ms(ms: int | None) -> str:
    """A duration in the largest units that keep it readable; '—' when it was not measured.

    Below a minute, seconds carry one decimal (rounded half up, trailing .0 dropped); above,
    two units at most, the smaller one rounded: 4 min 5 s, 2 h 30 min, 2 d 3 h.
    """
    if ms is None:
        return NOT_MEASURED
    if ms < 0:
        return f"-{human_ms(-ms)}"
    if ms < _SECOND:
        return f"{ms} ms"
    if ms < _MINUTE:
        tenths = (ms + 50) // 100
        if tenths < 600:
            whole, tenth = divmod(tenths, 10)
            return f"{whole}.{tenth} s" if tenth else f"{whole} s"
    if ms < _HOUR:
        return _two_units(ms, _MINUTE, "min", _SECOND, "s")
    if ms < _DAY:
        return _two_units(ms, _HOUR, "h", _MINUTE, "min")
    return _two_units(ms, _DAY, "d", _HOUR, "h")


def _two_units(ms: int, big: int, big_name: str, small: int, small_name: str) -> str:
    count = (ms + small // 2) // small  # in small units, rounded half up
    whole, rest = divmod(count, big // small)
    return f"{whole} {big_name} {rest} {small_name}" if rest else f"{whole} {big_name}"


def human_us(us: int | None) -> str:
    """A probe's latency, from microseconds: '0.4 ms', '2.1 ms' below 10 ms (one decimal, trailing
    .0 dropped), then as human_ms: '35 ms', '1.5 s'; '—' when there is none."""
    if us is None:
        return NOT_MEASURED
    if us < 0:
        return f"-{human_us(-us)}"
    if us < 10_000:  # below 10 ms: tenths of a millisecond, rounded half up
        whole, tenth = divmod((us + 50) // 100, 10)
        return f"{whole}.{tenth} ms" if tenth else f"{whole} ms"
    return human_ms((us + 500) // 1000)


def human_count(count: int, noun: str, plural: str = "") -> str:
    """'1 page', '2 pages', '0 pages' (plural defaults to noun + 's')."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def human_pm(ms: int | None, uncertainty_ms: int | None) -> str:
    """A measured duration with its uncertainty: '2.3 s ± 250 ms'; '—' when not measured."""
    if ms is None:
        return NOT_MEASURED
    return f"{human_ms(ms)} ± {human_ms(uncertainty_ms)}" if uncertainty_ms else human_ms(ms)


def human_bp(bp: int | None) -> str:
    """Basis points as a percentage with two decimals (integer arithmetic: no float rounding)."""
    if bp is None:
        return NOT_MEASURED
    return f"{bp // 100}.{bp % 100:02d} %"
