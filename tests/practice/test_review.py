"""`drill review` on the practice's real signed runs: init from the failing q2, validate, sign and
countersign (checked by drill's verifier and by ssh-keygen itself), close only by evidence (q3
closes; the tampered copy, the unsigned run, the earlier q1 and a run that missed the objective do
not, and the file stays byte for byte), risk acceptance by an allowed principal only, status with
an overdue action first, and the evidence folder still verifying with the review files in it.

Every test works on copies of the practice folders (the session's folders are shared)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drill.cli import cli
from drill.clock import wall_utc_now
from drill.errors import UsageError
from drill.practice.history import add_folders, read_record
from drill.practice.records import VERIFIED
from drill.practice.review import dump_review, load_review, parse_review, write_review
from drill.practice.review_model import REVIEW_NAMESPACE, RISK_NAMESPACE, Action, Retest, RiskAcceptance
from drill.report.sign import generate_keypair
from drill.report.verify import load_allowed_signers, verify_report_dir, verify_signature
from tests.practice.conftest import Practice


def drill(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def runs(tmp_path: Path, practice: Practice) -> dict[str, Path]:
    """Copies of the practice's folders under tmp_path/runs (never the shared ones)."""
    out = {}
    for label in ("q1", "q2", "q3", "tampered", "unsigned", "contacts"):
        out[label] = tmp_path / "runs" / practice.runs[label].name
        shutil.copytree(practice.runs[label], out[label], symlinks=True)
    return out


@pytest.fixture
def index(tmp_path: Path, runs: dict[str, Path], practice: Practice) -> Path:
    """A history of q1, q2, q3, the unsigned run and the contact test (not the tampered copy)."""
    path = tmp_path / "history.sqlite"
    add_folders(path, [runs[k] for k in ("q1", "q2", "q3", "unsigned", "contacts")], practice.allowed_signers)
    return path


@pytest.fixture
def q2_review(runs: dict[str, Path]) -> Path:
    result = drill("review", "init", runs["q2"])
    assert result.exit_code == 0, result.output
    return runs["q2"] / "review.yaml"


def _kv_rto(path: Path) -> Action:
    return next(a for a in load_review(path).actions if a.asset == "orders-kv" and a.objective == "rto")


def test_init_from_the_failing_drill_prefills_the_missed_orders_kv_rto(
    q2_review: Path, runs: dict[str, Path]
) -> None:
    review = load_review(q2_review)
    report_bytes = (runs["q2"] / "report.json").read_bytes()
    assert review.report_sha256 == hashlib.sha256(report_bytes).hexdigest()
    report = json.loads(report_bytes)
    assert review.run_id == report["run_id"] and review.playbook == "demo-lab-site-loss"
    assert [a.finding for a in review.actions] == [f["id"] for f in report["findings"]]
    assert [a.id for a in review.actions] == [f"A-{n:03d}" for n in range(1, len(review.actions) + 1)]
    action = _kv_rto(q2_review)
    assert "orders-kv missed its RTO" in action.title
    assert (action.status, action.owner, action.due, action.closure) == ("open", "", "", None)
    assert action.severity in ("critical", "high")
    assert any(o.asset == "orders-kv" and o.objective == "rto" and o.rating == "" for o in review.objectives)
    names = {p.name for p in review.participants}
    assert {"operator", "lead"} <= names  # the report's signers
    assert review.time_zone == "Europe/Berlin"
    # the written text reads back to the same review, and is the stable dump of it
    assert q2_review.read_text(encoding="utf-8") == dump_review(review)

    again = drill("review", "init", runs["q2"])
    assert again.exit_code == 2 and "exists already" in again.output
    forced = drill("review", "init", runs["q2"], "--force", "--time-zone", "UTC")
    assert forced.exit_code == 0 and load_review(q2_review).time_zone == "UTC"
    assert drill("review", "init", runs["q2"], "--force", "--time-zone", "Mars/Olympus").exit_code == 2


