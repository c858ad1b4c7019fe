"""Load + validate + plan a generated 10,000-asset playbook; goal: under 2 s on a 2-core machine.

Prints each stage, and as a reference measured in the same run the bare libyaml event parse of
the same file (the floor any YAML loader with positions pays), so a slow machine shows as such.
Wall and CPU time are both printed: on a shared machine the CPU time is the steadier figure.
The best of three runs counts (the first also pays for compiling the schemas).
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path

import yaml

from drill.errors import Diagnostic
from drill.evidence.snapshot import Plan
from drill.plan import build_plan
from drill.playbook.load import load_document
from drill.playbook.validate import check_document

ASSETS = 10_000
GOAL_S = 2.0
KINDS = [
    'http: {{url: "http://127.0.0.1:8080/a{i}/healthz", expect_status: 200}}',
    "tcp: {{host: 127.0.0.1, port: {port}}}",
    'postgres: {{dsn: "${{env:PG_DSN_{i}}}"}}',
]


def generate(count: int) -> str:
    """A playbook with `count` assets over 3 tiers, chains of dependencies, two contact chains."""
    out = [
        "apiVersion: drill/v1",
        "kind: Playbook",
        "metadata: {name: bench, owner: bench@example.com, quarter: 2026-Q4, test_type: functional}",
        "settings: {interval: 1s, timeout: 1s, fall: 2, rise: 2}",
        "tiers:",
        "  - {name: tier-0, rto: 15m, rpo: 0, waive: {rpo: generated}}",
        "  - {name: tier-1, rto: 1h, rpo: 5m, waive: {rpo: generated}}",
        "  - {name: tier-2, rto: 4h}",
        "contacts:",
        "  chains:",
        "    ops: {contacts: [{name: Ana, via: webhook, url: 'http://127.0.0.1:1/page', ack_within: 5m}]}",
        "    apps: {contacts: [{name: Ben, via: email, to: ben@example.com, ack_within: 10m}]}",
        "assets:",
    ]
    per_tier = count // 3 + 1
    for i in range(count):
        tier = i // per_tier
        deps = [f"a{i - 1}"] if i % per_tier and i % 7 else []
        if i % per_tier > 10 and i % 5 == 0:
            deps.append(f"a{i - 10}")
        out += [
            f"  - id: a{i}",
            f"    tier: tier-{tier}",
            f"    owner: team-{i % 40}",
            f"    description: generated asset number {i}",
            f"    depends_on: [{', '.join(deps)}]",
            f"    contact_chain: {'ops' if i % 2 else 'apps'}",
            "    probes:",
            "      - name: health",
            "        " + KINDS[i % 3].format(i=i, port=1024 + i % 60000),
            "        interval: 2s",
        ]
    out += [
        "scenario:",
        "  - {name: declare, mark: disaster}",
        "  - {name: wait down, wait_for: {tier: tier-0, state: down, within: 5m}}",
        "  - {name: fail over, action: {http: {url: 'http://127.0.0.1:1/failover'}},"
        " retry: {attempts: 3, wait: 5s}}",
        "  - {name: wait up, wait_for: {all_assets: true, state: up, within: 1h}}",
        "  - {name: check, manual: all good?, timeout: 10m}",
    ]
    return "\n".join(out) + "\n"


def measure(path: Path, text: str) -> tuple[float, list[float], float, list[Diagnostic], Plan]:
    gc.collect()
    t0 = time.perf_counter()
    for _ in yaml.parse(text, Loader=yaml.CSafeLoader):
        pass
    reference = time.perf_counter() - t0
    c0, t0 = time.process_time(), time.perf_counter()
    doc = load_document(path)
    t1 = time.perf_counter()
    playbook, diagnostics = check_document(doc)
    t2 = time.perf_counter()
    assert playbook is not None, diagnostics[:5]
    plan = build_plan(playbook)
    t3 = time.perf_counter()
    return reference, [t1 - t0, t2 - t1, t3 - t2], time.process_time() - c0, diagnostics, plan


def main() -> int:
    text = generate(ASSETS)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.yaml"
        path.write_text(text)
        runs = [measure(path, text) for _ in range(3)]
    reference, stages, cpu, diagnostics, plan = min(runs, key=lambda r: sum(r[1]))
    total = sum(stages)
    print(
        f"playbook: {ASSETS} assets, {len(text.splitlines())} lines, {len(text) / 1e6:.1f} MB; best of 3 runs"
    )
    print(f"reference (bare libyaml event parse): {reference:.3f} s")
    print(
        f"load {stages[0]:.3f} s | validate+build {stages[1]:.3f} s | plan {stages[2]:.3f} s | CPU {cpu:.3f} s"
    )
    print(
        f"total {total:.3f} s = {total / reference:.1f} x reference;"
        f" goal < {GOAL_S:.1f} s: {'met' if total < GOAL_S else 'MISSED'}"
    )
    print(
        f"plan: {len(plan.tiers)} tiers, {sum(len(t.waves) for t in plan.tiers)} waves,"
        f" {len(diagnostics)} warnings"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
