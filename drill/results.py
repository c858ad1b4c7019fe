"""Results: a pure fold over journal events into per-asset timings, targets and verdicts.

Nothing here reads files or clocks; the same events always give the same results, so a report
can be rebuilt from a journal alone. Timing semantics follow DESIGN §2: t_detect and t_recover
are the instants of the first probe of the streak that changed the asset's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drill import events as ev
from drill.events import Event
from drill.playbook.durations import parse_duration_ms

BP_FULL = 10_000  # availability in basis points: integers only in evidence


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What results need to know of an asset, taken from the playbook snapshot in run.started."""

    id: str
    tier: str
    owner: str
    depends_on: tuple[str, ...]
    contact_chain: str
    rto_target_ms: int
    rpo_target_ms: int | None
    interval_ms: int


@dataclass(slots=True)
class _Timeline:
    """Mutable accumulator for one asset while folding (never leaves this module)."""

    info: AssetInfo
    states: list[tuple[str, int, str, int]] = field(default_factory=list)  # (state, at_mono, utc, seq)
    total: int = 0
    ok: int = 0
    errors: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (probe, reason) -> [count, seq]
    rpo: dict[str, Any] | None = None
    rpo_unmeasured: str = ""


@dataclass(slots=True)
class _Fold:
    run: dict[str, Any] = field(default_factory=dict)
    finished: dict[str, Any] = field(default_factory=dict)
    started_utc: str = ""
    started_mono: int = 0
    finished_utc: str | None = None
    finished_mono: int | None = None
    inject: tuple[int, str, int] | None = None  # (mono, utc, seq)
    assets: dict[str, _Timeline] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    open_steps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    stops: list[dict[str, Any]] = field(default_factory=list)
    rollback_ran: bool = False
    rollback_status: str = "not-run"
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    exhausted: set[str] = field(default_factory=set)
    count: int = 0
    head_prev: str = ""


def _duration(value: Any) -> int:
    """A playbook duration; the schema also allows a bare integer 0."""
    return value if isinstance(value, int) else parse_duration_ms(str(value))


def asset_infos(document: Mapping[str, Any]) -> dict[str, AssetInfo]:
    """Targets and dependencies of every asset, from the raw playbook document."""
    settings = document.get("settings") or {}
    default_interval = _duration(settings.get("interval", "1s"))
    tiers = {t["name"]: t for t in document.get("tiers") or []}
    out = {}
    for raw in document.get("assets") or []:
        tier = tiers.get(raw.get("tier"), {})
        rto = raw.get("rto", tier.get("rto", "0"))
        rpo = raw.get("rpo", tier.get("rpo"))
        intervals = [_duration(p.get("interval", 0)) or default_interval for p in raw.get("probes") or []]
        out[raw["id"]] = AssetInfo(
            id=raw["id"],
            tier=raw.get("tier", ""),
            owner=raw.get("owner", ""),
            depends_on=tuple(raw.get("depends_on") or ()),
            contact_chain=raw.get("contact_chain", ""),
            rto_target_ms=_duration(rto),
            rpo_target_ms=_duration(rpo) if rpo is not None else None,
            interval_ms=max(intervals or [default_interval]),
        )
    return out


def _on_event(fold: _Fold, event: Event) -> None:
    fold.count += 1
    handler = _HANDLERS.get(event.type)
    if handler is not None:
        handler(fold, event)


def _run_started(fold: _Fold, e: Event) -> None:
    fold.run = e.data
    fold.started_utc, fold.started_mono = e.utc, e.mono_ns
    document = (e.data.get("playbook") or {}).get("document") or {}
    fold.assets = {a.id: _Timeline(a) for a in asset_infos(document).values()}


def _run_finished(fold: _Fold, e: Event) -> None:
    fold.finished = e.data
    fold.finished_utc, fold.finished_mono = e.utc, e.mono_ns


def _observed(fold: _Fold, e: Event) -> None:
    line = fold.assets.get(e.asset or "")
    if line is None:
        return
    line.total += 1
    if e.data.get("ok"):
        line.ok += 1
        return
    key = (str(e.data.get("probe", "")), str(e.data.get("reason", "")))
    slot = line.errors.setdefault(key, [0, e.seq])
    slot[0] += 1


