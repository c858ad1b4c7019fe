"""`drill history add` over 100 evidence folders: wall and CPU time, per folder, the index's size,
against `verify_report_dir` alone over the same folders in the same run (the index's own overhead).

The folders are real: N drills of playbooks/demo.yaml (its metadata.quarter varied) against the
embedded lab, in-process, each against a lab of its own, CONCURRENCY at a time, each report
signed by a throw-away operator key (made here, deleted afterwards). Copies of one folder would
not do: they would share a report SHA-256 and be one entry. Making them takes a while (each
drill lasts about 6 s); that time is printed too, but is not what is measured.

Measured, REPEATS times each, alternating, the best kept (the files are in the page cache after
the first pass, as they are for a second `add`):
  verify     verify_report_dir(folder, allowed_signers) for each folder: what `add` cannot avoid
  add        add_folders(new index, folders, allowed_signers): verify + derive + SQLite, one file
  re-add     add_folders again into the same index (every entry replaced)
  records    History.records() of all, and records(asset=..., quarter=...) (reading the index)

Goal: none imposed (issue 14 asks for the figures). Run: .venv/bin/python benchmarks/bench_history.py [N]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from drill.lab.lab import Lab
from drill.playbook.validate import load_playbook
from drill.practice.history import History, add_folders
from drill.report.evidence import write_evidence
from drill.report.sign import generate_keypair, public_key_line
from drill.report.verify import verify_report_dir
from drill.resources import shipped_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions

N = 100
CONCURRENCY = 25
REPEATS = 3
QUARTERS = ("2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4")


async def _one(playbook: Path, runs: Path, key: Path) -> Path:
    async with Lab.start() as lab:
        options = RunOptions(
            runs_dir=runs, auto_confirm=True, rollback="always", env={**os.environ, **lab.env()}
        )
        outcome = await run_drill(load_playbook(playbook), options)
    write_evidence(outcome.run_dir, sign_key=key, signer="operator")
    return outcome.run_dir


def _playbooks(root: Path) -> list[Path]:
    """The demo playbook once per quarter (the same definition: one playbook over a year)."""
    text = Path(shipped_playbook("demo.yaml")).read_text(encoding="utf-8")
    playbooks = []
    for quarter in QUARTERS:
        path = root / f"demo-{quarter}.yaml"
        path.write_text(text.replace("  quarter: 2026-Q4\n", f"  quarter: {quarter}\n", 1), encoding="utf-8")
        playbooks.append(path)
    return playbooks


async def _make(n: int, playbooks: list[Path], runs: Path, key: Path) -> list[Path]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(i: int) -> Path:
        async with limit:
            return await _one(playbooks[i % len(playbooks)], runs, key)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(bounded(i)) for i in range(n)]
    return [task.result() for task in tasks]


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else N
    with tempfile.TemporaryDirectory(prefix="drill-bench-history-") as tmp:
        root = Path(tmp)
        key = root / "operator"
        public = generate_keypair(key, comment="operator@bench (throw-away)")
        trust = root / "allowed_signers"
        trust.write_text(
            f'operator namespaces="drill-report-v1" {public_key_line(public)}\n', encoding="ascii"
        )
        began = time.perf_counter()
        folders = asyncio.run(_make(n, _playbooks(root), root / "runs", key))
        made_s = time.perf_counter() - began
        verdicts = [verify_report_dir(f, trust).verdict for f in folders]
        size = sum(f.stat().st_size for folder in folders for f in folder.iterdir())

        index = root / "index.sqlite"
        best: dict[str, tuple[float, float]] = {}

        def keep(name: str, figures: tuple[float, float]) -> None:
            if name not in best or figures[0] < best[name][0]:
                best[name] = figures

        for repeat in range(REPEATS):
            keep("verify", _timed(lambda: [verify_report_dir(f, trust) for f in folders]))
            index.unlink(missing_ok=True)
            keep("add", _timed(lambda: add_folders(index, folders, trust)))
            keep("re-add", _timed(lambda: add_folders(index, folders, trust)))
            with History.open(index) as history:
                keep("records", _timed(history.records))
                keep("filtered", _timed(lambda: history.records(asset="orders-kv", quarter="2026-Q3")))
            if repeat == 0:
                with History.open(index) as history:
                    indexed = history.records()
        index_size = index.stat().st_size

    per = {name: (wall / n * 1000, cpu / n * 1000) for name, (wall, cpu) in best.items()}
    print(
        f"folders:            {n} real signed drills ({sum(v == 'pass' for v in verdicts)} pass), made in "
        f"{made_s:.1f} s ({CONCURRENCY} at a time); {size / n / 1024:.0f} KiB of evidence each"
    )
    print(f"indexed:            {len(indexed)} entries ({sum(r.countable for r in indexed)} verified)")
    print(f"{'':20}{'wall s':>9}{'CPU s':>9}{'wall ms/folder':>16}{'CPU ms/folder':>15}")
    for name, label in (
        ("verify", "verify alone"),
        ("add", "history add"),
        ("re-add", "add again"),
        ("records", "records() all"),
        ("filtered", "records(filter)"),
    ):
        wall, cpu = best[name]
        print(f"{label:20}{wall:9.3f}{cpu:9.3f}{per[name][0]:16.2f}{per[name][1]:15.2f}")
    overhead = best["add"][0] - best["verify"][0]
    print(
        f"index overhead:     {overhead:.3f} s wall ({overhead / n * 1000:.2f} ms a folder) over verifying alone"
    )
    print(f"index file size:    {index_size} bytes ({index_size / n:.0f} bytes a run)")
    print(f"best of {REPEATS}; Python {sys.version.split()[0]}; goal: none imposed (figures for issue 14)")


if __name__ == "__main__":
    main()
