"""The practice fixture itself: every label is the run it claims to be (other tests rely on it)."""

from __future__ import annotations

import itertools

import pytest

from drill.errors import VerificationFailed
from drill.evidence.events import RunStarted
from drill.evidence.journal import read_events
from drill.report.build import load_report
from drill.report.verify import verify_report_dir
from tests.practice.conftest import PLAYBOOK_NAME, Practice


@pytest.mark.parametrize(
    ("label", "quarter", "verdict"),
    [
        ("q1", "2026-Q1", "pass"),
        ("q2", "2026-Q2", "fail"),
        ("q3", "2026-Q3", "pass"),
        ("q4", "2026-Q4", "pass"),
    ],
)
def test_quarters_verify_with_their_verdicts(
    practice: Practice, label: str, quarter: str, verdict: str
) -> None:
    checked = verify_report_dir(practice.runs[label], practice.allowed_signers, require=("operator", "lead"))
    assert (checked.playbook, checked.quarter, checked.verdict) == (PLAYBOOK_NAME, quarter, verdict)


def test_q2_regresses_on_the_rto_q1_met(practice: Practice) -> None:
    def rto_state(label: str) -> str:
        kv = next(a for a in load_report(practice.runs[label]).assets if a.id == "orders-kv")
        return next(o.state for o in kv.objectives if o.objective == "rto")

    assert (rto_state("q1"), rto_state("q2"), rto_state("q3")) == ("met", "missed", "met")


def test_tampered_and_unsigned_do_not_verify(practice: Practice) -> None:
    with pytest.raises(VerificationFailed, match=r"does not match report\.json"):
        verify_report_dir(practice.runs["tampered"], practice.allowed_signers)
    with pytest.raises(VerificationFailed, match="no signatures"):
        verify_report_dir(practice.runs["unsigned"], practice.allowed_signers)


def test_contacts_run_is_journalled_as_a_contact_test(practice: Practice) -> None:
    first = next(iter(read_events(practice.runs["contacts"] / "journal.jsonl")))
    assert isinstance(first.payload, RunStarted) and first.payload.mode == "contacts"
    checked = verify_report_dir(practice.runs["contacts"], practice.allowed_signers, require=("lead",))
    assert checked.playbook == PLAYBOOK_NAME


def test_quarters_ran_in_order(practice: Practice) -> None:
    reports = [load_report(practice.runs[label]) for label in ("q1", "q2", "q3", "q4")]
    for earlier, later in itertools.pairwise(reports):
        assert earlier.generated_utc <= (later.run.started_utc or "")


def test_make_run_makes_one_more_real_run(practice: Practice) -> None:
    folder = practice.make_run(
        "extra", practice.playbooks["q4"].read_text(), "2027-Q1", signers=(), contacts=True
    )
    assert folder.parent.parent == practice.root / "extra"  # not among the labelled runs
    report = load_report(folder)
    assert (report.playbook.quarter, report.prepared_by) == ("2027-Q1", None)
    assert [p.contact for p in report.people.pages] == ["Lab on-call"]
