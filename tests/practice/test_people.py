"""People over time: the pure fold over hand-built RunRecords, then the practice's real evidence
through `drill contacts history` (an index of the fixture folders, and two more real contact
tests whose first contact's channel refuses connections)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from drill.cli import cli
from drill.cli.contacts import HISTORY_ENV, HISTORY_INDEX
from drill.practice.history import DEFAULT_INDEX, INDEX_ENV, History, add_folders
from drill.practice.people import (
    CHANNEL_FAILED,
    FROM_PAGES,
    FROM_PLAN,
    NO_ACK_TWICE,
    ChainOrder,
    PeopleHistory,
    Substitute,
    median_ms,
    people_data,
    people_history,
    people_text,
    read_chain_orders,
)
from drill.practice.records import PageRecord, RunMode, RunRecord, Status
from tests.practice.conftest import LABELS, Practice, changed_text
from tests.practice.records_builders import run_record

CHAIN = "oncall"


def page(
    contact: str,
    *,
    acked: bool = True,
    ack_ms: int | None = 500,
    delivered: bool = True,
    reason: str = "",
    chain: str = CHAIN,
    via: str = "webhook",
) -> PageRecord:
    return PageRecord(
        chain=chain,
        contact=contact,
        via=via,
        sent_utc="2026-03-01T10:00:00.000+00:00",
        delivered=delivered,
        reason=reason,
        acked=acked and delivered,
        ack_ms=ack_ms if acked and delivered else None,
    )


def run(
    run_id: str,
    started: str,
    *pages: PageRecord,
    mode: RunMode = "drill",
    status: Status = "verified",
    problem: str = "",
) -> RunRecord:
    return run_record(
        run_id, started, pages=pages, mode=mode, status=status, problem=problem, playbook="payments"
    )


def missed(contact: str = "alice") -> PageRecord:
    return page(contact, acked=False)


def contact_of(history: PeopleHistory, name: str) -> dict[str, Any]:
    contacts: Any = people_data(history)["contacts"]
    found = [c for c in contacts if c["contact"] == name]
    assert len(found) == 1, found
    return dict(found[0])


# ---------------------------------------------------------------- the fold


def test_two_consecutive_unacknowledged_drills_flag_with_the_substitute_path() -> None:
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", page("alice", ack_ms=400)),
        run("r2", "2026-04-10T10:00:00+00:00", missed("alice"), page("bob", ack_ms=900)),
        run("r3", "2026-07-10T10:00:00+00:00", missed("alice"), page("bob", ack_ms=800), page("carol")),
    ]
    history = people_history(records)
    alice, bob, carol = history.contacts[0], history.contacts[1], history.contacts[2]
    assert (alice.contact, alice.flagged) == ("alice", True)
    assert [(f.kind, f.runs) for f in alice.flags] == [(NO_ACK_TWICE, ("r2", "r3"))]
    # the order the latest run's pages went out (no plan given), alice herself left out
    assert [s.contact for s in alice.substitutes] == ["bob", "carol"]
    assert history.chains[0].source == FROM_PAGES and history.chains[0].run_id == "r3"
    assert not bob.flagged and not carol.flagged and bob.substitutes == ()
    text = "\n".join(people_text(history))
    assert text.index("FLAGGED (1,") < text.index("chain oncall")
    assert "did not acknowledge in two consecutive runs: r2, r3" in text
    assert "substitute path: bob (webhook) -> carol (webhook)" in text


def test_one_miss_between_two_acknowledgements_is_not_flagged() -> None:
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", page("alice")),
        run("r2", "2026-04-10T10:00:00+00:00", missed("alice")),
        run("r3", "2026-07-10T10:00:00+00:00", page("alice")),
    ]
    (alice,) = people_history(records).contacts
    assert not alice.flagged
    assert (alice.pages, alice.acknowledged, alice.ack_rate_bp) == (3, 2, 6666)


def test_run_order_is_the_start_time_not_the_order_given_nor_the_text() -> None:
    # r-b started 08:00Z (10:00+02:00), before r-a at 09:00Z: the last two runs are r-a and r-c.
    records = [
        run("r-a", "2026-03-01T09:00:00+00:00", missed()),
        run("r-c", "2026-03-01T11:00:00+00:00", missed()),
        run("r-b", "2026-03-01T10:00:00+02:00", page("alice")),
    ]
    history = people_history(records)
    assert history.used == ("r-b", "r-a", "r-c")
    assert history.contacts[0].flags[0].runs == ("r-a", "r-c")
    # the same runs, r-b now really the latest: one miss, then an ack: not flagged
    later = replace(records[2], started_utc="2026-03-01T12:00:00+00:00")
    assert not people_history([records[0], records[1], later]).contacts[0].flagged


def test_a_channel_failure_in_the_latest_run_is_flagged_with_its_reason() -> None:
    refused = page("alice", delivered=False, reason="connection refused", via="sms")
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", page("alice", delivered=False, reason="HTTP 500")),
        run("r2", "2026-04-10T10:00:00+00:00", page("alice"), page("bob")),
    ]
    assert not any(c.flagged for c in people_history(records).contacts)  # fixed since: not flagged
    records.append(run("r3", "2026-07-10T10:00:00+00:00", refused, page("bob")))
    alice = people_history(records).contacts[0]
    assert [(f.kind, f.runs, f.reasons) for f in alice.flags] == [
        (CHANNEL_FAILED, ("r3",), ("sms: connection refused",))
    ]
    assert (alice.pages, alice.delivered, alice.acknowledged) == (3, 1, 1)
    assert alice.via == ("webhook", "sms")
    assert [s.contact for s in alice.substitutes] == ["bob"]
    text = "\n".join(people_text(people_history(records)))
    assert "channel failed in the latest run r3: sms: connection refused" in text


def test_tampered_unsigned_and_unreadable_runs_are_never_counted_and_say_why() -> None:
    good = run("r1", "2026-01-10T10:00:00+00:00", page("alice", ack_ms=600))
    bad = [
        run("r2", "2026-04-10T10:00:00+00:00", missed(), status="tampered", problem="signature mismatch"),
        run("r3", "2026-07-10T10:00:00+00:00", missed(), status="unsigned", problem="no signatures"),
        run("", "", status="unreadable", problem="report.json is missing"),
    ]
    history = people_history([good, *bad])
    (alice,) = history.contacts
    assert (alice.pages, alice.acknowledged, alice.flagged, alice.last_run_id) == (1, 1, False, "r1")
    assert history.used == ("r1",)
    assert [(e.run_id, e.status, e.reason) for e in history.excluded] == [
        ("r2", "tampered", "signature mismatch"),
        ("r3", "unsigned", "no signatures"),
        ("", "unreadable", "report.json is missing"),
    ]
    text = "\n".join(people_text(history))
    assert "3 excluded" in text and "TAMPERED" in text and "signature mismatch" in text


def test_two_verified_reports_of_one_run_count_once() -> None:
    first = run("r1", "2026-01-10T10:00:00+00:00", missed())
    rebuilt = replace(
        first,
        report_sha256="sha-r1-rebuilt",
        folder="/copy/r1",
        generated_utc="2026-01-11T10:00:00+00:00",
        pages=(page("alice"),),
    )
    for records in ([first, rebuilt], [rebuilt, first]):
        history = people_history(records)
        (alice,) = history.contacts
        assert (alice.pages, alice.acknowledged) == (1, 1)  # the rebuilt report's page, once
        (excluded,) = history.excluded
        assert (excluded.folder, excluded.status) == ("/evidence/r1", "verified")
        assert excluded.reason.startswith("superseded: ")
        assert "SUPERSEDED r1  /evidence/r1" in "\n".join(people_text(history))


def test_ack_rate_median_and_worst_come_from_acknowledged_pages_only() -> None:
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", page("alice", ack_ms=300)),
        run("r2", "2026-02-10T10:00:00+00:00", page("alice", ack_ms=900), missed()),
        run("r3", "2026-03-10T10:00:00+00:00", page("alice", ack_ms=500)),
        run("r4", "2026-04-10T10:00:00+00:00", page("alice", ack_ms=700)),
    ]
    alice = contact_of(people_history(records), "alice")
    assert (alice["pages"], alice["acknowledged"], alice["ack_rate_bp"]) == (5, 4, 8000)
    assert (alice["median_ack_ms"], alice["worst_ack_ms"]) == (600, 900)  # (500 + 700) / 2
    assert [r["first_ack_ms"] for r in alice["runs_detail"]] == [300, 900, 500, 700]
    assert median_ms([300, 500, 900]) == 500 and median_ms([1, 2]) == 2 and median_ms([]) is None


def test_no_acknowledgement_is_not_measured_never_zero() -> None:
    records = [run("r1", "2026-01-10T10:00:00+00:00", missed())]
    alice = contact_of(people_history(records), "alice")
    assert (alice["median_ack_ms"], alice["worst_ack_ms"], alice["ack_rate_bp"]) == (None, None, 0)
    row = next(line for line in people_text(people_history(records)) if "alice" in line)
    assert row.count("not measured") == 2 and " 0 ms" not in row


def test_a_contact_test_counts_like_a_drill() -> None:
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", missed()),
        run("t1", "2026-02-10T10:00:00+00:00", missed(), mode="contacts"),
    ]
    history = people_history(records)
    alice = contact_of(history, "alice")
    assert history.used == ("r1", "t1")
    assert alice["runs"] == 2 and alice["flagged"] is True
    assert [r["mode"] for r in alice["runs_detail"]] == ["drill", "contacts"]
    # and an acknowledgement in a contact test clears the pattern
    acked = [*records, run("t2", "2026-03-10T10:00:00+00:00", page("alice"), mode="contacts")]
    assert contact_of(people_history(acked), "alice")["flagged"] is False


def test_a_plan_order_wins_over_the_pages_and_names_contacts_never_paged() -> None:
    records = [
        run("r1", "2026-01-10T10:00:00+00:00", missed("bob")),
        run("r2", "2026-04-10T10:00:00+00:00", missed("bob")),
    ]
    plan = ChainOrder(
        CHAIN,
        (Substitute("alice", "sms", "primary"), Substitute("bob", "webhook"), Substitute("dan", "voice")),
        FROM_PLAN,
        "r2",
    )
    history = people_history(records, {CHAIN: plan})
    (bob,) = history.contacts
    assert [s.contact for s in bob.substitutes] == ["alice", "dan"]
    assert "substitute path: alice (primary, sms) -> dan (voice)" in "\n".join(people_text(history))
    alone = people_history(records)  # the pages alone know only bob
    assert alone.contacts[0].substitutes == ()
    assert "substitute path: none: oncall has no other contact" in "\n".join(people_text(alone))


def test_the_same_name_in_two_chains_is_two_contacts() -> None:
    records = [run("r1", "2026-01-10T10:00:00+00:00", page("alice"), page("alice", chain="db", acked=False))]
    history = people_history(records)
    assert sorted((c.chain, c.acknowledged) for c in history.contacts) == [("db", 0), ("oncall", 1)]


def test_the_cli_names_the_index_as_drill_history_does() -> None:
    assert (str(DEFAULT_INDEX), INDEX_ENV) == (HISTORY_INDEX, HISTORY_ENV)


def test_loading_the_contacts_group_loads_no_practice_module() -> None:
    code = (
        "import sys, drill.cli.contacts\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('drill.practice'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------- real evidence


def _history_json(index: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["contacts", "history", "--index", str(index), "--format", "json", *extra]
    )
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_the_practice_through_drill_contacts_history(practice: Practice, tmp_path: Path) -> None:
    index = tmp_path / "history.sqlite"
    add_folders(index, [practice.runs[label] for label in LABELS], practice.allowed_signers)
    with History.open(index, create=False) as opened:
        records = opened.records()
    verified = [r for r in records if r.countable]
    assert sorted(r.run_id for r in verified) == sorted(
        practice.run_ids[label] for label in ("q1", "q2", "q3", "q4", "contacts")
    )
    code, data = _history_json(index)
    assert code == 0
    excluded = {(e["status"], Path(e["folder"]).name) for e in data["excluded"]}
    assert excluded == {
        ("tampered", practice.runs["tampered"].name),
        ("unsigned", practice.runs["unsigned"].name),
    }
    assert practice.run_ids["tampered"] in data["used"]  # q3's verified copy
    assert len(data["used"]) == 5

    # What the verified records hold of the lab's on-call: every figure below is theirs.
    pages = [p for r in verified for p in r.pages]
    assert {(p.chain, p.contact) for p in pages} == {("lab-oncall", "Lab on-call")}
    acks = sorted(p.ack_ms for p in pages if p.ack_ms is not None)
    (oncall,) = data["contacts"]
    assert (oncall["pages"], oncall["acknowledged"]) == (len(pages), len(acks))
    assert oncall["ack_rate_bp"] == len(acks) * 10000 // len(pages)
    assert (oncall["median_ack_ms"], oncall["worst_ack_ms"]) == (median_ms(acks), acks[-1])
    assert oncall["flagged"] is False

    # The contact test: the lab's pager acknowledges 700 ms after the page (LabConfig.ack_delay_ms);
    # ack_ms runs from the page's sending, so it cannot be less, and on a loaded machine's event
    # loop it comes at most a second later (the record is the measure; the bound only guards it).
    contact_run = next(r for r in verified if r.mode == "contacts")
    (recorded,) = [p.ack_ms for p in contact_run.pages]
    detail = next(d for d in oncall["runs_detail"] if d["run_id"] == contact_run.run_id)
    assert detail["mode"] == "contacts" and detail["first_ack_ms"] == recorded
    assert recorded is not None and 700 <= recorded < 700 + 1000
    assert [d["run_id"] for d in oncall["runs_detail"]] == data["used"]  # every counted run paged them

    (chain,) = data["chains"]
    assert chain["order_source"] == FROM_PLAN and chain["order_run_id"] == data["used"][-1]
    assert [c["contact"] for c in chain["order"]] == ["Lab on-call"]

    # a folder whose report is no longer the verified one gives no plan (pages order instead)
    assert read_chain_orders(replace(verified[-1], report_sha256="0" * 64)) == {}
    text = CliRunner().invoke(cli, ["contacts", "history", "--index", str(index)])
    assert text.exit_code == 0 and "TAMPERED" in text.output and "UNSIGNED" in text.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refusing_channel_twice_is_flagged_with_the_plans_substitute(
    practice: Practice, tmp_path: Path
) -> None:
    """Two real contact tests whose first contact's webhook is a closed port on 127.0.0.1 (the
    connection is refused: a channel that really fails); the lab's pager answers as the second."""
    text = changed_text("2026-Q4")
    one = '        - {name: Lab on-call, role: primary on-call, via: webhook, url: "${env:DRILL_LAB_PAGER_URL}", ack_within: 10s}\n'
    assert one in text
    dead = f'        - {{name: Gone admin, role: primary on-call, via: webhook, url: "http://127.0.0.1:{_free_port()}/page", ack_within: 300ms}}\n'
    text = text.replace(one, dead + one.replace("primary on-call", "secondary on-call"), 1)
    runs = tmp_path / "runs"
    folders = [practice.make_run(f"refused-{n}", text, runs_dir=runs, contacts=True) for n in (1, 2)]
    index = tmp_path / "history.sqlite"
    add_folders(index, folders, practice.allowed_signers)
    code, data = _history_json(index, "--fail-on-flag")
    assert code == 1
    gone, oncall = data["contacts"]
    assert (gone["contact"], gone["flagged"], oncall["flagged"]) == ("Gone admin", True, False)
    assert [f["kind"] for f in gone["flags"]] == [NO_ACK_TWICE, CHANNEL_FAILED]
    assert gone["delivered"] == 0 and gone["median_ack_ms"] is None
    (reason,) = gone["flags"][1]["reasons"]
    assert reason.startswith("webhook: ") and len(reason) > len("webhook: ")
    assert gone["substitutes"] == [{"contact": "Lab on-call", "via": "webhook", "role": "secondary on-call"}]
    assert oncall["acknowledged"] == 2 and oncall["median_ack_ms"] >= 700
