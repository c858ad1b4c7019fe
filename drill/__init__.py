"""drill: rehearse disaster recovery and prove, with signed evidence, how fast failover really is.

The public API follows the data flow, one function per arrow (DESIGN §1):

    playbook = drill.load_playbook("drill.yaml")          # YAML -> typed model (PlaybookInvalid on any error)
    plan = drill.build_plan(playbook)                       # the resolved plan, journalled in run.started
    outcome = await drill.run_drill(playbook, drill.RunOptions(runs_dir=Path("runs")))
    report = drill.build_report_from_journal(outcome.journal_path)   # typed Report, from the journal alone
    drill.write_report(report, outcome.run_dir)             # report.json, RFC 8785 canonical bytes
    verification = drill.verify_report_dir(outcome.run_dir, "allowed_signers")

Names are imported on first use, so `import drill` stays cheap for the CLI; anything not listed
in __all__ is internal and may change between releases (tests/test_public_api.py pins the list).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from drill.version import __version__

if TYPE_CHECKING:
    from drill.errors import DrillError
    from drill.evidence.journal import read_events, verify_journal
    from drill.evidence.snapshot import Plan
    from drill.plan import build_plan
    from drill.playbook.model import Playbook
    from drill.playbook.validate import load_playbook
    from drill.report.build import build_report_from_journal, load_report, write_report
    from drill.report.model import Report
    from drill.report.verify import Verification, verify_report_dir
    from drill.results import Results, fold_results
    from drill.run.runner import run_drill
    from drill.run.session import RunOptions, RunOutcome

_WHERE = {
    "DrillError": "drill.errors",
    "Plan": "drill.evidence.snapshot",
    "Playbook": "drill.playbook.model",
    "Report": "drill.report.model",
    "Results": "drill.results",
    "RunOptions": "drill.run.session",
    "RunOutcome": "drill.run.session",
    "Verification": "drill.report.verify",
    "build_plan": "drill.plan",
    "build_report_from_journal": "drill.report.build",
    "fold_results": "drill.results",
    "load_playbook": "drill.playbook.validate",
    "load_report": "drill.report.build",
    "read_events": "drill.evidence.journal",
    "run_drill": "drill.run.runner",
    "verify_journal": "drill.evidence.journal",
    "verify_report_dir": "drill.report.verify",
    "write_report": "drill.report.build",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'drill' has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "DrillError",
    "Plan",
    "Playbook",
    "Report",
    "Results",
    "RunOptions",
    "RunOutcome",
    "Verification",
    "__version__",
    "build_plan",
    "build_report_from_journal",
    "fold_results",
    "load_playbook",
    "load_report",
    "read_events",
    "run_drill",
    "verify_journal",
    "verify_report_dir",
    "write_report",
]
