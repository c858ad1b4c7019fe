"""Wall and CPU time of one call, for the benchmarks (imported as `_timing`, as `_servers` is)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(func: Callable[[], T]) -> tuple[float, float, T]:
    """(wall s, CPU s of this process, the result): perf_counter and process_time around it."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - wall, time.process_time() - cpu, result
