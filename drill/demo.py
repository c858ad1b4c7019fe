"""`drill demo`: start the embedded lab, run the demo playbook, sign, verify and render the report.

Nothing here prints: the CLI shows the outcome. The throw-away key lives in a temporary folder
that is deleted afterwards; only its public half stays, as the evidence folder's allowed_signers
file, so an auditor's `ssh-keygen -Y verify` recipe can be tried on the demo's report as it is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from drill.lab.lab import Lab
from drill.playbook.model import Playbook
from drill.playbook.validate import load_playbook
from drill.report.evidence import write_evidence
from drill.report.sign import generate_keypair, signer_identity
from drill.report.verify import Verification, verify_report_dir
from drill.resources import shipped_playbook
from drill.run.runner import run_drill
from drill.run.session import RunOptions, RunOutcome, Sink

DEMO_SIGNER = "demo-operator"


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    run: RunOutcome
    evidence: tuple[Path, ...]
    verification: Verification
    allowed_signers: Path
    fingerprint: str


def demo_playbook() -> Playbook:
    return load_playbook(shipped_playbook("demo.yaml"))


async def run_demo(playbook: Playbook, runs_dir: Path, sinks: Sequence[Sink] = ()) -> DemoOutcome:
    """One complete drill over the lab, ending with a report signed by a throw-away key and verified."""
    async with Lab.start() as lab:
        # rollback always: the demo shows the return to normal, not only the failover
        options = RunOptions(
            runs_dir=runs_dir, auto_confirm=True, rollback="always", env={**os.environ, **lab.env()}
        )
        outcome = await run_drill(playbook, options, sinks=sinks, install_signal_handlers=True)
    with tempfile.TemporaryDirectory(prefix="drill-demo-key-") as keys:
        key = Path(keys) / "demo_ed25519"
        generate_keypair(key, comment=f"{DEMO_SIGNER}@drill-demo (throw-away)")
        _, fingerprint = signer_identity(key, DEMO_SIGNER)
        allowed = outcome.run_dir / "allowed_signers"
        public = key.with_name(key.name + ".pub").read_text().split()
        allowed.write_text(f'{DEMO_SIGNER} namespaces="drill-report-v1" {public[0]} {public[1]}\n')
        evidence = write_evidence(outcome.run_dir, sign_key=key, signer=DEMO_SIGNER)
    verification = verify_report_dir(outcome.run_dir, allowed, require=(DEMO_SIGNER,))
    return DemoOutcome(outcome, tuple(evidence), verification, allowed, fingerprint)
