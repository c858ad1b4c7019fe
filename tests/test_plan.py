"""The recovery plan: waves from tiers and dependencies, step bounds, worst-case duration."""

from __future__ import annotations

import json
from pathlib import Path

from drill.evidence.snapshot import Phase, Plan
from drill.plan import build_plan, plan_to_dict, plan_to_text, step_bound_ms
from drill.playbook.load import parse_document
from drill.playbook.model import ManualStep, ParallelStep, PauseStep
from drill.playbook.validate import check_document, load_playbook

ROOT = Path(__file__).resolve().parent.parent

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: plan-test, owner: me}
settings: {interval: 1s, fall: 2}
tiers:
  - {name: t0, rto: 10m, rpo: 0}
  - {name: t1, rto: 1h}
assets:
  - {id: a, tier: t0, probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}}]}
  - id: b
    tier: t0
    depends_on: [a]
    probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}, interval: 5s, fall: 3}]
  - {id: c, tier: t0, depends_on: [a, b], probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}}]}
  - {id: d, tier: t0, depends_on: [a], probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}}]}
  - {id: e, tier: t1, depends_on: [c], rto: 30m, probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}}]}
  - {id: f, tier: t1, depends_on: [e], probes: [{name: p, tcp: {host: 127.0.0.1, port: 1}}]}
scenario:
  - {name: declare, mark: disaster}
  - {name: breathe, pause: 30s}
  - name: fix
    action: {command: {argv: [/bin/true]}}
    timeout: 20s
    retry: {attempts: 3, wait: 5s}
  - name: both
    parallel:
      - {name: wait a, wait_for: {asset: a, state: up, within: 2m}}
      - {name: ask, manual: ok?, timeout: 3m}
rollback:
  - {name: back, action: {http: {url: "http://127.0.0.1:1/back"}}}
"""


def plan_of(text: str) -> Plan:
    playbook, diagnostics = check_document(parse_document(text.encode(), "t.yaml"))
    assert playbook is not None, diagnostics
    return build_plan(playbook)


def test_waves_follow_tiers_then_longest_dependency_chain() -> None:
    plan = plan_of(PLAYBOOK)
    assert [(t.name, t.waves) for t in plan.tiers] == [
        ("t0", (("a",), ("b", "d"), ("c",))),
        ("t1", (("e",), ("f",))),
    ]
    assert [a.id for a in plan.assets] == ["a", "b", "d", "c", "e", "f"]


def test_assets_carry_targets_and_detection_bound() -> None:
    assets = {a.id: a for a in plan_of(PLAYBOOK).assets}
    assert (assets["b"].rto_ms, assets["b"].rpo_ms, assets["b"].detection_bound_ms) == (600_000, 0, 15_000)
    assert (assets["e"].rto_ms, assets["e"].rpo_ms) == (1_800_000, None)


def test_worst_case_sums_step_bounds_and_takes_the_longest_parallel_branch() -> None:
    plan = plan_of(PLAYBOOK)
    # pause 30s + action 3 x 20s + 2 x 5s + parallel max(2m, 3m); rollback one 60s default timeout
    assert plan.scenario_ms == 30_000 + 70_000 + 180_000
    assert plan.rollback_ms == 60_000
    assert plan.worst_case_ms == plan.scenario_ms + 60_000
    assert [(s.number, s.bound_ms) for s in plan.steps if s.phase == Phase.SCENARIO] == [
        ("1", 0),
        ("2", 30_000),
        ("3", 70_000),
        ("4", 180_000),
        ("4.1", 120_000),
        ("4.2", 180_000),
    ]


def test_manual_step_without_timeout_makes_the_duration_unbounded() -> None:
    plan = plan_of(PLAYBOOK.replace("manual: ok?, timeout: 3m", "manual: ok?"))
    assert (plan.scenario_ms, plan.worst_case_ms) == (None, None)
    assert "Worst-case duration: unbounded" in plan_to_text(plan)
    assert step_bound_ms(ParallelStep("p", (PauseStep("x", 5), ManualStep("m", "?")))) is None


def test_max_duration_caps_the_scenario_not_the_rollback() -> None:
    plan = plan_of(
        PLAYBOOK.replace("settings: {interval: 1s, fall: 2}", "settings: {interval: 1s, max_duration: 1m}")
    )
    assert plan.worst_case_ms == 60_000 + 60_000


def test_dependency_on_a_later_tier_is_listed() -> None:
    text = PLAYBOOK.replace("{id: d, tier: t0, depends_on: [a]", "{id: d, tier: t0, depends_on: [a, f]")
    plan = plan_of(text)
    assert {a.id: a.waits_on_later_tier for a in plan.assets}["d"] == ("f",)


def test_plan_dict_is_integers_and_strings_only() -> None:
    data = plan_to_dict(plan_of(PLAYBOOK))

    def walk(value: object) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        else:
            assert value is None or isinstance(value, bool | int | str), value

    walk(data)
    printed = json.loads(json.dumps(data))  # what `drill plan --format json` prints
    assert printed["tiers"][0]["waves"] == [["a"], ["b", "d"], ["c"]]
    assert printed["assets"][0]["probes"] == [
        {
            "name": "p",
            "kind": "tcp",
            "interval_ms": 1000,
            "timeout_ms": 1000,
            "fall": 2,
            "rise": 2,
            "measures_rpo": False,
        }
    ]


def test_long_dependency_chain_plans_without_recursion() -> None:
    lines = [
        "apiVersion: drill/v1",
        "kind: Playbook",
        "metadata: {name: chain, owner: me}",
        "tiers: [{name: t, rto: 1h}]",
        "assets:",
    ]
    for i in range(3000):
        dep = f", depends_on: [a{i - 1}]" if i else ""
        lines.append(f"  - {{id: a{i}, tier: t{dep}, probes: [{{name: p, tcp: {{host: h, port: 1}}}}]}}")
    lines += ["scenario: [{name: declare, mark: disaster}, {name: s, pause: 1s}]"]
    plan = plan_of("\n".join(lines))
    assert len(plan.tiers[0].waves) == 3000


def test_enterprise_example_plans() -> None:
    plan = build_plan(load_playbook(ROOT / "playbooks" / "enterprise.yaml"))
    assert len(plan.assets) >= 20 and len(plan.tiers) == 3
    assert plan.worst_case_ms is not None
