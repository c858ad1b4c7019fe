"""Build the frozen model from a document that passed validation: durations to ms, defaults filled."""

from __future__ import annotations

from typing import Any

from drill.durations import parse_duration_ms
from drill.errors import Diagnostic
from drill.evidence.snapshot import Metadata, Participant, ThirdParty
from drill.playbook.load import Document, JsonPath, format_path
from drill.playbook.model import (
    Action,
    ActionStep,
    Asset,
    Capture,
    Check,
    Contact,
    ContactChain,
    ManualStep,
    MarkStep,
    ParallelStep,
    PauseStep,
    Playbook,
    Pos,
    Probe,
    Retry,
    Settings,
    Site,
    Step,
    StopCondition,
    Tier,
    WaitFor,
    WaitForStep,
    majority,
)

PROBE_KEYS = (
    "name",
    "interval",
    "timeout",
    "fall",
    "rise",
    "sites",
    "quorum",
)  # a probe's other key is its kind
CONTACT_KEYS = ("name", "via", "ack_within", "role")  # a contact's other keys are its notifier's
_PROBE_KEYS = frozenset(PROBE_KEYS)
_PARSED: dict[str, int] = {}  # the same few duration strings repeat thousands of times


def parse_duration_cached(text: str) -> int:
    """parse_duration_ms, memoised."""
    ms = _PARSED.get(text)
    if ms is None:
        ms = parse_duration_ms(text)
        if len(_PARSED) < 10_000:
            _PARSED[text] = ms
    return ms


def _site_defaults(asset: dict[str, Any]) -> dict[str, Any]:
    """An asset's `sites` and `quorum`, which its probes inherit unless they say their own."""
    return {k: asset[k] for k in ("sites", "quorum") if k in asset}


def build_playbook(doc: Document) -> tuple[Playbook | None, list[Diagnostic]]:
    """The Playbook of a schema-valid document, or None with the problems found while building."""
    builder = _Builder(doc)
    playbook = builder.playbook()
    return (None if builder.problems else playbook), builder.problems


