"""The recovery plan of a playbook: order of recovery, targets, steps, and the worst-case duration.

Order: tiers in list order; inside a tier, waves by dependency depth (an asset's wave is one
past the latest wave of the same-tier assets it depends on), so the assets of one wave can
recover in parallel. Dependencies on an earlier tier are met by tier order; dependencies on a
later tier (warned by validation) are listed as `waits_on_later_tier`.

The plan is what `drill plan` prints and what `run.started` journals (drill.evidence.snapshot):
results and the report read targets from it, never from the playbook document.

The worst-case duration is the sum of the scenario's step bounds (pause, wait_for within,
action timeout x attempts + waits, manual timeout; a parallel step takes its longest child),
plus the rollback's. A manual step without a timeout makes it unbounded (None).
"""

from __future__ import annotations

import msgspec

from drill.evidence.snapshot import (
    Phase,
    Plan,
    PlanAsset,
    PlanChain,
    PlanContact,
    PlanProbe,
    PlanStep,
    PlanStopCondition,
    PlanTier,
    Waiver,
)
from drill.playbook.load import gc_paused
from drill.playbook.model import (
    ActionStep,
    Asset,
    ContactChain,
    ManualStep,
    MarkStep,
    ParallelStep,
    PauseStep,
    Playbook,
    Probe,
    Step,
    Tier,
    WaitForStep,
    injects,
    step_kind,
)
from drill.probes.registry import PROBE_KINDS
from drill.units import human_ms


def build_plan(playbook: Playbook) -> Plan:
    """The recovery plan of a validated playbook (the dependency graph is a DAG by then)."""
    with gc_paused():  # a big playbook is ~10^6 objects the collector would walk for nothing
        return _build_plan(playbook)


def _build_plan(playbook: Playbook) -> Plan:
    index = {a.id: a for a in playbook.assets}
    waves = _waves(playbook, index)
    rank = {t.name: t.rank for t in playbook.tiers}
    assets: list[PlanAsset] = []
    tiers: list[PlanTier] = []
    by_tier: dict[str, list[str]] = {t.name: [] for t in playbook.tiers}
    for asset in playbook.assets:
        by_tier[asset.tier].append(asset.id)
    for tier in playbook.tiers:
        ids = sorted(by_tier[tier.name], key=lambda i: (waves[i], i))
        grouped: dict[int, list[str]] = {}
        for asset_id in ids:
            grouped.setdefault(waves[asset_id], []).append(asset_id)
        waves_of_tier = tuple(map(tuple, grouped.values()))
        tiers.append(
            PlanTier(tier.name, tier.rank, tier.rto_ms, tier.rpo_ms, waves_of_tier, tier.description)
        )
        for asset_id in ids:
            asset = index[asset_id]
            later = tuple(d for d in asset.depends_on if rank[index[d].tier] > tier.rank)
            assets.append(
                PlanAsset(
                    id=asset.id,
                    tier=asset.tier,
                    wave=waves[asset.id],
                    depends_on=asset.depends_on,
                    contact_chain=asset.contact_chain,
                    rto_ms=playbook.rto_ms(asset),
                    rpo_ms=playbook.rpo_ms(asset),
                    detection_bound_ms=max(p.detection_bound_ms for p in asset.probes),
                    probes=tuple(_probe(p) for p in asset.probes),
                    waits_on_later_tier=later,
                    owner=asset.owner,
                    description=asset.description,
                    waivers=_waivers(asset, tier),
                )
            )
    steps = [*_steps(playbook.scenario, Phase.SCENARIO, ""), *_steps(playbook.rollback, Phase.ROLLBACK, "")]
    scenario_ms = _total(playbook.scenario)
    rollback_ms = _total(playbook.rollback)
    scenario_capped = scenario_ms
    cap = playbook.settings.max_duration_ms
    if cap:  # the runner aborts the scenario at max_duration, then rolls back
        scenario_capped = cap if scenario_ms is None else min(scenario_ms, cap)
    worst = None if scenario_capped is None or rollback_ms is None else scenario_capped + rollback_ms
    return Plan(
        name=playbook.metadata.name,
        sha256=playbook.sha256,
        metadata=playbook.metadata,
        tiers=tuple(tiers),
        assets=tuple(assets),
        steps=tuple(steps),
        chains=tuple(_chain(c) for c in playbook.chains),
        stop_conditions=tuple(
            PlanStopCondition(c.name, c.down_for_ms, c.asset, c.tier) for c in playbook.stop_conditions
        ),
        pass_tiers=playbook.pass_tiers(),
        scenario_ms=scenario_ms,
        rollback_ms=rollback_ms,
        worst_case_ms=worst,
        max_duration_ms=cap,
        page_on=playbook.settings.page_on,
    )