def _state(fold: _Fold, e: Event) -> None:
    line = fold.assets.get(e.asset or "")
    if line is not None:
        line.states.append((str(e.data["state"]), int(e.data.get("at_mono_ns", e.mono_ns)), e.utc, e.seq))


def _injected(fold: _Fold, e: Event) -> None:
    if fold.inject is None:
        fold.inject = (e.mono_ns, e.utc, e.seq)


def _step_started(fold: _Fold, e: Event) -> None:
    key = (str(e.data.get("phase", "scenario")), str(e.data.get("step")))
    fold.open_steps[key] = {
        "name": e.data.get("step"),
        "kind": e.data.get("kind"),
        "phase": key[0],
        "status": "aborted",
        "started_utc": e.utc,
        "finished_utc": None,
        "duration_ms": None,
        "reason": "did not finish",
        "attempts": 0,
        "manual": None,
        "seq": e.seq,
        "_mono": e.mono_ns,
    }
    fold.steps.append(fold.open_steps[key])


def _step_finished(fold: _Fold, e: Event) -> None:
    step = fold.open_steps.pop((str(e.data.get("phase", "scenario")), str(e.data.get("step"))), None)
    if step is None:
        return
    step.update(
        status=e.data.get("status", "ok"),
        finished_utc=e.utc,
        duration_ms=(e.mono_ns - step["_mono"]) // 1_000_000,
        reason=e.data.get("reason", ""),
        attempts=int(e.data.get("attempts", step["attempts"])),
    )


def _manual(fold: _Fold, e: Event) -> None:
    step = fold.open_steps.get((str(e.data.get("phase", "scenario")), str(e.data.get("step"))))
    if step is not None:
        step["manual"] = {
            "answer": e.data.get("answer"),
            "who": e.data.get("who", ""),
            "auto": bool(e.data.get("auto")),
        }


def _stop(fold: _Fold, e: Event) -> None:
    fold.stops.append(
        {
            "condition": e.data.get("condition", ""),
            "reason": e.data.get("reason", ""),
            "utc": e.utc,
            "seq": e.seq,
        }
    )


def _signal(fold: _Fold, e: Event) -> None:
    fold.stops.append(
        {
            "condition": f"signal {e.data.get('signal')}",
            "reason": "operator interrupted the drill",
            "utc": e.utc,
            "seq": e.seq,
        }
    )


def _rollback_started(fold: _Fold, e: Event) -> None:
    fold.rollback_ran = True


def _rollback_finished(fold: _Fold, e: Event) -> None:
    fold.rollback_status = str(e.data.get("status", "ok"))


def _rpo(fold: _Fold, e: Event) -> None:
    line = fold.assets.get(e.asset or "")
    if line is not None:
        line.rpo = {
            "rpo_ms": int(e.data.get("rpo_ms", 0)),
            "lost_writes": int(e.data.get("lost_writes", 0)),
            "last_acked_seq": int(e.data.get("last_acked_seq", 0)),
            "last_surviving_seq": int(e.data.get("last_surviving_seq", 0)),
            "probe": str(e.data.get("probe", "")),
        }


def _rpo_unmeasured(fold: _Fold, e: Event) -> None:
    line = fold.assets.get(e.asset or "")
    if line is not None and line.rpo is None:
        line.rpo_unmeasured = str(e.data.get("reason", "the surviving canary writes could not be read"))


def _page_sent(fold: _Fold, e: Event) -> None:
    d = e.data
    fold.pages[str(d.get("page_id"))] = {
        "page_id": d.get("page_id"),
        "chain": d.get("chain", ""),
        "contact": d.get("contact", ""),
        "via": d.get("via", ""),
        "assets": list(d.get("assets") or []),
        "chains": list(d.get("chains") or [d.get("chain", "")]),
        "sent_utc": e.utc,
        "ok": bool(d.get("ok")),
        "reason": d.get("reason", ""),
        "acked_utc": None,
        "ack_ms": None,
        "by": "",
        "ack_within_ms": int(d.get("ack_within_ms", 0)),
        "met": None,
    }


