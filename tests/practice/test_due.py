"""`drill due`: pure tests of compute_due over hand-built RunRecords (calendar days in a stated
zone across DST changes, month ends, what counts), then `drill due` over the practice's real,
signed drills (tests/practice/conftest.py)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from drill.cli import DrillGroup
from drill.cli.due import due
from drill.errors import UsageError
from drill.practice.due import (
    AssetDue,
    Cadence,
    CurrentAsset,
    CurrentPlaybook,
    DueReport,
    RunTest,
    compute_due,
    due_text,
    parse_as_of,
    parse_cadence,
    parse_tier_cadences,
    parse_zone,
)
from drill.practice.history import History, add_folders, read_record
from drill.practice.records import TAMPERED, UNSIGNED, VERIFIED, AssetRecord, RunMode, RunRecord, Status
from tests.practice.conftest import PLAYBOOK_NAME, Practice, changed_text
from tests.practice.records_builders import run_record

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # "now" where a test gives the as-of day itself
QUARTERLY = parse_cadence("3mo")
MONTHLY = parse_cadence("1mo")

# `drill due` under a `drill` group of its own: the DrillGroup that turns a DrillError into one
# line and its exit code, whether or not COMMANDS lists `due` at the moment.
DRILL = DrillGroup("drill")
DRILL.add_command(due)


def drill(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(DRILL, [str(a) for a in args], env=env)


# ---------------------------------------------------------------- hand-built records


def asset(
    name: str,
    tier: str = "tier-0",
    *,
    verdict: str = "pass",
    rto: str | None = "met",
    rpo: str | None = None,
    definition: str = "",
) -> AssetRecord:
    return AssetRecord(
        asset=name,
        tier=tier,
        verdict=verdict,
        detection_ms=None,
        switchover_ms=None,
        rto_ms=1000 if rto in ("met", "missed") else None,
        rto_target_ms=5000,
        rto_state=rto,
        rpo_ms=None,
        rpo_target_ms=None,
        rpo_state=rpo,
        lost_writes=None,
        availability_bp=None,
        chain="",
        ack_ms=None,
        definition_sha256=definition or f"def-{name}",
    )


def record(
    run_id: str,
    generated_utc: str,
    *assets: AssetRecord,
    status: Status = VERIFIED,
    mode: RunMode = "drill",
    playbook: str = "pb",
) -> RunRecord:
    return run_record(
        run_id,
        generated_utc,
        assets=assets,
        mode=mode,
        status=status,
        problem="" if status == VERIFIED else f"the {status} problem",
        playbook=playbook,
        playbook_sha256="pb-sha",
        folder=f"/runs/{run_id}",
    )


def due_of(records: list[RunRecord], as_of: date, zone: ZoneInfo = BERLIN, **kwargs: Any) -> DueReport:
    kwargs.setdefault("default_cadence", QUARTERLY)
    return compute_due(records, as_of=as_of, zone=zone, **kwargs)


def ref(test: RunTest | None) -> RunTest:
    assert test is not None
    return test


def only(report: DueReport, name: str = "db") -> AssetDue:
    return next(a for a in report.assets if a.asset == name)


# ---------------------------------------------------------------- the day in the zone, across DST


@pytest.mark.parametrize(
    ("zone", "ended_utc", "local_day", "utc_day"),
    [
        # Berlin springs forward on 29 March 2026 at 01:00 UTC (02:00 CET -> 03:00 CEST)
        (BERLIN, "2026-03-28T23:30:00+00:00", date(2026, 3, 29), date(2026, 3, 28)),  # 00:30 CET
        (BERLIN, "2026-03-29T22:30:00+00:00", date(2026, 3, 30), date(2026, 3, 29)),  # 00:30 CEST
        # and falls back on 25 October 2026 at 01:00 UTC (03:00 CEST -> 02:00 CET)
        (BERLIN, "2026-10-24T22:30:00+00:00", date(2026, 10, 25), date(2026, 10, 24)),  # 00:30 CEST
        (BERLIN, "2026-10-25T22:30:00+00:00", date(2026, 10, 25), date(2026, 10, 25)),  # 23:30 CET
        (BERLIN, "2026-10-25T23:30:00+00:00", date(2026, 10, 26), date(2026, 10, 25)),  # 00:30 CET
        # New York springs forward on 8 March 2026 at 07:00 UTC, falls back on 1 November at 06:00 UTC
        (NEW_YORK, "2026-03-08T03:30:00+00:00", date(2026, 3, 7), date(2026, 3, 8)),  # 22:30 EST
        (NEW_YORK, "2026-03-09T03:30:00+00:00", date(2026, 3, 8), date(2026, 3, 9)),  # 23:30 EDT
        (NEW_YORK, "2026-11-02T04:30:00+00:00", date(2026, 11, 1), date(2026, 11, 2)),  # 23:30 EST
    ],
)
def test_the_day_of_a_test_is_the_calendar_day_in_the_zone(
    zone: ZoneInfo, ended_utc: str, local_day: date, utc_day: date
) -> None:
    report = due_of([record("r1", ended_utc, asset("db"))], local_day, zone, default_cadence=QUARTERLY)
    row = only(report)
    assert row.last_test is not None and row.last_test.day == local_day
    due_day = QUARTERLY.after(local_day)
    assert row.due == due_day
    if local_day != utc_day:  # a due date counted in UTC days would be a day off
        assert QUARTERLY.after(utc_day) != due_day
    # due today on the due day itself, overdue exactly the day after: in the zone's calendar
    on_the_day = due_of([record("r1", ended_utc, asset("db"))], due_day, zone)
    assert (only(on_the_day).status, on_the_day.exit_code) == ("due today", 0)
    day_after = due_of([record("r1", ended_utc, asset("db"))], due_day + timedelta(days=1), zone)
    assert only(day_after).status == "overdue" and only(day_after).days_left == -1
    assert day_after.exit_code == 1
    assert day_after.time_zone == zone.key


def test_a_drill_just_after_midnight_in_berlin_is_due_on_that_local_day_not_the_utc_one() -> None:
    """The drill ended at 23:30 UTC on 28 March: 00:30 on 29 March in Berlin. Counted by UTC days
    it would be due on 28 June and overdue on 29 June; in Berlin it is due on 29 June."""
    records = [record("spring", "2026-03-28T23:30:00+00:00", asset("db"))]
    on_29_june = due_of(records, date(2026, 6, 29))
    assert only(on_29_june).due == date(2026, 6, 29)
    assert only(on_29_june).status == "due today" and on_29_june.exit_code == 0
    in_utc = due_of(records, date(2026, 6, 29), UTC_ZONE)
    assert only(in_utc).status == "overdue" and in_utc.exit_code == 1


def test_a_due_date_across_the_october_change_is_a_calendar_day() -> None:
    """1 month after 25 October (CEST) is 25 November (CET): the hour lost or gained moves nothing."""
    records = [record("autumn", "2026-10-24T22:30:00+00:00", asset("db"))]
    report = due_of(records, date(2026, 11, 25), default_cadence=MONTHLY)
    assert only(report).due == date(2026, 11, 25) and only(report).status == "due today"
    assert due_of(records, date(2026, 11, 26), default_cadence=MONTHLY).exit_code == 1


def test_as_of_is_a_day_in_the_zone() -> None:
    now = parse_as_of(None, BERLIN, datetime.fromisoformat("2026-03-28T23:30:00+00:00"))
    assert now == date(2026, 3, 29)
    assert parse_as_of("2026-03-28T23:30:00+00:00", NEW_YORK, LONG_AGO) == date(2026, 3, 28)
    assert parse_as_of("2026-02-28", BERLIN, LONG_AGO) == date(2026, 2, 28)
    for bad in ("2026-02-30", "2026-03-28T23:30:00", "next week"):
        with pytest.raises(UsageError):
            parse_as_of(bad, BERLIN, LONG_AGO)


# ---------------------------------------------------------------- cadences


def test_months_are_calendar_months_clamped_to_the_months_end() -> None:
    assert MONTHLY.after(date(2026, 1, 31)) == date(2026, 2, 28)
    assert MONTHLY.after(date(2028, 1, 31)) == date(2028, 2, 29)  # a leap year
    assert QUARTERLY.after(date(2026, 11, 30)) == date(2027, 2, 28)  # across the year's end
    assert parse_cadence("1mo15d").after(date(2026, 1, 31)) == date(2026, 3, 15)  # months, then days
    assert parse_cadence("90d").after(date(2026, 1, 31)) == date(2026, 5, 1)
    assert parse_cadence("1y").after(date(2028, 2, 29)) == date(2029, 2, 28)
    assert parse_cadence("2w") == Cadence(0, 14, "2w")
    assert QUARTERLY.after(date(9999, 11, 1)) == date.max  # past the calendar's end: no crash
    assert parse_cadence("90d").after(date(9999, 12, 1)) == date.max


def test_31_january_plus_a_month_is_due_on_28_february_and_overdue_on_1_march() -> None:
    records = [record("jan", "2026-01-31T12:00:00+00:00", asset("db"))]
    assert only(due_of(records, date(2026, 2, 28), default_cadence=MONTHLY)).status == "due today"
    late = due_of(records, date(2026, 3, 1), default_cadence=MONTHLY)
    assert only(late).status == "overdue" and late.exit_code == 1
    # 23:30 UTC on 31 January is already 1 February in Berlin: due 1 March
    evening = [record("jan", "2026-01-31T23:30:00+00:00", asset("db"))]
    assert only(due_of(evening, date(2026, 3, 1), default_cadence=MONTHLY)).due == date(2026, 3, 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("3m", "months are 'mo' (3mo)"),
        ("0d", "is zero"),
        ("", "not a number"),
        ("quarterly", "not a number"),
        ("1d3mo", "not a number"),
        ("1201mo", "longer than a century"),
    ],
)
def test_a_bad_cadence_is_bad_input(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_cadence(text)
    assert words in str(caught.value)


def test_tier_cadences() -> None:
    assert parse_tier_cadences(["data=1mo", "internal=6mo", "data=2w"]) == {
        "data": Cadence(0, 14, "2w"),
        "internal": Cadence(6, 0, "6mo"),
    }
    for bad in ("data", "=1mo", "data=soon"):
        with pytest.raises(UsageError):
            parse_tier_cadences([bad])


def test_a_zone_must_be_a_stated_iana_zone() -> None:
    assert parse_zone("Europe/Berlin").key == "Europe/Berlin"
    for bad in (
        "localtime",
        "Factory",
        "posixrules",
        "Mars/Olympus",
        "/etc/localtime",
        "../../etc/passwd",
        "",
    ):
        with pytest.raises(UsageError):
            parse_zone(bad)


# ---------------------------------------------------------------- what counts


def test_tampered_unsigned_and_contact_tests_never_count() -> None:
    records = [
        record("q1", "2026-01-10T10:00:00+00:00", asset("db")),
        record("tampered", "2026-04-10T10:00:00+00:00", asset("db"), status=TAMPERED),
        record("unsigned", "2026-05-10T10:00:00+00:00", asset("db"), status=UNSIGNED),
        record("contacts", "2026-06-10T10:00:00+00:00", asset("db"), mode="contacts"),
        record("noclock", "not a time", asset("db")),
    ]
    report = due_of(records, date(2026, 4, 11))
    row = only(report)
    assert ref(row.last_test).run_id == "q1" and row.due == date(2026, 4, 10)
    assert row.status == "overdue" and report.exit_code == 1
    assert report.used == ("q1",)
    reasons = {e.run_id: e.reason for e in report.excluded}
    assert reasons["tampered"] == "tampered: the tampered problem"
    assert reasons["unsigned"] == "unsigned: the unsigned problem"
    assert reasons["contacts"].startswith("a contact test")
    assert "no time with an offset" in reasons["noclock"]


def test_a_failed_test_resets_the_cadence_and_an_unmeasured_asset_was_not_tested() -> None:
    records = [
        record("q1", "2026-01-10T10:00:00+00:00", asset("db"), asset("cache")),
        record("q2", "2026-04-10T10:00:00+00:00", asset("db", verdict="fail", rto="missed"), asset("cache")),
        record(
            "q3",
            "2026-07-10T10:00:00+00:00",
            asset("db", verdict="unaffected", rto="unaffected"),
            asset("cache", verdict="not-measured", rto="not-measured"),
        ),
    ]
    report = due_of(records, date(2026, 7, 11))
    db = only(report, "db")
    assert ref(db.last_test).run_id == "q2" and ref(db.last_test).verdict == "fail"
    assert db.due == date(2026, 7, 10) and db.status == "overdue"
    assert ref(db.last_pass).run_id == "q1" and not db.needs_verification
    cache = only(report, "cache")
    assert ref(cache.last_test).run_id == "q2" and cache.due == date(2026, 7, 10)
    # an RPO measured counts as a test too
    rpo_only = [record("q1", "2026-01-10T10:00:00+00:00", asset("db", rto=None, rpo="met"))]
    assert only(due_of(rpo_only, date(2026, 2, 1))).last_test is not None


def test_needs_verification_when_the_definition_changed_since_the_last_passing_drill() -> None:
    records = [
        record("q1", "2026-01-10T10:00:00+00:00", asset("db", definition="v1"), asset("web", "tier-1")),
        record("q2", "2026-04-10T10:00:00+00:00", asset("db", definition="v1", verdict="fail", rto="missed")),
    ]
    as_now = CurrentPlaybook(
        "pb",
        (
            CurrentAsset("db", "tier-0", "v2"),
            CurrentAsset("web", "tier-1", "def-web"),
            CurrentAsset("new", "tier-1", "def-new"),
        ),
        ("tier-0", "tier-1"),
    )
    report = due_of(records, date(2026, 5, 1), current=[as_now])
    db, web, new = (only(report, n) for n in ("db", "web", "new"))
    assert db.needs_verification and "changed since its last passing drill" in db.verification_reason
    assert db.status == "not yet due" and ref(db.last_pass).run_id == "q1"
    assert not web.needs_verification
    assert (new.status, new.due, new.needs_verification) == ("never tested", None, True)
    assert report.exit_code == 0  # `new` is in tier-1, not the gate tier-0
    assert report.assets[0].asset == "new"  # never tested: overdue, first
    text = " ".join(" ".join(due_text(report)).split())
    assert (
        "NEEDS VERIFICATION: its definition changed since its last passing drill (last passed in q1)" in text
    )
    # the same definition as last passed: no verification needed; a definition never passed: needed
    same = CurrentPlaybook("pb", (CurrentAsset("db", "tier-0", "v1"),), ("tier-0",))
    assert not only(due_of(records, date(2026, 5, 1), current=[same])).needs_verification
    failed_only = [record("q2", "2026-04-10T10:00:00+00:00", asset("db", verdict="fail", rto="missed"))]
    row = only(due_of(failed_only, date(2026, 5, 1)))
    assert row.needs_verification and row.verification_reason == "never passed a drill"
    # a new asset in the gate tier fails the gate
    gate = CurrentPlaybook("pb", (CurrentAsset("fresh", "tier-0", "x"),), ("tier-0",))
    assert due_of(records, date(2026, 5, 1), current=[gate]).exit_code == 1


def test_overdue_first_then_the_soonest_due() -> None:
    records = [
        record("q1", "2026-01-10T10:00:00+00:00", asset("a"), asset("b"), asset("c")),
        record("q2", "2026-02-10T10:00:00+00:00", asset("b")),
        record("q3", "2026-03-10T10:00:00+00:00", asset("c")),
        record(
            "q4",
            "2026-04-10T10:00:00+00:00",
            asset("a", rto="unaffected"),
            asset("b", rto="unaffected"),
            asset("c", rto="unaffected"),
            asset("e"),
        ),
    ]
    now = CurrentPlaybook(
        "pb", tuple(CurrentAsset(n, "tier-0", f"def-{n}") for n in ("e", "c", "b", "a", "new")), ("tier-0",)
    )
    report = due_of(records, date(2026, 3, 20), default_cadence=MONTHLY, current=[now])
    assert [(a.asset, a.status) for a in report.assets] == [
        ("new", "never tested"),
        ("a", "overdue"),  # due 10 February
        ("b", "overdue"),  # due 10 March
        ("c", "not yet due"),  # due 10 April
        ("e", "not yet due"),  # due 10 May
    ]


def test_the_gate_is_the_first_tier_unless_named() -> None:
    """Without a playbook, the first tier is the one of the latest drill's first asset (reports
    list assets in plan order: tiers in priority order)."""
    records = [
        record("q1", "2026-01-10T10:00:00+00:00", asset("db", "data"), asset("reports", "internal")),
        record(
            "q2",
            "2026-04-20T10:00:00+00:00",
            asset("db", "data"),
            asset("reports", "internal", rto="unaffected"),
        ),
    ]
    report = due_of(records, date(2026, 5, 1))  # reports due 10 April: overdue; db not due
    assert only(report, "reports").status == "overdue" and report.exit_code == 0
    assert report.gate_tiers == (("pb", "data"),)
    named = due_of(records, date(2026, 5, 1), gate_tier="internal")
    assert named.exit_code == 1 and named.gate_tiers == (("pb", "internal"),)
    with pytest.raises(UsageError, match="--gate-tier 'tier-9'"):
        due_of(records, date(2026, 5, 1), gate_tier="tier-9")
    with pytest.raises(UsageError, match="--tier-cadence names tier 'tier-9'"):
        due_of(records, date(2026, 5, 1), cadences={"tier-9": MONTHLY})
    faster = due_of(records, date(2026, 5, 21), cadences={"data": MONTHLY})
    assert only(faster, "db").due == date(2026, 5, 20) and faster.exit_code == 1


def test_only_the_current_playbooks_when_told() -> None:
    records = [
        record("a", "2026-01-10T10:00:00+00:00", asset("db"), playbook="other"),
        record("b", "2026-04-10T10:00:00+00:00", asset("web"), playbook="pb"),
    ]
    current = [CurrentPlaybook("pb", (CurrentAsset("web", "tier-0", "def-web"),), ("tier-0",))]
    every = due_of(records, date(2026, 5, 1), current=current)
    assert {a.playbook for a in every.assets} == {"other", "pb"} and every.exit_code == 1  # other's db
    mine = due_of(records, date(2026, 5, 1), current=current, only_current=True)
    assert {a.playbook for a in mine.assets} == {"pb"} and mine.exit_code == 0
    assert mine.used == ("b",) and mine.current_playbooks == ("pb",)


# ---------------------------------------------------------------- the CLI's bad input


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    index = tmp_path / "history.sqlite"
    cases: list[tuple[list[str | Path], str]] = [
        (["--time-zone", "UTC", "--index", index], "does not exist"),
        (["--time-zone", "Mars/Olympus", "--index", index], "not a known IANA time zone"),
        (["--time-zone", "localtime", "--index", index], "the machine's own zone"),
        (["--time-zone", "UTC", "--cadence", "3m", "--index", index], "months are 'mo'"),
        (["--time-zone", "UTC", "--tier-cadence", "data", "--index", index], "not TIER=CADENCE"),
        (["--time-zone", "UTC", "--as-of", "2026-02-30", "--index", index], "is not a date"),
        (["--index", index], "Missing option '--time-zone'"),
    ]
    for args, words in cases:
        done = drill("due", *args, env={"DRILL_TIME_ZONE": ""})
        assert done.exit_code == 2, (args, done.output)
        assert words in done.output and "Traceback" not in done.output
    with History.open(index):
        pass  # an empty index: no verified drill, so no asset is known
    done = drill("due", "--time-zone", "UTC", "--index", index)
    assert done.exit_code == 2 and "holds no verified drill" in done.output


# ---------------------------------------------------------------- the practice's real drills


@pytest.fixture(scope="module")
def index(practice: Practice, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("due") / "history.sqlite"
    add_folders(path, list(practice.runs.values()), practice.allowed_signers)
    return path


@pytest.fixture(scope="module")
def q4_day(practice: Practice) -> date:
    """The day q4 ended, in Berlin."""
    q4 = read_record(practice.runs["q4"], practice.allowed_signers)
    return parse_as_of(q4.generated_utc, BERLIN, LONG_AGO)


def due_json(index: Path, *args: str | Path) -> tuple[int, Any]:
    done = drill("due", "--index", index, "--time-zone", "Europe/Berlin", "--format", "json", *args)
    assert done.exit_code in (0, 1), done.output
    return done.exit_code, json.loads(done.stdout)


def rows(data: Any) -> dict[str, Any]:
    return {a["asset"]: a for a in data["assets"]}


def test_practice_long_after_q4_the_first_tier_is_overdue(
    practice: Practice, index: Path, q4_day: date
) -> None:
    later = q4_day + timedelta(days=400)
    code, data = due_json(index, "--as-of", later.isoformat())
    assert code == 1 and data["exit_code"] == 1
    assets = rows(data)
    assert set(assets) == {"orders-kv", "web", "reports"}
    kv = assets["orders-kv"]
    assert (kv["tier"], kv["gate"], kv["status"]) == ("data", True, "overdue")
    assert kv["last_test"]["run_id"] == practice.run_ids["q4"]
    assert kv["due_date"] == QUARTERLY.after(q4_day).isoformat()
    assert data["gate_tiers"] == {PLAYBOOK_NAME: "data"}  # the demo's first tier
    text = drill("due", "--index", index, "--time-zone", "Europe/Berlin", "--as-of", later.isoformat())
    assert text.exit_code == 1 and "OVERDUE" in text.output
    assert all(len(line) <= 80 for line in text.output.splitlines()), text.output


def test_practice_the_day_after_q4_nothing_is_due(practice: Practice, index: Path, q4_day: date) -> None:
    code, data = due_json(index, "--as-of", (q4_day + timedelta(days=1)).isoformat())
    assert code == 0 and data["overdue"] == 0
    assert {a["status"] for a in rows(data).values()} == {"not yet due"}
    assert {a["last_test"]["run_id"] for a in rows(data).values()} == {practice.run_ids["q4"]}
    assert not any(a["needs_verification"] for a in rows(data).values())
    # a faster cadence for the internal tier makes `reports` overdue: the gate is still the data tier
    two_days = (q4_day + timedelta(days=2)).isoformat()
    code, data = due_json(index, "--as-of", two_days, "--tier-cadence", "internal=1d")
    assert code == 0 and rows(data)["reports"]["status"] == "overdue"
    code, _ = due_json(index, "--as-of", two_days, "--tier-cadence", "internal=1d", "--gate-tier", "internal")
    assert code == 1


def test_practice_tampered_unsigned_and_contacts_are_excluded_with_the_reason(
    practice: Practice, index: Path, q4_day: date
) -> None:
    _, data = due_json(index, "--as-of", q4_day.isoformat())
    excluded = {e["folder"]: e["reason"] for e in data["excluded"]}
    tampered = excluded[str(practice.runs["tampered"].resolve())]
    assert tampered.startswith("tampered: ") and "does not match report.json" in tampered
    assert excluded[str(practice.runs["unsigned"].resolve())].startswith("unsigned")
    assert excluded[str(practice.runs["contacts"].resolve())].startswith("a contact test")
    ids = practice.run_ids
    assert data["used"] == [ids["q1"], ids["q2"], ids["q3"], ids["q4"]]


def test_practice_a_changed_playbook_needs_verification(
    practice: Practice, tmp_path: Path, q4_day: date
) -> None:
    q1_only = tmp_path / "q1.sqlite"
    add_folders(q1_only, [practice.runs["q1"], practice.runs["tampered"]], practice.allowed_signers)
    day = (q4_day + timedelta(days=1)).isoformat()
    code, data = due_json(q1_only, "--as-of", day, "--playbook", practice.playbooks["q4"])
    assert code == 0 and data["current_playbooks"] == [PLAYBOOK_NAME]
    web = rows(data)["web"]
    assert web["needs_verification"] is True
    assert web["verification_reason"] == "its definition changed since its last passing drill"
    assert web["last_pass"]["run_id"] == practice.run_ids["q1"]
    assert (
        not rows(data)["orders-kv"]["needs_verification"] and not rows(data)["reports"]["needs_verification"]
    )
    # the definition hashed from the playbook file is the one its own run journalled
    _, full = due_json(
        practice_index(practice, tmp_path), "--as-of", day, "--playbook", practice.playbooks["q4"]
    )
    assert not any(a["needs_verification"] for a in rows(full).values())
    # an asset added since shows as never tested; in the internal tier it does not fail the gate
    added = tmp_path / "added.yaml"
    text = changed_text("2026-Q4")
    assert "\nscenario:\n" in text
    added.write_text(
        text.replace(
            "\nscenario:\n",
            "  - id: billing\n    tier: internal\n    probes:\n      - name: health\n"
            '        http: {url: "${env:DRILL_LAB_REPORTS_URL}", expect_status: 200}\n\nscenario:\n',
            1,
        ),
        encoding="utf-8",
    )
    code, data = due_json(q1_only, "--as-of", day, "--playbook", added)
    billing = rows(data)["billing"]
    assert (billing["status"], billing["last_test"], billing["overdue"]) == ("never tested", None, True)
    assert data["assets"][0]["asset"] == "billing" and code == 0
    text_done = drill(
        "due", "--index", q1_only, "--time-zone", "Europe/Berlin", "--as-of", day, "--playbook", added
    )
    assert "NEVER TESTED" in text_done.output and "NEEDS VERIFICATION" in text_done.output


def practice_index(practice: Practice, tmp_path: Path) -> Path:
    path = tmp_path / "all.sqlite"
    add_folders(path, [practice.runs[label] for label in ("q1", "q2", "q3", "q4")], practice.allowed_signers)
    return path


def test_cli_an_invalid_playbook_is_bad_input(index: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: drill/v1\nkind: Playbook\n", encoding="utf-8")
    done = drill("due", "--index", index, "--time-zone", "UTC", "--playbook", bad)
    assert done.exit_code == 2 and "Traceback" not in done.output
