"""Run a playbook against real servers while recording ground truth independently of drill."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from drill.clock import SystemClock, monotonic_ns, parse_utc
from drill.evidence.events import ManualAnswer
from drill.playbook.model import ManualStep
from drill.playbook.validate import load_playbook
from drill.run.runner import run_drill
from drill.run.scenario import Answer, Prompter
from drill.run.session import RunOptions, RunOutcome


def exit_watch(popen: subprocess.Popen[bytes]) -> Callable[[], int | None]:
    """Ground truth of a process death: a thread reaps it and records the monotonic instant."""
    seen: list[int] = []

    def wait() -> None:
        popen.wait()
        seen.append(monotonic_ns())

    threading.Thread(target=wait, daemon=True).start()
    return lambda: seen[0] if seen else None


async def poll_until(check: Callable[[], bool], every_s: float = 0.01, timeout_s: float = 30.0) -> int:
    """The monotonic instant check() first returned True (run in a thread, polled every_s)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await asyncio.to_thread(check):
                return monotonic_ns()
            await asyncio.sleep(every_s)


@dataclass
class HookPrompter:
    """Answers manual steps by running the test's hook for that prompt (ground-truth actions)."""

    hooks: Mapping[str, Callable[[], None]]
    instants: dict[str, int] = field(default_factory=dict)

    async def ask(self, step: ManualStep) -> Answer:
        hook = self.hooks.get(step.name)
        if hook is not None:
            await asyncio.to_thread(hook)
            self.instants[step.name] = monotonic_ns()
        return Answer(ManualAnswer.DONE, "integration-test", auto=True)


async def run_playbook(
    path: Path, env: Mapping[str, str], runs_dir: Path, clock: SystemClock, prompter: Prompter | None = None
) -> RunOutcome:
    """Run the playbook with these environment variables added, on the given clock."""
    return await run_drill(
        load_playbook(path),
        RunOptions(runs_dir=runs_dir, auto_confirm=True, env={**os.environ, **env}),
        clock=clock,
        prompter=prompter,
    )


def mono_of(clock: SystemClock, utc_text: str | None) -> int:
    """The monotonic instant (ms resolution) behind a UTC text written by this run's clock."""
    assert utc_text is not None
    delta = parse_utc(utc_text) - clock.utc_at(clock.anchor_mono_ns)
    return clock.anchor_mono_ns + int(delta.total_seconds() * 1e9)
