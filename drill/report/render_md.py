"""Render a report as Markdown for wikis and tickets (GitHub/GitLab flavoured tables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drill.report._view import (
    ack_text,
    assets_by_tier,
    findings_by_severity,
    fmt_bp,
    fmt_ms,
    fmt_pm,
    fmt_utc,
    rpo_text,
)

_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "aborted": "⛔ ABORTED", "not-measured": "➖ not measured"}


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole report as one Markdown document (deterministic: same report, same text)."""
    parts = [
        _header(report),
        _summary(report),
        _targets(report),
        _order(report),
        _findings(report),
        _people(report),
        _steps(report),
        _scope(report),
        _evidence(report),
    ]
    return "\n".join(p for p in parts if p).rstrip() + "\n"


def _cell(value: Any) -> str:
    """Table cells: no newlines, no unescaped pipes."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or "—"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _header(r: Mapping[str, Any]) -> str:
    pb, run = r["playbook"], r["run"]
    title = f"# DR drill report: {pb['name']}" + (f" ({pb['quarter']})" if pb.get("quarter") else "")
    lines = [
        title,
        "",
        f"**Verdict: {_BADGE.get(r['verdict'], r['verdict'])}** · "
        f"run `{r['run_id']}` · report `{r['report_id']}`",
        "",
        f"- Test type: {r['exercise']['test_type']}; "
        f"playbook version {pb.get('version') or '—'}, owner {pb.get('owner') or '—'}",
        f"- Planned: {fmt_utc(run.get('planned_start_utc'))} → {fmt_utc(run.get('planned_end_utc'))}",
        f"- Actual: {fmt_utc(run.get('started_utc'))} → {fmt_utc(run.get('finished_utc'))} "
        f"({fmt_ms(run.get('duration_ms'))})",
        f"- Run by {run.get('operator') or '—'} with drill {run.get('run_tool_version') or '—'}; "
        f"status {run['status']}" + (f" ({run['reason']})" if run.get("reason") else ""),
        f"- Decisive tiers: {', '.join(run.get('pass_tiers') or []) or '—'}",
    ]
    return "\n".join(lines) + "\n"


def _summary(r: Mapping[str, Any]) -> str:
    s = r["summary"]
    counts = ", ".join(f"{n} {sev}" for sev, n in findings_by_severity(r) if n) or "none"
    lines = [
        "## Summary",
        "",
        f"- Assets: {s['assets_total']} ({s['assets_passed']} pass, {s['assets_failed']} fail, "
        f"{s['assets_not_measured']} not measured)",
        f"- Findings: {counts}",
        f"- Recovery-order violations: {s['order_violations']}",
        f"- Pages: {s['pages_sent']} sent, {s['pages_acked']} acknowledged",
        f"- Return to normal: {'confirmed' if r['cleanup']['confirmed'] else 'NOT confirmed'} "
        f"({r['cleanup']['basis']})",
    ]
    return "\n".join(lines) + "\n"


def _targets(r: Mapping[str, Any]) -> str:
    out = ["## Targets vs achieved", ""]
    head = [
        "Asset",
        "Owner",
        "RTO target",
        "Detection",
        "Switchover",
        "RTO achieved",
        "RPO target",
        "RPO achieved",
        "Avail.",
        "Ack",
        "Verdict",
    ]
    for tier, members in assets_by_tier(r):
        out.append(
            f"### {tier['name']} (RTO {fmt_ms(tier.get('rto_ms'))}, RPO {fmt_ms(tier.get('rpo_ms'))}): "
            f"{_BADGE.get(str(tier.get('verdict')), tier.get('verdict'))}"
        )
        out.append("")
        rows = [
            [
                a["id"],
                a.get("owner", ""),
                fmt_ms(a["targets"]["rto_ms"]),
                fmt_pm(a.get("detection_ms"), a.get("uncertainty_ms")),
                fmt_pm(a.get("switchover_ms"), a.get("uncertainty_ms")),
                fmt_pm(a.get("rto_ms"), a.get("uncertainty_ms")),
                fmt_ms(a["targets"].get("rpo_ms")),
                rpo_text(a),
                fmt_bp(a.get("availability_bp")),
                ack_text(a),
                _BADGE.get(a["verdict"], a["verdict"]),
            ]
            for a in members
        ]
        out.append(_table(head, rows))
    return "\n".join(out)


def _order(r: Mapping[str, Any]) -> str:
    if not r["order_violations"]:
        return ""
    rows = [
        [
            v["asset"],
            v["depends_on"],
            fmt_utc(v.get("asset_recovered_utc")),
            fmt_utc(v.get("dependency_recovered_utc")),
            v["seq"],
        ]
        for v in r["order_violations"]
    ]
    return "## Recovery-order violations\n\n" + _table(
        ["Asset", "Depends on", "Asset recovered", "Dependency recovered", "Event"], rows
    )


def _findings(r: Mapping[str, Any]) -> str:
    if not r["findings"]:
        return "## Findings\n\nNone.\n"
    rows = [
        [f["id"], f["severity"], f["title"], f["detail"], ", ".join(str(s) for s in f["evidence_seqs"])]
        for f in r["findings"]
    ]
    return "## Findings\n\n" + _table(["ID", "Severity", "Finding", "Detail", "Evidence (event seq)"], rows)


def _people(r: Mapping[str, Any]) -> str:
    people = r["people"]
    if not people["pages"] and not people["chains"]:
        return ""
    out = ["## People", ""]
    if people["chains"]:
        rows = [
            [
                c["name"],
                fmt_ms(c.get("respond_within_ms")),
                fmt_ms(c.get("first_ack_ms")),
                {True: "yes", False: "no", None: "—"}[c.get("met")],
                "yes" if c.get("exhausted") else "no",
            ]
            for c in people["chains"]
        ]
        out.append(_table(["Chain", "Respond within", "First ack", "Met", "Exhausted"], rows))
    if people["pages"]:
        rows = [
            [
                p["contact"],
                p["chain"],
                p["via"],
                ", ".join(p.get("assets") or []),
                fmt_utc(p.get("sent_utc")),
                "sent" if p.get("ok") else f"failed: {p.get('reason')}",
                fmt_ms(p.get("ack_ms")),
                fmt_ms(p.get("ack_within_ms")),
                {True: "yes", False: "no", None: "—"}[p.get("met")],
            ]
            for p in people["pages"]
        ]
        out.append(
            _table(
                [
                    "Contact",
                    "Chain",
                    "Via",
                    "Assets",
                    "Paged",
                    "Delivery",
                    "Time to ack",
                    "Ack within",
                    "Met",
                ],
                rows,
            )
        )
    return "\n".join(out)


def _steps(r: Mapping[str, Any]) -> str:
    rows = []
    for s in r["steps"]:
        manual = s.get("manual")
        note = s.get("reason") or ""
        if manual:
            how = "automatically" if manual.get("auto") else f"by {manual.get('who') or '?'}"
            note = f"answered {manual.get('answer')} {how}" + (f"; {note}" if note else "")
        rows.append(
            [
                s["seq"],
                s["phase"],
                s["name"],
                s["kind"],
                s["status"],
                fmt_utc(s.get("started_utc")),
                fmt_ms(s.get("duration_ms")),
                s.get("attempts", 0),
                note,
            ]
        )
    out = "## Step timeline\n\n" + _table(
        ["Event", "Phase", "Step", "Kind", "Status", "Started", "Took", "Attempts", "Notes"], rows
    )
    if r["stops"]:
        out += "\n### Stop conditions tripped\n\n" + _table(
            ["Condition", "Reason", "At", "Event"],
            [[s["condition"], s["reason"], fmt_utc(s["utc"]), s["seq"]] for s in r["stops"]],
        )
    rb = r["rollback"]
    out += f"\nRollback: {'ran' if rb.get('ran') else 'not run'} ({rb.get('status')}).\n"
    return out


def _scope(r: Mapping[str, Any]) -> str:
    ex = r["exercise"]
    out = ["## Exercise", ""]
    for title, items in (
        ("Objectives", ex["objectives"]),
        ("Success criteria", ex["success_criteria"]),
        ("Assumptions", ex["assumptions"]),
        ("Exclusions", r["scope"]["exclusions"]),
    ):
        if items:
            out += [f"**{title}**", "", *[f"- {_cell(i)}" for i in items], ""]
    if r["participants"]:
        out.append(
            _table(
                ["Participant", "Role", "Contact", "Organisation"],
                [[p["name"], p["role"], p["contact"], p["organisation"]] for p in r["participants"]],
            )
        )
    if r["scope"]["third_parties"]:
        out.append(
            _table(["Third party", "Role"], [[t["name"], t["role"]] for t in r["scope"]["third_parties"]])
        )
    if ex.get("business_impact_ref") or ex.get("previous_drill"):
        out.append(
            f"Business impact analysis: {ex.get('business_impact_ref') or '—'}; "
            f"previous drill: {ex.get('previous_drill') or '—'}\n"
        )
    return "\n".join(out)


def _evidence(r: Mapping[str, Any]) -> str:
    j, pb = r["journal"], r["playbook"]
    rows = [[j["file"], j["sha256"]], *[[e["file"], e["sha256"]] for e in r["evidence"]]]
    out = "## Evidence\n\n" + _table(["File", "SHA-256"], rows)
    out += f"\nJournal: {j['events']} events, chain head `{j['head']}`.\n"
    out += f"Playbook `{pb.get('path') or pb['name']}` SHA-256 `{pb.get('sha256') or '—'}`.\n"
    signer = r.get("prepared_by")
    if signer:
        out += f"Prepared by `{signer['principal']}`, key `{signer['fingerprint']}`.\n"
    out += f"Generated {fmt_utc(r['generated_utc'])} by {r['tool']['name']} {r['tool']['version']}.\n"
    return out
