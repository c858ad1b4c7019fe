"""Render a report as JUnit XML: one test case per asset objective, so CI shows drills as tests.

Suites are tiers; cases are `<asset> RTO`, `<asset> RPO` (where a target is set) and
`<asset> ack` (where a page was measured). A missed objective is a <failure> with the numbers;
so is one not measured (the drill is incomplete); a waived or unaffected one is <skipped>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from drill.report._view import assets_by_tier, objectives
from drill.report.model import Report
from drill.report.signoff import SignOff
from drill.results import AssetResult, ObjectiveResult, PageResult
from drill.units import human_ms, human_pm

Case = tuple[str, str, str | None, str | None, int]  # name, classname, failure, skipped, time_ms


def render_junit(report: Report, sign_offs: Sequence[SignOff] = ()) -> str:
    """The JUnit XML document (UTF-8 text, deterministic). Sign-offs are not part of JUnit: a CI
    system reads test cases, not signatures."""
    del sign_offs
    playbook = report.playbook.name
    suites = ET.Element("testsuites", name=f"drill {playbook}")
    all_cases = 0
    all_failures = 0
    for tier, members in assets_by_tier(report):
        cases = [c for a in members for c in _cases(a, tier.name, report.people.pages)]
        failures = sum(1 for c in cases if c[2] is not None)
        skipped = sum(1 for c in cases if c[3] is not None)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{playbook}.{tier.name}",
            tests=str(len(cases)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            timestamp=report.run.started_utc or "",
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("run_id", report.run_id),
            ("report_id", report.report_id),
            ("verdict", report.verdict),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        for name, classname, failure, skip, time_ms in cases:
            case = ET.SubElement(suite, "testcase", name=name, classname=classname, time=_seconds(time_ms))
            if failure is not None:
                ET.SubElement(case, "failure", message=failure, type="objective-missed").text = failure
            elif skip is not None:
                ET.SubElement(case, "skipped", message=skip)
        all_cases += len(cases)
        all_failures += failures
    suites.set("tests", str(all_cases))
    suites.set("failures", str(all_failures))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _seconds(ms: int) -> str:
    """JUnit's time attribute in seconds, from integer ms without float formatting surprises."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def _missed(a: AssetResult, o: ObjectiveResult) -> str:
    target = human_ms(o.target_ms)
    if o.achieved_ms is None:
        return f"did not recover (target {target})"
    if o.objective == "rto":
        return f"RTO {human_pm(o.achieved_ms, a.uncertainty_ms)} exceeds target {target}"
    lost = a.rpo.lost_writes if a.rpo else 0
    return f"RPO {human_ms(o.achieved_ms)} ({lost} lost writes) exceeds target {target}"


def _cases(a: AssetResult, tier: str, pages: Sequence[PageResult] = ()) -> list[Case]:
    classname = f"{tier}.{a.id}"
    out: list[Case] = []
    for o in objectives(a):
        name, value = f"{a.id} {o.objective.upper()}", o.achieved_ms or 0
        if o.state == "met":
            out.append((name, classname, None, None, value))
        elif o.state == "missed":
            out.append((name, classname, _missed(a, o), None, value))
        elif o.state == "unaffected":
            out.append((name, classname, None, f"unaffected: {o.reason}", 0))
        elif o.waived:
            out.append((name, classname, None, f"waived: {o.waived} (not measured: {o.reason})", 0))
        elif not a.objectives:  # a drill 0.1 report: its verdict counted this as skipped
            out.append((name, classname, None, f"not measured: {o.reason}", 0))
        else:  # not demonstrated: the drill is incomplete, and CI must not read it as green
            out.append((name, classname, f"not measured: {o.reason}", None, 0))
    ack = a.ack
    if ack:
        if ack.met:
            out.append((f"{a.id} ack", classname, None, None, ack.ack_ms or 0))
        elif ack.ack_ms is None:
            msg = f"chain {ack.chain}: {_unanswered(ack.chain, pages)} (target {human_ms(ack.target_ms)})"
            out.append((f"{a.id} ack", classname, msg, None, 0))
        else:
            msg = f"chain {ack.chain}: acknowledged after {human_ms(ack.ack_ms)}, target {human_ms(ack.target_ms)}"
            out.append((f"{a.id} ack", classname, msg, None, ack.ack_ms))
    return out


def _unanswered(chain: str, pages: Sequence[PageResult]) -> str:
    """Why a chain has no acknowledgement: nobody was reached, or nobody answered."""
    mine = [p for p in pages if p.chain == chain]
    if mine and not any(p.ok for p in mine):
        reasons = "; ".join(f"{p.contact} via {p.via}: {p.reason}" for p in mine)
        return f"no page delivered ({reasons})"
    return "delivered, nobody acknowledged" if mine else "nobody paged"
