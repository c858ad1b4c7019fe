"""`drill demo`: start the embedded lab, run the demo playbook, sign, verify and render the report.

Nothing here prints: the CLI shows the outcome. The throw-away key lives in a temporary folder
that is deleted afterwards; only its public half stays, appended to the trust file
`demo-trust/allowed_signers` beside the runs folder. That file is deliberately *outside* the
evidence folder: an auditor verifies against an allowed_signers file they keep themselves, and
one shipped inside the evidence it vouches for would prove nothing.
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
from drill.results import Results
from drill.run.runner import run_drill
from drill.run.session import RunOptions, RunOutcome, Sink

DEMO_SIGNER = "demo-operator"
TRUST_DIR = "demo-trust"  # beside the runs folder, never inside an evidence folder
TRUST_WHY = (
    "kept outside the evidence folder: an auditor verifies with an allowed_signers file of their"
    " own; one shipped inside the evidence it vouches for would prove nothing"
)


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    run: RunOutcome
    evidence: tuple[Path, ...]
    verification: Verification
    allowed_signers: Path  # the trust file, outside run.run_dir
    fingerprint: str

    @property
    def exit_code(self) -> int:
        """The drill's verdict as `drill run` exits with it (0 pass)."""
        return self.run.exit_code


def demo_playbook() -> Playbook:
    return load_playbook(shipped_playbook("demo.yaml"))


def trust_file(runs_dir: Path) -> Path:
    """Where the demo keeps the public keys it trusts: demo-trust/allowed_signers beside runs_dir."""
    return runs_dir.parent / TRUST_DIR / "allowed_signers"


def verdict_sentence(results: Results) -> str:
    """One line saying what the demo drill showed, true to its verdict (never a pass it did not get)."""
    why = results.verdict_reason or results.reason
    because = f" ({why})" if why else ""
    match results.verdict:
        case "pass":
            return "the demo drill PASSED: every asset recovered on the secondary within its tier targets"
        case "fail":
            return (
                f"the demo drill FAILED{because}: recovery was NOT within every target; the report's"
                " findings say which and why"
            )
        case "incomplete":
            return f"the demo drill is INCOMPLETE{because}: not every objective was measured"
        case other:
            return f"the demo drill ended {other.upper()}{because}: no recovery was shown"


async def run_demo(playbook: Playbook, runs_dir: Path, sinks: Sequence[Sink] = ()) -> DemoOutcome:
    """One complete drill over the lab, ending with a report signed by a throw-away key and verified
    against the trust file outside the evidence folder."""
    async with Lab.start() as lab:
        # rollback always: the demo shows the return to normal, not only the failover
        options = RunOptions(
            runs_dir=runs_dir, auto_confirm=True, rollback="always", env={**os.environ, **lab.env()}
        )
        outcome = await run_drill(playbook, options, sinks=sinks, install_signal_handlers=True)
    allowed = trust_file(runs_dir)
    with tempfile.TemporaryDirectory(prefix="drill-demo-key-") as keys:
        key = Path(keys) / "demo_ed25519"
        generate_keypair(key, comment=f"{DEMO_SIGNER}@drill-demo (throw-away)")
        _, fingerprint = signer_identity(key, DEMO_SIGNER)
        public = key.with_name(key.name + ".pub").read_text().split()
        allowed.parent.mkdir(parents=True, exist_ok=True)
        with allowed.open("a", encoding="utf-8") as fh:  # earlier demo runs stay verifiable
            fh.write(f"# drill demo {outcome.run_dir.name}: throw-away key {fingerprint}\n")
            fh.write(f'{DEMO_SIGNER} namespaces="drill-report-v1" {public[0]} {public[1]}\n')
        evidence = write_evidence(outcome.run_dir, sign_key=key, signer=DEMO_SIGNER)
    verification = verify_report_dir(outcome.run_dir, allowed, require=(DEMO_SIGNER,))
    return DemoOutcome(outcome, tuple(evidence), verification, allowed, fingerprint)