def _page_acked(fold: _Fold, e: Event) -> None:
    page = fold.pages.get(str(e.data.get("page_id")))
    if page is not None:
        ack_ms = int(e.data.get("ack_ms", 0))
        page.update(
            acked_utc=e.utc, ack_ms=ack_ms, met=ack_ms <= page["ack_within_ms"], by=e.data.get("by", "")
        )
        page["since_trigger_ms"] = int(e.data.get("since_trigger_ms", ack_ms))


def _exhausted(fold: _Fold, e: Event) -> None:
    fold.exhausted.add(str(e.data.get("chain")))


_HANDLERS = {
    ev.RUN_STARTED: _run_started,
    ev.RUN_FINISHED: _run_finished,
    ev.PROBE_OBSERVED: _observed,
    ev.ASSET_STATE: _state,
    ev.INJECTED: _injected,
    ev.STEP_STARTED: _step_started,
    ev.STEP_FINISHED: _step_finished,
    ev.MANUAL_ANSWERED: _manual,
    ev.STOP_TRIPPED: _stop,
    ev.SIGNAL_RECEIVED: _signal,
    ev.ROLLBACK_STARTED: _rollback_started,
    ev.ROLLBACK_FINISHED: _rollback_finished,
    ev.RPO_MEASURED: _rpo,
    ev.RPO_UNMEASURED: _rpo_unmeasured,
    ev.PAGE_SENT: _page_sent,
    ev.PAGE_ACKED: _page_acked,
    ev.CHAIN_EXHAUSTED: _exhausted,
}


@dataclass(frozen=True, slots=True)
class Results:
    """Everything results.json holds, as plain data (see /contracts: integers only)."""

    data: dict[str, Any]

    @property
    def verdict(self) -> str:
        return str(self.data["verdict"])


def fold_results(events: Iterable[Event], *, journal_head: str = "") -> Results:
    """Fold journal events (in order) into results; pure and deterministic."""
    fold = _Fold()
    for event in events:
        _on_event(fold, event)
    return Results(_assemble(fold, journal_head))


def results_to_dict(results: Results) -> dict[str, Any]:
    return results.data


# -- assembling ----------------------------------------------------------------------------------


def _ms(ns: int) -> int:
    return ns // 1_000_000


def _first(
    states: list[tuple[str, int, str, int]], state: str, after_mono: int, after_seq: int
) -> tuple[str, int, str, int] | None:
    for item in states:
        if item[0] == state and (item[1] >= after_mono or item[3] > after_seq):
            return item
    return None


_State = tuple[str, int, str, int]  # (state, at_mono, utc, seq)


def _outage(fold: _Fold, line: _Timeline) -> tuple[_State | None, _State | None]:
    """The first down after the injection, and the first up after that (DESIGN §2)."""
    if fold.inject is None:
        return None, None
    inject_mono, _, inject_seq = fold.inject
    down = _first(line.states, "down", inject_mono, inject_seq)
    up = _first(line.states, "up", down[1], down[3]) if down else None
    return down, up


