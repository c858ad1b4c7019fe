"""Central redaction: every encoded, escaped or cut form of a secret is scrubbed, and the call sites
that shorten a text (notifier error snippets, command output tails) redact before they cut."""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from drill.actions.base import ActionContext
from drill.actions.command import CommandActionSpec, act_command
from drill.clock import SystemClock
from drill.notify.base import Message, NotifyContext, RetryPolicy, http_failure
from drill.notify.webhook import WebhookSpec, send_webhook
from drill.probes.command import CommandSpec, probe_command
from drill.secrets import MIN_SECRET_LENGTH, REDACTED, Secrets, secret_forms
from drill.testing import FakeContext
from tests.notify.conftest import Receiver, receiver  # noqa: F401  (the fixture)

SECRETS = {
    "QUOTE": "it's-a-s3cret",
    "BACKSLASH": "C:\\keys\\pr0d",
    "COLON": "user:pa55:word",
    "UNICODE": "pässwörd-ключ-密码",
    "SPACES": "correct horse battery staple",
    "TOKEN": "xoxb-1234567890-abcdefghij",
}


def _secrets() -> Secrets:
    secrets = Secrets(env=dict(SECRETS))
    for name in SECRETS:
        secrets.resolve_text(f"${{env:{name}}}")
    return secrets


def _b64(text: str) -> list[str]:
    forms = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        coded = encode(text.encode()).decode()
        forms += [coded, coded.rstrip("=")]
    return forms


def _encodings(value: str) -> list[str]:
    return [
        value,
        quote(value),
        quote(value, safe=""),
        quote_plus(value),
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe="")),  # lower-case hex
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(value.encode())[2:-1],
        *_b64(value),
    ]


CASES = [
    pytest.param(name, form, id=f"{name}-{i}")
    for name, value in SECRETS.items()
    for i, form in enumerate(_encodings(value))
]


def _leaks(text: str, value: str) -> list[str]:
    """Every form of value (and every cut fragment of MIN length of its raw form) found in text."""
    return [form for form in secret_forms(value) if form in text]


@pytest.mark.parametrize(("name", "form"), CASES)
def test_every_form_of_a_secret_is_redacted_and_the_text_around_it_kept(name: str, form: str) -> None:
    secrets = _secrets()
    value = SECRETS[name]
    text = f"before [{form}] after"
    redacted = secrets.redact_text(text)
    assert redacted == f"before [{REDACTED}] after"
    assert not _leaks(redacted, value)


@pytest.mark.parametrize("name", list(SECRETS))
@pytest.mark.parametrize("cut", [MIN_SECRET_LENGTH, 7, -1])
def test_a_secret_cut_at_the_end_or_before_an_ellipsis_is_redacted(name: str, cut: int) -> None:
    secrets = _secrets()
    value = SECRETS[name]
    fragment = value[:cut]
    for text, expected in [
        (f"HTTP 500: token={fragment}", f"HTTP 500: token={REDACTED}"),
        (f"HTTP 500: token={fragment}…", f"HTTP 500: token={REDACTED}…"),
        (f"got {fragment}... and more", f"got {REDACTED}... and more"),
        (f"tail: …{value[-cut if cut > 0 else 1 :]} rest", f"tail: …{REDACTED} rest"),
        (f"json: {json.dumps(value)[1:-1][:cut]}…", f"json: {REDACTED}…"),
    ]:
        assert secrets.redact_text(text) == expected, text


async def test_basic_auth_of_a_url_userinfo_is_redacted(receiver: Receiver) -> None:  # noqa: F811
    """`http://u:${env:P}@host/` becomes `Authorization: Basic base64(u:P)`; a target may echo it."""
    secrets = Secrets(env={"P": "hunter2:ßecret"})
    url = secrets.resolve_text(receiver.url.replace("http://", "http://deploy%40corp:${env:P}@") + "/health")
    async with httpx.AsyncClient(trust_env=False) as client:
        await client.get(url)
    header = receiver.requests[0].headers["Authorization"]  # what httpx sent, as the target saw it
    coded = header.split()[1]
    echoed = f"echo: {header}; bare: {coded.rstrip('=')}; urlsafe: {_b64('deploy@corp:hunter2:ßecret')[2]}"
    redacted = secrets.redact_text(echoed)
    assert redacted == f"echo: Basic {REDACTED}; bare: {REDACTED}; urlsafe: {REDACTED}"


def test_a_secret_dsn_redacts_its_password_alone() -> None:
    secrets = Secrets(env={"DSN": "postgres://app:Sup3r-s3cret@db:5432/app"})
    secrets.resolve_text("${env:DSN}")
    assert secrets.redact_text("password 'Sup3r-s3cret' refused") == f"password '{REDACTED}' refused"
    # a field that is just the scheme's start is not a cut secret; the kind stays readable
    assert secrets.redact_text("postgres") == "postgres"
    assert secrets.redact_text("probe kind postgres") == "probe kind postgres"


@pytest.mark.parametrize("value", ["a", "1", "ab", "x9", "abc", "200"])
def test_a_secret_shorter_than_the_minimum_does_not_scrub_unrelated_text(value: str) -> None:
    """Decision: secrets (and cut fragments) under 4 characters are not redacted. Scrubbing every
    `a` or `1` would destroy the evidence (exit codes, timestamps, addresses) and protect nothing:
    a 1-3 character secret is guessed faster than it is read."""
    secrets = Secrets(env={"S": value, "LONG": "long-enough-secret"})
    secrets.resolve_text("${env:S} ${env:LONG}")
    text = "HTTP 200 at 2026-01-01T10:00:00Z, exit 1: abc a ab x9 ... ab…"
    assert secrets.redact_text(text) == text
    assert secrets.redact_text(f"{text} long-enough-secret") == f"{text} {REDACTED}"


