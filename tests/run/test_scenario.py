"""Scenario steps against real local servers and real subprocesses."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from drill.actions.base import ActionContext
from drill.evidence.events import (
    EventDraft,
    FailureInjected,
    ManualAnswer,
    ManualAnswered,
    Mark,
    StepAttempt,
    StepFinished,
    StepStarted,
    StepStatus,
)
from drill.evidence.snapshot import Metadata, Phase
from drill.playbook.model import (
    Action,
    ActionStep,
    Asset,
    ManualStep,
    MarkStep,
    ParallelStep,
    PauseStep,
    Playbook,
    Retry,
    Tier,
    WaitFor,
    WaitForStep,
)
from drill.run.scenario import Answer, Changes, OperatorAbort, ScenarioRunner
from drill.secrets import REDACTED, Secrets
from tests.conftest import SwitchableServer


class States:
    def __init__(self) -> None:
        self.values: dict[str, str | None] = {"api": "up"}

    def state(self, asset: str) -> str | None:
        return self.values.get(asset)


class Scripted:
    def __init__(self, answer: ManualAnswer) -> None:
        self.answer = answer

    async def ask(self, step: ManualStep) -> Answer:
        return Answer(self.answer, "tester@host")


PLAYBOOK = Playbook(
    metadata=Metadata(name="t", owner="o"),
    tiers=(Tier("tier-0", 0, 1000),),
    assets=(Asset("api", "tier-0", ()),),
    scenario=(),
)


@dataclass
class Recording(ScenarioRunner):
    """A ScenarioRunner that keeps what it emitted, over a state table the test sets."""

    states: States
    recorded: list[EventDraft] = field(default_factory=list)


@pytest.fixture
async def runner() -> AsyncIterator[Recording]:
    recorded: list[EventDraft] = []
    async with httpx.AsyncClient(trust_env=False) as client:
        yield Recording(
            playbook=PLAYBOOK,
            emit=lambda draft, sync: recorded.append(draft),
            now_ns=lambda: 0,
            states=States(),
            changed=Changes(),
            secrets=Secrets(env={"TOKEN": "s3cr3t-value"}),
            action_ctx=ActionContext(http=client, cwd="."),
            prompter=Scripted(ManualAnswer.DONE),
            recorded=recorded,
        )


def _finished(recorded: list[EventDraft]) -> list[tuple[str, StepStatus]]:
    return [(d.payload.step, d.payload.status) for d in recorded if isinstance(d.payload, StepFinished)]


async def test_http_action_retries_transient_failures_then_succeeds(
    runner: Recording, http_server: SwitchableServer
) -> None:
    http_server.statuses = [503, 503]
    step = ActionStep(
        "failover",
        Action("http", {"url": http_server.url + "/failover"}),
        retry=Retry(attempts=3, wait_ms=10),
    )
    outcome = await runner.run_step(step, Phase.SCENARIO)
    assert (outcome.status, outcome.attempts) == (StepStatus.OK, 3)
    assert http_server.requests == ["/failover"] * 3
    attempts = [d.payload.ok for d in runner.recorded if isinstance(d.payload, StepAttempt)]
    assert attempts == [False, False, True]


async def test_retries_are_bounded(runner: Recording, http_server: SwitchableServer) -> None:
    http_server.status = 503
    step = ActionStep(
        "failover", Action("http", {"url": http_server.url}), retry=Retry(attempts=2, wait_ms=10)
    )
    outcome = await runner.run_step(step, Phase.SCENARIO)
    assert (outcome.status, outcome.attempts) == (StepStatus.FAILED, 2)
    assert "expected status 2xx, got 503" in outcome.reason


async def test_command_action_exit_code_and_secret_redaction(runner: Recording) -> None:
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", "${env:TOKEN}"]
    outcome = await runner.run_step(ActionStep("cmd", Action("command", {"argv": argv})), Phase.SCENARIO)
    assert outcome.status == StepStatus.FAILED
    assert "exited 3, expected 0" in outcome.reason
    assert "s3cr3t-value" not in outcome.reason and REDACTED in outcome.reason


async def test_inject_step_emits_failure_injected_after_it_finishes(runner: Recording) -> None:
    await runner.run_step(MarkStep("declare", "disaster"), Phase.SCENARIO)
    kinds = [type(d.payload) for d in runner.recorded]
    assert kinds == [StepStarted, Mark, StepFinished, FailureInjected]
    started = runner.recorded[0].mono_ns
    # t_inject is the step's start, journalled with its completion
    assert runner.recorded[-1].payload == FailureInjected("declare", started)
    assert runner.recorded[-1].mono_ns >= started


async def test_wait_for_fails_when_within_runs_out(runner: Recording) -> None:
    step = WaitForStep("wait down", WaitFor(state="down", within_ms=50, asset="api"))
    outcome = await runner.run_step(step, Phase.SCENARIO)
    assert (outcome.status, outcome.reason) == (StepStatus.FAILED, "still not down after 50 ms: api")


async def test_wait_for_wakes_on_state_change(runner: Recording) -> None:
    step = WaitForStep("wait down", WaitFor(state="down", within_ms=5000, asset="api"))
    task = asyncio.create_task(runner.run_step(step, Phase.SCENARIO))
    await asyncio.sleep(0)
    runner.states.values["api"] = "down"
    runner.changed.notify()
    assert (await task).status == StepStatus.OK


async def test_failed_step_skips_the_rest(runner: Recording) -> None:
    steps = (
        WaitForStep("w", WaitFor(state="down", within_ms=10, asset="api")),
        PauseStep("p", 10),
        MarkStep("m", "later"),
    )
    assert await runner.run_steps(steps, Phase.SCENARIO) is False
    assert _finished(runner.recorded) == [
        ("w", StepStatus.FAILED),
        ("p", StepStatus.SKIPPED),
        ("m", StepStatus.SKIPPED),
    ]


async def test_parallel_runs_substeps_together_and_reports_failures(runner: Recording) -> None:
    step = ParallelStep(
        "both", (PauseStep("p1", 20), WaitForStep("w", WaitFor(state="down", within_ms=10, asset="api")))
    )
    outcome = await runner.run_step(step, Phase.SCENARIO)
    assert (outcome.status, outcome.reason) == (StepStatus.FAILED, "failed: w")


async def test_manual_abort_raises_and_is_recorded(runner: Recording) -> None:
    runner.prompter = Scripted(ManualAnswer.ABORT)
    with pytest.raises(OperatorAbort):
        await runner.run_step(ManualStep("check", "Is the banner up?"), Phase.SCENARIO)
    answered = [d.payload for d in runner.recorded if isinstance(d.payload, ManualAnswered)]
    assert answered[0].answer == ManualAnswer.ABORT and answered[0].who == "tester@host"
    assert _finished(runner.recorded) == [("check", StepStatus.ABORTED)]
