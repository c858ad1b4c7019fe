"""The practice: real drills against the embedded lab, signed with throw-away keys (session-scoped).

Labels of `practice.runs` (each an evidence folder under `practice.root / "runs"`; q1-q4 are one
playbook, metadata.name "demo-lab-site-loss", over four quarters):

- "q1"        2026-Q1, verdict pass: the demo drill, signed by operator, countersigned by lead.
- "q2"        2026-Q2, verdict fail: a REGRESSION, a real slower recovery (not a tightened target):
              the runbook's promotion of the kv replica is held up 6 s (a `pause: 6s` step before
              "promote the kv replica"), so orders-kv really comes back after about 6.5 s and its
              RTO (data tier, 5 s), met in q1, is missed. The assets' definitions (tiers, targets,
              probes) are q1's; only the scenario differs. (The lab's LabConfig has no knob that
              slows a recovery: kv_lag_ms only bounds the RPO by the ~1.2 s the canary writes
              before the disaster, under the 2 s target.)
- "q3"        2026-Q3, verdict pass: the fix (the lab back to its 400 ms lag), playbook as in q1.
- "q4"        2026-Q4, verdict pass: a CHANGED playbook: web's probe interval is 250 ms instead of
              the settings' 200 ms, so web's definition_sha256 differs from q1-q3's.
- "tampered"  a copy of q3's folder (folder name "<q3 run id>-tampered", same run id inside) whose
              report.json was altered after signing (web's achieved RTO improved, re-canonicalised):
              verify fails: the operator's signature does not match report.json.
- "unsigned"  2026-Q1, verdict pass: a real run of q1's playbook whose report was never signed.
- "contacts"  2026-Q4: `drill contacts test` of q4's playbook (mode "contacts"); the lab's pager
              webhook acknowledges the page after 700 ms. Signed by operator and lead.

`practice.allowed_signers` trusts operator, lead and risk-owner for the namespaces
drill-report-v1, drill-review-v1 and drill-risk-acceptance-v1; `practice.keys` are their private
keys (no passphrase, generated here: throw-away, never committed). `practice.make_run(...)` makes
one more real run (in a fresh folder of its own unless told where) for a test that needs it.

The quarters run one after another (q1 ends before q2 starts, so started_utc, generated_utc and the
run ids are in quarter order); "unsigned" and "contacts" run beside them in the same event loop,
each run against a lab of its own (free ports): about 30 s in all.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import Result

from drill.evidence.canonical import canonical_bytes
from drill.lab.lab import Lab, LabConfig
from drill.playbook.validate import load_playbook
from drill.report.build import load_report
from drill.report.evidence import rerender_views, write_evidence
from drill.report.sign import countersign_report, generate_keypair, public_key_line
from drill.resources import shipped_playbook
from drill.run.contacts import run_contact_test
from drill.run.runner import run_drill
from drill.run.session import RunOptions

PRINCIPALS = ("operator", "lead", "risk-owner")
NAMESPACES = "drill-report-v1,drill-review-v1,drill-risk-acceptance-v1"
LABELS = ("q1", "q2", "q3", "q4", "tampered", "unsigned", "contacts")
PLAYBOOK_NAME = "demo-lab-site-loss"
HELD_UP = "  - name: the promotion is held up\n    pause: 6s\n"  # q2: the regression


def demo_text(quarter: str) -> str:
    """playbooks/demo.yaml with metadata.quarter set to `quarter`."""
    text = Path(shipped_playbook("demo.yaml")).read_text(encoding="utf-8")
    assert "  quarter: 2026-Q4\n" in text
    return text.replace("  quarter: 2026-Q4\n", f"  quarter: {quarter}\n", 1)


def regressed_text(quarter: str) -> str:
    """The demo playbook with the kv replica's promotion held up 6 s (the regression of q2)."""
    text = demo_text(quarter)
    step = "  - name: promote the kv replica\n"
    assert step in text
    return text.replace(step, HELD_UP + step, 1)


def changed_text(quarter: str) -> str:
    """The demo playbook with web's probe polled every 250 ms (the changed definition of q4)."""
    text = demo_text(quarter)
    probe = "      - name: front\n"
    assert probe in text
    return text.replace(probe, probe + "        interval: 250ms\n", 1)


def one_line_error(result: Result, code: int) -> str:
    """The error of a failed command: its exit code, no traceback, one line (and maybe a hint)."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("drill: "), result.stderr
    assert all(line.startswith("  hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@dataclass(frozen=True, slots=True)
class Practice:
    """The practice's evidence, keys and trust file (see the module docstring for the labels)."""

    root: Path
    runs: dict[str, Path]  # label -> evidence folder
    allowed_signers: Path
    keys: dict[str, Path]  # principal -> private key (no passphrase)
    playbooks: dict[str, Path]  # label -> playbook file the run used ("tampered": q3's)
    run_ids: dict[str, str] = field(default_factory=dict)  # label -> run id

    @property
    def runs_dir(self) -> Path:
        """The runs folder holding every labelled run (and the `latest` symlink)."""
        return self.root / "runs"

    def make_run(
        self,
        label: str,
        playbook_text: str,
        quarter: str = "",
        *,
        runs_dir: Path | None = None,
        lab_config: LabConfig | None = None,
        signers: Sequence[str] = ("operator", "lead"),
        contacts: bool = False,
    ) -> Path:
        """One more real run (a drill, or a contact test) of `playbook_text` (its metadata.quarter
        replaced by `quarter` when given), signed by `signers` in order (none: unsigned); its
        evidence folder. Runs go to a fresh folder under root/extra unless runs_dir is given."""
        if quarter:
            playbook_text = _with_quarter(playbook_text, quarter)
        target = runs_dir or Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.root / "extra"))
        playbook = target.parent / f"{target.name}-{label}.yaml"
        playbook.write_text(playbook_text, encoding="utf-8")
        job = _Job(label, playbook, target, lab_config or LabConfig(), tuple(signers), contacts)
        return asyncio.run(_run_job(job, self.keys))