def _waivers(asset: Asset, tier: Tier) -> tuple[Waiver, ...]:
    """Per objective, the asset's own waiver, else its tier's."""
    merged = {**tier.waive, **asset.waive}
    return tuple(Waiver(objective, merged[objective]) for objective in sorted(merged))


def _probe(probe: Probe) -> PlanProbe:
    measures_rpo = PROBE_KINDS[probe.kind].finish is not None and probe.writes_canary
    return PlanProbe(
        probe.name, probe.kind, probe.interval_ms, probe.timeout_ms, probe.fall, probe.rise, measures_rpo
    )


def _chain(chain: ContactChain) -> PlanChain:
    contacts = tuple(PlanContact(c.name, c.via, c.ack_within_ms, c.role) for c in chain.contacts)
    return PlanChain(chain.name, chain.respond_within_ms, contacts)


def _waves(playbook: Playbook, index: dict[str, Asset]) -> dict[str, int]:
    """Asset id -> 1-based wave within its tier (longest same-tier dependency chain), iteratively."""
    wave: dict[str, int] = {}
    for asset in playbook.assets:
        if asset.id in wave:
            continue
        stack, on_stack = [asset], {asset.id}
        while stack:
            current = stack[-1]
            same = [index[d] for d in current.depends_on if index[d].tier == current.tier]
            pending = [d for d in same if d.id not in wave and d.id not in on_stack]
            if pending:  # depth first, one at a time: the stack is exactly the current path
                stack.append(pending[0])
                on_stack.add(pending[0].id)
                continue
            wave[current.id] = 1 + max((wave.get(d.id, 0) for d in same), default=0)
            on_stack.discard(current.id)
            stack.pop()
    return wave


def step_bound_ms(step: Step) -> int | None:
    """Longest time a step can take; None when it has no bound (a manual step without timeout)."""
    if isinstance(step, MarkStep):
        return 0
    if isinstance(step, PauseStep):
        return step.pause_ms
    if isinstance(step, WaitForStep):
        return step.wait_for.within_ms
    if isinstance(step, ActionStep):
        attempts = step.retry.attempts
        return step.timeout_ms * attempts + step.retry.wait_ms * (attempts - 1)
    if isinstance(step, ManualStep):
        return step.timeout_ms
    bounds = [step_bound_ms(s) for s in step.steps]
    return None if any(b is None for b in bounds) else max((b for b in bounds if b is not None), default=0)


def _total(steps: tuple[Step, ...]) -> int | None:
    total = 0
    for step in steps:
        bound = step_bound_ms(step)
        if bound is None:
            return None
        total += bound
    return total


def _summary(step: Step) -> str:
    if isinstance(step, MarkStep):
        return f"mark {step.mark}" + (" (t_inject at its start)" if injects(step) else "")
    if isinstance(step, PauseStep):
        return f"pause {human_ms(step.pause_ms)}"
    if isinstance(step, WaitForStep):
        w = step.wait_for
        if w.check is not None:
            every = human_ms(w.every_ms)
            return (
                f"wait until a {w.check.kind} check succeeds (every {every}) within {human_ms(w.within_ms)}"
            )
        target = f"asset {w.asset}" if w.asset else (f"tier {w.tier}" if w.tier else "all assets")
        return f"wait for {target} {w.state} within {human_ms(w.within_ms)}"
    if isinstance(step, ActionStep):
        retry = f", {step.retry.attempts} attempts" if step.retry.attempts > 1 else ""
        inject = " (t_inject at its start)" if step.inject else ""
        return f"{step.action.kind} action, timeout {human_ms(step.timeout_ms)}{retry}{inject}"
    if isinstance(step, ManualStep):
        limit = f" (timeout {human_ms(step.timeout_ms)})" if step.timeout_ms else " (no timeout)"
        return f"manual: {step.prompt}{limit}"
    return f"parallel: {len(step.steps)} steps"


