"""`drill review export`: corrective actions as Jira issues or ServiceNow records.

Jira and ServiceNow cannot run here, so these tests talk to a local stand-in
(tests/support/tracker_server.py) that speaks the subset drill uses, following the public API
docs: a real HTTP server on 127.0.0.1, started per test and stopped at teardown. Reviews are built
directly from drill/practice/review_model.py (the last test binds one to a real signed report of
the practice fixture, copied to tmp_path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from drill.cli import DrillGroup
from drill.cli.review_export import export
from drill.practice.review import load_review, write_review
from drill.practice.review_model import Action, Retest, Review, RiskAcceptance
from drill.practice.tickets import (
    Credentials,
    ExportOutcome,
    Tracker,
    export_tickets,
    parse_tracker,
    plan_export,
)
from drill.report.build import load_report
from tests.practice.conftest import Practice
from tests.support.tracker_server import Fault, TrackerServer, running_tracker

TOKEN = "pat-7f3c9a1e5b2d4c6e8f0a"
USER = "drill-bot"
PASSWORD = "s3cret-Passw0rd-91x"
SHA = "ab" * 32
RUN_ID = "20260612T101500Z-demo"


@pytest.fixture
def tracker() -> Iterator[TrackerServer]:
    with running_tracker(token=TOKEN, user=USER, password=PASSWORD) as server:
        yield server


def make_review(*actions: Action) -> Review:
    return Review(
        run_id=RUN_ID,
        report_id="rep-2026-Q2",
        report_sha256=SHA,
        playbook="demo-lab-site-loss",
        quarter="2026-Q2",
        time_zone="Europe/Berlin",
        prepared_utc="2026-06-13T09:00:00+00:00",
        actions=actions,
    )


OPEN_1 = Action(
    id="A-001",
    finding="F-001",
    title="kv promotion held up: automate the replica promotion",
    severity="high",
    asset="orders-kv",
    objective="rto",
    owner="dba-team",
    due="2026-12-31",
)
OPEN_2 = Action(
    id="A-002", finding="F-002", title="pager chain too slow", severity="medium", status="in-progress"
)
DONE_NO_TICKET = Action(
    id="A-003",
    finding="F-003",
    title="already fixed",
    severity="low",
    status="done",
    closure=Retest("20260915T101500Z-demo", "cd" * 32, "2026-09-15T11:00:00+00:00"),
)
RETEST = Retest("20260915T101500Z-demo", "ef" * 32, "2026-09-15T11:00:00+00:00")


def jira(server: TrackerServer, *, priority: bool = True) -> Tracker:
    return parse_tracker("jira", server.url, project="OPS", priority=priority)


def servicenow(server: TrackerServer, table: str) -> Tracker:
    return parse_tracker("servicenow", server.url, table=table)


def run_export(review: Review, tracker: Tracker, credentials: Credentials) -> ExportOutcome:
    """Plan and send; retries wait for nothing (the waits are asserted where they matter)."""
    return export_tickets(
        review, plan_export(review, None, tracker), tracker, credentials, sleep=lambda s: None
    )


def ticket(review: Review, action_id: str) -> str:
    return next(a.ticket for a in review.actions if a.id == action_id)


# ---------------------------------------------------------------- Jira


def test_jira_creates_one_issue_per_open_action_and_stores_key_and_url(tracker: TrackerServer) -> None:
    review = make_review(OPEN_1, OPEN_2, DONE_NO_TICKET)
    target = jira(tracker)
    plan = plan_export(review, None, target)
    assert [s.action_id for s in plan.skipped] == ["A-003"]
    assert plan.skipped[0].reason == "done, no ticket"

    outcome = export_tickets(review, plan, target, Credentials(token=TOKEN))

    assert outcome.error is None and outcome.changed
    assert ticket(outcome.review, "A-001") == f"OPS-1 {tracker.url}/browse/OPS-1"
    assert ticket(outcome.review, "A-002") == f"OPS-2 {tracker.url}/browse/OPS-2"
    assert ticket(outcome.review, "A-003") == ""
    sent = tracker.requests
    assert [(r.method, r.path, r.answered) for r in sent] == [
        ("POST", "/rest/api/2/issue", 201),
        ("POST", "/rest/api/2/issue", 201),
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in sent)
    assert all(r.headers["content-type"] == "application/json" for r in sent)
    first = sent[0].body
    assert isinstance(first, dict)
    fields = first["fields"]
    assert fields["project"] == {"key": "OPS"}
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "A-001: kv promotion held up: automate the replica promotion"
    assert fields["priority"] == {"name": "High"}
    assert fields["duedate"] == "2026-12-31"
    assert fields["description"].splitlines()[0] == "Status in the after-action review: open"
    assert "Asset: orders-kv, objective RTO" in fields["description"]
    assert f"Drill run: {RUN_ID}" in fields["description"]


def test_a_second_export_updates_the_issues_instead_of_creating_them(tracker: TrackerServer) -> None:
    target = jira(tracker)
    first = run_export(make_review(OPEN_1, OPEN_2), target, Credentials(token=TOKEN))
    assert first.error is None

    renamed = replace(
        first.review, actions=(replace(first.review.actions[0], title="automate it"), first.review.actions[1])
    )
    second = run_export(renamed, target, Credentials(token=TOKEN))

    assert second.error is None
    assert not second.changed  # the same tickets: nothing to write back
    assert [d.operation for d in second.done] == ["update", "update"]
    assert [(r.method, r.path, r.answered) for r in tracker.requests[2:]] == [
        ("PUT", "/rest/api/2/issue/OPS-1", 204),
        ("PUT", "/rest/api/2/issue/OPS-2", 204),
    ]
    assert len(tracker.state.issues) == 2
    assert tracker.state.issues["OPS-1"]["summary"] == "A-001: automate it"
    body = tracker.requests[2].body
    assert isinstance(body, dict) and set(body["fields"]) == {"summary", "description", "priority", "duedate"}


def test_a_closed_action_s_ticket_learns_of_its_closure(tracker: TrackerServer) -> None:
    target = jira(tracker)
    first = run_export(make_review(OPEN_1, OPEN_2), target, Credentials(token=TOKEN))
    done = replace(first.review.actions[0], status="done", closure=RETEST)
    accepted = replace(
        first.review.actions[1],
        status="risk-accepted",
        closure=RiskAcceptance(
            "risk-A-002.yaml", "01" * 32, "risk-owner", "the pager vendor is replaced in Q1"
        ),
    )
    second = run_export(replace(first.review, actions=(done, accepted)), target, Credentials(token=TOKEN))

    assert second.error is None
    puts = [r for r in tracker.requests if r.method == "PUT"]
    assert [r.path for r in puts] == ["/rest/api/2/issue/OPS-1", "/rest/api/2/issue/OPS-2"]
    one = tracker.state.issues["OPS-1"]["description"]
    two = tracker.state.issues["OPS-2"]["description"]
    assert isinstance(one, str) and isinstance(two, str)
    assert one.splitlines()[0] == "Status in the after-action review: done"
    assert f"Closed by a retest: run {RETEST.run_id}, report SHA-256 {RETEST.report_sha256}" in one
    assert two.splitlines()[0] == "Status in the after-action review: risk accepted"
    assert "Closed by a risk acceptance signed by risk-owner: the pager vendor is replaced in Q1" in two


def test_a_closed_action_without_a_ticket_is_skipped_and_nothing_is_sent(tracker: TrackerServer) -> None:
    accepted = Action(
        id="A-004",
        finding="",
        title="accepted",
        severity="low",
        status="risk-accepted",
        closure=RiskAcceptance("risk-A-004.yaml", "02" * 32, "risk-owner", "no budget"),
    )
    review = make_review(DONE_NO_TICKET, accepted)
    plan = plan_export(review, None, jira(tracker))
    assert plan.requests == ()
    assert [(s.action_id, s.reason) for s in plan.skipped] == [
        ("A-003", "done, no ticket"),
        ("A-004", "risk accepted, no ticket"),
    ]
    outcome = export_tickets(review, plan, jira(tracker), Credentials(token=TOKEN))
    assert outcome.done == () and outcome.error is None and not outcome.changed
    assert tracker.requests == []


def test_a_ticket_of_another_tracker_is_left_alone(tracker: TrackerServer) -> None:
    foreign = replace(
        OPEN_1, ticket="INC0010001 https://example.service-now.com/incident.do?sys_id=" + "a" * 32
    )
    plan = plan_export(make_review(foreign), None, jira(tracker))
    assert plan.requests == ()
    assert plan.skipped[0].reason.startswith("ticket https://example.service-now.com/incident.do")
    assert plan.skipped[0].reason.endswith("is not an issue of " + tracker.url + "; left alone")


def test_a_bad_field_is_reported_with_jira_s_error_text(tracker: TrackerServer) -> None:
    target = parse_tracker("jira", tracker.url, project="NOPE")
    outcome = run_export(make_review(OPEN_1), target, Credentials(token=TOKEN))
    assert outcome.error is not None
    message = str(outcome.error)
    assert message == (
        f"A-001: Jira answered 400 Bad Request to POST {tracker.url}/rest/api/2/issue: "
        "project: valid project is required"
    )
    assert outcome.error.exit_code == 1


# ---------------------------------------------------------------- ServiceNow


@pytest.mark.parametrize(("table", "prefix"), [("incident", "INC"), ("problem_task", "PTASK")])
def test_servicenow_creates_then_patches_records(tracker: TrackerServer, table: str, prefix: str) -> None:
    target = servicenow(tracker, table)
    basic = Credentials(user=USER, password=PASSWORD)
    first = run_export(make_review(OPEN_1, DONE_NO_TICKET), target, basic)

    assert first.error is None
    sys_id = f"{1:032x}"
    stored = ticket(first.review, "A-001")
    assert stored == f"{prefix}0010001 {tracker.url}/{table}.do?sys_id={sys_id}"
    post = tracker.requests[0]
    assert (post.method, post.path, post.answered) == ("POST", f"/api/now/table/{table}", 201)
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert post.headers["authorization"] == f"Basic {pair}"
    assert isinstance(post.body, dict)
    assert post.body["short_description"] == "A-001: kv promotion held up: automate the replica promotion"
    assert (post.body["urgency"], post.body["impact"]) == ("2", "1")  # high
    assert post.body["due_date"] == "2026-12-31 22:59:59"  # the end of the day in Berlin (CET), in UTC

    closed = replace(first.review.actions[0], status="done", closure=RETEST)
    second = run_export(replace(first.review, actions=(closed, first.review.actions[1])), target, basic)

    assert second.error is None and not second.changed
    patch = tracker.requests[1]
    assert (patch.method, patch.path, patch.answered) == ("PATCH", f"/api/now/table/{table}/{sys_id}", 200)
    assert len(tracker.requests) == 2  # done without a ticket, skipped
    record = tracker.state.records[(table, sys_id)]
    assert str(record["description"]).startswith("Status in the after-action review: done\n")


def test_servicenow_unknown_record_is_a_clear_404(tracker: TrackerServer) -> None:
    gone = replace(OPEN_1, ticket=f"INC0000042 {tracker.url}/incident.do?sys_id={'9' * 32}")
    outcome = run_export(make_review(gone), servicenow(tracker, "incident"), Credentials(token=TOKEN))
    assert outcome.error is not None
    assert str(outcome.error) == (
        f"A-001: ServiceNow answered 404 Not Found to PATCH {tracker.url}/api/now/table/incident/{'9' * 32}: "
        "No Record found; Record doesn't exist or ACL restricts the record retrieval "
        "(no ticket INC0000042, or the account cannot see it)"
    )


# ---------------------------------------------------------------- retries and failures


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_an_update_is_retried_after_a_503_or_a_lost_answer(tracker: TrackerServer, fault: Fault) -> None:
    target = jira(tracker)
    first = run_export(make_review(OPEN_1), target, Credentials(token=TOKEN))
    tracker.fail_next(1, fault)
    lines: list[str] = []
    sleeps: list[float] = []
    plan = plan_export(first.review, None, target)
    outcome = export_tickets(
        first.review, plan, target, Credentials(token=TOKEN), on_attempt=lines.append, sleep=sleeps.append
    )

    assert outcome.error is None
    assert [(r.method, r.answered) for r in tracker.requests[1:]] == [
        ("PUT", 503 if fault == "503" else 0),
        ("PUT", 204),
    ]
    assert sleeps == [1.0]
    assert len(lines) == 1 and lines[0].endswith("attempt 2 of 3 in 1 s")
    assert TOKEN not in lines[0]


def test_an_update_gives_up_after_three_attempts(tracker: TrackerServer) -> None:
    target = jira(tracker)
    first = run_export(make_review(OPEN_1), target, Credentials(token=TOKEN))
    tracker.fail_next(3, "503")
    outcome = run_export(first.review, target, Credentials(token=TOKEN))
    assert outcome.error is not None
    assert len(tracker.requests) == 4
    assert str(outcome.error).startswith(f"A-001: Jira answered 503 Service Unavailable to PUT {tracker.url}")


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_a_create_is_not_retried_and_the_failure_is_one_line(tracker: TrackerServer, fault: Fault) -> None:
    target = jira(tracker)
    tracker.fail_next(1, fault, after=1)  # A-001 is created, A-002's create fails
    outcome = run_export(make_review(OPEN_1, OPEN_2), target, Credentials(token=TOKEN))

    assert outcome.error is not None
    assert [r.method for r in tracker.requests] == ["POST", "POST"]  # no second attempt
    message = str(outcome.error)
    assert "\n" not in message
    assert message.startswith("A-002: ")
    assert "the ticket may have been created: look for 'A-002:' in the tracker" in message
    if fault == "503":
        assert "answered 503 Service Unavailable" in message
        assert "(an HTML page)" in message
    else:
        assert "no answer (RemoteProtocolError" in message
    # what was done before the failure is in the outcome, to be stored
    assert outcome.changed
    assert ticket(outcome.review, "A-001") == f"OPS-1 {tracker.url}/browse/OPS-1"
    assert ticket(outcome.review, "A-002") == ""


@pytest.mark.parametrize(
    "credentials",
    [Credentials(token="wrong-" + TOKEN), Credentials(user=USER, password="wrong-" + PASSWORD)],
    ids=["bearer", "basic"],
)
def test_bad_credentials_give_a_clear_401_without_the_secret(
    tracker: TrackerServer, credentials: Credentials
) -> None:
    for target in (jira(tracker), servicenow(tracker, "incident")):
        outcome = run_export(make_review(OPEN_1), target, credentials)
        assert outcome.error is not None
        message = str(outcome.error)
        assert "answered 401 Unauthorized" in message
        assert (
            "(the credentials were not accepted: check --token-env, or --user-env and --password-env)"
            in message
        )
        for secret in (credentials.token, credentials.password, credentials.authorization().split()[1]):
            if secret:
                assert secret not in message
    assert [r.answered for r in tracker.requests] == [401, 401]


def test_a_tracker_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    with running_tracker(token=TOKEN) as server:
        url = server.url  # stopped at the end of the block: nothing listens there any more
    target = parse_tracker("jira", url, project="OPS")
    sleeps: list[float] = []
    review = make_review(OPEN_1)
    outcome = export_tickets(
        review, plan_export(review, None, target), target, Credentials(token=TOKEN), sleep=sleeps.append
    )
    assert outcome.error is not None
    assert sleeps == [1.0, 2.0]  # a connection never made: nothing sent, so even a create is retried
    assert str(outcome.error).startswith(f"A-001: POST {url}/rest/api/2/issue: cannot connect (ConnectError")
    assert "\n" not in str(outcome.error)


# ---------------------------------------------------------------- the command


@click.group(cls=DrillGroup)
def review_group() -> None:
    """`drill review` as the CLI will hold it: DrillGroup turns a DrillError into its exit code."""


review_group.add_command(export)


def cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(review_group, ["export", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def jira_args(target: Path, url: str, *rest: str) -> list[str]:
    """`review export` arguments for Jira project OPS at `url`, then `rest`."""
    return [str(target), "--tracker", "jira", "--url", url, "--project", "OPS", *rest]


def written(tmp_path: Path, *actions: Action) -> Path:
    path = tmp_path / "review.yaml"
    write_review(path, make_review(*actions))
    return path


def test_cli_creates_then_updates_and_stores_tickets_in_the_review(
    tmp_path: Path, tracker: TrackerServer
) -> None:
    path = written(tmp_path, OPEN_1, OPEN_2, DONE_NO_TICKET)
    args = jira_args(path, tracker.url, "--token-env", "JIRA_PAT")
    code, out, err = cli(args, env={"JIRA_PAT": TOKEN})

    assert code == 0, err
    assert out.splitlines() == [
        f"A-001: created OPS-1 {tracker.url}/browse/OPS-1",
        f"A-002: created OPS-2 {tracker.url}/browse/OPS-2",
        "A-003: skipped: done, no ticket",
    ]
    assert err.splitlines() == [
        f"{path}: tickets written (the review is not signed yet: "
        f"drill review sign {path} --sign-key KEY --signer NAME)"
    ]
    stored = load_review(path)
    assert [a.ticket for a in stored.actions] == [
        f"OPS-1 {tracker.url}/browse/OPS-1",
        f"OPS-2 {tracker.url}/browse/OPS-2",
        "",
    ]

    before = path.read_bytes()
    code, out, err = cli([*args, "--format", "json"], env={"JIRA_PAT": TOKEN})
    assert code == 0, err
    doc = json.loads(out)
    assert [(d["action"], d["operation"], d["status"]) for d in doc["done"]] == [
        ("A-001", "update", 204),
        ("A-002", "update", 204),
    ]
    assert doc["review_written"] is False and doc["error"] is None
    assert path.read_bytes() == before  # nothing changed: not rewritten, signatures stay valid
    assert "re-sign" not in err
    assert [r.method for r in tracker.requests] == ["POST", "POST", "PUT", "PUT"]
    assert TOKEN not in out + err


def test_cli_dry_run_sends_nothing_and_needs_no_credentials(tmp_path: Path, tracker: TrackerServer) -> None:
    path = written(tmp_path, OPEN_1, DONE_NO_TICKET)
    before = path.read_bytes()
    code, out, err = cli(
        [str(path), "--tracker", "servicenow", "--url", tracker.url, "--table", "problem_task", "--dry-run"]
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"A-001: create: POST {tracker.url}/api/now/table/problem_task",
        "A-003: skipped: done, no ticket",
        "dry run: nothing sent to ServiceNow",
    ]
    code, out, err = cli(jira_args(tmp_path, tracker.url, "--dry-run", "--format", "json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["dry_run"] is True
    assert doc["requests"][0]["body"]["fields"]["project"] == {"key": "OPS"}
    assert tracker.requests == []
    assert path.read_bytes() == before


def test_cli_partial_failure_stores_what_was_done_and_exits_1(tmp_path: Path, tracker: TrackerServer) -> None:
    path = written(tmp_path, OPEN_1, OPEN_2)
    (tmp_path / "review.yaml.lead.sig").write_text("a signature over the bytes before the export\n")
    tracker.fail_next(1, "503", after=1)
    code, out, err = cli(
        jira_args(path, tracker.url, "--user-env", "U", "--password-env", "P"),
        env={"U": USER, "P": PASSWORD},
    )
    assert code == 1
    assert out.splitlines() == [
        f"A-001: created OPS-1 {tracker.url}/browse/OPS-1",
        "A-002: not done (create): the export stopped",
    ]
    failure = [line for line in err.splitlines() if line.startswith("drill: ")]
    assert len(failure) == 1
    assert failure[0].startswith(f"drill: A-002: Jira answered 503 Service Unavailable to POST {tracker.url}")
    assert [a.ticket for a in load_review(path).actions] == [f"OPS-1 {tracker.url}/browse/OPS-1", ""]
    assert f"{path}: tickets written: its signatures (review.yaml.lead.sig) no longer match; re-sign: " in err
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert PASSWORD not in out + err and pair not in out + err


def test_cli_401_exits_1_without_the_token(tmp_path: Path, tracker: TrackerServer) -> None:
    path = written(tmp_path, OPEN_1)
    wrong = "wrong-" + TOKEN
    code, out, err = cli(
        [str(path), "--tracker", "servicenow", "--url", tracker.url, "--token-env", "SN_TOKEN"],
        env={"SN_TOKEN": wrong},
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"drill: A-001: ServiceNow answered 401 Unauthorized to POST {tracker.url}/api/now/table/incident: "
        "User Not Authenticated; Required to provide Auth information "
        "(the credentials were not accepted: check --token-env, or --user-env and --password-env)"
    ]
    assert wrong not in out + err
    assert load_review(path).actions[0].ticket == ""


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--tracker", "jira", "--url", "http://127.0.0.1:9", "--project", "OPS"],
            {},
            "give the credentials' environment variables",
        ),
        (
            [
                "--tracker",
                "jira",
                "--url",
                "http://127.0.0.1:9",
                "--project",
                "OPS",
                "--token-env",
                "NOT_SET",
            ],
            {},
            "--token-env NOT_SET: that environment variable is not set",
        ),
        (
            ["--tracker", "jira", "--url", "http://127.0.0.1:9", "--dry-run"],
            {},
            "--tracker jira needs --project KEY",
        ),
        (
            [
                "--tracker",
                "servicenow",
                "--url",
                "http://127.0.0.1:9",
                "--table",
                "change_request",
                "--dry-run",
            ],
            {},
            "--table change_request: use incident or problem_task",
        ),
        (
            [
                "--tracker",
                "jira",
                "--url",
                "https://bot:pw@jira.example.com",
                "--project",
                "OPS",
                "--dry-run",
            ],
            {},
            "--url must not hold credentials",
        ),
        (
            [
                "--tracker",
                "jira",
                "--url",
                "http://127.0.0.1:9",
                "--project",
                "OPS",
                "--token-env",
                "T",
                "--user-env",
                "U",
            ],
            {"T": "x" * 8, "U": "u"},
            "not both",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    path = written(tmp_path, OPEN_1)
    code, _out, err = cli([str(path), *args], env=env)
    assert code == 2
    assert err.count("\n") == 1 and message in err


# ---------------------------------------------------------------- a real report beside the review


def test_cli_puts_the_bound_report_s_finding_into_the_ticket(
    tmp_path: Path, tracker: TrackerServer, practice: Practice
) -> None:
    folder = tmp_path / "q2"
    shutil.copytree(practice.runs["q2"], folder)
    report = load_report(folder)
    finding = report.findings[0]
    sha = hashlib.sha256((folder / "report.json").read_bytes()).hexdigest()
    action = Action(id="A-001", finding=finding.id, title="fix it", severity=finding.severity.value)
    review = replace(make_review(action), run_id=report.run_id, report_sha256=sha)
    write_review(folder / "review.yaml", review)

    code, out, err = cli(
        jira_args(folder, tracker.url, "--token-env", "T"),
        env={"T": TOKEN},
    )
    assert code == 0, err
    assert out.splitlines() == [f"A-001: created OPS-1 {tracker.url}/browse/OPS-1"]
    description = tracker.state.issues["OPS-1"]["description"]
    assert isinstance(description, str)
    assert (
        f"Finding: {finding.id} ({finding.severity.value}): {' '.join(finding.title.split())}" in description
    )
    assert "warning" not in err

    # a report that is not the bound one is not used (and the command says so)
    write_review(
        folder / "review.yaml", replace(load_review(folder / "review.yaml"), report_sha256="00" * 32)
    )
    code, out, err = cli(
        jira_args(folder, tracker.url, "--token-env", "T"),
        env={"T": TOKEN},
    )
    assert code == 0, err
    assert out.splitlines() == [f"A-001: updated OPS-1 {tracker.url}/browse/OPS-1"]
    assert "is not the report this review is bound to" in err
    assert "Finding: " + finding.id + " (" + finding.severity.value + ")\n" in str(
        tracker.state.issues["OPS-1"]["description"]
    )


def test_cli_names_the_tickets_when_the_review_cannot_be_written(
    tmp_path: Path, tracker: TrackerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = written(tmp_path, OPEN_1)

    def refuse(where: Path, review: Review) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("drill.cli.review_export.write_review", refuse)
    code, out, err = cli(
        jira_args(path, tracker.url, "--token-env", "T"),
        env={"T": TOKEN},
    )
    assert code == 1
    assert out.splitlines() == [f"A-001: created OPS-1 {tracker.url}/browse/OPS-1 (not stored)"]
    assert err.splitlines() == [
        f"drill: cannot write {path}: No space left on device; put the tickets above in the actions' "
        "ticket fields before exporting again"
    ]


def test_cli_a_missing_review_is_bad_input(tmp_path: Path) -> None:
    code, _out, err = cli(
        [
            str(tmp_path / "nope.yaml"),
            "--tracker",
            "jira",
            "--url",
            "http://127.0.0.1:9",
            "--project",
            "OPS",
            "--dry-run",
        ]
    )
    assert code == 2
    assert err.startswith(f"drill: {tmp_path / 'nope.yaml'}: cannot read the review")