def test_validate_catches_a_done_action_without_closure_and_other_rules(q2_review: Path) -> None:
    ok = drill("review", "validate", q2_review, "--format", "json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {
        "file": str(q2_review),
        "valid": True,
        "report_checked": True,
        "problems": [],
    }

    review = load_review(q2_review)
    first, second, *rest = review.actions
    broken = replace(
        review,
        report_sha256="0" * 64,
        actions=(
            replace(first, status="done"),
            replace(second, id=first.id, due="2026-02-30", finding="F-999"),
            *rest,
        ),
    )
    write_review(q2_review, broken)
    bad = drill("review", "validate", q2_review, "--format", "json")
    assert bad.exit_code == 1
    problems = {p["path"]: p["message"] for p in json.loads(bad.stdout)["problems"]}
    assert "done without a retest closure" in problems["actions[0].closure"]
    assert "used twice" in problems["actions[1].id"]
    assert "not a real day" in problems["actions[1].due"]
    assert "F-999 is not a finding" in problems["actions[1].finding"]
    assert "report.json beside it" in problems["report_sha256"]

    text = q2_review.read_text(encoding="utf-8").replace("status: open", "status: closed", 1)
    q2_review.write_text(text, encoding="utf-8")
    off_schema = drill("review", "validate", q2_review)  # YAML, but not a review: problems, exit 1
    assert off_schema.exit_code == 1
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "status: closed" in t)
    assert f"{q2_review}:{line}:11: actions[1].status: 'closed' is not one of" in off_schema.output
    q2_review.write_text("run_id: [unclosed\n", encoding="utf-8")
    unreadable = drill("review", "validate", q2_review)
    assert unreadable.exit_code == 2 and f"{q2_review}:2:" in unreadable.output
    with pytest.raises(UsageError):  # what every other command meets first
        load_review(q2_review)


def _sign(path: Path, practice: Practice, principal: str, *extra: str) -> Result:
    verb = "countersign" if extra and extra[0] == "--role" else "sign"
    return drill(
        "review", verb, path, "--sign-key", practice.keys[principal], "--signer", principal, *extra, "--yes"
    )


def test_sign_and_countersign_verify_as_ssh_keygen_does(
    q2_review: Path, practice: Practice, tmp_path: Path
) -> None:
    lonely = drill(
        "review", "countersign", q2_review, "--sign-key", practice.keys["lead"], "--signer", "lead", "--yes"
    )
    assert lonely.exit_code == 2 and "no signature by anyone else" in lonely.output
    asked = drill("review", "sign", q2_review, "--sign-key", practice.keys["lead"], "--signer", "lead")
    assert asked.exit_code == 2 and "not a terminal" in asked.output  # CliRunner's stdin is no tty

    signed = _sign(q2_review, practice, "lead")
    assert signed.exit_code == 0, signed.output
    assert "open or in progress" in signed.output and load_review(q2_review).run_id in signed.output
    counter = _sign(q2_review, practice, "operator", "--role", "observer")
    assert counter.exit_code == 0, counter.output

    data = q2_review.read_bytes()
    allowed = load_allowed_signers(practice.allowed_signers)
    for principal in ("lead", "operator"):
        sig = q2_review.with_name(f"review.yaml.{principal}.sig")
        info = verify_signature(data, sig.read_bytes(), allowed, principal, REVIEW_NAMESPACE, wall_utc_now())
        assert info.namespace == REVIEW_NAMESPACE
        done = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(practice.allowed_signers), "-I", principal,
             "-n", REVIEW_NAMESPACE, "-s", str(sig)],
            input=data, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        wrong = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(practice.allowed_signers), "-I", principal,
             "-n", "drill-report-v1", "-s", str(sig)],
            input=data, capture_output=True, check=False,
        )  # fmt: skip
        assert wrong.returncode != 0  # the namespace is part of what is signed

    # a review bound to another report is not signed
    review = load_review(q2_review)
    write_review(q2_review, replace(review, report_sha256="f" * 64))
    refused = _sign(q2_review, practice, "risk-owner")
    assert refused.exit_code == 2 and "bound to report" in refused.output
    assert not q2_review.with_name("review.yaml.risk-owner.sig").exists()


