"""The public entry points: load_playbook, check_playbook, and the model they build."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from drill.errors import Diagnostic, PlaybookInvalid
from drill.playbook.model import ActionStep, MarkStep, WaitForStep
from drill.playbook.validate import check_playbook, load_playbook

HERE = Path(__file__).parent
MINIMAL = HERE / "valid" / "minimal.yaml"


def test_load_playbook_builds_the_model_with_exact_durations() -> None:
    playbook = load_playbook(MINIMAL)
    assert playbook.sha256 == hashlib.sha256(MINIMAL.read_bytes()).hexdigest()
    assert playbook.source == str(MINIMAL)
    assert playbook.document["metadata"]["name"] == "minimal"
    assert [(t.name, t.rank, t.rto_ms, t.rpo_ms) for t in playbook.tiers] == [
        ("tier-0", 0, 300_000, 0),
        ("tier-1", 1, 1_800_000, None),
        ("tier-2", 2, 14_400_000, None),
    ]
    api = playbook.asset("api")
    assert (api.depends_on, api.contact_chain, playbook.rto_ms(api)) == (("db",), "oncall", 300_000)
    probe = api.probes[0]
    assert (probe.kind, probe.interval_ms, probe.timeout_ms, probe.fall, probe.rise) == (
        "http",
        500,
        1000,
        2,
        2,
    )
    assert probe.params == {"url": "http://127.0.0.1:8080/healthz", "method": "GET", "expect_status": 200}
    assert (api.pos.line, api.pos.col, probe.pos.line) == (27, 5, 32)
    chain = playbook.chain("oncall")
    assert chain.respond_within_ms == 900_000
    first = chain.contacts[0]
    assert (first.via, first.ack_within_ms, dict(first.params)) == (
        "webhook",
        300_000,
        {"url": "${env:PAGER_URL}"},
    )
    declare, failover, wait = playbook.scenario
    assert isinstance(declare, MarkStep) and declare.mark == "disaster"
    assert isinstance(failover, ActionStep)
    assert (failover.action.kind, failover.timeout_ms, failover.retry.attempts, failover.retry.wait_ms) == (
        "http",
        60_000,
        2,
        5_000,
    )
    assert isinstance(wait, WaitForStep) and (wait.wait_for.asset, wait.wait_for.within_ms) == (
        "api",
        600_000,
    )
    assert playbook.stop_conditions[0].down_for_ms == 900_000


def test_load_playbook_raises_with_every_error() -> None:
    with pytest.raises(PlaybookInvalid) as info:
        load_playbook(HERE / "invalid" / "many_errors.yaml")
    assert [d.severity for d in info.value.diagnostics] == ["warning", "error", "error", "error"]
    assert info.value.exit_code == 2


def test_warnings_are_handed_back_by_load_playbook() -> None:
    warnings: list[Diagnostic] = []
    playbook = load_playbook(HERE / "invalid" / "rto_below_detection.yaml", warnings=warnings)
    assert playbook.assets[0].id == "db"
    assert [(w.severity, w.location.line, w.code) for w in warnings] == [("warning", 22, "detection-bound")]


def test_check_playbook_of_a_missing_file() -> None:
    playbook, diagnostics = check_playbook(HERE / "nope.yaml")
    assert playbook is None
    assert [d.message for d in diagnostics] == ["cannot read file: No such file or directory"]
