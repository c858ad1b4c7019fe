"""Build small playbooks in code for runner tests (the loader has its own tests)."""

from __future__ import annotations

from collections.abc import Mapping

from drill.evidence.snapshot import Metadata
from drill.playbook.model import Asset, Playbook, Probe, Settings, Step, StopCondition, Tier


def one_asset_playbook(
    kind: str,
    params: Mapping[str, object],
    scenario: tuple[Step, ...],
    *,
    interval_ms: int = 100,
    timeout_ms: int = 200,
    fall: int = 2,
    rise: int = 2,
    rto_ms: int = 5000,
    rpo_ms: int | None = None,  # None: no RPO target (one without a canary would leave the run incomplete)
    rollback: tuple[Step, ...] = (),
    stop_conditions: tuple[StopCondition, ...] = (),
    extra_assets: tuple[Asset, ...] = (),
) -> Playbook:
    probe = Probe("check", kind, params, interval_ms=interval_ms, timeout_ms=timeout_ms, fall=fall, rise=rise)
    assets = (Asset("svc", "tier-0", (probe,)), *extra_assets)
    document = {
        "metadata": {"name": "ground-truth", "owner": "tests"},
        "settings": {"interval": f"{interval_ms}ms"},
        "tiers": [
            {"name": "tier-0", "rto": f"{rto_ms}ms"} | ({} if rpo_ms is None else {"rpo": f"{rpo_ms}ms"})
        ],
        "assets": [
            {
                "id": a.id,
                "tier": a.tier,
                "probes": [{"name": p.name, "interval": f"{p.interval_ms}ms"} for p in a.probes],
            }
            for a in assets
        ],
    }
    return Playbook(
        metadata=Metadata(name="ground-truth", owner="tests"),
        tiers=(Tier("tier-0", 0, rto_ms, rpo_ms),),
        assets=assets,
        scenario=scenario,
        settings=Settings(interval_ms=interval_ms, timeout_ms=timeout_ms),
        stop_conditions=stop_conditions,
        rollback=rollback,
        source="ground-truth.yaml",
        document=document,
    )
