"""Render a report as Markdown for wikis and tickets (GitHub/GitLab flavoured tables)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from drill.report._view import (
    PREVIOUS_HEAD,
    SITE_VIEWS_HEAD,
    SITES_HEAD,
    TRUST_NOTE,
    SignOffBlock,
    ack_text,
    assets_by_tier,
    findings_by_severity,
    fmt_utc,
    previous_rows,
    previous_title,
    rpo_text,
    rto_text,
    sign_off_block,
    sign_off_status,
    site_rows,
    site_view_rows,
)
from drill.report.model import Report
from drill.report.signoff import SignOff
from drill.results import SteadyStateResult
from drill.units import human_bp, human_ms, human_pm

_YES_NO = {True: "yes", False: "no", None: "—"}
_BADGE = {
    "pass": "✅ PASS",
    "fail": "❌ FAIL",
    "aborted": "⛔ ABORTED",
    "incomplete": "⚠️ INCOMPLETE",
    "unaffected": "➖ unaffected",
    "not-measured": "➖ not measured",
    "not-run": "⛔ NOT RUN",
}


def render_markdown(report: Report, sign_offs: Sequence[SignOff] = ()) -> str:
    """The whole report as one Markdown document (deterministic: same report and sign-offs, same
    text); `sign_offs` are the signatures present beside report.json."""
    sign_off = sign_off_block(report, sign_offs)
    parts = [
        _header(report, sign_off),
        _summary(report),
        _targets(report),
        _previous(report),
        _sites(report),
        _order(report),
        _findings(report),
        _people(report),
        _steps(report),
        _scope(report),
        _evidence(report),
        _sign_off(sign_off),
    ]
    return "\n".join(p for p in parts if p).rstrip() + "\n"


def _cell(value: object) -> str:
    """Table cells: no newlines, no unescaped pipes."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or "—"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _code(value: str) -> str:
    """An inline code span (outside tables) that holds any text on one line: its fence is longer
    than any run of backticks inside, so nothing in it can end it early."""
    text = " ".join(value.split()) or "—"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _header(r: Report, sign_off: SignOffBlock) -> str:
    pb, run = r.playbook, r.run
    title = f"# DR drill report: {pb.name}" + (f" ({pb.quarter})" if pb.quarter else "")
    lines = [
        title,
        "",
        f"**Verdict: {_BADGE.get(r.verdict, r.verdict)}** · run `{r.run_id}` · report `{r.report_id}`",
        "",
        f"- Test type: {r.exercise.test_type}; playbook version {pb.version or '—'}, owner {pb.owner or '—'}",
        f"- Planned: {fmt_utc(run.planned_start_utc)} → {fmt_utc(run.planned_end_utc)}",
        f"- Actual: {fmt_utc(run.started_utc)} → {fmt_utc(run.finished_utc)} ({human_ms(run.duration_ms)})",
        f"- Run by {run.operator or '—'} with drill {run.run_tool_version or '—'}; "
        f"status {run.status}" + (f" ({run.reason})" if run.reason else ""),
        f"- Decisive tiers: {', '.join(run.pass_tiers) or '—'}",
        *_steady(run.steady_state),
        f"- Sign-off: {_cell(sign_off_status(sign_off))}",
    ]
    return "\n".join(lines) + "\n"


def _steady(steady: SteadyStateResult | None) -> list[str]:
    if steady is None:
        return []
    if steady.met:
        return ["- Steady state: every asset up before the scenario"]
    allowed = "; run anyway (--allow-degraded)" if steady.degraded_allowed else "; nothing was changed"
    return [f"- Steady state NOT met: {', '.join(steady.not_up)} not up at the start{allowed}"]


def _summary(r: Report) -> str:
    s = r.summary
    counts = ", ".join(f"{n} {sev}" for sev, n in findings_by_severity(r) if n) or "none"
    lines = [
        "## Summary",
        "",
        f"- Assets: {s.assets_total} ({s.assets_passed} pass, {s.assets_failed} fail, "
        f"{s.assets_not_measured} not measured)",
        f"- Findings: {counts}",
        f"- Recovery-order violations: {s.order_violations}",
        f"- Pages: {s.pages_sent} sent, {s.pages_acked} acknowledged",
        f"- Return to normal: {'confirmed' if r.cleanup.confirmed else 'NOT confirmed'} ({r.cleanup.basis})",
    ]
    return "\n".join(lines) + "\n"


def _targets(r: Report) -> str:
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
            f"### {tier.name} (RTO {human_ms(tier.rto_ms)}, RPO {human_ms(tier.rpo_ms)}): "
            f"{_BADGE.get(tier.verdict, tier.verdict)}"
        )
        out.append("")
        rows = [
            [
                a.id,
                a.owner,
                human_ms(a.targets.rto_ms),
                human_pm(a.detection_ms, a.uncertainty_ms),
                human_pm(a.switchover_ms, a.uncertainty_ms),
                rto_text(a),
                human_ms(a.targets.rpo_ms),
                rpo_text(a),
                human_bp(a.availability_bp),
                ack_text(a),
                _BADGE.get(a.verdict, a.verdict),
            ]
            for a in members
        ]
        out.append(_table(head, rows))
    return "\n".join(out)


def _previous(r: Report) -> str:
    if r.previous is None:
        return ""
    head = f"## Change against the previous drill\n\n{_cell(previous_title(r))}\n\n"
    return head + _table(PREVIOUS_HEAD, previous_rows(r))


