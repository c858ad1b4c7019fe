"""Fixtures for probe tests, on the public probe-author kit (drill.testing): a FakeContext that
records what the probe emits and opens the resources its kind declares, closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drill.evidence.events import EventDraft
from drill.testing import FakeContext


@pytest.fixture
async def probe_ctx() -> AsyncIterator[FakeContext]:
    async with FakeContext() as ctx:
        yield ctx


@pytest.fixture
def events(probe_ctx: FakeContext) -> list[EventDraft]:
    """What the probes run with probe_ctx emitted (canary writes, RPO measurements)."""
    return probe_ctx.events
