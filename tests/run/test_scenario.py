"""Scenario steps against real local servers and real subprocesses."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest

from drill import events as ev
from drill.actions.base import ActionContext
from drill.events import EventDraft
from drill.playbook.model import (
    Action,
    ActionStep,
    Asset,
    ManualStep,
    MarkStep,
    Metadata,
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
    def __init__(self, answer: str) -> None:
        self.answer = answer

    async def ask(self, step: ManualStep) -> Answer:
        return Answer(self.answer, "tester@host")


PLAYBOOK = Playbook(
    metadata=Metadata(name="t", owner="o"),
    tiers=(Tier("tier-0", 0, 1000),),
    assets=(Asset("api", "tier-0", ()),),
    scenario=(),
)


@pytest.fixture
async def runner() -> Any:
    recorded: list[EventDraft] = []
    async with httpx.AsyncClient(trust_env=False) as client:
        scenario = ScenarioRunner(
            playbook=PLAYBOOK,
            emit=lambda draft, sync: recorded.append(draft),
            now_ns=lambda: 0,
            states=States(),
            changed=Changes(),
            secrets=Secrets(env={"TOKEN": "s3cr3t-value"}),
            action_ctx=ActionContext(http=client, cwd="."),
            prompter=Scripted("done"),
        )
        scenario.recorded = recorded  # type: ignore[attr-defined]
        yield scenario


def _finished(recorded: list[EventDraft]) -> list[tuple[str, str]]:
    return [(d.data["step"], d.data["status"]) for d in recorded if d.type == ev.STEP_FINISHED]


async def test_http_action_retries_transient_failures_then_succeeds(
    runner: Any, http_server: SwitchableServer
) -> None:
    http_server.statuses = [503, 503]
    step = ActionStep(
        "failover",
        Action("http", {"url": http_server.url + "/failover"}),
        retry=Retry(attempts=3, wait_ms=10),
    )
    outcome = await runner.run_step(step, "scenario")
    assert (outcome.status, outcome.attempts) == ("ok", 3)
    assert http_server.requests == ["/failover"] * 3
    attempts = [d.data["ok"] for d in runner.recorded if d.type == ev.STEP_ATTEMPT]
    assert attempts == [False, False, True]


async def test_retries_are_bounded(runner: Any, http_server: SwitchableServer) -> None:
    http_server.status = 503
    step = ActionStep(
        "failover", Action("http", {"url": http_server.url}), retry=Retry(attempts=2, wait_ms=10)
    )
    outcome = await runner.run_step(step, "scenario")
    assert (outcome.status, outcome.attempts) == ("failed", 2)
    assert "expected status 2xx, got 503" in outcome.reason


async def test_command_action_exit_code_and_secret_redaction(runner: Any) -> None:
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", "${env:TOKEN}"]
    outcome = await runner.run_step(ActionStep("cmd", Action("command", {"argv": argv})), "scenario")
    assert outcome.status == "failed"
    assert "exited 3, expected 0" in outcome.reason
    assert "s3cr3t-value" not in outcome.reason and REDACTED in outcome.reason


async def test_inject_step_emits_failure_injected_after_it_finishes(runner: Any) -> None:
    await runner.run_step(MarkStep("declare", "disaster"), "scenario")
    kinds = [d.type for d in runner.recorded]
    assert kinds == [ev.STEP_STARTED, ev.MARK, ev.STEP_FINISHED, ev.INJECTED]


async def test_wait_for_fails_when_within_runs_out(runner: Any) -> None:
    step = WaitForStep("wait down", WaitFor(state="down", within_ms=50, asset="api"))
    outcome = await runner.run_step(step, "scenario")
    assert (outcome.status, outcome.reason) == ("failed", "still not down after 50 ms: api")


async def test_wait_for_wakes_on_state_change(runner: Any) -> None:
    import asyncio

    step = WaitForStep("wait down", WaitFor(state="down", within_ms=5000, asset="api"))
    task = asyncio.create_task(runner.run_step(step, "scenario"))
    await asyncio.sleep(0)
    runner.states.values["api"] = "down"
    runner.changed.notify()
    assert (await task).status == "ok"


async def test_failed_step_skips_the_rest(runner: Any) -> None:
    steps = (
        WaitForStep("w", WaitFor(state="down", within_ms=10, asset="api")),
        PauseStep("p", 10),
        MarkStep("m", "later"),
    )
    assert await runner.run_steps(steps, "scenario") is False
    assert _finished(runner.recorded) == [("w", "failed"), ("p", "skipped"), ("m", "skipped")]


async def test_parallel_runs_substeps_together_and_reports_failures(runner: Any) -> None:
    step = ParallelStep(
        "both", (PauseStep("p1", 20), WaitForStep("w", WaitFor(state="down", within_ms=10, asset="api")))
    )
    outcome = await runner.run_step(step, "scenario")
    assert (outcome.status, outcome.reason) == ("failed", "failed: w")


async def test_manual_abort_raises_and_is_recorded(runner: Any) -> None:
    runner.prompter = Scripted("abort")
    with pytest.raises(OperatorAbort):
        await runner.run_step(ManualStep("check", "Is the banner up?"), "scenario")
    answered = [d.data for d in runner.recorded if d.type == ev.MANUAL_ANSWERED]
    assert answered[0]["answer"] == "abort" and answered[0]["who"] == "tester@host"
    assert _finished(runner.recorded) == [("check", "aborted")]
