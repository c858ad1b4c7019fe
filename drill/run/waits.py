"""One way to wait for the first of several things under a bound (the baseline, the return to
normal, the wait for acknowledgements all end on their condition, a stop, or their deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def first_of(*awaitables: Awaitable[object], timeout_s: float | None) -> None:
    """Return when the first awaitable completes or timeout_s passes; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
