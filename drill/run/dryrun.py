"""`drill run --dry-run`: a readiness check. Resolve every secret, probe every asset once, run no action."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from drill.actions.registry import ACTION_KINDS
from drill.clock import Clock, SystemClock
from drill.errors import SecretUnresolved
from drill.playbook.model import ActionStep, Playbook, walk_steps
from drill.probes.registry import PROBE_KINDS
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_once
from drill.run.session import secrets_for
from drill.secrets import Secrets


@dataclass(frozen=True, slots=True)
class Check:
    what: str  # "probe api/health", "secret in step 'fail over'"
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [
            f"{'ok ' if c.ok else 'NOT READY'} {c.what}" + (f": {c.reason}" if c.reason else "")
            for c in self.checks
        ]
        bad = sum(not c.ok for c in self.checks)
        out.append(
            "ready: every secret resolves and every asset answers"
            if not bad
            else f"not ready: {bad} problem(s)"
        )
        return out


def _resolve(
    secrets: Secrets, what: str, params: Mapping[str, object]
) -> tuple[Check | None, dict[str, object] | None]:
    try:
        return None, secrets.resolve_params(params, what)
    except SecretUnresolved as exc:
        return Check(what, False, exc.message), None


async def check_readiness(
    playbook: Playbook,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    variables: Mapping[str, str] | None = None,
) -> Readiness:
    """Every problem found, none raised: the operator fixes them all before the real run."""
    clock = clock or SystemClock()
    secrets = secrets_for(playbook, env, variables)
    checks: list[Check] = []
    probes: list[ScheduledProbe] = []
    for asset in playbook.assets:
        for probe in asset.probes:
            problem, params = _resolve(secrets, f"probe {asset.id}/{probe.name}", probe.params)
            if problem or params is None:
                checks.extend([problem] if problem else [])
            else:
                kind = PROBE_KINDS[probe.kind]
                probes.append(ScheduledProbe(asset.id, probe, kind, kind.parse(params)))
    for step in walk_steps((*playbook.scenario, *playbook.rollback)):
        if isinstance(step, ActionStep):
            problem, params = _resolve(secrets, f"action in step '{step.name}'", step.action.params)
            if params is not None:
                ACTION_KINDS[step.action.kind].parse(params)
            checks.extend([problem] if problem else [])
    for chain in playbook.chains:
        for contact in chain.contacts:
            problem, _ = _resolve(secrets, f"contact {chain.name}/{contact.name}", contact.params)
            checks.extend([problem] if problem else [])
    checks.extend(await _probe_all(probes, clock))
    return Readiness(tuple(_redact(c, secrets) for c in checks))


def _redact(check: Check, secrets: Secrets) -> Check:
    return Check(check.what, check.ok, secrets.redact_text(check.reason))


async def _probe_all(probes: list[ScheduledProbe], clock: Clock) -> list[Check]:
    resources = Resources(probes)
    try:

        async def one(p: ScheduledProbe) -> Check:
            ctx = LiveProbeContext.for_probe(p, resources, clock, lambda draft: None)
            obs = await run_probe_once(p, ctx, clock)
            return Check(f"probe {p.asset}/{p.probe.name}", obs.ok, obs.reason)

        return list(await asyncio.gather(*(one(p) for p in probes)))
    finally:
        await resources.aclose()
