"""Start-up time of the CLI: `drill --version` and `drill validate` of a small playbook.

Goal: under 200 ms each on the 2-core development machine. As references measured in the same
run: the bare interpreter (`python -c pass`) and a one-command click program (`import click`),
the floor any click CLI pays; a slow or busy machine shows in them too. Each command runs 15
times; the median counts (wall time, with the CPU time of the child beside it). Then the
slowest imports of `drill validate` from `python -X importtime`, so a regression names itself.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 15
GOAL_MS = 200.0
ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "playbooks" / "demo.yaml"


def timed(argv: list[str]) -> tuple[float, float]:
    """Median wall and child-CPU milliseconds of RUNS executions of argv."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append((time.perf_counter() - start) * 1000)
        after = os.times()
        cpus.append(
            (after.children_user + after.children_system - before.children_user - before.children_system)
            * 1000
        )
    return statistics.median(walls), statistics.median(cpus)


def slowest_imports(argv: list[str], count: int = 8) -> list[tuple[int, str]]:
    """The `count` largest cumulative import times (µs) of one run of argv under -X importtime."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, check=True
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        click_app = Path(tmp) / "app.py"
        click_app.write_text("import click\n@click.command()\ndef app(): pass\napp()\n")
        cases = {
            "python -c pass (reference)": [python, "-c", "pass"],
            "one-command click app (reference)": [python, str(click_app)],
            "drill --version": [python, "-m", "drill", "--version"],
            f"drill validate {SMALL.name}": [python, "-m", "drill", "validate", str(SMALL)],
        }
        figures = {name: timed(argv) for name, argv in cases.items()}
    for name, (wall, cpu) in figures.items():
        print(f"{name:<36} median {wall:6.1f} ms wall, {cpu:6.1f} ms CPU")
    failed = False
    for name in ("drill --version", f"drill validate {SMALL.name}"):
        wall = figures[name][0]
        met = wall < GOAL_MS
        failed |= not met
        print(f"goal {name}: < {GOAL_MS:.0f} ms: {wall:.0f} ms, {'met' if met else 'MISSED'}")
    print("slowest imports of drill validate (cumulative):")
    for micros, module in slowest_imports(["-m", "drill", "validate", str(SMALL)]):
        print(f"  {micros / 1000:6.1f} ms  {module.strip()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
