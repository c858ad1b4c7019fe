"""Failures of the runner's own environment, in process: journal write errors, bad action URLs,
exception groups at the command line."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from drill.actions.base import ActionContext
from drill.actions.http import act_http, parse, shown_url, url_problem
from drill.cli import DrillGroup
from drill.clock import FakeClock
from drill.errors import DrillError, UsageError
from drill.evidence.events import EventDraft, Mark
from drill.evidence.journal import JournalWriter, verify_journal


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:99999/x", "url: the port is not a number from 1 to 65535"),
        ("http://127.0.0.1:abc/x", "url: the port is not a number from 1 to 65535"),
        ("http://admin:p/w@127.0.0.1:8/x", "percent-encoded"),
        ("http://admin:p@s#w@127.0.0.1/x", "url: '@' after '#' or '?'"),
        ("ftp://127.0.0.1/x", "url: the scheme must be http:// or https://"),
        ("http:///x", "url: no host"),
        ("http://[::1/x", "url: not a valid URL"),
        ("http://exa mple.com/", "url: holds a space"),
    ],
)
def test_a_url_that_cannot_be_requested_is_named_never_quoted(url: str, says: str) -> None:
    problem = url_problem(url)
    assert says in problem
    assert "p/w" not in problem and "99999" not in problem and "abc" not in problem


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "https://[::1]:443/a?b=c", "http://u:p%40s@h/x"])
def test_good_urls_pass(url: str) -> None:
    assert url_problem(url) == ""


def test_a_url_from_a_step_output_is_checked_when_it_is_known() -> None:
    assert parse({"url": "http://${steps.where.output}/x"}).problem == ""
    assert parse({"url": "http://127.0.0.1:99999/x"}).problem


def test_a_bad_url_at_request_time_is_a_failed_attempt_not_a_crash() -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            result = await act_http(parse({"url": "http://127.0.0.1:99999/x"}), ActionContext(client, "."))
            assert not result.ok and not result.transient
            assert result.reason.startswith("POST url: the port is not a number")

    asyncio.run(go())


def test_reasons_never_show_a_password() -> None:
    assert shown_url("http://admin:s3cret@127.0.0.1:8/x") == "http://***@127.0.0.1:8/x"
    assert shown_url("http://127.0.0.1:8/x") == "http://127.0.0.1:8/x"


def test_a_failed_write_drops_the_torn_line_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def half_then_full(fd: int, payload: bytes) -> int:
        if len(payload) > 200:  # the big line: half of it lands, then the disk is full
            monkeypatch.setattr(os, "write", lambda *_: (_ for _ in ()).throw(OSError(27, "File too large")))
            return real_write(fd, payload[: len(payload) // 2])
        return real_write(fd, payload)

    path = tmp_path / "journal.jsonl"
    writer = JournalWriter.create(path, FakeClock())
    writer.append(EventDraft(Mark("a"), 1))
    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DrillError, match=r"cannot write journal .*: File too large; the journal is closed"):
        writer.append(EventDraft(Mark("b" * 500), 2))
    monkeypatch.undo()
    assert writer.failure.endswith("File too large")
    writer.close()
    assert verify_journal(path).count == 1  # no torn tail: what was written verifies


def _cli_raising(exc: BaseException) -> click.Group:
    @click.group(cls=DrillGroup)
    def group() -> None:
        pass

    @group.command("go")
    def go() -> None:
        raise exc

    return group


def test_a_drill_error_in_an_exception_group_is_its_one_line_and_code() -> None:
    inner = UsageError("cannot create the evidence folder runs/x: Permission denied")
    group = ExceptionGroup("unhandled errors in a TaskGroup", [ExceptionGroup("inner", [inner])])
    result = CliRunner().invoke(_cli_raising(group), ["go"])
    assert result.exit_code == 2
    assert result.output.strip() == f"drill: {inner}"
    assert "Traceback" not in result.output


def test_a_bug_in_an_exception_group_is_still_a_bug() -> None:
    group = ExceptionGroup("unhandled", [DrillError("fine"), ValueError("a bug")])
    result = CliRunner().invoke(_cli_raising(group), ["go"])
    assert result.exit_code == 70
    assert "internal error (a bug)" in result.output