def _steps(steps: tuple[Step, ...], phase: Phase, prefix: str, parent: str = "") -> list[PlanStep]:
    out: list[PlanStep] = []
    for i, step in enumerate(steps, 1):
        number = f"{prefix}{i}"
        injecting = phase == Phase.SCENARIO and injects(step)
        kind = step_kind(step)
        out.append(
            PlanStep(phase, number, step.name, kind, _summary(step), step_bound_ms(step), injecting, parent)
        )
        if isinstance(step, ParallelStep):
            out.extend(_steps(step.steps, phase, f"{number}.", step.name))
    return out


def plan_to_dict(plan: Plan) -> dict[str, object]:
    """The plan as JSON-ready data (integers only): what `drill plan --format json` prints."""
    data: dict[str, object] = msgspec.to_builtins(plan)
    return data


def site_duties(playbook: Playbook) -> list[dict[str, object]]:
    """Which site probes what, and under which quorum: what `drill plan` adds for a playbook
    with sites (a site probing nothing is listed with no probes: its agent idles)."""
    duties: list[dict[str, object]] = []
    for site in playbook.sites:
        probes = [
            f"{asset.id}/{probe.name} (down when {probe.quorum} of {len(probe.sites)} sites see it down)"
            for asset in playbook.assets
            for probe in asset.probes
            if site.name in probe.sites
        ]
        duties.append({"site": site.name, "description": site.description, "probes": probes})
    return duties


def site_duties_text(playbook: Playbook) -> str:
    """The site duties as a person reads them; '' when the playbook has no sites."""
    if not playbook.sites:
        return ""
    lines = ["", "Sites (each runs `drill agent --site NAME --broker URL`; drill run needs --broker)"]
    for duty in site_duties(playbook):
        probes = duty["probes"]
        assert isinstance(probes, list)
        about = f" ({duty['description']})" if duty["description"] else ""
        lines.append(f"  {duty['site']}{about}: " + ("; ".join(probes) if probes else "probes nothing"))
    local = [f"{a.id}/{p.name}" for a in playbook.assets for p in a.probes if not p.remote]
    if local:
        lines.append(f"  here (drill run itself): {', '.join(local)}")
    return "\n".join(lines) + "\n"


def _dur(ms: int | None) -> str:
    return "unbounded" if ms is None else human_ms(ms)


def plan_to_text(plan: Plan) -> str:
    """The plan as a person reads it."""
    lines = [f"Plan for {plan.name} (playbook sha256 {plan.sha256[:12]})", "", "Recovery order"]
    for tier in plan.tiers:
        rpo = f", RPO {_dur(tier.rpo_ms)}" if tier.rpo_ms is not None else ""
        decides = " [decides the verdict]" if tier.name in plan.pass_tiers else ""
        lines.append(f"  {tier.rank + 1}. {tier.name}: RTO {_dur(tier.rto_ms)}{rpo}{decides}")
        for w, wave in enumerate(tier.waves, 1):
            lines.append(f"     wave {w}: {', '.join(wave)}")
    lines += ["", "Assets"]
    for asset in plan.assets:
        rpo = f" RPO {_dur(asset.rpo_ms)}" if asset.rpo_ms is not None else ""
        chain = f" chain {asset.contact_chain}" if asset.contact_chain else " no contact chain"
        deps = f" after {', '.join(asset.depends_on)}" if asset.depends_on else ""
        lines.append(
            f"  {asset.id} [{asset.tier}, wave {asset.wave}] RTO {_dur(asset.rto_ms)}{rpo},"
            f" detects within {_dur(asset.detection_bound_ms)};{chain}{deps}"
        )
        if asset.waits_on_later_tier:
            lines.append(f"    ! waits on a later tier: {', '.join(asset.waits_on_later_tier)}")
    for phase in ("scenario", "rollback"):
        steps = [s for s in plan.steps if s.phase == phase]
        if not steps:
            continue
        lines += ["", phase.capitalize()]
        for s in steps:
            indent = "  " * s.number.count(".")
            lines.append(f"  {indent}{s.number}. {s.name}: {s.summary} [at most {_dur(s.bound_ms)}]")
    scenario = f"scenario {_dur(plan.scenario_ms)}"
    if plan.max_duration_ms and (plan.scenario_ms is None or plan.scenario_ms > plan.max_duration_ms):
        scenario += f" capped by max_duration {_dur(plan.max_duration_ms)}"
    lines += [
        "",
        f"Worst-case duration: {_dur(plan.worst_case_ms)} ({scenario} + rollback {_dur(plan.rollback_ms)})",
    ]
    return "\n".join(lines) + "\n"
