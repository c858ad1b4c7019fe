"""The journey probe against a real bank-like HTTP server on 127.0.0.1 (aiohttp, port 0).

The server's login checks a password, answers a bearer token (JSON) and a CSRF token (header),
and sets a session cookie; its account and transfer endpoints need the token AND the cookie, and
the user's permission. So a journey proves "logged in and authorised on the DR site".
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from drill.cli import cli
from drill.clock import SystemClock
from drill.errors import UsageError
from drill.playbook.schema import known_kinds
from drill.playbook.validate import load_playbook
from drill.probes import journey
from drill.probes.base import Observation
from drill.probes.http import BODY_LIMIT
from drill.probes.pool import HTTP_POOL
from drill.probes.registry import PROBE_KINDS
from drill.resources import schema_dir
from drill.testing import FakeContext, run_probe

PASSWORDS = {"ana": "s3cret-ana", "bob": "s3cret-bob"}
CAN_READ = {"ana"}  # bob may log in, but has no access to accounts
SECRETS = ("s3cret", "tok-", "sid-", "csrf-")  # what must never appear in a reason


@dataclass
class Bank:
    """The server's state: live sessions, and the Cookie header of every guarded request."""

    url: str = ""
    sessions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # token -> user, sid, csrf
    cookies_seen: list[str | None] = field(default_factory=list)
    logins: int = 0

    async def login(self, request: web.Request) -> web.Response:
        doc = await request.json()
        user, password = str(doc.get("user")), doc.get("password")
        if PASSWORDS.get(user) != password:
            return web.json_response({"error": "bad credentials"}, status=401)
        self.logins += 1
        token, sid, csrf = f"tok-{user}", f"sid-{user}-{self.logins}", f"csrf-{self.logins}"
        self.sessions[token] = (user, sid, csrf)
        response = web.json_response(
            {"access_token": token, "user": {"name": user, "account": f"acc-{user}"}},
            headers={"X-CSRF-Token": csrf},
        )
        response.set_cookie("session", sid, httponly=True)
        return response

    def _caller(self, request: web.Request) -> tuple[str, str] | web.Response:
        self.cookies_seen.append(request.headers.get("Cookie"))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        session = self.sessions.get(token)
        if session is None or request.cookies.get("session") != session[1]:
            return web.json_response({"error": "log in first"}, status=401)
        user, _, csrf = session
        if user not in CAN_READ:
            return web.json_response({"error": "no access"}, status=403)
        return user, csrf

    async def account(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        if request.match_info["account"] != f"acc-{caller[0]}":
            return web.json_response({"error": "not your account"}, status=403)
        return web.json_response({"balance": 10})

    async def transfer(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        doc = await request.json()
        if request.headers.get("X-CSRF-Token") != caller[1] or doc.get("from") != f"acc-{caller[0]}":
            return web.json_response({"error": "bad transfer"}, status=400)
        return web.json_response({"id": "t-1"}, status=201)

    async def big(self, request: web.Request) -> web.Response:
        return web.json_response({"pad": "x" * (2 * BODY_LIMIT), "access_token": "tok-big"})

    async def odd(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"crlf": "tok-1\r\nX-Admin: yes", "accented": "s3cret-h\u00e9", "nul": "tok-\x00"}
        )

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>")

    async def hang(self, request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers; cancelled when the server stops
        raise AssertionError("unreachable")


@pytest.fixture
async def bank() -> AsyncIterator[Bank]:
    state = Bank()
    app = web.Application()
    app.router.add_post("/login", state.login)
    app.router.add_get("/accounts/{account}", state.account)
    app.router.add_post("/transfers", state.transfer)
    app.router.add_get("/big", state.big)
    app.router.add_get("/text", state.text)
    app.router.add_get("/odd", state.odd)
    app.router.add_get("/hang", state.hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield state
    await runner.cleanup()


def login(bank: Bank, user: str = "ana", password: str = "", **extract: str) -> dict[str, object]:
    return {
        "name": "login",
        "method": "POST",
        "url": f"{bank.url}/login",
        "json": {"user": user, "password": password or PASSWORDS[user]},
        "extract": extract
        or {"TOKEN": "access_token", "ACCOUNT": "user.account", "CSRF": "header:X-CSRF-Token"},
    }


def read_account(bank: Bank) -> dict[str, object]:
    return {
        "name": "read account",
        "url": bank.url + "/accounts/{{ACCOUNT}}",
        "headers": {"Authorization": "Bearer {{TOKEN}}"},
        "expect_status": 200,
    }


def transfer(bank: Bank) -> dict[str, object]:
    return {
        "name": "transfer",
        "method": "POST",
        "url": f"{bank.url}/transfers",
        "headers": {"Authorization": "Bearer {{ TOKEN }}", "X-CSRF-Token": "{{CSRF}}"},
        "json": {"from": "{{ACCOUNT}}", "amount": 1},
        "expect_status": [201],
    }


async def run(ctx: FakeContext, *steps: Mapping[str, object], **params: object) -> Observation:
    return await run_probe("journey", {"steps": list(steps), **params}, ctx=ctx, timeout_ms=2000)


def assert_no_secret(obs: Observation) -> None:
    assert not any(secret in obs.reason for secret in SECRETS), obs.reason


async def test_a_full_journey_logs_in_reads_and_writes(bank: Bank, probe_ctx: FakeContext) -> None:
    obs = await run(probe_ctx, login(bank), read_account(bank), transfer(bank))
    assert (obs.ok, obs.reason, dict(obs.detail)) == (True, "", {"steps": 3, "status": 201})
    assert bank.cookies_seen == ["session=sid-ana-1", "session=sid-ana-1"]  # carried within the run


async def test_a_wrong_password_fails_the_login_step(bank: Bank, probe_ctx: FakeContext) -> None:
    obs = await run(probe_ctx, login(bank, password="s3cret-guess"), read_account(bank))
    assert (obs.ok, obs.reason) == (False, "step 'login': expected status 2xx, got 401 (not authenticated)")
    assert (obs.detail["step"], obs.detail["status"]) == ("login", 401)
    assert bank.cookies_seen == []  # the journey stopped at the failing step
    assert_no_secret(obs)


async def test_logged_in_but_not_authorised_is_named(bank: Bank, probe_ctx: FakeContext) -> None:
    obs = await run(probe_ctx, login(bank, user="bob"), read_account(bank))
    assert obs.reason == "step 'read account': expected status 200, got 403 (logged in but not authorised)"
    assert obs.detail["step"] == "read account"
    assert_no_secret(obs)
    default = {**read_account(bank)}
    del default["expect_status"]
    obs = await run(probe_ctx, login(bank, user="bob"), default)
    assert obs.reason == "step 'read account': expected status 2xx, got 403 (logged in but not authorised)"


async def test_a_missing_capture_fails_its_step_without_the_value(bank: Bank, probe_ctx: FakeContext) -> None:
    no_path = await run(probe_ctx, login(bank, TOKEN="token"), {**read_account(bank), "url": f"{bank.url}/x"})
    assert (no_path.ok, no_path.reason) == (False, "step 'login': no TOKEN at json path 'token'")
    no_header = await run(probe_ctx, login(bank, CSRF="header:X-Csrf-Nonce"))
    assert no_header.reason == "step 'login': no CSRF in response header 'X-Csrf-Nonce'"
    not_json = await run(
        probe_ctx, {"name": "login", "url": f"{bank.url}/text", "extract": {"TOKEN": "access_token"}}
    )
    assert (
        not_json.reason
        == "step 'login': response is not JSON; cannot extract TOKEN from json path 'access_token'"
    )
    for obs in (no_path, no_header, not_json):
        assert_no_secret(obs)


async def test_a_captured_value_that_breaks_the_request_is_never_quoted(
    bank: Bank, probe_ctx: FakeContext
) -> None:
    fetch = {"name": "fetch", "url": f"{bank.url}/odd", "extract": {"A": "crlf", "B": "accented", "C": "nul"}}
    reasons = []
    for header, url in (("{{A}}", "/text"), ("{{B}}", "/text"), ("x", "/text?q={{C}}")):
        use = {"name": "use", "url": bank.url + url, "headers": {"X-Token": header}}
        obs = await run(probe_ctx, fetch, use)
        assert (obs.ok, obs.detail["step"]) == (False, "use")
        assert_no_secret(obs)
        reasons.append(obs.reason)
    assert reasons == [
        "step 'use': the request is not valid HTTP (check its headers and placeholders)",
        "step 'use': a header value is not ASCII (once its placeholders are filled)",
        "step 'use': invalid URL once its placeholders are filled",
    ]


async def test_body_reads_are_bounded(bank: Bank, probe_ctx: FakeContext) -> None:
    big = {"name": "export", "url": f"{bank.url}/big"}
    assert (await run(probe_ctx, big)).ok  # nothing to extract: the body is not read
    obs = await run(probe_ctx, {**big, "extract": {"TOKEN": "access_token"}})
    assert (obs.ok, obs.reason) == (
        False,
        "step 'export': response body is larger than 1 MiB; cannot extract TOKEN",
    )


async def test_cookies_never_carry_across_runs(bank: Bank, probe_ctx: FakeContext) -> None:
    probe_ctx.resource(HTTP_POOL).per_client = 100  # both runs go through the very same client
    assert (await run(probe_ctx, login(bank), read_account(bank))).ok
    # the second run presents the (still valid) token but has not logged in: no session cookie
    replay = {
        **read_account(bank),
        "url": f"{bank.url}/accounts/acc-ana",
        "headers": {"Authorization": "Bearer tok-ana"},
    }
    obs = await run(probe_ctx, replay)
    assert obs.reason == "step 'read account': expected status 200, got 401 (not authenticated)"
    assert bank.cookies_seen == ["session=sid-ana-1", None]
    assert probe_ctx.resource(HTTP_POOL).size == 1


async def test_cookies_false_sends_none(bank: Bank, probe_ctx: FakeContext) -> None:
    obs = await run(probe_ctx, login(bank), read_account(bank), cookies=False)
    assert obs.reason == "step 'read account': expected status 200, got 401 (not authenticated)"
    assert bank.cookies_seen == [None]


async def test_a_stalled_step_is_named_before_the_scheduler_deadline(bank: Bank) -> None:
    # the journey gives up 50 ms before the scheduler's 1 s deadline, so the reason names the step
    clock = SystemClock()
    t0 = clock.monotonic_ns()
    obs = await run_probe(
        "journey", {"steps": [login(bank), {"name": "statement", "url": f"{bank.url}/hang"}]}, timeout_ms=1000
    )
    elapsed_ms = (clock.monotonic_ns() - t0) / 1e6
    assert (obs.ok, obs.reason, obs.transient) == (False, "step 'statement': no answer within 1 s", True)
    assert obs.detail["step"] == "statement"
    assert 940 <= elapsed_ms < 1000 + 100 and obs.latency_us < 1_000_000


async def test_the_scheduler_deadline_stays_the_backstop(bank: Bank) -> None:
    # a context promising more time than the scheduler gives: the scheduler's timeout decides
    async with FakeContext(timeout_s=5.0) as ctx:
        obs = await run_probe(
            "journey", {"steps": [{"name": "statement", "url": f"{bank.url}/hang"}]}, ctx=ctx, timeout_ms=200
        )
    assert (obs.ok, obs.reason) == (False, "timed out after 200 ms")
    assert 200_000 <= obs.latency_us < 400_000


async def test_a_refused_connection_names_the_step_and_endpoint(probe_ctx: FakeContext) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    obs = await run(probe_ctx, {"name": "home", "url": f"http://127.0.0.1:{port}/"})
    assert (obs.ok, obs.transient) == (False, True)
    assert obs.reason == f"step 'home': connection refused to 127.0.0.1:{port}"


def test_a_placeholder_nothing_extracted_earlier_is_a_usage_error() -> None:
    bank = Bank(url="http://127.0.0.1:1")
    with pytest.raises(
        UsageError, match=r"step 'read account' uses \{\{ACCOUNT\}\} in its url, but no earlier step"
    ):
        journey.parse({"steps": [read_account(bank)]})
    typo = {**read_account(bank), "headers": {"Authorization": "Bearer {{TOKNE}}"}}
    with pytest.raises(UsageError) as caught:
        journey.parse({"steps": [login(bank), typo]})
    assert caught.value.message == (
        "journey probe: step 'read account' uses {{TOKNE}} in its header 'Authorization', "
        "but no earlier step extracts TOKNE (earlier steps extract: TOKEN, ACCOUNT, CSRF)"
    )
    own = {"name": "self", "url": "http://127.0.0.1/{{ID}}", "extract": {"ID": "id"}}
    with pytest.raises(UsageError, match="no earlier step extracts ID"):
        journey.parse({"steps": [own]})
    in_json = {"name": "pay", "url": "http://127.0.0.1/", "json": {"to": ["{{PAYEE}}"]}}
    with pytest.raises(UsageError, match=r"uses \{\{PAYEE\}\} in its json"):
        journey.parse({"steps": [in_json]})


async def test_run_probe_refuses_an_undefined_placeholder_before_any_request(bank: Bank) -> None:
    with pytest.raises(UsageError):
        await run_probe("journey", {"steps": [read_account(bank)]})
    assert bank.cookies_seen == []


def test_other_usage_errors() -> None:
    url = "http://127.0.0.1/"
    with pytest.raises(UsageError, match="is not a placeholder"):
        journey.parse({"steps": [{"name": "a", "url": url + "{{ token-x }}"}]})
    with pytest.raises(UsageError, match="two steps are named 'a'"):
        journey.parse({"steps": [{"name": "a", "url": url}, {"name": "a", "url": url}]})
    with pytest.raises(UsageError, match="both body and json"):
        journey.parse({"steps": [{"name": "a", "url": url, "body": "x", "json": {}}]})
    with pytest.raises(UsageError, match="not a dotted JSON path"):
        journey.parse({"steps": [{"name": "a", "url": url, "extract": {"X": "a..b"}}]})
    with pytest.raises(UsageError, match="1 to 10"):
        journey.parse({"steps": [{"name": f"s{i}", "url": url} for i in range(11)]})


def test_parse_builds_the_steps() -> None:
    spec = journey.parse({"steps": [login(Bank(url="http://h")), read_account(Bank(url="http://h"))]})
    first, second = spec.steps
    assert (first.method, first.has_json, first.reads_body, second.method) == ("POST", True, True, "GET")
    assert [(e.var, e.source, e.where) for e in first.extract] == [
        ("TOKEN", "json", "access_token"),
        ("ACCOUNT", "json", "user.account"),
        ("CSRF", "header", "X-CSRF-Token"),
    ]
    assert (second.expect_status, spec.verify_tls, spec.cookies) == (frozenset({200}), True, True)


# -- wired through to `drill validate` ---------------------------------------------------------

PLAYBOOK = """\
apiVersion: drill/v1
kind: Playbook
metadata:
  name: dr-login
  owner: dr-team@example.com
tiers:
  - {name: tier-1, rto: 30m}
assets:
  - id: web
    tier: tier-1
    probes:
      - name: logged-in
        journey:
          steps:
            - name: login
              method: POST
              url: "https://dr.example.com/api/login"
              json: {user: drill-probe, password: "${env:PROBE_PASSWORD}"}
              extract: {TOKEN: access_token}
            - name: read account
              url: "https://dr.example.com/api/accounts/drill-probe"
              headers: {Authorization: "Bearer {{TOKEN}}"}
              expect_status: 200
scenario:
  - {name: declare, mark: disaster}
  - name: wait
    wait_for: {asset: web, state: up, within: 10m}
"""


def validate(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path)])
    return result.exit_code, result.stdout


def test_journey_is_registered_with_its_schema_fragment() -> None:
    assert PROBE_KINDS["journey"] is journey.KIND
    assert (schema_dir() / journey.KIND.schema_file).is_file()
    assert "journey" in known_kinds("probe")
    assert journey.KIND.resources == (HTTP_POOL,)


def test_drill_validate_accepts_a_playbook_with_a_journey_probe(tmp_path: Path) -> None:
    path = tmp_path / "journey.yaml"
    path.write_text(PLAYBOOK)
    assert validate(path) == (0, f"{path}: valid (1 asset, 0 warnings)\n")
    # what validation accepted, the kind's own parse accepts too (as `drill run` calls it)
    probe = load_playbook(path).assets[0].probes[0]
    assert probe.kind == "journey"
    assert [step.name for step in journey.parse(probe.params).steps] == ["login", "read account"]


def test_drill_validate_names_a_typo_in_a_step(tmp_path: Path) -> None:
    assert "              expect_status: 200\n" in PLAYBOOK
    bad = tmp_path / "journey-typo.yaml"
    bad.write_text(PLAYBOOK.replace("expect_status: 200", "expect_stauts: 200"))
    code, out = validate(bad)
    assert code == 2
    assert out == (
        f"{bad}:23:15: error: assets[0].probes[0].journey.steps[1]: unknown key 'expect_stauts'"
        " (did you mean 'expect_status'?)\n"
        f"{bad}: invalid (1 error, 0 warnings)\n"
    )


def test_drill_validate_checks_capture_names(tmp_path: Path) -> None:
    bad = tmp_path / "journey-var.yaml"
    bad.write_text(PLAYBOOK.replace("extract: {TOKEN: access_token}", "extract: {my-token: access_token}"))
    code, out = validate(bad)
    assert code == 2
    assert out.splitlines()[0] == (
        f"{bad}:19:24: error: assets[0].probes[0].journey.steps[0].extract: 'my-token' is not in the"
        " expected form (a variable name: letters, digits and _, not starting with a digit), e.g. 'TOKEN'"
    )