def _asset_result(fold: _Fold, line: _Timeline, chains: dict[str, dict[str, Any]]) -> dict[str, Any]:
    info = line.info
    inject_mono, inject_utc, inject_seq = fold.inject or (0, None, 0)
    down, up = _outage(fold, line)
    detection = max(0, _ms(down[1] - inject_mono)) if down else None
    switchover = _ms(up[1] - down[1]) if down and up else None
    rto = max(0, _ms(up[1] - inject_mono)) if down and up else (0 if fold.inject and not down else None)
    ack = _asset_ack(info, chains)
    reasons = _asset_reasons(fold, line, down is not None, up is not None, rto, ack)
    if fold.inject and _state_before(line, inject_seq) == "down":
        reasons.insert(0, "was already down before the failure was injected")
    verdict = "not-measured" if line.total == 0 else ("fail" if reasons else "pass")
    evidence = [x[3] for x in (down, up) if x] + ([fold.inject[2]] if fold.inject else [])
    return {
        "id": info.id,
        "tier": info.tier,
        "owner": info.owner,
        "depends_on": list(info.depends_on),
        "contact_chain": info.contact_chain,
        "targets": {"rto_ms": info.rto_target_ms, "rpo_ms": info.rpo_target_ms},
        "t_inject_utc": inject_utc,
        "t_detect_utc": down[2] if down else None,
        "t_recover_utc": up[2] if up else None,
        "detection_ms": detection,
        "switchover_ms": switchover,
        "rto_ms": rto,
        "uncertainty_ms": info.interval_ms,
        "rpo": line.rpo,
        "availability_bp": (line.ok * BP_FULL // line.total) if line.total else 0,
        "probes_total": line.total,
        "probes_ok": line.ok,
        "probe_errors": [
            {"probe": p, "reason": r, "count": c, "first_seq": s}
            for (p, r), (c, s) in sorted(line.errors.items())
        ],
        "ack": ack,
        "verdict": verdict,
        "reasons": reasons,
        "evidence_seqs": sorted(evidence),
    }


def _state_before(line: _Timeline, seq: int) -> str | None:
    """The asset's state as journalled before the injection event."""
    before = [state for state, _, _, event_seq in line.states if event_seq < seq]
    return before[-1] if before else None


def _asset_reasons(
    fold: _Fold, line: _Timeline, went_down: bool, came_up: bool, rto: int | None, ack: dict[str, Any] | None
) -> list[str]:
    info = line.info
    reasons = []
    if went_down and not came_up:
        reasons.append("did not recover before the drill ended")
    if rto is not None and rto > info.rto_target_ms:
        reasons.append(f"RTO {rto} ms exceeds target {info.rto_target_ms} ms")
    if line.rpo is not None and info.rpo_target_ms is not None and line.rpo["rpo_ms"] > info.rpo_target_ms:
        reasons.append(
            f"RPO {line.rpo['rpo_ms']} ms ({line.rpo['lost_writes']} lost writes) "
            f"exceeds target {info.rpo_target_ms} ms"
        )
    if line.rpo is None and line.rpo_unmeasured and info.rpo_target_ms is not None:
        reasons.append(f"RPO not measured: {line.rpo_unmeasured}")
    if ack is not None and not ack["met"]:
        reasons.append(f"contact chain {ack['chain']} did not acknowledge within {ack['target_ms']} ms")
    if fold.inject is None and line.total:
        reasons.append("no failure was injected: detection and recovery not measured")
    return reasons


def _chains(fold: _Fold) -> dict[str, dict[str, Any]]:
    document = (fold.run.get("playbook") or {}).get("document") or {}
    declared = ((document.get("contacts") or {}).get("chains")) or {}
    out: dict[str, dict[str, Any]] = {}
    for name, raw in declared.items():
        within = raw.get("respond_within")
        pages = [p for p in fold.pages.values() if name in p["chains"]]
        first_sent = min((p["sent_utc"] for p in pages), default=None)
        first_ack = min((p["since_trigger_ms"] for p in pages if p["ack_ms"] is not None), default=None)
        target = _duration(within) if within else None
        out[name] = {
            "name": name,
            "respond_within_ms": target,
            "first_ack_ms": first_ack,
            "met": None if not pages else (first_ack is not None and (target is None or first_ack <= target)),
            "exhausted": name in fold.exhausted,
            "paged": first_sent is not None,
        }
    return out


def _asset_ack(info: AssetInfo, chains: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    chain = chains.get(info.contact_chain)
    if not chain or not chain["paged"]:
        return None
    target = chain["respond_within_ms"]
    return {
        "chain": chain["name"],
        "ack_ms": chain["first_ack_ms"],
        "target_ms": target,
        "met": bool(chain["met"]),
    }


def _order_violations(fold: _Fold, assets: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for asset in assets.values():
        if asset["t_recover_utc"] is None:
            continue
        for dep_id in asset["depends_on"]:
            dep = assets.get(dep_id)
            if dep is None or dep["t_detect_utc"] is None:
                continue  # the dependency was never down: nothing to wait for
            dep_rec = dep["t_recover_utc"]
            if dep_rec is None or _recover_mono(fold, dep_id) > _recover_mono(fold, asset["id"]):
                out.append(
                    {
                        "asset": asset["id"],
                        "depends_on": dep_id,
                        "asset_recovered_utc": asset["t_recover_utc"],
                        "dependency_recovered_utc": dep_rec,
                        "seq": asset["evidence_seqs"][-1] if asset["evidence_seqs"] else 0,
                    }
                )
    return out


def _recover_mono(fold: _Fold, asset_id: str) -> int:
    _, up = _outage(fold, fold.assets[asset_id])
    return up[1] if up else 2**62


def _tiers(fold: _Fold, assets: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    document = (fold.run.get("playbook") or {}).get("document") or {}
    out = []
    for rank, tier in enumerate(document.get("tiers") or []):
        members = [a for a in assets.values() if a["tier"] == tier["name"]]
        total = sum(a["probes_total"] for a in members)
        ok = sum(a["probes_ok"] for a in members)
        verdicts = {a["verdict"] for a in members}
        out.append(
            {
                "name": tier["name"],
                "rank": rank,
                "rto_ms": _duration(tier.get("rto", 0)),
                "rpo_ms": _duration(tier["rpo"]) if tier.get("rpo") is not None else None,
                "availability_bp": ok * BP_FULL // total if total else 0,
                "verdict": "fail"
                if "fail" in verdicts
                else ("pass" if "pass" in verdicts else "not-measured"),
            }
        )
    return out


def _pass_tiers(fold: _Fold) -> list[str]:
    document = (fold.run.get("playbook") or {}).get("document") or {}
    configured = (document.get("settings") or {}).get("pass_tiers")
    return list(configured or [t["name"] for t in (document.get("tiers") or [])[:2]])


def _verdict(
    status: str,
    assets: dict[str, dict[str, Any]],
    steps: list[dict[str, Any]],
    pass_tiers: list[str],
    chains: list[dict[str, Any]] | None = None,
) -> str:
    """Aborted, or pass when every deciding asset passed (a contact drill: every chain answered in time)."""
    if status == "aborted":
        return "aborted"
    if chains is not None:
        return "pass" if all(c["met"] and not c["exhausted"] for c in chains) else "fail"
    if status != "completed":
        return "fail"
    if any(s["status"] == "failed" and s["phase"] == "scenario" for s in steps):
        return "fail"
    deciding = [a for a in assets.values() if a["tier"] in pass_tiers]
    return "fail" if any(a["verdict"] != "pass" for a in deciding) else "pass"


def _assemble(fold: _Fold, journal_head: str) -> dict[str, Any]:
    chains = _chains(fold)
    assets = {aid: _asset_result(fold, line, chains) for aid, line in fold.assets.items()}
    steps = [{k: v for k, v in s.items() if not k.startswith("_")} for s in fold.steps]
    status = str(fold.finished.get("status", "aborted"))
    pass_tiers = _pass_tiers(fold)
    playbook = fold.run.get("playbook") or {}
    duration = _ms(fold.finished_mono - fold.started_mono) if fold.finished_mono is not None else None
    return {
        "run_id": fold.run.get("run_id", ""),
        "status": status,
        "reason": fold.finished.get(
            "reason", "the journal ends before run.finished" if not fold.finished else ""
        ),
        "playbook": {k: playbook.get(k, "") for k in ("name", "sha256", "path")},
        "started_utc": fold.started_utc,
        "finished_utc": fold.finished_utc,
        "duration_ms": duration,
        "verdict": _verdict(
            status,
            assets,
            steps,
            pass_tiers,
            list(chains.values()) if fold.run.get("mode") == "contacts" else None,
        ),
        "mode": fold.run.get("mode", "drill"),
        "pass_tiers": pass_tiers,
        "assets": list(assets.values()),
        "tiers": _tiers(fold, assets),
        "order_violations": _order_violations(fold, assets),
        "steps": steps,
        "stops": fold.stops,
        "rollback": {
            "ran": fold.rollback_ran,
            "status": fold.rollback_status if fold.rollback_ran else "not-run",
        },
        "pages": [{k: v for k, v in p.items() if k != "since_trigger_ms"} for p in fold.pages.values()],
        "chains": [{k: v for k, v in c.items() if k != "paged"} for c in chains.values()],
        "events": fold.count,
        "journal_head": journal_head,
    }


__all__ = ["AssetInfo", "Results", "asset_infos", "fold_results", "results_to_dict"]
