"""Render a report as JUnit XML: one test case per asset objective, so CI shows drills as tests.

Suites are tiers; cases are `<asset> RTO`, `<asset> RPO` (where a target is set) and
`<asset> ack` (where a page was measured). A missed objective is a <failure> with the numbers;
an objective the drill could not measure is <skipped>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from drill.report._view import assets_by_tier, fmt_ms, fmt_pm

Case = tuple[str, str, str | None, str | None, int]  # name, classname, failure, skipped, time_ms


def render_junit(report: Mapping[str, Any]) -> str:
    """The JUnit XML document (UTF-8 text, deterministic)."""
    suites = ET.Element("testsuites", name=f"drill {report['playbook']['name']}")
    all_cases = 0
    all_failures = 0
    for tier, members in assets_by_tier(report):
        cases = [c for a in members for c in _cases(a, str(tier["name"]))]
        failures = sum(1 for c in cases if c[2] is not None)
        skipped = sum(1 for c in cases if c[3] is not None)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{report['playbook']['name']}.{tier['name']}",
            tests=str(len(cases)),
            failures=str(failures),
            errors="0",
            skipped=str(skipped),
            timestamp=str(report["run"].get("started_utc") or ""),
        )
        props = ET.SubElement(suite, "properties")
        for key in ("run_id", "report_id", "verdict"):
            ET.SubElement(props, "property", name=key, value=str(report[key]))
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


def _cases(a: Mapping[str, Any], tier: str) -> list[Case]:
    classname = f"{tier}.{a['id']}"
    unc = a.get("uncertainty_ms")
    out: list[Case] = []
    target = int(a["targets"]["rto_ms"])
    rto = a.get("rto_ms")
    if rto is None:
        if a.get("t_detect_utc"):
            out.append((f"{a['id']} RTO", classname, f"did not recover (target {fmt_ms(target)})", None, 0))
        else:
            out.append(
                (
                    f"{a['id']} RTO",
                    classname,
                    None,
                    "not measured: " + ("; ".join(a.get("reasons") or []) or "no outage observed"),
                    0,
                )
            )
    elif rto > target:
        msg = f"RTO {fmt_pm(rto, unc)} exceeds target {fmt_ms(target)}"
        out.append((f"{a['id']} RTO", classname, msg, None, int(rto)))
    else:
        out.append((f"{a['id']} RTO", classname, None, None, int(rto)))
    rpo_target = a["targets"].get("rpo_ms")
    if rpo_target is not None:
        rpo = a.get("rpo")
        if not rpo:
            out.append((f"{a['id']} RPO", classname, None, "not measured: no canary probe", 0))
        elif int(rpo["rpo_ms"]) > int(rpo_target):
            msg = (
                f"RPO {fmt_ms(rpo['rpo_ms'])} ({rpo['lost_writes']} lost writes) "
                f"exceeds target {fmt_ms(rpo_target)}"
            )
            out.append((f"{a['id']} RPO", classname, msg, None, int(rpo["rpo_ms"])))
        else:
            out.append((f"{a['id']} RPO", classname, None, None, int(rpo["rpo_ms"])))
    ack = a.get("ack")
    if ack:
        ack_ms = ack.get("ack_ms")
        if ack.get("met"):
            out.append((f"{a['id']} ack", classname, None, None, int(ack_ms or 0)))
        elif ack_ms is None:
            msg = f"chain {ack['chain']}: nobody acknowledged (target {fmt_ms(ack.get('target_ms'))})"
            out.append((f"{a['id']} ack", classname, msg, None, 0))
        else:
            target_ms = fmt_ms(ack.get("target_ms"))
            msg = f"chain {ack['chain']}: acknowledged after {fmt_ms(ack_ms)}, target {target_ms}"
            out.append((f"{a['id']} ack", classname, msg, None, int(ack_ms)))
    return out
