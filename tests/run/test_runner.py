"""The runner end to end against real local servers: stop conditions, rollback, evidence files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from drill.errors import EXIT_ABORTED, EXIT_FAILED
from drill.evidence.events import (
    JOURNAL_FORMAT,
    AssetState,
    Event,
    FailureInjected,
    ProbeObserved,
    ProbeOverrun,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepStatus,
    StopTripped,
)
from drill.evidence.journal import read_events, verify_journal
from drill.evidence.snapshot import Phase
from drill.plan import build_plan
from drill.playbook.model import Action, ActionStep, MarkStep, StopCondition, WaitFor, WaitForStep
from drill.results import RollbackResult, fold_results
from drill.run.runner import run_drill
from drill.run.session import JOURNAL_FILE, RunOptions
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook
from tests.servers import ToggleServer

INTERVAL_MS = 100


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def test_stop_condition_aborts_within_one_interval_and_rollback_runs(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    service = ToggleServer()
    await service.start()
    injected: list[Event] = []

    def sink(event: Event) -> None:
        if isinstance(event.payload, FailureInjected):
            injected.append(event)
            asyncio.get_running_loop().create_task(service.stop())

    playbook = one_asset_playbook(
        "http",
        {"url": service.url},
        (
            MarkStep("declare", "disaster"),
            WaitForStep("detected", WaitFor(state="down", within_ms=5_000, asset="svc")),
            WaitForStep("never recovers", WaitFor(state="up", within_ms=30_000, asset="svc")),
        ),
        interval_ms=INTERVAL_MS,
        stop_conditions=(StopCondition("svc gone", down_for_ms=300, asset="svc"),),
        rollback=(ActionStep("fail back", Action("http", {"url": http_server.url + "/failback"})),),
    )
    outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path), sinks=[sink])

    assert outcome.exit_code == EXIT_ABORTED
    events = list(read_events(outcome.journal_path))
    down = next(e.payload for e in events if isinstance(e.payload, AssetState) and e.payload.state == "down")
    tripped = next(e for e in events if isinstance(e.payload, StopTripped))
    late_ms = (tripped.mono_ns - down.at_mono_ns) / 1e6 - 300
    assert 0 <= late_ms <= INTERVAL_MS + 30, f"tripped {late_ms:.0f} ms after the limit"
    assert http_server.requests == ["/failback"]
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert results["status"] == "aborted" and results["rollback"] == {"ran": True, "status": "ok"}
    assert results["stops"][0]["condition"] == "svc gone"
    assert [s["status"] for s in results["steps"] if s["phase"] == "scenario"] == ["ok", "ok", "aborted"]
    # A fresh run journals the current format and the plan its results are measured against.
    started = events[0].payload
    assert isinstance(started, RunStarted)
    assert (started.format, started.plan) == (JOURNAL_FORMAT, build_plan(playbook))
    assert JOURNAL_FORMAT == 2


async def test_a_hanging_server_fails_at_the_timeout_and_others_keep_their_schedule(tmp_path: Path) -> None:
    hanging, healthy = ToggleServer(), ToggleServer()
    hanging.hang = True
    await hanging.start()
    await healthy.start()
    try:
        from drill.playbook.model import Asset, Probe

        other = Asset("other", "tier-0", (Probe("check", "http", {"url": healthy.url}, 100, 200, 2, 2),))
        playbook = one_asset_playbook(
            "http",
            {"url": hanging.url},
            (
                MarkStep("declare", "disaster"),
                WaitForStep("let it run", WaitFor(state="up", within_ms=1000, asset="svc")),
            ),
            interval_ms=100,
            timeout_ms=250,
            extra_assets=(other,),
        )
        # the hanging server is down from the start, on purpose
        outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path, allow_degraded=True))
    finally:
        await hanging.stop()
        await healthy.stop()
    assert outcome.exit_code == EXIT_FAILED
    observed = [
        (e.asset, e.payload)
        for e in read_events(outcome.journal_path)
        if isinstance(e.payload, ProbeObserved)
    ]
    hung = [p for asset, p in observed if asset == "svc"]
    assert hung and all(not p.ok and p.reason == "timed out after 250 ms" for p in hung)
    assert all(250_000 <= p.latency_us <= 300_000 for p in hung)
    others = [p for asset, p in observed if asset == "other"]
    assert all(p.ok for p in others)
    assert max(p.jitter_us for p in others[1:]) < 20_000  # the hanging probe delayed nobody
    ticks = [p.tick for p in others]
    assert ticks == list(range(len(ticks)))  # no missed tick for the healthy probe
    overruns = [e for e in read_events(outcome.journal_path) if isinstance(e.payload, ProbeOverrun)]
    assert overruns and all(e.asset == "svc" for e in overruns)
    verify_journal(outcome.journal_path)


async def test_rollback_runs_even_when_a_probe_callback_raises(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    service = ToggleServer()  # stays up: only the sink's failure ends this drill
    await service.start()
    injected = False
    raised: list[RuntimeError] = []

    def sink(event: Event) -> None:
        # Called from the probe loop (on_observation) for probe.observed: a bug in a callback.
        nonlocal injected
        if isinstance(event.payload, FailureInjected):
            injected = True
        elif isinstance(event.payload, ProbeObserved) and injected and not raised:
            raised.append(RuntimeError("sink broke on a probe observation"))
            raise raised[0]

    playbook = one_asset_playbook(
        "http",
        {"url": service.url},
        (
            MarkStep("declare", "disaster"),
            WaitForStep("never down", WaitFor(state="down", within_ms=10_000, asset="svc")),
        ),
        interval_ms=INTERVAL_MS,
        rollback=(ActionStep("fail back", Action("http", {"url": http_server.url + "/failback"})),),
    )
    # on-failure: the rollback runs here only because the runner itself failed
    options = RunOptions(runs_dir=tmp_path, run_id="broken-sink", rollback="on-failure")
    try:
        with pytest.raises(ExceptionGroup) as caught:
            await run_drill(playbook, options, sinks=[sink])
    finally:
        await service.stop()

    # What propagates: the task groups' ExceptionGroup around exactly the sink's own RuntimeError.
    assert len(raised) == 1
    assert _leaves(caught.value) == [raised[0]]
    assert caught.group_contains(RuntimeError, match="^sink broke on a probe observation$")
    # The world was failed back: ground truth from the test's own server.
    assert http_server.calls == [("POST", "/failback")]
    # And the evidence says so, in a journal that verifies.
    journal = tmp_path / "broken-sink" / JOURNAL_FILE
    verify_journal(journal)
    events = list(read_events(journal))
    payloads = [e.payload for e in events]
    reason = "internal error: RuntimeError: sink broke on a probe observation"
    first_inject = next(i for i, p in enumerate(payloads) if isinstance(p, FailureInjected))
    assert any(isinstance(p, ProbeObserved) for p in payloads[first_inject:])  # the one that raised
    scenario = [p for p in payloads if isinstance(p, StepFinished) and p.phase == Phase.SCENARIO]
    assert [(p.step, p.status) for p in scenario] == [
        ("declare", StepStatus.OK),
        ("never down", StepStatus.ABORTED),  # cut short by the failure, not timed out
    ]
    rollback = [p for p in payloads if isinstance(p, RollbackStarted | RollbackFinished)]
    assert rollback == [RollbackStarted(reason), RollbackFinished("ok")]
    finished = payloads[-1]
    assert isinstance(finished, RunFinished)
    assert finished.status == RunStatus.ABORTED
    assert finished.reason.startswith("internal error") and "RuntimeError" in finished.reason
    assert finished.reason == reason
    results = fold_results(events)
    assert (results.status, results.verdict) == (RunStatus.ABORTED, "aborted")
    assert results.rollback == RollbackResult(ran=True, status="ok")


def test_floats_in_the_playbook_document_are_journalled_as_text() -> None:
    from drill.run.session import _journal_safe

    doc = {"assets": [{"probes": [{"http": {"json_equals": {"ratio": 0.5, "ok": True, "n": 3}}}]}]}
    assert _journal_safe(doc) == {
        "assets": [{"probes": [{"http": {"json_equals": {"ratio": "0.5", "ok": True, "n": 3}}}]}]
    }
