"""The signal router holds a signal that arrives before the run exists and replays it (real signals)."""

from __future__ import annotations

import asyncio
import os
import signal

from drill.run.runner import SignalRouter


class _Recorder:
    def __init__(self) -> None:
        self.got: list[str] = []
        self.arrived = asyncio.Event()

    def on_signal(self, name: str) -> None:
        self.got.append(name)
        self.arrived.set()


async def test_a_signal_before_the_run_exists_is_replayed_to_it_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGINT)
    router = SignalRouter(enabled=True)
    delivered = asyncio.Event()
    deliver = router._deliver

    def deliver_and_tell(name: str) -> None:
        deliver(name)
        delivered.set()

    router._deliver = deliver_and_tell  # type: ignore[method-assign]  # observe it, same behaviour
    router.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT: no KeyboardInterrupt, it is held
        await asyncio.wait_for(delivered.wait(), timeout=5)
        assert router.pending == ["SIGINT"]
        run = _Recorder()
        router.attach(run)  # type: ignore[arg-type]  # only on_signal is used
        assert run.got == ["SIGINT"] and router.pending == []
        os.kill(os.getpid(), signal.SIGTERM)  # once attached, straight to the run
        await asyncio.wait_for(_until(run, 2), timeout=5)
        assert run.got == ["SIGINT", "SIGTERM"]
    finally:
        router.remove()
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handling is back, no gap


async def _until(run: _Recorder, count: int) -> None:
    while len(run.got) < count:
        run.arrived.clear()
        await run.arrived.wait()