def _with_quarter(text: str, quarter: str) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("  quarter:"):
            lines[i] = f"  quarter: {quarter}\n"
            return "".join(lines)
    raise AssertionError("the playbook text has no metadata.quarter line to replace")


@dataclass(frozen=True, slots=True)
class _Job:
    label: str
    playbook: Path
    runs_dir: Path
    lab: LabConfig
    signers: tuple[str, ...]
    contacts: bool = False


async def _run_job(job: _Job, keys: dict[str, Path]) -> Path:
    """Run it against a lab of its own; then the evidence, signed and countersigned as asked."""
    playbook = load_playbook(job.playbook)
    async with Lab.start(job.lab) as lab:
        options = RunOptions(
            runs_dir=job.runs_dir,
            auto_confirm=True,
            rollback="always",
            env={**os.environ, **lab.env()},
        )
        if job.contacts:
            outcome = await run_contact_test(playbook, options)
        else:
            outcome = await run_drill(playbook, options)
    run_dir = outcome.run_dir
    first, *others = job.signers or (None,)
    write_evidence(run_dir, sign_key=keys[first] if first else None, signer=first or "operator")
    for principal in others:
        countersign_report(run_dir, keys[principal], principal)
    if others:
        rerender_views(load_report(run_dir), run_dir)  # the views list the sign-offs, as the CLI does
    return run_dir


def _tamper(source: Path, target: Path) -> None:
    """target: a copy of source whose report.json says web recovered faster than it did."""
    shutil.copytree(source, target, symlinks=True)
    path = target / "report.json"
    report = json.loads(path.read_bytes())
    web = next(a for a in report["assets"] if a["id"] == "web")
    web["rto_ms"] = max(0, (web.get("rto_ms") or 0) // 2)
    path.write_bytes(canonical_bytes(report))  # still canonical: only the signature can tell


def _keys(folder: Path) -> tuple[dict[str, Path], Path]:
    folder.mkdir(mode=0o700)
    keys, lines = {}, []
    for principal in PRINCIPALS:
        key = folder / f"{principal}_ed25519"
        public = generate_keypair(key, comment=f"{principal}@drill-practice (throw-away)")
        keys[principal] = key
        lines.append(f'{principal} namespaces="{NAMESPACES}" {public_key_line(public)}\n')
    allowed = folder.parent / "allowed_signers"
    allowed.write_text("".join(lines), encoding="ascii")
    return keys, allowed


@pytest.fixture(scope="session")
def practice() -> Iterator[Practice]:
    """Seven evidence folders of one practice (see the module docstring), made once per session."""
    with tempfile.TemporaryDirectory(prefix="drill-practice-") as tmp:
        root = Path(tmp)
        keys, allowed = _keys(root / "keys")
        (root / "playbooks").mkdir()
        (root / "extra").mkdir()
        runs_dir = root / "runs"
        texts = {
            "q1": demo_text("2026-Q1"),
            "q2": regressed_text("2026-Q2"),
            "q3": demo_text("2026-Q3"),
            "q4": changed_text("2026-Q4"),
        }
        playbooks = {}
        for label, text in texts.items():
            playbooks[label] = root / "playbooks" / f"{label}.yaml"
            playbooks[label].write_text(text, encoding="utf-8")
        playbooks["unsigned"] = playbooks["q1"]
        playbooks["contacts"] = playbooks["q4"]
        both = ("operator", "lead")
        quarters = [
            _Job("q1", playbooks["q1"], runs_dir, LabConfig(), both),
            _Job("q2", playbooks["q2"], runs_dir, LabConfig(), both),
            _Job("q3", playbooks["q3"], runs_dir, LabConfig(), both),
            _Job("q4", playbooks["q4"], runs_dir, LabConfig(), both),
        ]
        beside = [
            _Job("unsigned", playbooks["unsigned"], runs_dir, LabConfig(), ()),
            _Job("contacts", playbooks["contacts"], runs_dir, LabConfig(), both, contacts=True),
        ]

        async def in_order() -> list[Path]:  # one quarter after another: q1 ends before q2 starts
            return [await _run_job(job, keys) for job in quarters]

        async def all_runs() -> list[Path]:
            async with asyncio.TaskGroup() as group:
                ordered = group.create_task(in_order())
                others = [group.create_task(_run_job(job, keys)) for job in beside]
            return [*ordered.result(), *(task.result() for task in others)]

        jobs = [*quarters, *beside]
        runs = dict(zip([job.label for job in jobs], asyncio.run(all_runs()), strict=True))
        runs["tampered"] = runs_dir / f"{runs['q3'].name}-tampered"
        _tamper(runs["q3"], runs["tampered"])
        playbooks["tampered"] = playbooks["q3"]
        ordered = {label: runs[label] for label in LABELS}
        run_ids = {label: load_report(runs[label]).run_id for label in LABELS if label != "tampered"}
        run_ids["tampered"] = run_ids["q3"]
        yield Practice(root, ordered, allowed, keys, playbooks, run_ids)
