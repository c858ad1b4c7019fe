"""Scenario steps: mark, action, wait_for, pause, manual, parallel; run in order, each journalled.

Every step is bracketed by step.started / step.finished events written with fsync (step
boundaries are where a crash must lose nothing). A failed step ends the scenario; the steps
after it are recorded as skipped so the timeline shows the whole plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import tenacity

from drill import events as ev
from drill.actions.base import ActionContext, ActionResult
from drill.actions.registry import ACTION_KINDS
from drill.events import EventDraft
from drill.playbook.model import (
    ActionStep,
    ManualStep,
    MarkStep,
    ParallelStep,
    PauseStep,
    Playbook,
    Step,
    WaitFor,
    WaitForStep,
    step_kind,
)
from drill.secrets import Secrets

DISASTER_MARK = "disaster"


@dataclass(frozen=True, slots=True)
class Answer:
    """An operator's answer to a manual step."""

    answer: str  # done | skip | abort
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


def _injects(step: Step) -> bool:
    """t_inject is the completion of a step marked inject, or of the mark 'disaster'."""
    if isinstance(step, MarkStep) and step.mark == DISASTER_MARK:
        return True
    return bool(getattr(step, "inject", False))


@dataclass(frozen=True, slots=True)
class StepOutcome:
    status: str  # ok | failed | skipped | aborted
    reason: str = ""
    attempts: int = 0


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

    async def run_steps(self, steps: Sequence[Step], phase: str) -> bool:
        """Run steps in order; True when all succeeded. Raises OperatorAbort on an operator abort."""
        for index, step in enumerate(steps):
            outcome = await self.run_step(step, phase)
            if outcome.status == "failed":
                self._skip_rest(steps[index + 1 :], phase, f"after '{step.name}' failed")
                return False
        return True

    async def run_step(self, step: Step, phase: str) -> StepOutcome:
        kind = step_kind(step)
        self._emit(ev.STEP_STARTED, {"step": step.name, "kind": kind, "phase": phase}, sync=True)
        outcome = StepOutcome("aborted", "interrupted")
        try:
            outcome = await self._dispatch(step, phase)
        finally:
            data: dict[str, Any] = {"step": step.name, "kind": kind, "phase": phase, "status": outcome.status}
            if outcome.reason:
                data["reason"] = outcome.reason
            if outcome.attempts:
                data["attempts"] = outcome.attempts
            self._emit(ev.STEP_FINISHED, data, sync=True)
        if outcome.status == "ok" and phase == "scenario" and _injects(step):
            self._emit(ev.INJECTED, {"step": step.name}, sync=True)
        return outcome

    async def _dispatch(self, step: Step, phase: str) -> StepOutcome:
        match step:
            case MarkStep():
                return self._mark(step, phase)
            case ActionStep():
                return await self._action(step)
            case WaitForStep():
                return await self._wait_for(step.wait_for)
            case PauseStep():
                await asyncio.sleep(step.pause_ms / 1000)
                return StepOutcome("ok")
            case ManualStep():
                return await self._manual(step, phase)
            case ParallelStep():
                return await self._parallel(step, phase)
        raise AssertionError(f"unknown step type {type(step).__name__}")

    def _mark(self, step: MarkStep, phase: str) -> StepOutcome:
        self._emit(ev.MARK, {"name": step.mark, "step": step.name}, sync=True)
        return StepOutcome("ok")

    async def _action(self, step: ActionStep) -> StepOutcome:
        kind = ACTION_KINDS[step.action.kind]
        spec = kind.parse(self.secrets.resolve(dict(step.action.params), f"step '{step.name}'"))
        attempts = 0

        async def attempt() -> ActionResult:
            nonlocal attempts
            attempts += 1
            try:
                async with asyncio.timeout(step.timeout_ms / 1000):
                    result = await kind.run(spec, self.action_ctx)
            except TimeoutError:
                result = ActionResult(
                    ok=False, reason=f"timed out after {step.timeout_ms} ms", transient=True
                )
            self._emit(
                ev.STEP_ATTEMPT,
                {"step": step.name, "attempt": attempts, "ok": result.ok, "reason": result.reason},
                sync=False,
            )
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
        if result.ok:
            return StepOutcome("ok", attempts=attempts)
        return StepOutcome("failed", self.secrets.redact(result.reason), attempts)

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
                "failed", f"still not {wait.state} after {wait.within_ms} ms: {', '.join(laggards)}"
            )
        return StepOutcome("ok")

    def _members(self, wait: WaitFor) -> list[str]:
        if wait.asset:
            return [wait.asset]
        if wait.tier:
            return [a.id for a in self.playbook.assets if a.tier == wait.tier]
        return [a.id for a in self.playbook.assets]

    async def _manual(self, step: ManualStep, phase: str) -> StepOutcome:
        try:
            if step.timeout_ms:
                async with asyncio.timeout(step.timeout_ms / 1000):
                    answer = await self.prompter.ask(step)
            else:
                answer = await self.prompter.ask(step)
        except TimeoutError:
            return StepOutcome("failed", f"no answer from the operator within {step.timeout_ms} ms")
        self._emit(
            ev.MANUAL_ANSWERED,
            {
                "step": step.name,
                "phase": phase,
                "answer": answer.answer,
                "who": answer.who,
                "auto": answer.auto,
                "prompt": step.prompt,
            },
            sync=True,
        )
        if answer.answer == "abort":
            raise OperatorAbort(f"operator {answer.who} aborted at '{step.name}'")
        return StepOutcome(
            "skipped" if answer.answer == "skip" else "ok",
            "skipped by the operator" if answer.answer == "skip" else "",
        )

    async def _parallel(self, step: ParallelStep, phase: str) -> StepOutcome:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.run_step(sub, phase)) for sub in step.steps]
        failed = [
            sub.name for sub, task in zip(step.steps, tasks, strict=True) if task.result().status == "failed"
        ]
        return StepOutcome("failed", f"failed: {', '.join(failed)}") if failed else StepOutcome("ok")

    def _skip_rest(self, steps: Sequence[Step], phase: str, why: str) -> None:
        for step in steps:
            data = {"step": step.name, "kind": step_kind(step), "phase": phase}
            self._emit(ev.STEP_STARTED, data, sync=False)
            self._emit(ev.STEP_FINISHED, {**data, "status": "skipped", "reason": why}, sync=False)

    def _emit(self, kind: str, data: dict[str, Any], *, sync: bool) -> None:
        self.emit(EventDraft(kind, self.now_ns(), data), sync)
