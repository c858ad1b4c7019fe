"""Build the drill report: results + journal summary + playbook document -> one plain dict.

`build_report` is pure: the same inputs always give the same dict, so the same journal always
gives byte-identical canonical JSON (report_id and generated_utc are derived from the journal).
The report holds what auditors ask of an exercise report (NIST SP 800-84, ISO 22301 §8.5,
DORA art. 11-12, 24-26) and nothing secret: probe, action and notifier parameters are never copied.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from drill.clock import parse_utc, utc_iso
from drill.errors import JournalInvalid
from drill.events import RUN_FINISHED, RUN_STARTED, Event
from drill.playbook.durations import parse_duration_ms
from drill.report._view import fmt_ms as _fmt_ms
from drill.report.canonical import canonical_bytes, reject_floats

REPORT_FORMAT = "drill-report/v1"
REPORT_FILE = "report.json"
SEVERITIES = ("critical", "high", "medium", "low", "info")
STEP_KINDS = ("mark", "action", "wait_for", "pause", "manual", "parallel")


class JournalSummaryLike(Protocol):
    """What the report needs of drill.run.journal.JournalSummary."""

    @property
    def sha256(self) -> str: ...

    @property
    def count(self) -> int: ...

    @property
    def head(self) -> str: ...


def report_id_for(run_id: str, journal_head: str) -> str:
    """A stable report id: the same run and journal always give the same id."""
    digest = hashlib.sha256(f"{run_id}\n{journal_head}".encode()).hexdigest()
    return f"rpt-{digest[:24]}"


def tool_version() -> str:
    """The installed drill version (the builder's, recorded next to the runner's)."""
    try:
        return importlib.metadata.version("drill")
    except importlib.metadata.PackageNotFoundError:  # a source checkout without install
        return "0+unknown"


def build_report(
    results: Mapping[str, Any],
    journal_summary: JournalSummaryLike,
    playbook_document: Mapping[str, Any],
    *,
    report_id: str,
    generated_utc: str,
    tool_version: str,
    evidence: Sequence[Mapping[str, str]] = (),
    signer: tuple[str, str] | None = None,
    run_started: Mapping[str, Any] | None = None,
    journal_file: str = "journal.jsonl",
) -> dict[str, Any]:
    """The report as a plain, integer-only dict (see schemas/report.schema.json).

    `run_started` is the data of the journal's run.started event (user, host, tool_version,
    planned_start); `signer` is (principal, "SHA256:...") of the key that will sign it.
    """
    started = run_started or {}
    doc = playbook_document
    meta = _mapping(doc.get("metadata"))
    assets = _assets(results, doc)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "report_id": report_id,
        "run_id": str(results["run_id"]),
        "generated_utc": generated_utc,
        "tool": {"name": "drill", "version": tool_version},
        "prepared_by": {"principal": signer[0], "fingerprint": signer[1]} if signer else None,
        "playbook": _playbook(results, meta),
        "exercise": _exercise(meta, doc),
        "run": _run(results, meta, started),
        "verdict": str(results["verdict"]),
        "summary": {},
        "scope": {
            "tiers": _tiers(results, doc),
            "exclusions": _strings(meta.get("exclusions")),
            "third_parties": _third_parties(meta),
        },
        "participants": _participants(meta),
        "contact_chains": _chains(doc),
        "assets": assets,
        "order_violations": [dict(v) for v in results.get("order_violations", [])],
        "steps": [dict(s) for s in results.get("steps", [])],
        "deviations": _deviations(results),
        "stops": [dict(s) for s in results.get("stops", [])],
        "rollback": dict(results.get("rollback") or {"ran": False, "status": "not-run"}),
        "cleanup": _cleanup(results),
        "people": {
            "pages": [dict(p) for p in results.get("pages", [])],
            "chains": [dict(c) for c in results.get("chains", [])],
        },
        "findings": build_findings(results),
        "journal": {
            "file": journal_file,
            "sha256": journal_summary.sha256,
            "events": journal_summary.count,
            "head": journal_summary.head,
        },
        "evidence": sorted(({"file": e["file"], "sha256": e["sha256"]} for e in evidence), key=_by_file),
    }
    report["summary"] = _summary(report)
    reject_floats(report, "report")
    return report


# ---------------------------------------------------------------- from the journal


def build_report_from_journal(
    journal_path: Path | str,
    *,
    signer: tuple[str, str] | None = None,
    generated_utc: str | None = None,
    evidence_files: Iterable[Path] = (),
    allow_torn_tail: bool = False,
) -> dict[str, Any]:
    """Rebuild the report from a journal alone (the hash chain is checked while streaming).

    generated_utc defaults to the run.finished event's time (else the last event's), so the
    same journal always yields the same report. `evidence_files` are hashed by name.
    allow_torn_tail accepts a last line cut short by a crash (the report covers the intact prefix).
    """
    # Imported here: drill.run and drill.results sit below report but are heavier to load.
    from drill.results import fold_results, results_to_dict
    from drill.run.journal import JournalStream, file_sha256

    path = Path(journal_path)
    # One streaming pass: the stream re-checks the hash chain line by line (JournalInvalid
    # names the first broken line) and ends with the file digest, count and head.
    tap = _Tap()
    stream = JournalStream(path, allow_torn_tail=allow_torn_tail)
    results = results_to_dict(fold_results(tap.watch(stream)))
    if tap.last is None:
        raise JournalInvalid(f"{path}: the journal is empty", hint="a run writes run.started first")
    summary = stream.summary
    started = tap.started.data if tap.started else {}
    playbook = _mapping(started.get("playbook"))
    when = generated_utc or (tap.finished or tap.last).utc
    evidence = [{"file": p.name, "sha256": file_sha256(p)} for p in evidence_files]
    return build_report(
        results,
        summary,
        _mapping(playbook.get("document")),
        report_id=report_id_for(str(results["run_id"]), summary.head),
        generated_utc=when,
        tool_version=tool_version(),
        evidence=evidence,
        signer=signer,
        run_started={k: v for k, v in started.items() if k != "playbook"},
        journal_file=path.name,
    )


def load_report(path: Path | str) -> dict[str, Any]:
    """Read report.json (or the report.json inside a folder) and check it against its schema."""
    import json

    import jsonschema

    from drill.errors import UsageError
    from drill.resources import load_schema

    source = Path(path)
    if source.is_dir():
        source = source / REPORT_FILE
    try:
        data = json.loads(source.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read report {source}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{source}: not a JSON report ({exc})") from None
    validator = jsonschema.Draft202012Validator(load_schema("report.schema.json"))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = error.json_path.removeprefix("$") or "(top level)"
        raise UsageError(
            f"{source}: not a valid drill report at {where}: {error.message}",
            hint="rebuild it from the journal: drill report rebuild journal.jsonl",
        )
    report: dict[str, Any] = data
    return report


def write_report(report: Mapping[str, Any], directory: Path | str) -> Path:
    """Write report.json as RFC 8785 canonical bytes (the exact bytes signatures cover)."""
    target = Path(directory) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{REPORT_FILE}.tmp")
    tmp.write_bytes(canonical_bytes(dict(report)))
    tmp.replace(target)  # atomic: a reader never sees half a report
    return target


class _Tap:
    """Remembers the run.started, run.finished and last events while the fold streams past."""

    __slots__ = ("finished", "last", "started")

    def __init__(self) -> None:
        self.started: Event | None = None
        self.finished: Event | None = None
        self.last: Event | None = None

    def watch(self, events: Iterable[Event]) -> Iterator[Event]:
        event: Event | None = None
        for event in events:
            kind = event.type
            if kind == RUN_STARTED and self.started is None:
                self.started = event
            elif kind == RUN_FINISHED:
                self.finished = event
            yield event
        self.last = event


# ---------------------------------------------------------------- sections


def _playbook(results: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    pb = _mapping(results.get("playbook"))
    return {
        "name": str(pb.get("name") or meta.get("name") or ""),
        "version": _str(meta.get("version")),
        "quarter": _str(meta.get("quarter")),
        "owner": _str(meta.get("owner")),
        "description": _str(meta.get("description")),
        "sha256": str(pb.get("sha256") or ""),
        "path": str(pb.get("path") or ""),
    }


def _exercise(meta: Mapping[str, Any], doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "test_type": _str(meta.get("test_type")) or "functional",
        "objectives": _strings(meta.get("objectives")),
        "success_criteria": _strings(meta.get("success_criteria")),
        "assumptions": _strings(meta.get("assumptions")),
        "business_impact_ref": _str(meta.get("business_impact_ref")),
        "previous_drill": _str(meta.get("previous_drill")),
        "scenario": _planned_steps(doc.get("scenario"), "scenario"),
        "rollback_plan": _planned_steps(doc.get("rollback"), "rollback"),
        "stop_conditions": [_stop_condition(s) for s in _list(doc.get("stop_conditions"))],
    }


def _run(results: Mapping[str, Any], meta: Mapping[str, Any], started: Mapping[str, Any]) -> dict[str, Any]:
    user, host = _str(started.get("user")), _str(started.get("host"))
    planned_start = _str(started.get("planned_start")) or _str(meta.get("planned_start"))
    planned_ms = _ms(meta.get("planned_duration"))
    planned_end: str | None = None
    planned_start_utc: str | None = None
    if planned_start:
        try:
            moment = parse_utc(planned_start)
        except ValueError:
            moment = None
        if moment is not None:
            planned_start_utc = utc_iso(moment)
            if planned_ms:
                planned_end = utc_iso(moment + timedelta(milliseconds=planned_ms))
    return {
        "status": str(results.get("status") or ""),
        "reason": str(results.get("reason") or ""),
        "operator": user if "@" in user else (f"{user}@{host}" if user or host else ""),
        "run_tool_version": _str(started.get("tool_version")),
        "planned_start_utc": planned_start_utc,
        "planned_end_utc": planned_end,
        "planned_duration_ms": planned_ms,
        "started_utc": results.get("started_utc"),
        "finished_utc": results.get("finished_utc"),
        "duration_ms": results.get("duration_ms"),
        "pass_tiers": [str(t) for t in results.get("pass_tiers", [])],
    }


def _tiers(results: Mapping[str, Any], doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    described = {_str(t.get("name")): _str(t.get("description")) for t in _mappings(doc.get("tiers"))}
    tiers = []
    for tier in results.get("tiers", []):
        row = dict(tier)
        row["description"] = described.get(str(tier["name"]), "")
        tiers.append(row)
    return tiers


def _assets(results: Mapping[str, Any], doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    declared = {str(raw.get("id")): raw for raw in _mappings(doc.get("assets"))}  # by id: O(n), not O(n²)
    rows = []
    for asset in results.get("assets", []):
        row = dict(asset)
        raw = declared.get(str(asset["id"]), {})
        row["description"] = _str(raw.get("description"))
        row["probes"] = [_str(p.get("name")) for p in _mappings(raw.get("probes"))]
        rows.append(row)
    return rows


def _participants(meta: Mapping[str, Any]) -> list[dict[str, str]]:
    keys = ("name", "role", "contact", "organisation")
    return [{k: _str(p.get(k)) for k in keys} for p in _mappings(meta.get("participants"))]


def _third_parties(meta: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"name": _str(t.get("name")), "role": _str(t.get("role"))}
        for t in _mappings(meta.get("third_parties"))
    ]


def _chains(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    chains = _mapping(_mapping(doc.get("contacts")).get("chains"))
    out = []
    for name in sorted(chains):
        raw = chains[name]
        # Both spellings: {respond_within, contacts: [...]} and a bare list of contacts.
        body = raw if isinstance(raw, Mapping) else {"contacts": raw}
        contacts = [
            {
                "name": _str(c.get("name")),
                "role": _str(c.get("role")),
                "via": _str(c.get("via")),  # the channel kind only: its url/token stay out
                "ack_within_ms": _ms(c.get("ack_within")),
            }
            for c in _mappings(body.get("contacts"))
        ]
        out.append(
            {"name": str(name), "respond_within_ms": _ms(body.get("respond_within")), "contacts": contacts}
        )
    return out


def _planned_steps(raw: Any, phase: str, parent: str = "") -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for step in _mappings(raw):
        kind = next((k for k in STEP_KINDS if k in step), "")
        steps.append(
            {
                "name": _str(step.get("name")),
                "kind": kind,
                "phase": phase,
                "parent": parent,
                "inject": bool(step.get("inject")) or (kind == "mark" and step.get("mark") == "disaster"),
                "detail": _step_detail(kind, step),
            }
        )
        if kind == "parallel":
            steps.extend(_planned_steps(step.get("parallel"), phase, _str(step.get("name"))))
    return steps


def _step_detail(kind: str, step: Mapping[str, Any]) -> str:
    """A one-line description with no parameters that could hold secrets (urls, argv, bodies)."""
    value = step.get(kind)
    if kind == "mark":
        return f"mark {_str(value)}"
    if kind == "pause":
        return f"pause {_str(value)}"
    if kind == "manual":
        return _str(value)
    if kind == "wait_for":
        w = _mapping(value)
        target = (
            "all assets"
            if w.get("all_assets")
            else (f"asset {_str(w.get('asset'))}" if w.get("asset") else f"tier {_str(w.get('tier'))}")
        )
        return f"wait for {target} {_str(w.get('state'))} within {_str(w.get('within'))}".strip()
    if kind == "action":
        action = _mapping(value)
        kinds = sorted(str(k) for k in action)
        return f"{'/'.join(kinds)} action" if kinds else "action"
    if kind == "parallel":
        return f"{len(_list(value))} steps in parallel"
    return ""


def _stop_condition(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": _str(raw.get("name")),
        "asset": _str(raw.get("asset")),
        "tier": _str(raw.get("tier")),
        "down_for_ms": _ms(raw.get("down_for")),
    }


def _deviations(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Departures from the plan: steps not ok, and manual prompts skipped, aborted or auto-answered."""
    out = []
    for step in results.get("steps", []):
        manual = step.get("manual")
        overridden = bool(manual) and (manual.get("answer") != "done" or manual.get("auto"))
        if step.get("status") == "ok" and not overridden:
            continue
        what = f"step {step.get('status')}"
        if overridden:
            how = "automatically" if manual.get("auto") else f"by {manual.get('who') or 'unknown'}"
            what = f"manual prompt answered '{manual.get('answer')}' {how}"
        out.append(
            {
                "step": str(step.get("name")),
                "phase": str(step.get("phase")),
                "status": str(step.get("status")),
                "deviation": what,
                "reason": str(step.get("reason") or ""),
                "seq": int(step.get("seq") or 0),
            }
        )
    return out