def test_close_by_a_later_verified_drill_that_met_the_objective(
    q2_review: Path, runs: dict[str, Path], index: Path, practice: Practice
) -> None:
    assert _sign(q2_review, practice, "lead").exit_code == 0
    action = _kv_rto(q2_review)
    q3 = read_record(runs["q3"], practice.allowed_signers)
    result = drill(
        "review", "close", q2_review, action.id, "--retest", q3.run_id,
        "--index", index, "--allowed-signers", practice.allowed_signers, "--by", "ana",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "re-sign: drill review sign" in result.output  # the lead's signature is now stale
    closed = _kv_rto(q2_review)
    assert closed.status == "done"
    assert isinstance(closed.closure, Retest)
    assert (closed.closure.run_id, closed.closure.report_sha256) == (q3.run_id, q3.report_sha256)
    last = closed.history[-1]
    assert (last.status, last.by) == ("done", "ana") and last.utc.endswith("+00:00")
    assert "orders-kv RTO met" in last.note
    assert drill("review", "validate", q2_review).exit_code == 0
    again = drill(
        "review", "close", q2_review, action.id, "--retest", q3.run_id,
        "--index", index, "--allowed-signers", practice.allowed_signers,
    )  # fmt: skip
    assert again.exit_code == 2 and "done already" in again.output


def _refused(review: Path, action_id: str, run_id: str, index: Path, practice: Practice) -> str:
    before = review.read_bytes()
    result = drill(
        "review", "close", review, action_id, "--retest", run_id,
        "--index", index, "--allowed-signers", practice.allowed_signers,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert review.read_bytes() == before  # nothing written
    return result.output


def test_close_is_refused_without_the_evidence(
    q2_review: Path, runs: dict[str, Path], index: Path, practice: Practice, tmp_path: Path
) -> None:
    action = _kv_rto(q2_review)
    q1_id, unsigned_id = practice.run_ids["q1"], practice.run_ids["unsigned"]
    assert "not after the reviewed run" in _refused(q2_review, action.id, q1_id, index, practice)
    assert "does not verify now (unsigned" in _refused(q2_review, action.id, unsigned_id, index, practice)
    assert "not in the history index" in _refused(
        q2_review, action.id, "20990101T000000Z-00000000", index, practice
    )
    contacts = practice.run_ids["contacts"]
    assert "contacts test, not a drill" in _refused(q2_review, action.id, contacts, index, practice)

    # the tampered copy of q3 (same run id), alone in a history: refused, it does not verify
    tampered_index = tmp_path / "tampered.sqlite"
    add_folders(tampered_index, [runs["q2"], runs["tampered"]], practice.allowed_signers)
    out = _refused(q2_review, action.id, practice.run_ids["tampered"], tampered_index, practice)
    assert "does not verify now (tampered" in out

    # q3 verified when it was indexed, but its folder was altered since: verified again now, refused
    report = runs["q3"] / "report.json"
    report.write_bytes(report.read_bytes().replace(b'"pass"', b'"PASS"', 1))
    assert "does not verify now" in _refused(q2_review, action.id, practice.run_ids["q3"], index, practice)


def test_close_is_refused_when_the_retest_missed_the_objective(
    runs: dict[str, Path], index: Path, practice: Practice
) -> None:
    """A review of q1 with an action on orders-kv's RTO: q2 (later, verified) missed it."""
    assert drill("review", "init", runs["q1"]).exit_code == 0
    path = runs["q1"] / "review.yaml"
    review = load_review(path)
    hand = Action("A-900", "", "keep the kv promotion fast", "high", asset="orders-kv", objective="rto")
    write_review(path, replace(review, actions=(*review.actions, hand)))
    out = _refused(path, "A-900", practice.run_ids["q2"], index, practice)
    assert "orders-kv's RTO is missed, not met" in out


def test_risk_acceptance_by_an_allowed_principal_only(
    q2_review: Path, practice: Practice, tmp_path: Path
) -> None:
    review = load_review(q2_review)
    target = review.actions[-1]
    before = q2_review.read_bytes()

    stranger = tmp_path / "keys" / "mallory_ed25519"
    stranger.parent.mkdir(mode=0o700)
    generate_keypair(stranger, comment="mallory (throw-away, not in allowed_signers)")
    refused = drill(
        "review", "accept", q2_review, target.id, "--reason", "cheaper to live with",
        "--sign-key", stranger, "--signer", "mallory", "--allowed-signers", practice.allowed_signers,
    )  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert "mallory may not accept this risk" in refused.output
    assert q2_review.read_bytes() == before
    assert not list(q2_review.parent.glob("risk-*"))  # the risk file and its signature are removed

    # lead is trusted for reports, but this trust file does not let lead accept risks
    lines = practice.allowed_signers.read_text(encoding="ascii").splitlines(keepends=True)
    reports_only = tmp_path / "allowed_signers.reports-only"
    reports_only.write_text(
        "".join(line.replace("drill-risk-acceptance-v1", "drill-report-v1") for line in lines),
        encoding="ascii",
    )
    not_for_risk = drill(
        "review", "accept", q2_review, target.id, "--reason", "mine to accept",
        "--sign-key", practice.keys["lead"], "--signer", "lead", "--allowed-signers", reports_only,
    )  # fmt: skip
    assert (
        not_for_risk.exit_code == 1
        and "namespace 'drill-risk-acceptance-v1' not allowed" in not_for_risk.output
    )
    assert q2_review.read_bytes() == before and not list(q2_review.parent.glob("risk-*"))

    accepted = drill(
        "review", "accept", q2_review, target.id, "--reason", "vendor fix due in Q1; monitored",
        "--sign-key", practice.keys["risk-owner"], "--signer", "risk-owner",
        "--allowed-signers", practice.allowed_signers,
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    risk = q2_review.with_name(f"risk-{target.id}.yaml")
    data = risk.read_bytes()
    assert b"vendor fix due in Q1" in data and review.report_sha256.encode() in data
    sig = risk.with_name(f"{risk.name}.risk-owner.sig")
    allowed = load_allowed_signers(practice.allowed_signers)
    assert verify_signature(data, sig.read_bytes(), allowed, "risk-owner", RISK_NAMESPACE, wall_utc_now())
    closed = next(a for a in load_review(q2_review).actions if a.id == target.id)
    assert closed.status == "risk-accepted"
    assert closed.closure == RiskAcceptance(
        risk.name, hashlib.sha256(data).hexdigest(), "risk-owner", "vendor fix due in Q1; monitored"
    )
    assert closed.history[-1].status == "risk-accepted" and closed.history[-1].by == "risk-owner"
    assert drill("review", "validate", q2_review).exit_code == 0
    risk.write_bytes(data + b"# edited\n")  # the accepted document changed: validate says so
    changed = drill("review", "validate", q2_review)
    assert changed.exit_code == 1 and "changed since it was accepted" in changed.output


def test_set_edits_open_actions_and_never_closes_them(q2_review: Path, practice: Practice) -> None:
    action = load_review(q2_review).actions[0]
    assert _sign(q2_review, practice, "lead").exit_code == 0
    done = drill("review", "set", q2_review, action.id, "--status", "done")
    assert done.exit_code == 2
    bad_day = drill("review", "set", q2_review, action.id, "--due", "2026-13-01")
    assert bad_day.exit_code == 2 and "not a real day" in bad_day.output
    ok = drill(
        "review", "set", q2_review, action.id, "--status", "in-progress",
        "--owner", "ana", "--due", "2026-12-31", "--ticket", "OPS-7", "--by", "lead",
    )  # fmt: skip
    assert ok.exit_code == 0 and "re-sign: drill review sign" in ok.output
    edited = load_review(q2_review).actions[0]
    assert (edited.status, edited.owner, edited.due, edited.ticket) == (
        "in-progress",
        "ana",
        "2026-12-31",
        "OPS-7",
    )
    assert [(c.status, c.by) for c in edited.history] == [("in-progress", "lead")]


def test_status_lists_the_overdue_action_first_and_exits_1(
    q2_review: Path, index: Path, practice: Practice
) -> None:
    review = load_review(q2_review)
    first, second, *rest = review.actions
    write_review(
        q2_review,
        replace(
            review,
            actions=(replace(first, due="2099-01-01", owner="ana"), replace(second, due="2026-11-30"), *rest),
        ),
    )
    args = ("review", "status", "--index", index, "--allowed-signers", practice.allowed_signers)
    unsigned = drill(*args, "--as-of", "2026-12-01", "--format", "json")
    assert unsigned.exit_code == 1, unsigned.output
    (entry,) = json.loads(unsigned.stdout)["reviews"]
    assert entry["signatures"]["state"] == "unsigned" and entry["overdue"] == 1
    assert [(a["id"], a["overdue"]) for a in entry["open_actions"][:2]] == [
        (second.id, True),
        (first.id, False),
    ]

    assert _sign(q2_review, practice, "lead").exit_code == 0
    signed = drill(*args, "--as-of", "2026-12-01")
    assert signed.exit_code == 1
    lines = [line for line in signed.output.splitlines() if line.startswith("  ")]
    assert "signatures: signed and verified" in signed.output
    actions = [line for line in lines if " open " in line]
    assert actions[0].startswith(f"  OVERDUE {second.id} ")
    assert f"{first.id} open" in actions[1] and "owner ana, due 2099-01-01" in actions[1]

    on_time = drill(*args, "--as-of", "2026-11-30", "--format", "json")  # due that day: not yet overdue
    assert on_time.exit_code == 0 and json.loads(on_time.stdout)["reviews"][0]["overdue"] == 0

    assert drill("review", "set", q2_review, first.id, "--owner", "bo").exit_code == 0
    stale = drill(*args, "--as-of", "2026-11-30", "--format", "json")
    assert json.loads(stale.stdout)["reviews"][0]["signatures"]["state"] == "signature does not match"
    assert drill(*args, "--as-of", "2026-02-30").exit_code == 2


def test_review_files_do_not_break_verify_nor_history_add(
    q2_review: Path, runs: dict[str, Path], practice: Practice, tmp_path: Path
) -> None:
    folder = runs["q2"]
    assert _sign(q2_review, practice, "lead").exit_code == 0
    target = load_review(q2_review).actions[-1]
    accepted = drill(
        "review", "accept", q2_review, target.id, "--reason", "accepted",
        "--sign-key", practice.keys["risk-owner"], "--signer", "risk-owner",
        "--allowed-signers", practice.allowed_signers,
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    assert drill("review", "render", q2_review).exit_code == 0
    extra = {p.name for p in folder.iterdir()} - {p.name for p in practice.runs["q2"].iterdir()}
    assert {
        "review.yaml",
        "review.yaml.lead.sig",
        f"risk-{target.id}.yaml",
        "review.html",
        "review.md",
    } <= extra
    verify_report_dir(folder, practice.allowed_signers, strict=True)
    cli_verify = drill("verify", folder, "--allowed-signers", practice.allowed_signers, "--strict")
    assert cli_verify.exit_code == 0, cli_verify.output
    record = read_record(folder, practice.allowed_signers)
    assert record.status == VERIFIED, record.problem
    added = drill(
        "history",
        "add",
        folder,
        "--allowed-signers",
        practice.allowed_signers,
        "--index",
        tmp_path / "h.sqlite",
    )
    assert added.exit_code == 0, added.output


def test_dump_and_load_are_stable_and_keep_yaml_1_2_strings(tmp_path: Path) -> None:
    text = dump_review(
        replace(
            parse_review(
                b"run_id: r\nreport_id: x\nreport_sha256: " + b"a" * 64 + b"\nplaybook: p\nquarter: 2026-Q4\n"
                b"time_zone: UTC\nprepared_utc: '2026-12-01T10:00:00+00:00'\n"
                b"actions:\n- {id: A-001, title: t, severity: low, status: open, owner: no, due: 2026-12-31}\n"
            ),
        )
    )
    review = parse_review(text.encode())
    assert (review.actions[0].owner, review.actions[0].due) == ("no", "2026-12-31")  # strings, not bool/date
    assert dump_review(review) == text