def build_targets(doc: Document) -> tuple[Playbook, list[Diagnostic]]:
    """Only the settings, tiers and assets of a document (no scenario, chains or metadata), with
    the problems met building them (defaults stand in): enough to resolve every asset's targets."""
    builder = _Builder(doc)
    return builder.targets(), builder.problems


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Diagnostic] = []

    def pos(self, path: JsonPath) -> Pos:
        return self.doc.pos(path)

    def dur(self, node: dict[str, Any], key: str, path: JsonPath, default: int) -> int:
        value = node.get(key)
        if value is None:
            return default
        if value == 0 and not isinstance(value, bool):
            return 0
        try:
            return parse_duration_cached(value)
        except ValueError as exc:
            where = (*path, key)
            loc = self.doc.location(where)
            self.problems.append(
                Diagnostic(loc, "error", f"{format_path(where)}: {exc}", format_path(where), "duration")
            )
            return default

    def opt_dur(self, node: dict[str, Any], key: str, path: JsonPath) -> int | None:
        return self.dur(node, key, path, 0) if key in node else None

    def playbook(self) -> Playbook:
        data = self.doc.data
        settings = self.settings(data.get("settings") or {})
        tiers = tuple(self.tier(t, i) for i, t in enumerate(data["tiers"]))
        chains = tuple(
            self.chain(name, chain)
            for name, chain in ((data.get("contacts") or {}).get("chains") or {}).items()
        )
        assets = tuple(self.asset(a, i, settings) for i, a in enumerate(data["assets"]))
        return Playbook(
            metadata=self.metadata(data["metadata"]),
            tiers=tiers,
            assets=assets,
            scenario=self.steps(data["scenario"], ("scenario",)),
            settings=settings,
            chains=chains,
            stop_conditions=tuple(self.stop(s, i) for i, s in enumerate(data.get("stop_conditions") or [])),
            rollback=self.steps(data.get("rollback") or [], ("rollback",)),
            sites=tuple(Site(x["name"], x.get("description", "")) for x in data.get("sites") or ()),
            source=self.doc.file,
            sha256=self.doc.sha256,
            document=data,  # plain data, never mutated downstream
        )

    def targets(self) -> Playbook:
        data = self.doc.data
        settings = self.settings(data.get("settings") or {})
        tiers = tuple(self.tier(t, i) for i, t in enumerate(data.get("tiers") or ()))
        assets = tuple(self.asset(a, i, settings) for i, a in enumerate(data.get("assets") or ()))
        return Playbook(Metadata("", ""), tiers, assets, scenario=(), settings=settings, source=self.doc.file)

    def metadata(self, m: dict[str, Any]) -> Metadata:
        return Metadata(
            name=m["name"],
            owner=m["owner"],
            description=m.get("description", ""),
            version=str(m.get("version", "")),
            quarter=m.get("quarter", ""),
            environment=m.get("environment", ""),
            test_type=m.get("test_type", "functional"),
            objectives=tuple(m.get("objectives") or ()),
            success_criteria=tuple(m.get("success_criteria") or ()),
            assumptions=tuple(m.get("assumptions") or ()),
            exclusions=tuple(m.get("exclusions") or ()),
            third_parties=tuple(
                ThirdParty(t["name"], t.get("role", "")) for t in m.get("third_parties") or ()
            ),
            participants=tuple(
                Participant(p["name"], p["role"], p.get("contact", ""), p.get("organisation", ""))
                for p in m.get("participants") or ()
            ),
            business_impact_ref=m.get("business_impact_ref", ""),
            previous_drill=m.get("previous_drill", ""),
            planned_start=m.get("planned_start", ""),
            planned_duration_ms=self.dur(m, "planned_duration", ("metadata",), 0),
        )

    def settings(self, s: dict[str, Any]) -> Settings:
        return Settings(
            interval_ms=self.dur(s, "interval", ("settings",), 1000),
            timeout_ms=self.dur(s, "timeout", ("settings",), 1000),
            fall=int(s.get("fall", 2)),  # 2.0 is an integer to JSON Schema
            rise=int(s.get("rise", 2)),
            pass_tiers=tuple(s.get("pass_tiers") or ()),
            max_duration_ms=self.dur(s, "max_duration", ("settings",), 0),
            page_on=s.get("page_on", "declare"),
            unattended=bool(s.get("unattended", False)),
        )

    def tier(self, t: dict[str, Any], i: int) -> Tier:
        path = ("tiers", i)
        return Tier(
            name=t["name"],
            rank=i,
            rto_ms=self.dur(t, "rto", path, 0),
            rpo_ms=self.opt_dur(t, "rpo", path),
            description=t.get("description", ""),
            waive=dict(t.get("waive") or {}),
            pos=self.pos(path),
        )

    def chain(self, name: str, c: dict[str, Any]) -> ContactChain:
        path: JsonPath = ("contacts", "chains", name)
        contacts = tuple(
            Contact(
                name=x["name"],
                via=x["via"],
                ack_within_ms=self.dur(x, "ack_within", (*path, "contacts", i), 0),
                params={k: v for k, v in x.items() if k not in CONTACT_KEYS},
                role=x.get("role", ""),
                pos=self.pos((*path, "contacts", i)),
            )
            for i, x in enumerate(c["contacts"])
        )
        return ContactChain(
            name, contacts, self.opt_dur(c, "respond_within", path), pos=self.doc.key_pos(path)
        )

    def asset(self, a: dict[str, Any], i: int, settings: Settings) -> Asset:
        path = ("assets", i)
        return Asset(
            id=a["id"],
            tier=a["tier"],
            probes=tuple(
                self.probe(
                    {**_site_defaults(a), **p},
                    (*path, "probes", j),
                    settings,
                    self.doc.item_pos(a["probes"], j),
                )
                for j, p in enumerate(a["probes"])
            ),
            owner=a.get("owner", ""),
            description=a.get("description", ""),
            depends_on=tuple(a.get("depends_on") or ()),
            contact_chain=a.get("contact_chain", ""),
            rto_ms=self.opt_dur(a, "rto", path),
            rpo_ms=self.opt_dur(a, "rpo", path),
            waive=dict(a.get("waive") or {}),
            pos=self.doc.item_pos(self.doc.data["assets"], i),
        )

    def probe(self, p: dict[str, Any], path: JsonPath, settings: Settings, pos: Pos) -> Probe:
        sites = p.get("sites") or ()
        kind = ""
        for key in p:
            if key not in _PROBE_KEYS:
                kind = key
                break
        return Probe(
            name=p["name"],
            kind=kind,
            params=p[kind],
            interval_ms=self.dur(p, "interval", path, settings.interval_ms),
            timeout_ms=self.dur(p, "timeout", path, settings.timeout_ms),
            fall=int(p.get("fall", settings.fall)),
            rise=int(p.get("rise", settings.rise)),
            pos=pos,
            sites=tuple(sites),
            quorum=int(p.get("quorum") or majority(len(sites))) if sites else 0,
        )

    def steps(self, items: list[dict[str, Any]], path: JsonPath) -> tuple[Step, ...]:
        return tuple(self.step(s, (*path, i)) for i, s in enumerate(items))

    def step(self, s: dict[str, Any], path: JsonPath) -> Step:
        name, pos = s["name"], self.pos(path)
        if "mark" in s:
            return MarkStep(name, s["mark"], inject=bool(s.get("inject", False)), pos=pos)
        if "action" in s:
            kind, params = next(iter(s["action"].items()))
            retry = s.get("retry") or {}
            return ActionStep(
                name,
                Action(kind, params),
                timeout_ms=self.dur(s, "timeout", path, 60_000),
                retry=Retry(int(retry.get("attempts", 1)), self.dur(retry, "wait", (*path, "retry"), 1000)),
                inject=bool(s.get("inject", False)),
                capture=_capture(s.get("capture")),
                pos=pos,
            )
        if "wait_for" in s:
            w = s["wait_for"]
            check = w.get("check")
            wait = WaitFor(
                within_ms=self.dur(w, "within", (*path, "wait_for"), 0),
                state=w.get("state", "up"),
                asset=w.get("asset", ""),
                tier=w.get("tier", ""),
                all_assets=bool(w.get("all_assets", False)),
                check=Check(*next(iter(check.items()))) if isinstance(check, dict) and check else None,
                every_ms=self.dur(w, "every", (*path, "wait_for"), 500),
            )
            return WaitForStep(name, wait, pos=pos)
        if "pause" in s:
            return PauseStep(name, self.dur(s, "pause", path, 0), pos=pos)
        if "manual" in s:
            return ManualStep(name, s["manual"], timeout_ms=self.opt_dur(s, "timeout", path), pos=pos)
        return ParallelStep(name, self.steps(s["parallel"], (*path, "parallel")), pos=pos)

    def stop(self, s: dict[str, Any], i: int) -> StopCondition:
        path = ("stop_conditions", i)
        return StopCondition(
            name=s["name"],
            down_for_ms=self.dur(s, "down_for", path, 0),
            asset=s.get("asset", ""),
            tier=s.get("tier", ""),
            pos=self.pos(path),
        )


def _capture(raw: object) -> Capture | None:
    if raw in ("stdout", "stderr"):
        return Capture(source="stdout" if raw == "stdout" else "stderr")
    if isinstance(raw, dict) and isinstance(raw.get("json"), str):
        return Capture(json_path=raw["json"])
    return None
