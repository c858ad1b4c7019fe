"""Stop conditions: abort the drill when an asset (or any asset of a tier) stays down too long.

Pure logic over the plan's conditions and the monitor's down-since instants: the runner asks
after each observation of an asset, so a condition trips within one probe interval of its limit
(the asset is probed every interval while it is down).
"""

from __future__ import annotations

from dataclasses import dataclass

from drill.evidence.events import StopTripped
from drill.evidence.snapshot import Plan, PlanStopCondition
from drill.units import human_ms


@dataclass(frozen=True, slots=True)
class StopWatch:
    """Which conditions watch which asset."""

    watching: dict[str, tuple[PlanStopCondition, ...]]

    @classmethod
    def for_plan(cls, plan: Plan) -> StopWatch:
        watching: dict[str, list[PlanStopCondition]] = {}
        for cond in plan.stop_conditions:
            for asset in plan.assets:
                if asset.id == cond.asset or (not cond.asset and asset.tier == cond.tier):
                    watching.setdefault(asset.id, []).append(cond)
        return cls({asset: tuple(conds) for asset, conds in watching.items()})

    def check(self, asset: str, down_since_ns: int | None, now_ns: int) -> StopTripped | None:
        """The condition `asset` trips now, if any (None when it is up or within every limit)."""
        conditions = self.watching.get(asset)
        if not conditions or down_since_ns is None:
            return None
        down_ms = (now_ns - down_since_ns) // 1_000_000
        for cond in conditions:
            if down_ms >= cond.down_for_ms:
                reason = f"{asset} down for {human_ms(down_ms)} (limit {human_ms(cond.down_for_ms)})"
                return StopTripped(cond.name, reason)
        return None