def test_no_secret_leaves_the_object_untouched() -> None:
    secrets = _secrets()
    data = {"a": "nothing here", "b": ["plain", 3]}
    assert secrets.redact_data(data) is data


def test_redaction_is_fast_enough() -> None:
    """Forms are computed once per set of secrets: 1 MB with 10 secrets in well under a second."""
    env = {f"S{i}": f"s3cret-value-number-{i:02d}-{'x' * i}" for i in range(10)}
    secrets = Secrets(env=env)
    for name in env:
        secrets.resolve_text(f"${{env:{name}}}")
    text = ("ordinary log line with words, numbers 12345 and an ellipsis... " * 16_000)[:1_000_000]
    text += env["S3"]
    start = time.perf_counter()
    redacted = secrets.redact_text(text)
    elapsed = time.perf_counter() - start
    assert redacted.endswith(REDACTED)
    assert elapsed < 2.0, elapsed


# --- the call sites redact before they cut --------------------------------------------------------

LONG_SECRET = "tok-0123456789abcdefghijklmnopqrstuvwxyz"


def test_http_failure_redacts_before_it_cuts() -> None:
    secrets = Secrets(env={"T": LONG_SECRET})
    secrets.resolve_text("${env:T}")
    body = "x" * 100 + LONG_SECRET + " and the rest of a long error page"  # the cut lands inside it
    reason = http_failure(500, body, secrets.redact_text).reason
    assert LONG_SECRET[:MIN_SECRET_LENGTH] not in reason
    assert reason.startswith("HTTP 500: " + "x" * 100 + REDACTED[:10])


async def test_a_receiver_echoing_the_secret_in_its_error_body_is_redacted(receiver: Receiver) -> None:  # noqa: F811
    secrets = Secrets(env={"T": LONG_SECRET})
    url = secrets.resolve_text(receiver.url + "/hook?token=${env:T}")
    receiver.status = 400
    receiver.reply = "invalid token: " + "y" * 90 + LONG_SECRET + " (see the docs)"
    ctx = NotifyContext(
        clock=SystemClock(), retry=RetryPolicy(attempts=1, wait_ms=1), redact=secrets.redact_text
    )
    message = Message("d", "run-1", "page-1", "chain", "ana", ("db",), "look")
    result = await send_webhook(WebhookSpec(url=url), message, ctx)
    assert not result.ok
    assert "invalid token: " + "y" * 90 in result.reason
    for k in range(MIN_SECRET_LENGTH, len(LONG_SECRET)):
        assert LONG_SECRET[:k] not in result.reason


def _printer(tmp_path: Path, text: str) -> list[str]:
    script = tmp_path / "print.py"
    script.write_text(f"import sys\nsys.stderr.write({text!r})\nsys.exit(3)\n", encoding="utf-8")
    return [sys.executable, str(script)]


@dataclass(slots=True)
class _Ctx(FakeContext):
    """A probe context with the run's redactor, as LiveProbeContext has in a real run."""

    redactor: Callable[[str], str] = str

    def redact(self, text: str) -> str:
        return self.redactor(text)


@pytest.mark.parametrize("with_redactor", [True, False])
async def test_command_probe_tail_keeps_no_part_of_a_secret(tmp_path: Path, with_redactor: bool) -> None:
    secrets = Secrets(env={"T": LONG_SECRET})
    secrets.resolve_text("${env:T}")
    # the tail keeps the last 200 characters: the secret straddles that cut
    line = "error: " + LONG_SECRET + " " + "z" * (200 - 10)
    argv = _printer(tmp_path, line + "\n")
    observation = await probe_command(
        CommandSpec(argv=tuple(argv)), _Ctx(redactor=secrets.redact_text if with_redactor else str)
    )
    reason = secrets.redact_text(observation.reason)  # what the journal writes
    assert not observation.ok and reason.endswith("z" * 100)
    for k in range(MIN_SECRET_LENGTH, len(LONG_SECRET) + 1):
        assert LONG_SECRET[-k:] not in reason and LONG_SECRET[:k] not in reason


@pytest.mark.parametrize("with_redactor", [True, False])
async def test_command_action_tail_keeps_no_part_of_a_secret(tmp_path: Path, with_redactor: bool) -> None:
    secrets = Secrets(env={"T": LONG_SECRET})
    secrets.resolve_text("${env:T}")
    line = "failed with " + LONG_SECRET + " " + "w" * (400 - 12)  # the action keeps the last 400
    argv = _printer(tmp_path, line)
    async with httpx.AsyncClient() as http:
        ctx = (
            ActionContext(http=http, cwd=str(tmp_path), redact=secrets.redact_text)
            if with_redactor
            else ActionContext(http=http, cwd=str(tmp_path))
        )
        result = await act_command(CommandActionSpec(argv=tuple(argv), expect_exit=0), ctx)
    reason = secrets.redact_text(result.reason)
    assert not result.ok and reason.endswith("w" * 100)
    for k in range(MIN_SECRET_LENGTH, len(LONG_SECRET) + 1):
        assert LONG_SECRET[-k:] not in reason and LONG_SECRET[:k] not in reason