def _cleanup(results: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the return to normal was confirmed: rollback ok, or an operator said so in rollback."""
    rollback = _mapping(results.get("rollback"))
    for step in results.get("steps", []):
        manual = step.get("manual")
        if (
            step.get("phase") == "rollback"
            and manual
            and manual.get("answer") == "done"
            and not manual.get("auto")
        ):
            return {
                "confirmed": True,
                "basis": f"confirmed by {manual.get('who') or 'operator'} at '{step['name']}'",
            }
    if rollback.get("ran") and rollback.get("status") == "ok":
        return {"confirmed": True, "basis": "rollback completed"}
    if rollback.get("ran"):
        return {"confirmed": False, "basis": f"rollback {rollback.get('status')}"}
    return {"confirmed": False, "basis": "no rollback ran"}


def _summary(report: Mapping[str, Any]) -> dict[str, Any]:
    verdicts = [a.get("verdict") for a in report["assets"]]
    severities = {s: 0 for s in SEVERITIES}
    for finding in report["findings"]:
        severities[finding["severity"]] += 1
    pages = report["people"]["pages"]
    return {
        "assets_total": len(verdicts),
        "assets_passed": verdicts.count("pass"),
        "assets_failed": verdicts.count("fail"),
        "assets_not_measured": verdicts.count("not-measured"),
        "order_violations": len(report["order_violations"]),
        "pages_sent": len(pages),
        "pages_acked": sum(1 for p in pages if p.get("acked_utc")),
        "findings": severities,
    }


# ---------------------------------------------------------------- findings


def build_findings(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every failed step, missed target, probe error, stop, order violation and exhausted chain."""
    pass_tiers = set(results.get("pass_tiers", []))
    raw: list[tuple[str, str, str, list[int]]] = []
    run_status = results.get("status")
    if run_status not in (None, "completed") and not results.get("stops"):
        raw.append(("high", f"Drill {run_status}", str(results.get("reason") or ""), []))
    for stop in results.get("stops", []):
        detail = f"{stop.get('reason') or ''} at {stop.get('utc')}".strip()
        raw.append(("high", f"Stop condition tripped: {stop.get('condition')}", detail, [int(stop["seq"])]))
    for step in results.get("steps", []):
        raw.extend(_step_findings(step))
    if _mapping(results.get("rollback")).get("status") == "failed":
        raw.append(("critical", "Rollback failed", "systems may not be back to normal", []))
    for asset in results.get("assets", []):
        raw.extend(_asset_findings(asset, asset.get("tier") in pass_tiers))
    for v in results.get("order_violations", []):
        dep_at = v.get("dependency_recovered_utc") or "never"
        detail = (
            f"{v['asset']} recovered at {v.get('asset_recovered_utc')}; {v['depends_on']} recovered {dep_at}"
        )
        title = f"Recovery order violated: {v['asset']} before {v['depends_on']}"
        raw.append(("medium", title, detail, [int(v["seq"])]))
    for page in results.get("pages", []):
        if not page.get("ok"):
            title = f"Page to {page.get('contact')} via {page.get('via')} failed"
            raw.append(("medium", title, str(page.get("reason") or ""), []))
    for chain in results.get("chains", []):
        if chain.get("exhausted"):
            raw.append(("high", f"Contact chain exhausted: {chain['name']}", "nobody acknowledged", []))
        elif chain.get("met") is False:
            first, target = _fmt_ms(chain.get("first_ack_ms")), _fmt_ms(chain.get("respond_within_ms"))
            detail = f"first ack after {first}, target {target}"
            raw.append(("medium", f"Contact chain {chain['name']} responded late", detail, []))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    ranked = sorted(enumerate(raw), key=lambda item: (order[item[1][0]], item[0]))
    return [
        {
            "id": f"F-{n:03d}",
            "severity": sev,
            "title": title,
            "detail": detail,
            "evidence_seqs": sorted(set(seqs)),
        }
        for n, (_, (sev, title, detail, seqs)) in enumerate(ranked, start=1)
    ]


def _step_findings(step: Mapping[str, Any]) -> list[tuple[str, str, str, list[int]]]:
    status, name, seq = step.get("status"), step.get("name"), [int(step.get("seq") or 0)]
    reason = str(step.get("reason") or "")
    phase = step.get("phase", "scenario")
    manual = step.get("manual")
    if status == "failed":
        return [("high", f"{phase.capitalize()} step failed: {name}", reason, seq)]
    if status == "aborted":
        return [("medium", f"{phase.capitalize()} step aborted: {name}", reason, seq)]
    if status == "skipped":
        return [("low", f"{phase.capitalize()} step skipped: {name}", reason, seq)]
    if manual and manual.get("auto"):
        return [
            ("info", f"Manual step answered automatically: {name}", f"answer '{manual.get('answer')}'", seq)
        ]
    return []


def _asset_findings(asset: Mapping[str, Any], decisive: bool) -> list[tuple[str, str, str, list[int]]]:
    out: list[tuple[str, str, str, list[int]]] = []
    aid, seqs = asset["id"], [int(s) for s in asset.get("evidence_seqs", [])]
    missed = "critical" if decisive else "high"
    targets = _mapping(asset.get("targets"))
    rto, rto_target, unc = asset.get("rto_ms"), targets.get("rto_ms"), asset.get("uncertainty_ms", 0)
    if asset.get("verdict") == "fail":
        found = False
        if rto is None and asset.get("t_detect_utc"):
            out.append((missed, f"{aid} did not recover", f"target RTO {_fmt_ms(rto_target)}", seqs))
            found = True
        elif rto is not None and rto_target is not None and rto > rto_target:
            detail = f"achieved {_fmt_ms(rto)} ± {_fmt_ms(unc)}, target {_fmt_ms(rto_target)}"
            out.append((missed, f"{aid} missed its RTO", detail, seqs))
            found = True
        rpo, rpo_target = _mapping(asset.get("rpo")), targets.get("rpo_ms")
        if rpo and rpo_target is not None and int(rpo.get("rpo_ms", 0)) > rpo_target:
            detail = (
                f"achieved {_fmt_ms(rpo.get('rpo_ms'))} ({rpo.get('lost_writes')} lost writes), "
                f"target {_fmt_ms(rpo_target)}"
            )
            out.append((missed, f"{aid} missed its RPO", detail, seqs))
            found = True
        ack = _mapping(asset.get("ack"))
        if ack and ack.get("met") is False:
            target = _fmt_ms(ack.get("target_ms"))
            if ack.get("ack_ms") is None:
                title, detail = (
                    f"{aid}: nobody acknowledged the page",
                    f"chain {ack.get('chain')}, target {target}",
                )
            else:
                title, detail = (
                    f"{aid} acknowledged late",
                    f"after {_fmt_ms(ack.get('ack_ms'))}, target {target}",
                )
            out.append(("high" if decisive else "medium", title, detail, seqs))
            found = True
        if not found:
            detail = "; ".join(str(r) for r in asset.get("reasons", [])) or "verdict fail"
            out.append((missed, f"{aid} failed its objectives", detail, seqs))
    elif asset.get("verdict") == "not-measured" and decisive:
        detail = "; ".join(str(r) for r in asset.get("reasons", [])) or "no outage or recovery was observed"
        out.append(("medium", f"{aid} was not measured", detail, seqs))
    for err in asset.get("probe_errors", []):
        title = f"Probe {err.get('probe')} on {aid}: {err.get('reason')}"
        out.append(("low", title, f"{err.get('count')} occurrence(s)", [int(err.get("first_seq") or 0)]))
    return out


# ---------------------------------------------------------------- small helpers


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in _list(value) if isinstance(v, Mapping)]


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _list(value)]


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return parse_duration_ms(str(value))
    except ValueError:
        return None


def _by_file(entry: Mapping[str, str]) -> str:
    return entry["file"]
