"""Scenario steps: mark, action, wait_for, pause, manual, parallel; run in order, each journalled.

Every step is bracketed by step.started / step.finished events written with fsync (step
boundaries are where a crash must lose nothing). A failed step ends the scenario; the steps
after it are recorded as skipped so the timeline shows the whole plan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import tenacity

from drill.actions.base import ActionContext, ActionResult
from drill.actions.registry import ACTION_KINDS
from drill.evidence.events import (
    EventDraft,
    FailureInjected,
    ManualAnswer,
    ManualAnswered,
    Mark,
    Payload,
    StepAttempt,
    StepFinished,
    StepStarted,
    StepStatus,
)
from drill.evidence.snapshot import Phase
from drill.jsontypes import MISSING, dig
from drill.playbook.model import (
    OUTPUT_REFERENCE,
    ActionStep,
    Capture,
    ManualStep,
    MarkStep,
    ParallelStep,
    PauseStep,
    Playbook,
    Step,
    WaitFor,
    WaitForStep,
    injects,
    step_kind,
)
from drill.run.scheduler import LiveProbeContext, ScheduledProbe, run_probe_once
from drill.secrets import Secrets
from drill.units import human_ms


@dataclass(frozen=True, slots=True)
class Answer:
    """An operator's answer to a manual step."""

    answer: ManualAnswer
    who: str
    auto: bool = False


class Prompter(Protocol):
    """Asks the operator about a manual step (the CLI provides a TTY one)."""

    async def ask(self, step: ManualStep) -> Answer: ...


class StateView(Protocol):
    """What wait_for needs of the monitor."""

    def state(self, asset: str) -> str | None: ...


