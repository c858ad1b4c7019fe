"""The runner end to end against real local servers: stop conditions, rollback, evidence files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from drill import events as ev
from drill.errors import EXIT_ABORTED, EXIT_FAILED
from drill.events import Event
from drill.playbook.model import Action, ActionStep, MarkStep, StopCondition, WaitFor, WaitForStep
from drill.run.journal import read_events, verify_journal
from drill.run.runner import RunOptions, run_drill
from tests.conftest import SwitchableServer
from tests.run.helpers import one_asset_playbook
from tests.servers import ToggleServer

INTERVAL_MS = 100


async def test_stop_condition_aborts_within_one_interval_and_rollback_runs(
    tmp_path: Path, http_server: SwitchableServer
) -> None:
    service = ToggleServer()
    await service.start()
    injected: list[Event] = []

    def sink(event: Event) -> None:
        if event.type == ev.INJECTED:
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
    down = next(e for e in events if e.type == ev.ASSET_STATE and e.data["state"] == "down")
    tripped = next(e for e in events if e.type == ev.STOP_TRIPPED)
    late_ms = (tripped.mono_ns - down.data["at_mono_ns"]) / 1e6 - 300
    assert 0 <= late_ms <= INTERVAL_MS + 30, f"tripped {late_ms:.0f} ms after the limit"
    assert http_server.requests == ["/failback"]
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert results["status"] == "aborted" and results["rollback"] == {"ran": True, "status": "ok"}
    assert results["stops"][0]["condition"] == "svc gone"
    assert [s["status"] for s in results["steps"] if s["phase"] == "scenario"] == ["ok", "ok", "aborted"]


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
        outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path))
    finally:
        await hanging.stop()
        await healthy.stop()
    assert outcome.exit_code == EXIT_FAILED
    observed = [e for e in read_events(outcome.journal_path) if e.type == ev.PROBE_OBSERVED]
    hung = [e.data for e in observed if e.asset == "svc"]
    assert hung and all(not d["ok"] and d["reason"] == "timed out after 250 ms" for d in hung)
    assert all(250_000 <= d["latency_us"] <= 300_000 for d in hung)
    others = [e.data for e in observed if e.asset == "other"]
    assert all(d["ok"] for d in others)
    assert max(d["jitter_us"] for d in others[1:]) < 20_000  # the hanging probe delayed nobody
    ticks = [d["tick"] for d in others]
    assert ticks == list(range(len(ticks)))  # no missed tick for the healthy probe
    overruns = [e for e in read_events(outcome.journal_path) if e.type == ev.PROBE_OVERRUN]
    assert overruns and all(e.asset == "svc" for e in overruns)
    verify_journal(outcome.journal_path)


def test_floats_in_the_playbook_document_are_journalled_as_text() -> None:
    from drill.run.runner import _journal_safe

    doc = {"assets": [{"probes": [{"http": {"json_equals": {"ratio": 0.5, "ok": True, "n": 3}}}]}]}
    assert _journal_safe(doc) == {
        "assets": [{"probes": [{"http": {"json_equals": {"ratio": "0.5", "ok": True, "n": 3}}}]}]
    }
