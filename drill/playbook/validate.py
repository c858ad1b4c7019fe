"""Validate a loaded playbook document: schema in two passes, then the rules a schema cannot say.

Pass 1 checks the envelope (playbook.schema.json) where each probe, action and contact leaves
its kind's parameters open; pass 2 checks each of those against its own kind's fragment. So a
typo names the wrong field ("unknown key 'metod' (did you mean 'method'?)"), never "is not
valid under any of the given schemas". Then the semantic rules: unique ids, references that
exist (with suggestions), a dependency DAG, tier order, detection bounds, credentials written
where a reference belongs, and what would waste a whole drill (nothing injected, an RPO target
no probe measures, a manual step in an unattended drill). Every problem is collected, each with
the line:col of the node it is about.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterable, Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drill.durations import DURATION_HINT, DURATION_PATTERN, UNITS_PATTERN, parse_duration_ms
from drill.errors import Diagnostic, PlaybookInvalid
from drill.playbook.build import CONTACT_KEYS, PROBE_KEYS, build_playbook, build_targets
from drill.playbook.load import Document, JsonPath, format_path, gc_paused, load_document
from drill.playbook.model import (
    OUTPUT_REFERENCE,
    STEP_KINDS,
    ManualStep,
    ParallelStep,
    Playbook,
    Probe,
    Step,
    WaitForStep,
    injects,
    walk_steps,
)
from drill.playbook.schema import ENVELOPE, compiled, fragment_name, known_kinds
from drill.units import human_ms

if TYPE_CHECKING:  # jsonschema itself loads only when a document has errors to describe
    from jsonschema.exceptions import ValidationError

_MODIFIERS = {
    "inject": ("mark", "action"),
    "timeout": ("action", "manual"),
    "retry": ("action",),
    "capture": ("action",),
}
_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def check_playbook(path: str | Path) -> tuple[Playbook | None, list[Diagnostic]]:
    """Load and validate a playbook file: the playbook (None when any error) and every diagnostic."""
    try:
        doc = load_document(path)
    except PlaybookInvalid as exc:
        return None, list(exc.diagnostics)
    return check_document(doc)


def load_playbook(path: str | Path, *, warnings: list[Diagnostic] | None = None) -> Playbook:
    """Load a valid playbook; raises PlaybookInvalid with every diagnostic. Warnings go to `warnings`."""
    playbook, diagnostics = check_playbook(path)
    if playbook is None:
        raise PlaybookInvalid(diagnostics)
    if warnings is not None:
        warnings.extend(diagnostics)
    return playbook


def check_document(doc: Document) -> tuple[Playbook | None, list[Diagnostic]]:
    """Validate a loaded document and build the model when there is no error."""
    checker = _Checker(doc)
    with gc_paused():
        checker.run()
        playbook = None
        if not any(d.severity == "error" for d in checker.diagnostics):
            playbook, problems = build_playbook(doc)
            checker.diagnostics.extend(problems)
            if any(d.severity == "error" for d in problems):
                playbook = None
        if playbook is not None:
            checker.detection_bounds(playbook, frozenset())
            checker.wasted_drill_rules(playbook)
            if any(d.severity == "error" for d in checker.diagnostics):
                playbook = None
        elif not any(_shapes_targets(d) for d in checker.diagnostics):
            # the rules over resolved targets also run beside errors elsewhere (a typo in a probe's
            # parameters, an unknown reference), on the parts the errors leave intact
            checker.detection_bounds(*_partial_model(doc))
    diagnostics = sorted(
        checker.diagnostics, key=lambda d: (d.location.line, d.location.col, d.severity, d.message)
    )
    return playbook, diagnostics


_KIND_PARAMS = re.compile(r"assets\[\d+\]\.probes\[\d+\]\.(\w+)")


_SAFE_CODES = frozenset({"reference", "cycle", "tier-order"})  # names and order: the shapes are intact


def _shapes_targets(d: Diagnostic) -> bool:
    """An error in what targets and detection bounds are built from (tiers, settings, assets,
    except a probe kind's own parameters and wrong references): the partial model is unsafe."""
    if d.severity != "error" or d.code in _SAFE_CODES:
        return False
    if not d.path.startswith(("tiers", "settings", "assets")) and d.path:
        return False
    params = _KIND_PARAMS.match(d.path)
    return params is None or params.group(1) in PROBE_KEYS


def _strings(value: object, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    """Every string inside a JSON value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


# -- credentials written where a reference belongs ---------------------------------------------
_SECRET_NAMES = frozenset(
    {"password", "passwd", "secret", "token", "api_key", "apikey", "routing_key", "authorization", "auth"}
)
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "apikey", "password", "passwd", "authorization")
_NOT_SECRETS = frozenset({"canary_key"})  # where a probe writes its canaries: a name, not a credential
_QUERY_SECRETS = frozenset({"token", "key", "secret", "access_token", "sig", "signature"})
# resolved when the drill runs, never written in the file: secrets, captured outputs, journey captures
_HIDDEN = re.compile(r"\$\{(?:env|file):[^}]+\}|\$\{steps\.[^}]+\}|\{\{[^}]*\}\}")
_PLAIN = re.compile(r"\$\{var:[^}]+\}")  # a plain variable: resolved, but never redacted
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]*")
_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S*)")
_SECRET_MARK = "\x00"  # a secret reference (or a value only known at run time), masked
_PLAIN_MARK = "\x01"  # a plain variable, masked
_USE_REFERENCE = "use ${env:NAME} or ${file:PATH}"


@lru_cache(maxsize=4096)  # the same few keys repeat in every probe
def _secret_name(name: str) -> bool:
    """Whether a key, header or query parameter is named like a credential (api_key, X-Api-Key ...)."""
    key = name.lower().replace("-", "_")
    if key in _NOT_SECRETS or "public" in key:
        return False
    return key in _SECRET_NAMES or key.endswith(_SECRET_SUFFIXES)


def _mask(text: str) -> str:
    """text with each reference as one mark character, so nothing inside a reference (a '/' in
    ${file:/run/key}, an '@' or '&') splits the URL or the connection string around it."""
    if "{" not in text:
        return text
    return _PLAIN.sub(_PLAIN_MARK, _HIDDEN.sub(_SECRET_MARK, text))


def _exposure(masked: str) -> str:
    """How a credential is written (references masked): '' not at all or through a secret
    reference, 'var' through a plain variable, 'literal' in the file itself."""
    if not masked.strip() or _SECRET_MARK in masked:
        return ""
    return "var" if _PLAIN_MARK in masked else "literal"


def _credentials(key: str, text: str) -> Iterator[tuple[str, str]]:
    """(what, exposure) for each credential `text` writes instead of referring to it; `key` is
    the mapping key holding text (a list item's: the list's). Never yields the value itself."""
    masked = _mask(text)
    if _secret_name(key):
        exposure = _exposure(masked)
        if exposure:
            yield "the value", exposure
            return
    if "://" in masked and ("@" in masked or "?" in masked):
        for url in _URL.finditer(masked):
            yield from _url_credentials(url.group())
    elif key == "dsn" and "password" in masked:
        for match in _CONNINFO_PASSWORD.finditer(masked):
            exposure = _exposure(match.group(1).strip("'"))
            if exposure:
                yield "the password in the connection string", exposure


def _url_credentials(url: str) -> Iterator[tuple[str, str]]:
    """A password in the URL's userinfo, and query parameters named like credentials."""
    rest = url.partition("://")[2]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, _host = rest[:cut].rpartition("@")
    if at and ":" in userinfo:
        exposure = _exposure(userinfo.partition(":")[2])
        if exposure:
            yield "the password in the URL", exposure
    query = rest[cut:].partition("?")[2].partition("#")[0]
    for pair in query.split("&") if query else ():
        name, _eq, value = pair.partition("=")
        if name.lower() in _QUERY_SECRETS or name.lower().endswith("signature") or _secret_name(name):
            exposure = _exposure(value)
            if exposure:
                yield f"URL parameter {name!r}", exposure


def _credential_message(where: str, what: str, exposure: str) -> str:
    if exposure == "var":
        return (
            f"{where}: {what} looks like a credential, but ${{var:…}} is a plain variable and is never"
            f" redacted; {_USE_REFERENCE}"
        )
    return f"{where}: {what} looks like a literal credential; {_USE_REFERENCE}"


def _streak(probe: Probe, word: str) -> int:
    return probe.fall if word == "fall" else probe.rise


def _model_steps(playbook: Playbook) -> Iterator[tuple[JsonPath, Step]]:
    """Every step of the model with its path in the document (parallel steps' children too)."""
    todo: list[tuple[JsonPath, Step]] = [
        *((("scenario", i), s) for i, s in enumerate(playbook.scenario)),
        *((("rollback", i), s) for i, s in enumerate(playbook.rollback)),
    ]
    while todo:
        path, step = todo.pop(0)
        yield path, step
        if isinstance(step, ParallelStep):
            todo[:0] = [((*path, "parallel", j), s) for j, s in enumerate(step.steps)]


def _partial_model(doc: Document) -> tuple[Playbook, frozenset[str]]:
    """The tiers and assets of a document whose errors lie elsewhere, and the paths where the
    builder put a default in place of a bad value (their warnings would be false)."""
    playbook, problems = build_targets(doc)
    return playbook, frozenset(d.path for d in problems)


def suggest(word: object, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a candidate is close to word, else ''."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [c for c in candidates if isinstance(c, str)], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _where(path: JsonPath) -> str:
    return format_path(path) or "top level"


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    return f"{type(value).__name__} {value!r}"


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    """value when it is a string, else '' (a safe dictionary key whatever the document holds)."""
    return value if isinstance(value, str) else ""


def _as_map(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _Checker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.data = doc.data
        self.diagnostics: list[Diagnostic] = []

    # -- reporting -------------------------------------------------------------------------
    def error(self, path: JsonPath, message: str, *, key: bool = False, code: str = "") -> None:
        self.diagnostics.append(
            Diagnostic(self.doc.location(path, key=key), "error", message, format_path(path), code)
        )

    def warn(self, path: JsonPath, message: str, *, key: bool = False, code: str = "") -> None:
        loc = self.doc.location(path, key=key)
        self.diagnostics.append(Diagnostic(loc, "warning", message, format_path(path), code))

    # -- the passes ------------------------------------------------------------------------
    def run(self) -> None:
        self.schema(ENVELOPE, self.data, ())
        self.kinds()
        self.semantics()

    def schema(self, relative: str, instance: object, prefix: JsonPath) -> None:
        schema = compiled(relative)
        if schema.is_valid(instance):
            return
        seen: set[tuple[JsonPath, str]] = set()
        for err in schema.validator.iter_errors(instance):
            for path, message, key in explain_schema_error(err, prefix, schema.schema):
                if (path, message) not in seen:
                    seen.add((path, message))
                    self.error(path, message, key=key, code="schema")

    def kinds(self) -> None:
        """Pass 2: each probe, action and contact against its own kind's fragment."""
        for a, asset in enumerate(_as_list(self.data.get("assets"))):
            for p, probe in enumerate(_as_list(_as_map(asset).get("probes"))):
                if isinstance(probe, dict):
                    self.probe_kind(probe, ("assets", a, "probes", p))
        for phase in ("scenario", "rollback"):
            for path, step in self.steps(phase):
                action = step.get("action")
                if isinstance(action, dict):
                    self.action_kind(action, (*path, "action"))
                check = _as_map(step.get("wait_for")).get("check")
                if isinstance(check, dict) and len(check) == 1:
                    for kind, params in check.items():
                        self.kind_params("probe", kind, params, (*path, "wait_for", "check", kind), ())
        for chain_name, chain in _as_map(_as_map(self.data.get("contacts")).get("chains")).items():
            for c, contact in enumerate(_as_list(_as_map(chain).get("contacts"))):
                if isinstance(contact, dict):
                    self.contact_kind(contact, ("contacts", "chains", chain_name, "contacts", c))

    def probe_kind(self, probe: dict[str, Any], path: JsonPath) -> None:
        kinds = known_kinds("probe")
        keys = [k for k in probe if k not in PROBE_KEYS]
        if not keys:
            self.error(path, f"{_where(path)}: a probe needs one kind key: one of {', '.join(kinds)}")
            return
        if len(keys) > 1:
            self.error(
                (*path, keys[1]),
                f"{_where(path)}: a probe has exactly one kind, found {', '.join(map(repr, keys))};"
                " write one probe per kind",
                key=True,
            )
            return
        self.kind_params("probe", keys[0], probe[keys[0]], (*path, keys[0]), PROBE_KEYS)

    def action_kind(self, action: dict[str, Any], path: JsonPath) -> None:
        if len(action) > 1:
            keys = list(action)
            self.error(
                (*path, keys[1]),
                f"{_where(path)}: an action has exactly one kind, found {', '.join(map(repr, keys))};"
                " write one step per action",
                key=True,
            )
            return
        for kind, params in action.items():
            self.kind_params("action", kind, params, (*path, kind), ())

    def kind_params(
        self, family: str, kind: str, params: object, path: JsonPath, others: tuple[str, ...]
    ) -> None:
        kinds = known_kinds(family)
        if kind not in kinds:
            hint = suggest(kind, [*kinds, *others]) or f"; known kinds: {', '.join(kinds)}"
            self.error(
                path, f"{_where(path[:-1])}: unknown {family} kind {kind!r}{hint}", key=True, code="kind"
            )
            return
        if isinstance(params, dict):  # otherwise pass 1 said it must be a mapping
            self.schema(fragment_name(family, kind), params, path)

    def contact_kind(self, contact: dict[str, Any], path: JsonPath) -> None:
        via = contact.get("via")
        kinds = known_kinds("notifier")
        if not isinstance(via, str):
            return
        if via not in kinds:
            hint = suggest(via, kinds) or f"; known: {', '.join(kinds)}"
            self.error((*path, "via"), f"{_where(path)}: unknown notifier {via!r}{hint}", code="kind")
            return
        params = {k: v for k, v in contact.items() if k not in CONTACT_KEYS}
        self.schema(fragment_name("notifier", via), params, path)

    # -- semantic rules ------------------------------------------------------------------------
    def steps(self, phase: str) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
        """Every step of a phase (parallel children included) with its path, depth first."""
        todo: list[tuple[JsonPath, Any]] = [
            ((phase, i), s) for i, s in enumerate(_as_list(self.data.get(phase)))
        ]
        todo.reverse()
        while todo:
            path, step = todo.pop()
            if not isinstance(step, dict):
                continue
            yield path, step
            children = [((*path, "parallel", i), s) for i, s in enumerate(_as_list(step.get("parallel")))]
            todo.extend(reversed(children))

    def semantics(self) -> None:
        tiers = self.tier_names()
        assets = self.asset_ids()
        chains = _as_map(_as_map(self.data.get("contacts")).get("chains"))
        self.settings_refs(tiers)
        self.asset_refs(tiers, assets, chains)
        self.site_refs()
        graph = self.edges(assets)
        self.dependency_cycles(assets, graph)
        self.dependency_tiers(tiers, assets, graph)
        self.step_rules(tiers, assets)
        self.stop_rules(tiers, assets)
        self.metadata_dates()
        self.literal_credentials()

    def tier_names(self) -> dict[str, int]:
        """Tier name -> rank (list position); duplicates reported."""
        ranks: dict[str, int] = {}
        for t, tier in enumerate(_as_list(self.data.get("tiers"))):
            name = _as_map(tier).get("name")
            if not isinstance(name, str):
                continue
            if name in ranks:
                first = self.doc.pos(("tiers", ranks[name], "name")).line
                self.error(
                    ("tiers", t, "name"),
                    f"tiers[{t}].name: duplicate tier {name!r} (first defined at line {first})",
                )
            else:
                ranks[name] = t
        return ranks

    def asset_ids(self) -> dict[str, int]:
        """Asset id -> index; duplicates reported."""
        ids: dict[str, int] = {}
        for a, asset in enumerate(_as_list(self.data.get("assets"))):
            asset_id = _as_map(asset).get("id")
            if not isinstance(asset_id, str):
                continue
            if asset_id in ids:
                first = self.doc.pos(("assets", ids[asset_id], "id")).line
                msg = f"assets[{a}].id: duplicate asset id {asset_id!r} (first defined at line {first})"
                self.error(("assets", a, "id"), msg)
            else:
                ids[asset_id] = a
            names: dict[str, int] = {}
            for p, probe in enumerate(_as_list(asset.get("probes"))):
                name = _as_map(probe).get("name")
                if not isinstance(name, str):
                    continue
                if name in names:
                    first = self.doc.pos(("assets", a, "probes", names[name], "name")).line
                    self.error(
                        ("assets", a, "probes", p, "name"),
                        f"assets[{a}].probes[{p}].name: duplicate probe name {name!r}"
                        f" (first defined at line {first})",
                    )
                else:
                    names[name] = p
        return ids

    def ref(self, path: JsonPath, value: object, known: Collection[str], what: str) -> None:
        if isinstance(value, str) and value not in known:
            self.error(
                path, f"{_where(path)}: unknown {what} {value!r}{suggest(value, known)}", code="reference"
            )

    def settings_refs(self, tiers: dict[str, int]) -> None:
        for i, name in enumerate(_as_list(_as_map(self.data.get("settings")).get("pass_tiers"))):
            self.ref(("settings", "pass_tiers", i), name, tiers, "tier")

    def asset_refs(self, tiers: dict[str, int], assets: dict[str, int], chains: dict[str, Any]) -> None:
        for a, asset in enumerate(_as_list(self.data.get("assets"))):
            asset = _as_map(asset)
            self.ref(("assets", a, "tier"), asset.get("tier"), tiers, "tier")
            self.ref(("assets", a, "contact_chain"), asset.get("contact_chain"), chains, "contact chain")
            for d, dep in enumerate(_as_list(asset.get("depends_on"))):
                if dep == asset.get("id"):
                    where = ("assets", a, "depends_on", d)
                    self.error(where, f"{_where(where)}: asset {dep!r} depends on itself", code="cycle")
                else:
                    self.ref(("assets", a, "depends_on", d), dep, assets, "asset")

    def site_refs(self) -> None:
        """Every site named is declared, and no quorum needs more sites than probe it."""
        known: set[str] = set()
        for i, site in enumerate(_as_list(self.data.get("sites"))):
            name = _as_map(site).get("name")
            if isinstance(name, str) and name in known:
                self.error(("sites", i, "name"), f"sites[{i}].name: duplicate site {name!r}")
            elif isinstance(name, str):
                known.add(name)
        for a, asset in enumerate(_as_list(self.data.get("assets"))):
            asset = _as_map(asset)
            owners: list[tuple[JsonPath, dict[str, Any]]] = [(("assets", a), asset)]
            owners += [
                (("assets", a, "probes", p), _as_map(x)) for p, x in enumerate(_as_list(asset.get("probes")))
            ]
            for path, owner in owners:
                for i, name in enumerate(_as_list(owner.get("sites"))):
                    if not known:
                        where = (*path, "sites", i)
                        self.error(
                            where,
                            f"{_where(where)}: site {name!r} named but the playbook declares no sites",
                            code="reference",
                        )
                    else:
                        self.ref((*path, "sites", i), name, known, "site")
            for p, probe in enumerate(_as_list(asset.get("probes"))):
                effective: dict[str, Any] = {k: asset[k] for k in ("sites", "quorum") if k in asset}
                effective.update(_as_map(probe))
                sites, quorum = _as_list(effective.get("sites")), effective.get("quorum")
                canary = any(_as_map(v).get("canary") is True for v in _as_map(probe).values())
                if sites and canary:
                    where = ("assets", a, "probes", p)
                    self.error(
                        where,
                        f"{_where(where)}: a canary probe cannot run at sites: its RPO is read back by"
                        " drill run itself; probe the data store from here, or drop `canary`",
                    )
                if isinstance(quorum, int) and sites and quorum > len(sites):
                    where = ("assets", a, "probes", p)
                    self.error(
                        where,
                        f"{_where(where)}: quorum {quorum} needs more sites than the {len(sites)} that probe it",
                    )

    def edges(self, assets: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
        """Asset id -> [(dependency id, index in depends_on)], known ids only."""
        graph: dict[str, list[tuple[str, int]]] = {}
        for asset_id, a in assets.items():
            deps = _as_list(_as_map(self.data["assets"][a]).get("depends_on"))
            graph[asset_id] = [
                (d, i) for i, d in enumerate(deps) if isinstance(d, str) and d in assets and d != asset_id
            ]
        return graph

    def dependency_cycles(self, assets: dict[str, int], graph: dict[str, list[tuple[str, int]]]) -> None:
        """Report each cycle once, with its full path, at the edge that closes it (iterative DFS)."""
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for root in graph:
            if root in state:
                continue
            path: list[str] = [root]
            iters = [iter(graph[root])]
            state[root] = 1
            while iters:
                step = next(iters[-1], None)
                if step is None:
                    state[path.pop()] = 2
                    iters.pop()
                    continue
                dep, index = step
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    where = ("assets", assets[path[-1]], "depends_on", index)
                    self.error(
                        where, f"{_where(where)}: dependency cycle: {' -> '.join(cycle)}", code="cycle"
                    )
                elif dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    iters.append(iter(graph[dep]))

    def dependency_tiers(
        self, tiers: dict[str, int], assets: dict[str, int], graph: dict[str, list[tuple[str, int]]]
    ) -> None:
        for asset_id, deps in graph.items():
            asset = self.data["assets"][assets[asset_id]]
            rank = tiers.get(_text(asset.get("tier")))
            for dep, index in deps:
                dep_tier = self.data["assets"][assets[dep]].get("tier")
                dep_rank = tiers.get(_text(dep_tier))
                if rank is not None and dep_rank is not None and dep_rank > rank:
                    self.warn(
                        ("assets", assets[asset_id], "depends_on", index),
                        f"assets[{assets[asset_id]}].depends_on[{index}]: asset {asset_id!r}"
                        f" ({asset['tier']}) depends on {dep!r} of lower-priority tier {dep_tier}:"
                        f" it cannot recover before {dep!r}",
                        code="tier-order",
                    )

    def detection_bounds(self, playbook: Playbook, defaulted: frozenset[str]) -> None:
        """Warn when an RTO target is shorter than the time a probe needs to notice an outage.

        `defaulted` are the paths where the model holds a default instead of a bad value: a
        warning computed from a default would be false, so those assets are left out.
        """
        tiers = {t.name: f"tiers[{t.rank}]" for t in playbook.tiers}
        for a, asset in enumerate(playbook.assets):
            if asset.rto_ms is None and asset.tier not in tiers:
                continue  # an unknown tier is an error of its own
            sources = (f"assets[{a}]", tiers.get(asset.tier, "-"), "settings")
            if any(path.startswith(sources) for path in defaulted):
                continue
            rto = playbook.rto_ms(asset)
            for probe in asset.probes:
                bound = probe.detection_bound_ms
                if rto < bound:
                    path: JsonPath = (
                        ("assets", a, "rto") if asset.rto_ms is not None else ("assets", a, "tier")
                    )
                    self.warn(
                        path,
                        f"assets[{a}]: RTO target {human_ms(rto)} of asset {asset.id!r} is shorter"
                        f" than the detection bound of its probe {probe.name!r}"
                        f" (interval {human_ms(probe.interval_ms)} x fall {probe.fall} = {human_ms(bound)})",
                        code="detection-bound",
                    )
                    break

    def step_rules(self, tiers: dict[str, int], assets: dict[str, int]) -> None:
        names: dict[str, JsonPath] = {}
        captures: set[str] = set()  # steps before this one that keep their output
        for phase in ("scenario", "rollback"):
            for path, step in self.steps(phase):
                self.output_references(path, step, captures, names)
                if "capture" in step and isinstance(step.get("name"), str):
                    captures.add(step["name"])
                name = step.get("name")
                if isinstance(name, str):
                    if name in names:
                        first = self.doc.pos((*names[name], "name")).line
                        msg = f"{_where(path)}.name: duplicate step name {name!r}"
                        msg += f" (first defined at line {first})"
                        self.error((*path, "name"), msg)
                    else:
                        names[name] = path
                kinds = [k for k in STEP_KINDS if k in step]
                if not kinds:
                    self.error(
                        path, f"{_where(path)}: a step needs one of {', '.join(STEP_KINDS)}", code="step"
                    )
                    continue
                if len(kinds) > 1:
                    self.error(
                        (*path, kinds[1]),
                        f"{_where(path)}: a step does one thing, found {' and '.join(kinds)};"
                        " split it in two",
                        key=True,
                        code="step",
                    )
                    continue
                kind = kinds[0]
                for modifier, allowed in _MODIFIERS.items():
                    if modifier in step and kind not in allowed:
                        self.error(
                            (*path, modifier),
                            f"{_where(path)}: {modifier!r} applies to {' and '.join(allowed)} steps,"
                            f" not {kind}",
                            key=True,
                            code="step",
                        )
                retry = step.get("retry")
                attempts = retry.get("attempts") if isinstance(retry, dict) else None
                if step.get("inject") is True and isinstance(attempts, int) and attempts > 1:
                    self.warn(
                        (*path, "retry"),
                        f"{_where(path)}: step {name!r} injects the failure and is retried: a second"
                        " attempt repeats the fault after the outage began (t_inject is the step's"
                        " start, the first attempt); inject once, and retry the steps that recover",
                        key=True,
                        code="inject-retry",
                    )
                wait = step.get("wait_for")
                if isinstance(wait, dict):
                    where = (*path, "wait_for")
                    self.target(where, wait, ("asset", "tier", "all_assets", "check"), tiers, assets)
                    if "check" in wait and "state" in wait:
                        self.error(
                            (*where, "state"),
                            f"{_where(where)}: a check waits until it succeeds; state applies to"
                            " asset, tier and all_assets",
                            key=True,
                            code="target",
                        )
                    elif "state" not in wait and any(k in wait for k in ("asset", "tier", "all_assets")):
                        message = f"{_where(where)}: say which state to wait for: state: up or down"
                        self.error(where, message, code="target")

    def output_references(
        self, path: JsonPath, step: dict[str, Any], captures: set[str], names: dict[str, JsonPath]
    ) -> None:
        """${steps.NAME.output} must name an earlier step that captures its output."""
        action = step.get("action")
        for where, text in _strings(action, (*path, "action")):
            for match in OUTPUT_REFERENCE.finditer(text):
                name = match.group(1)
                if name in captures:
                    continue
                why = "captures no output (add `capture: stdout`)" if name in names else "is no earlier step"
                hint = suggest(name, sorted(captures))
                self.error(
                    where,
                    f"{_where(where)}: ${{steps.{name}.output}}: step {name!r} {why}{hint}",
                    code="reference",
                )

    def wasted_drill_rules(self, playbook: Playbook) -> None:
        """What a playbook can say that wastes a whole drill: nothing injected, a wait shorter
        than its probes can notice the state it waits for, an RPO target nothing measures, a
        manual step nobody is there to answer."""
        if playbook.metadata.test_type != "tabletop" and not any(
            injects(s) for s in walk_steps(playbook.scenario)
        ):
            self.error(
                ("scenario",),
                "scenario: nothing injects the failure, so no detection or recovery can be measured;"
                " mark the fault's step `inject: true` or put `mark: disaster` before it"
                " (a tabletop exercise needs neither: metadata.test_type: tabletop)",
                key=True,
                code="inject",
            )
        for path, step in _model_steps(playbook):
            if isinstance(step, WaitForStep) and step.wait_for.check is None:
                self.wait_bound(path, step, playbook)
            elif isinstance(step, ManualStep) and playbook.settings.unattended:
                self.error(
                    path,
                    f"{_where(path)}: manual step {step.name!r} waits for a person to answer it, but"
                    " settings.unattended says nobody is at a terminal: the drill cannot get past it;"
                    " remove the manual step, or drop `unattended`",
                    code="unattended",
                )
        self.unmeasured_rpo(playbook)

    def unmeasured_rpo(self, playbook: Playbook) -> None:
        """Warn at each asset with an RPO target (its own, else its tier's) that no probe of it
        measures (none writes canaries) and nobody waived: its run can only end `incomplete`.
        One pass over the assets, each tier looked up by name. `writes_canary` is the plan's
        measures_rpo without importing the probe kinds: only a kind that reads its canaries back
        accepts `canary` in its schema fragment (tests/playbook/test_wasted_drill.py holds it)."""
        tiers = {t.name: t for t in playbook.tiers}
        for a, asset in enumerate(playbook.assets):
            tier = tiers[asset.tier]
            rpo = asset.rpo_ms if asset.rpo_ms is not None else tier.rpo_ms
            if rpo is None or "rpo" in asset.waive or "rpo" in tier.waive:
                continue
            if any(probe.writes_canary for probe in asset.probes):
                continue
            path: JsonPath = ("assets", a, "rpo") if asset.rpo_ms is not None else ("assets", a)
            self.warn(
                path,
                f"assets[{a}]: RPO target {human_ms(rpo)} of asset {asset.id!r} has no canary probe to"
                ' measure it: its RPO will be "not measured" and the run `incomplete` unless waived;'
                ' add a probe with `canary: true`, or `waive: {rpo: "why"}`',
                code="rpo-unmeasured",
            )

    def wait_bound(self, path: JsonPath, step: WaitForStep, playbook: Playbook) -> None:
        wait = step.wait_for
        members = [a for a in playbook.assets if a.id == wait.asset or a.tier == wait.tier or wait.all_assets]
        word = "fall" if wait.state == "down" else "rise"
        bounds = [(p.interval_ms * _streak(p, word), a.id, p) for a in members for p in a.probes]
        if not bounds:
            return
        bound, asset_id, probe = max(bounds, key=lambda b: b[0])
        if wait.within_ms < bound:
            self.warn(
                (*path, "wait_for", "within"),
                f"{_where(path)}: waits {human_ms(wait.within_ms)} for {wait.state}, but asset {asset_id!r}"
                f" needs up to {human_ms(bound)} to be seen {wait.state} (probe {probe.name!r}:"
                f" interval {human_ms(probe.interval_ms)} x {word} {_streak(probe, word)}): the step fails"
                " before it can succeed",
                code="wait-bound",
            )

    def stop_rules(self, tiers: dict[str, int], assets: dict[str, int]) -> None:
        for s, stop in enumerate(_as_list(self.data.get("stop_conditions"))):
            if isinstance(stop, dict):
                self.target(("stop_conditions", s), stop, ("asset", "tier"), tiers, assets)

    def target(
        self,
        path: JsonPath,
        node: dict[str, Any],
        keys: tuple[str, ...],
        tiers: dict[str, int],
        assets: dict[str, int],
    ) -> None:
        present = [k for k in keys if k in node]
        if len(present) != 1:
            found = f", found {' and '.join(present)}" if present else ""
            self.error(path, f"{_where(path)}: name exactly one of {', '.join(keys)}{found}", code="target")
        self.ref((*path, "asset"), node.get("asset"), assets, "asset")
        self.ref((*path, "tier"), node.get("tier"), tiers, "tier")

    def metadata_dates(self) -> None:
        meta = _as_map(self.data.get("metadata"))
        previous = meta.get("previous_drill")
        if isinstance(previous, str):
            try:
                date.fromisoformat(previous)
            except ValueError:
                self.error(
                    ("metadata", "previous_drill"),
                    f"metadata.previous_drill: {previous!r} is not a real date",
                )

    def literal_credentials(self) -> None:
        """Warn at each credential written into probe, action and contact parameters instead of
        referred to (${env:NAME}, ${file:PATH}): it would sit in the file, the journal's copy of
        the playbook and every report. A warning, since a name can look secret and be harmless;
        the message names the place, never the value. A value with an error of its own is left
        to that error. One pass over the parameters; only a string under a secret-looking key, a
        URL or a dsn is looked into."""
        errors = {d.path for d in self.diagnostics if d.severity == "error"}
        for root, params in self.parameter_roots():
            if isinstance(params, str):
                self.credential(root, _text(root[-1]), params, errors)
                continue
            todo: list[tuple[JsonPath, str, object]] = [(root, _text(root[-1]), params)]
            while todo:
                path, holder, value = todo.pop()
                items: Iterable[tuple[str | int, object]]
                if isinstance(value, dict):
                    items = value.items()
                elif isinstance(value, list):
                    items = enumerate(value)
                else:
                    continue
                for k, item in items:
                    key = holder if isinstance(k, int) else _text(k)
                    if isinstance(item, str):
                        if "://" in item or key == "dsn" or _secret_name(key):
                            self.credential((*path, k), key, item, errors)
                    elif isinstance(item, dict | list) and k != "extract":  # a journey's captures:
                        todo.append(((*path, k), key, item))  # variable -> where in the response

    def credential(self, path: JsonPath, key: str, text: str, errors: set[str]) -> None:
        for what, exposure in _credentials(key, text):
            where = format_path(path)
            if where not in errors:
                self.warn(path, _credential_message(where, what, exposure), code="credential")

    def parameter_roots(self) -> Iterator[tuple[JsonPath, object]]:
        """The parameters of every probe, wait_for check, action and contact, with their path."""
        for a, asset in enumerate(_as_list(self.data.get("assets"))):
            for p, probe in enumerate(_as_list(_as_map(asset).get("probes"))):
                for kind, params in _as_map(probe).items():
                    if kind not in PROBE_KEYS:
                        yield ("assets", a, "probes", p, kind), params
        for phase in ("scenario", "rollback"):
            for path, step in self.steps(phase):
                for kind, params in _as_map(step.get("action")).items():
                    yield (*path, "action", kind), params
                for kind, params in _as_map(_as_map(step.get("wait_for")).get("check")).items():
                    yield (*path, "wait_for", "check", kind), params
        for name, chain in _as_map(_as_map(self.data.get("contacts")).get("chains")).items():
            for c, contact in enumerate(_as_list(_as_map(chain).get("contacts"))):
                for key, value in _as_map(contact).items():
                    if key not in CONTACT_KEYS:
                        yield ("contacts", "chains", name, "contacts", c, key), value


# -- schema errors to messages -----------------------------------------------------------------
def explain_schema_error(
    err: ValidationError, prefix: JsonPath, root: dict[str, Any]
) -> list[tuple[JsonPath, str, bool]]:
    """(path, message, at_key) for one jsonschema error, worded for a person."""
    path: JsonPath = (*prefix, *err.absolute_path)
    where = _where(path)
    value = err.instance
    rule = err.validator
    wanted: Any = err.validator_value
    schema = err.schema if isinstance(err.schema, dict) else {}
    defs = root.get("$defs", {})
    if rule == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {}))
        extras = [k for k in value if k not in known]
        return [((*path, k), f"{where}: unknown key {k!r}{suggest(k, known)}", True) for k in extras]
    if rule == "required" and isinstance(value, dict):
        missing = [p for p in wanted if p not in value]
        return [(path, f"{where}: missing required key {m!r}", True) for m in missing]
    if rule in _DURATION_RULES and schema.get("pattern") in _DURATION_PATTERNS:
        return [(path, f"{where}: {_duration_message(value, schema)}", False)]
    if rule == "type":
        return [(path, f"{where}: expected {_types(err.validator_value)}, got {_describe(value)}", False)]
    if rule == "enum":
        options = ", ".join(str(o) for o in wanted)
        return [(path, f"{where}: {value!r} is not one of: {options}{suggest(value, wanted)}", False)]
    if rule == "const":
        literal = repr(wanted) if isinstance(wanted, str) else json.dumps(wanted)  # true, not True
        return [(path, f"{where}: must be {literal}, not {_describe(value)}", False)]
    if rule == "pattern":
        return [(path, f"{where}: {_pattern_message(value, schema, defs)}", False)]
    if rule == "propertyNames":
        key_path = (*path, value) if isinstance(value, str) else path
        return [(key_path, f"{where}: {value!r} is not a valid name (letters, digits, '.', '_', '-')", True)]
    if rule == "oneOf":
        return _explain_one_of(err, prefix, root, path)
    if rule == "minItems":
        return [(path, f"{where}: needs at least {err.validator_value} item(s)", False)]
    if rule == "minLength":
        return [(path, f"{where}: must not be empty", False)]
    if rule == "uniqueItems":
        return [(path, f"{where}: lists the same item twice", False)]
    if rule == "minProperties":
        return [(path, f"{where}: must not be empty", True)]
    if rule in ("minimum", "maximum"):
        word = "at least" if rule == "minimum" else "at most"
        return [(path, f"{where}: must be {word} {err.validator_value}, got {value!r}", False)]
    if rule == "dependentRequired":
        return [(path, f"{where}: {err.message}", True)]
    return [(path, f"{where}: {err.message}", False)]


_DURATION_PATTERNS = (DURATION_PATTERN, UNITS_PATTERN)  # the schemas' durations: 0 allowed, above zero
_DURATION_RULES = frozenset({"pattern", "type", "minimum", "maximum", "not"})


def _duration_message(value: object, schema: dict[str, Any]) -> str:
    """A bad duration in words (never the schema's regex): parse_duration_ms says what is wrong."""
    if isinstance(value, bool) or value is None:
        return f"invalid duration {json.dumps(value)}: {DURATION_HINT}"  # true, as YAML spells it
    if isinstance(value, dict | list):
        return f"invalid duration: got {_describe(value)}; {DURATION_HINT}"
    try:
        ms = parse_duration_ms(value)
    except ValueError as exc:
        return str(exc)
    if ms == 0 and schema.get("pattern") == UNITS_PATTERN:  # its `not` refuses a zero
        return f"invalid duration {value!r}: must be above zero; {DURATION_HINT}"
    return f"invalid duration {value!r}: {DURATION_HINT}"  # parses, but not as written (e.g. spaces)


def _types(wanted: object) -> str:
    names = wanted if isinstance(wanted, list) else [wanted]
    return " or ".join(_JSON_TYPES.get(str(n), str(n)) for n in names)


def _pattern_message(value: object, schema: dict[str, Any], defs: dict[str, Any]) -> str:
    pattern = schema.get("pattern", "")
    if schema == defs.get("name"):
        rule = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
        return f"{value!r} is not a valid name: {rule}"
    if pattern.startswith("^(https?://"):
        return (
            f"{value!r} is not a URL: start with http:// or https://, or use a reference"
            " (${env:NAME} for a secret, ${var:NAME} for a plain variable)"
        )
    if "(env|file|var)" in pattern:
        return f"{value!r} is not a reference like ${{var:NAME}}, ${{env:NAME}} or ${{file:path}}"
    if "(env|file)" in pattern:
        return f"{value!r} is not a secret reference like ${{env:NAME}} or ${{file:path}}"
    description = schema.get("description")
    hint = f" ({description.rstrip('.')[0].lower()}{description.rstrip('.')[1:]})" if description else ""
    examples = schema.get("examples")
    example = f", e.g. {examples[0]!r}" if isinstance(examples, list) and examples else ""
    return f"{value!r} is not in the expected form{hint}{example}"


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _branch_type(branch: object, root: dict[str, Any]) -> list[str]:
    if not isinstance(branch, dict):
        return []
    if "$ref" in branch and isinstance(branch["$ref"], str) and branch["$ref"].startswith("#/$defs/"):
        target = root.get("$defs", {}).get(branch["$ref"].removeprefix("#/$defs/"))
        return _branch_type(target, root)
    wanted = branch.get("type", [])
    return wanted if isinstance(wanted, list) else [wanted]


def _explain_one_of(
    err: ValidationError, prefix: JsonPath, root: dict[str, Any], path: JsonPath
) -> list[tuple[JsonPath, str, bool]]:
    """A oneOf of typed alternatives (an integer or a reference): explain the branch of the value's type."""
    branches = err.validator_value if isinstance(err.validator_value, list) else []
    kind = _json_type(err.instance)
    for index, branch in enumerate(branches):
        types = _branch_type(branch, root)
        if kind in types or (kind == "integer" and "number" in types):
            sub = [e for e in err.context or [] if e.schema_path and e.schema_path[0] == index]
            if sub:
                return explain_schema_error(sub[0], prefix, root)
    wanted = [t for b in branches for t in _branch_type(b, root)]
    unique = list(dict.fromkeys(wanted))
    if not unique:
        return [(path, f"{_where(path)}: {err.message}", False)]
    return [(path, f"{_where(path)}: expected {_types(unique)}, got {_describe(err.instance)}", False)]