class Changes:
    """Wakes every waiter after each asset state change (a broadcast an asyncio.Event can't repeat)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


@dataclass(frozen=True, slots=True)
class StepOutcome:
    status: StepStatus
    reason: str = ""
    attempts: int = 0
    captured: str | None = None


class OperatorAbort(Exception):
    """The operator answered 'abort' at a manual step."""


class _Retryable(Exception):
    def __init__(self, result: ActionResult) -> None:
        self.result = result


@dataclass
class ScenarioRunner:
    """Runs steps against the world; emits events; never raises for a failing step."""

    playbook: Playbook
    emit: Callable[[EventDraft, bool], object]  # (draft, sync)
    now_ns: Callable[[], int]
    states: StateView
    changed: Changes  # notified by the runner after every asset state change
    secrets: Secrets
    action_ctx: ActionContext
    prompter: Prompter
    checks: Mapping[str, tuple[ScheduledProbe, LiveProbeContext]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # step name -> what its capture kept
    inject_refusal: Callable[[], str] = lambda: ""  # why no fault may be injected now ('' : it may)

    async def run_steps(self, steps: Sequence[Step], phase: Phase) -> bool:
        """Run steps in order; True when all succeeded. Raises OperatorAbort on an operator abort."""
        for index, step in enumerate(steps):
            outcome = await self.run_step(step, phase)
            if outcome.status == StepStatus.FAILED:
                self.skip(steps[index + 1 :], phase, f"after '{step.name}' failed")
                return False
        return True

    async def run_step(self, step: Step, phase: Phase) -> StepOutcome:
        kind = step_kind(step)
        started_ns = self.now_ns()
        self.emit(EventDraft(StepStarted(step.name, kind, phase), started_ns), True)
        outcome = StepOutcome(StepStatus.ABORTED, "interrupted")
        try:
            refused = self.inject_refusal() if phase == Phase.SCENARIO and injects(step) else ""
            if refused:
                outcome = StepOutcome(StepStatus.FAILED, f"not injected: {refused}")
            else:
                outcome = await self._dispatch(step, phase)
        finally:
            finished = StepFinished(
                step.name, kind, outcome.status, phase, outcome.reason, outcome.attempts, outcome.captured
            )
            self._emit(finished, sync=True)
        if outcome.status == StepStatus.OK and phase == Phase.SCENARIO and injects(step):
            # t_inject is the step's start: a kill command that returns after the service is
            # already dead must not leave the outage before the injection (DESIGN §2)
            self._emit(FailureInjected(step.name, started_ns), sync=True)
        return outcome

    async def _dispatch(self, step: Step, phase: Phase) -> StepOutcome:
        match step:
            case MarkStep():
                return self._mark(step, phase)
            case ActionStep():
                return await self._action(step)
            case WaitForStep():
                if step.wait_for.check is not None:
                    return await self._wait_check(step)
                return await self._wait_for(step.wait_for)
            case PauseStep():
                await asyncio.sleep(step.pause_ms / 1000)
                return StepOutcome(StepStatus.OK)
            case ManualStep():
                return await self._manual(step, phase)
            case ParallelStep():
                return await self._parallel(step, phase)
        raise AssertionError(f"unknown step type {type(step).__name__}")

    def _mark(self, step: MarkStep, phase: Phase) -> StepOutcome:
        self._emit(Mark(step.mark, step.name), sync=True)
        return StepOutcome(StepStatus.OK)

    async def _action(self, step: ActionStep) -> StepOutcome:
        kind = ACTION_KINDS[step.action.kind]
        params = self.secrets.resolve_params(step.action.params, f"step '{step.name}'")
        try:  # after the secrets: a captured text is never read as a reference
            params = fill_outputs(params, self.outputs)
        except KeyError as missing:
            return StepOutcome(StepStatus.FAILED, f"step {missing.args[0]!r} has captured no output")
        spec = kind.parse(params)
        attempts = 0

        async def attempt() -> ActionResult:
            nonlocal attempts
            attempts += 1
            try:
                async with asyncio.timeout(step.timeout_ms / 1000):
                    result = await kind.run(spec, self.action_ctx)
            except TimeoutError:
                result = ActionResult(
                    ok=False, reason=f"timed out after {human_ms(step.timeout_ms)}", transient=True
                )
            self._emit(StepAttempt(step.name, attempts, result.ok, result.reason), sync=False)
            if not result.ok and result.transient:
                raise _Retryable(result)
            return result

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(max(1, step.retry.attempts)),
            wait=tenacity.wait_fixed(step.retry.wait_ms / 1000),
            retry=tenacity.retry_if_exception_type(_Retryable),
            reraise=True,
        )
        result: ActionResult
        try:
            result = await retrying(attempt)
        except _Retryable as exc:
            result = exc.result
        if not result.ok:
            return StepOutcome(StepStatus.FAILED, self.secrets.redact_text(result.reason), attempts)
        if step.capture is None:
            return StepOutcome(StepStatus.OK, attempts=attempts)
        try:
            value = captured(step.capture, result)
        except ValueError as exc:
            return StepOutcome(StepStatus.FAILED, f"capture: {exc}", attempts)
        self.outputs[step.name] = value
        return StepOutcome(StepStatus.OK, attempts=attempts, captured=value)

    async def _wait_for(self, wait: WaitFor) -> StepOutcome:
        members = self._members(wait)
        try:
            async with asyncio.timeout(wait.within_ms / 1000):
                await self.changed.wait_until(
                    lambda: all(self.states.state(a) == wait.state for a in members)
                )
        except TimeoutError:
            laggards = [a for a in members if self.states.state(a) != wait.state]
            return StepOutcome(
                StepStatus.FAILED,
                f"still not {wait.state} after {human_ms(wait.within_ms)}: {', '.join(laggards)}",
            )
        return StepOutcome(StepStatus.OK)

    async def _wait_check(self, step: WaitForStep) -> StepOutcome:
        """Run the step's check every `every` until it succeeds; each try is journalled."""
        probe, ctx = self.checks[step.name]
        wait, attempts, last = step.wait_for, 0, ""
        try:
            async with asyncio.timeout(wait.within_ms / 1000):
                while True:
                    attempts += 1
                    started = self.now_ns()
                    obs = await run_probe_once(probe, ctx, ctx.clock)
                    self._emit(StepAttempt(step.name, attempts, obs.ok, obs.reason), sync=False)
                    if obs.ok:
                        return StepOutcome(StepStatus.OK, attempts=attempts)
                    last = obs.reason
                    await asyncio.sleep(max(0, started + wait.every_ms * 1_000_000 - self.now_ns()) / 1e9)
        except TimeoutError:
            kind = probe.kind.name
            why = f": {last}" if last else ""
            reason = f"{kind} check did not succeed within {human_ms(wait.within_ms)} ({attempts} tries){why}"
            return StepOutcome(StepStatus.FAILED, reason, attempts)

    def _members(self, wait: WaitFor) -> list[str]:
        if wait.asset:
            return [wait.asset]
        if wait.tier:
            return [a.id for a in self.playbook.assets if a.tier == wait.tier]
        return [a.id for a in self.playbook.assets]

    async def _manual(self, step: ManualStep, phase: Phase) -> StepOutcome:
        try:
            if step.timeout_ms:
                async with asyncio.timeout(step.timeout_ms / 1000):
                    answer = await self.prompter.ask(step)
            else:
                answer = await self.prompter.ask(step)
        except TimeoutError:
            return StepOutcome(
                StepStatus.FAILED, f"no answer from the operator within {human_ms(step.timeout_ms)}"
            )
        self._emit(
            ManualAnswered(step.name, answer.answer, answer.who, answer.auto, step.prompt, phase), sync=True
        )
        if answer.answer == ManualAnswer.ABORT:
            raise OperatorAbort(f"operator {answer.who} aborted at '{step.name}'")
        if answer.answer == ManualAnswer.SKIP:
            return StepOutcome(StepStatus.SKIPPED, "skipped by the operator")
        return StepOutcome(StepStatus.OK)

    async def _parallel(self, step: ParallelStep, phase: Phase) -> StepOutcome:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.run_step(sub, phase)) for sub in step.steps]
        failed = [
            sub.name
            for sub, task in zip(step.steps, tasks, strict=True)
            if task.result().status == StepStatus.FAILED
        ]
        if failed:
            return StepOutcome(StepStatus.FAILED, f"failed: {', '.join(failed)}")
        return StepOutcome(StepStatus.OK)

    def skip(self, steps: Sequence[Step], phase: Phase, why: str) -> None:
        """Journal steps as skipped without running them (the timeline still shows the plan)."""
        for step in steps:
            kind = step_kind(step)
            self._emit(StepStarted(step.name, kind, phase), sync=False)
            self._emit(StepFinished(step.name, kind, StepStatus.SKIPPED, phase, why), sync=False)

    def _emit(self, payload: Payload, *, sync: bool) -> None:
        self.emit(EventDraft(payload, self.now_ns()), sync)


def fill_outputs(value: object, outputs: Mapping[str, str]) -> dict[str, object]:
    """Action parameters with every ${steps.NAME.output} replaced (KeyError: NAME captured nothing)."""
    filled = _fill(value, outputs)
    assert isinstance(filled, dict)
    return filled


def _fill(value: object, outputs: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return OUTPUT_REFERENCE.sub(lambda m: outputs[m.group(1)], value)
    if isinstance(value, Mapping):
        return {k: _fill(v, outputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, outputs) for v in value]
    return value


def captured(capture: Capture, result: ActionResult) -> str:
    """The text a step keeps: its stdout/stderr stripped, or a field of it read as JSON."""
    text = result.stderr if capture.source == "stderr" else result.stdout
    if not capture.json_path:
        return text.strip()
    try:
        node: object = json.loads(text)
    except ValueError:
        raise ValueError("the output is not JSON") from None
    node = dig(node, capture.json_path)
    if node is MISSING:
        raise ValueError(f"no field {capture.json_path!r} in the JSON output")
    return node if isinstance(node, str) else json.dumps(node)