def _sites(r: Report) -> str:
    if not r.sites:
        return ""
    head = "## Sites\n\nProbes run at several sites: an asset is down when at least its quorum of sites see it down.\n\n"
    return head + _table(SITES_HEAD, site_rows(r)) + "\n" + _table(SITE_VIEWS_HEAD, site_view_rows(r))


def _order(r: Report) -> str:
    if not r.order_violations:
        return ""
    rows: list[list[object]] = [
        [v.asset, v.depends_on, fmt_utc(v.asset_recovered_utc), fmt_utc(v.dependency_recovered_utc), v.seq]
        for v in r.order_violations
    ]
    return "## Recovery-order violations\n\n" + _table(
        ["Asset", "Depends on", "Asset recovered", "Dependency recovered", "Event"], rows
    )


def _findings(r: Report) -> str:
    if not r.findings:
        return "## Findings\n\nNone.\n"
    rows: list[list[object]] = [
        [f.id, f.severity, f.title, f.detail, ", ".join(str(s) for s in f.evidence_seqs)] for f in r.findings
    ]
    return "## Findings\n\n" + _table(["ID", "Severity", "Finding", "Detail", "Evidence (event seq)"], rows)


def _people(r: Report) -> str:
    people = r.people
    if not people.pages and not people.chains:
        return ""
    out = ["## People", ""]
    if people.chains:
        rows: list[list[object]] = [
            [
                c.name,
                human_ms(c.respond_within_ms),
                human_ms(c.first_ack_ms),
                _YES_NO[c.met],
                "yes" if c.exhausted else "no",
            ]
            for c in people.chains
        ]
        out.append(_table(["Chain", "Respond within", "First ack", "Met", "Exhausted"], rows))
    if people.pages:
        rows = [
            [
                p.contact,
                p.chain,
                p.via,
                ", ".join(p.assets),
                fmt_utc(p.sent_utc),
                "sent" if p.ok else f"failed: {p.reason}",
                human_ms(p.ack_ms),
                human_ms(p.ack_within_ms),
                _YES_NO[p.met],
            ]
            for p in people.pages
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


def _steps(r: Report) -> str:
    rows: list[list[object]] = []
    for s in r.steps:
        manual = s.manual
        note = s.reason
        if manual:
            how = "automatically" if manual.auto else f"by {manual.who or '?'}"
            note = f"answered {manual.answer} {how}" + (f"; {note}" if note else "")
        rows.append(
            [
                s.seq,
                s.phase,
                s.name,
                s.kind,
                s.status,
                fmt_utc(s.started_utc),
                human_ms(s.duration_ms),
                s.attempts,
                note,
            ]
        )
    out = "## Step timeline\n\n" + _table(
        ["Event", "Phase", "Step", "Kind", "Status", "Started", "Took", "Attempts", "Notes"], rows
    )
    if r.stops:
        out += "\n### Stop conditions tripped\n\n" + _table(
            ["Condition", "Reason", "At", "Event"],
            [[s.condition, s.reason, fmt_utc(s.utc), s.seq] for s in r.stops],
        )
    rb = r.rollback
    out += f"\nRollback: {'ran' if rb.ran else 'not run'} ({rb.status}).\n"
    return out


def _scope(r: Report) -> str:
    ex = r.exercise
    out = ["## Exercise", ""]
    for title, items in (
        ("Objectives", ex.objectives),
        ("Success criteria", ex.success_criteria),
        ("Assumptions", ex.assumptions),
        ("Exclusions", r.scope.exclusions),
    ):
        if items:
            out += [f"**{title}**", "", *[f"- {_cell(i)}" for i in items], ""]
    if r.participants:
        out.append(
            _table(
                ["Participant", "Role", "Contact", "Organisation"],
                [[p.name, p.role, p.contact, p.organisation] for p in r.participants],
            )
        )
    if r.scope.third_parties:
        out.append(_table(["Third party", "Role"], [[t.name, t.role] for t in r.scope.third_parties]))
    if ex.business_impact_ref or ex.previous_drill:
        out.append(
            f"Business impact analysis: {ex.business_impact_ref or '—'}; "
            f"previous drill: {ex.previous_drill or '—'}\n"
        )
    return "\n".join(out)


def _evidence(r: Report) -> str:
    j, pb = r.journal, r.playbook
    rows: list[Sequence[object]] = [[j.file, j.sha256], *[[e.file, e.sha256] for e in r.evidence]]
    out = "## Evidence\n\n" + _table(["File", "SHA-256"], rows)
    out += f"\nJournal: {j.events} events, chain head `{j.head}`.\n"
    out += f"Playbook `{pb.path or pb.name}` SHA-256 `{pb.sha256 or '—'}`.\n"
    out += f"Generated {fmt_utc(r.generated_utc)} by {r.tool.name} {r.tool.version}.\n"
    return out


def _sign_off(block: SignOffBlock) -> str:
    """Every signature beside report.json, or "Not signed"; never a judgement of trust."""
    out = "## Sign-off\n\n"
    if block.signed:
        rows = [
            [r.principal, r.role + (f"; {r.warning}" if r.warning else ""), r.fingerprint, r.file]
            for r in block.rows
        ]
        out += _table(["Signer", "Role", "Key fingerprint", "Signature file"], rows)
    else:
        out += (
            "**Not signed.** No signature file (report.json.PRINCIPAL.sig) is present beside report.json.\n"
        )
    if block.preparer_missing:
        out += (
            f"\nThe report names {_code(block.preparer)} (key {_code(block.preparer_fingerprint)}) as its "
            f"preparer, but no signature by {_code(block.preparer)} is present.\n"
        )
    elif not block.preparer:
        out += "\nThe report names no preparer.\n"
    return out + f"\n{TRUST_NOTE}\n"
