"""The ack endpoint and `drill ack`: single-use tokens, refusals recorded without the token."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from drill.cli.ack import AckRefused, ack
from drill.clock import FakeClock
from drill.errors import UsageError
from drill.evidence import events
from drill.evidence.events import payload_data
from drill.notify.ack import AckDesk, AckServer, latest_ack_url
from tests.notify.conftest import Journal


class Acks:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def __call__(self, mono_ns: int, by: str) -> None:
        self.seen.append((mono_ns, by))


@pytest.fixture
async def server(journal: Journal) -> AsyncIterator[AckServer]:
    async with AckServer(AckDesk(FakeClock(), journal)) as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, verify=False) as c:
        yield c


def no_token_in(journal: Journal, token: str) -> bool:
    return all(token not in json.dumps(payload_data(e.payload)) for e in journal.events)


async def test_valid_token_acks_once_then_is_refused(
    server: AckServer, client: httpx.AsyncClient, journal: Journal
) -> None:
    acks = Acks()
    token = server.desk.issue("page-1", acks)
    url = server.desk.url_for(token)
    assert url == f"http://127.0.0.1:{server.port}/ack/{token}" and server.port > 0
    first = await client.post(url, data={"by": "ana"})
    assert (first.status_code, first.text) == (200, "acknowledged page-1\n")
    assert acks.seen == [(1_000_000_000, "ana")]  # the desk's clock instant, and who
    again = await client.post(url, data={"by": "mallory"})
    assert again.status_code == 409 and "already acknowledged" in again.text
    assert len(acks.seen) == 1
    [refused] = journal.of(events.AckRefused)
    assert refused.payload == events.AckRefused(
        reason="page already acknowledged", status=409, by="mallory", peer="127.0.0.1", page_id="page-1"
    )
    assert no_token_in(journal, token)


async def test_wrong_token_is_refused_and_recorded_without_the_token(
    server: AckServer, client: httpx.AsyncClient, journal: Journal
) -> None:
    acks = Acks()
    real = server.desk.issue("page-1", acks)
    guess = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = await client.post(f"{server.url}/ack/{guess}")
    assert response.status_code == 403 and acks.seen == []
    [refused] = journal.of(events.AckRefused)
    assert refused.payload.reason == "unknown token" and refused.payload.by == "http 127.0.0.1"
    assert refused.payload.page_id == ""  # no page is named for a token that matches none
    assert no_token_in(journal, guess) and no_token_in(journal, real)


async def test_get_shows_a_form_and_does_not_ack(
    server: AckServer, client: httpx.AsyncClient, journal: Journal
) -> None:
    acks = Acks()
    token = server.desk.issue("page-3", acks)
    page = await client.get(server.desk.url_for(token))  # what a link unfurler would do
    assert page.status_code == 200 and '<form method="post">' in page.text and "page-3" in page.text
    assert acks.seen == [] and journal.events == []
    posted = await client.post(server.desk.url_for(token), json={"by": "ben"})
    assert posted.status_code == 200 and acks.seen[0][1] == "ben"
    assert (await client.get(server.desk.url_for(token))).status_code == 409


async def test_tokens_are_unique_and_long(server: AckServer) -> None:
    tokens = {server.desk.issue(f"page-{i}", Acks()) for i in range(200)}
    assert len(tokens) == 200 and all(len(t) >= 43 for t in tokens)


async def test_closed_desk_refuses_with_410(
    server: AckServer, client: httpx.AsyncClient, journal: Journal
) -> None:
    token = server.desk.issue("page-1", Acks())
    server.desk.close()
    response = await client.post(server.desk.url_for(token))
    assert response.status_code == 410
    assert journal.of(events.AckRefused)[0].payload.reason.startswith("acknowledgements are closed")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/nope", 404), ("POST", "/ack/a/b", 404), ("PUT", "/ack/xyz", 405), ("DELETE", "/", 404)],
)
async def test_other_routes_and_methods(
    server: AckServer, client: httpx.AsyncClient, journal: Journal, method: str, path: str, status: int
) -> None:
    response = await client.request(method, server.url + path)
    assert response.status_code == status
    assert journal.events == []


async def test_malformed_request_gets_400(server: AckServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"garbage\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 ")


async def test_refusals_are_capped_so_the_journal_cannot_be_flooded(
    server: AckServer, journal: Journal
) -> None:
    for _ in range(150):
        server.desk.acknowledge("x" * 43, "flood")
    assert server.desk.refusals == 150 and len(journal.of(events.AckRefused)) == 100


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, ack, list(args))


async def test_cli_acks_through_the_run_dir_file(server: AckServer, tmp_path: Path) -> None:
    acks = Acks()
    token = server.desk.issue("page-9", acks)
    server.write_url_file(tmp_path)
    result = await invoke(token, "--run-dir", str(tmp_path), "--by", "cid")
    assert (result.exit_code, result.output) == (0, "acknowledged page-9\n")
    assert acks.seen[0][1] == "cid"
    again = await invoke(token, "--url", server.url)
    assert isinstance(again.exception, AckRefused) and again.exception.exit_code == 1
    assert "HTTP 409" in str(again.exception) and token not in str(again.exception)


async def test_cli_accepts_the_link_itself(server: AckServer) -> None:
    acks = Acks()
    token = server.desk.issue("page-2", acks)
    result = await invoke(server.desk.url_for(token))
    assert result.exit_code == 0 and len(acks.seen) == 1


async def test_cli_without_an_endpoint_is_a_usage_error(tmp_path: Path) -> None:
    result = await invoke("sometoken", "--run-dir", str(tmp_path))
    assert isinstance(result.exception, UsageError)
    assert "ack.url is missing" in str(result.exception)


async def test_cli_unreachable_endpoint_exits_3() -> None:
    result = await invoke("sometoken", "--url", "http://127.0.0.1:9")
    assert result.exception is not None and getattr(result.exception, "exit_code", 0) == 3
    assert "cannot reach the ack endpoint" in str(result.exception)


def test_latest_ack_url_picks_the_newest_run(tmp_path: Path) -> None:
    for i, name in enumerate(["old", "new"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ack.url").write_text(f"http://127.0.0.1:{1000 + i}\n")
        os.utime(tmp_path / name / "ack.url", (1_000_000 + i, 1_000_000 + i))
    assert latest_ack_url(tmp_path) == "http://127.0.0.1:1001"
    assert latest_ack_url(tmp_path / "old") == ""
