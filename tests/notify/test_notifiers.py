"""Each notifier against a real receiver on 127.0.0.1: payload format, signature, retries, failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drill.clock import SystemClock
from drill.notify.base import Message, NotifierInvalid, NotifyContext, RetryPolicy, SendResult
from drill.notify.registry import NOTIFIER_KINDS
from drill.playbook.schema import known_kinds
from tests.notify.conftest import Receiver, SmtpCatcher, start_smtp

FAST = RetryPolicy(attempts=3, deadline_ms=3000, attempt_timeout_ms=1000, wait_ms=20)


def ctx(retry: RetryPolicy = FAST) -> NotifyContext:
    return NotifyContext(clock=SystemClock(), retry=retry)


def message(**over: object) -> Message:
    base: dict[str, Any] = {
        "drill": "payments-q4",
        "run_id": "20261123T090000Z-ab12",
        "page_id": "page-7",
        "chain": "payments-oncall",
        "contact": "Ana",
        "assets": ("payments-api", "payments-db"),
        "asked": "Disaster declared: join the bridge.",
        "ack_url": "http://127.0.0.1:1/ack/TOKEN-abc",
        "ack_token": "TOKEN-abc",
    }
    return Message(**(base | over))


async def send(
    via: str, params: Mapping[str, object], msg: Message | None = None, retry: RetryPolicy = FAST
) -> SendResult:
    kind = NOTIFIER_KINDS[via]
    return await kind.send(kind.parse(params), msg or message(), ctx(retry))


def test_registry_names_every_kind_once_and_matches_the_schema_fragments() -> None:
    assert list(NOTIFIER_KINDS) == ["webhook", "slack", "dingtalk", "pagerduty", "email"]
    assert tuple(sorted(NOTIFIER_KINDS)) == known_kinds("notifier")
    assert all(kind.name == name for name, kind in NOTIFIER_KINDS.items())


async def test_webhook_posts_the_page_as_json_with_headers(receiver: Receiver) -> None:
    result = await send("webhook", {"url": f"{receiver.url}/hook", "headers": {"X-Team": "dr"}})
    assert (result.ok, result.attempts) == (True, 1)
    [got] = receiver.requests
    body = got.json()
    assert got.method == "POST" and got.headers["X-Team"] == "dr"
    assert body["drill"] == "payments-q4" and body["run_id"] == "20261123T090000Z-ab12"
    assert body["assets"] == ["payments-api", "payments-db"]
    assert body["asked"] == "Disaster declared: join the bridge."
    assert body["ack_url"] == "http://127.0.0.1:1/ack/TOKEN-abc"
    assert body["ack_command"] == "drill ack TOKEN-abc"
    assert "drill ack TOKEN-abc" in body["text"] and "payments-api, payments-db" in body["text"]


async def test_slack_payload_has_text_and_blocks_with_ack_button(receiver: Receiver) -> None:
    result = await send("slack", {"url": f"{receiver.url}/services/T/B/X"})
    assert result.ok
    body = receiver.requests[0].json()
    assert "payments-api" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "actions", "context"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    assert "*Asked:* Disaster declared" in body["blocks"][1]["text"]["text"]
    assert body["blocks"][2]["elements"][0]["url"] == "http://127.0.0.1:1/ack/TOKEN-abc"
    assert "drill ack TOKEN-abc" in body["blocks"][3]["elements"][0]["text"]


async def test_dingtalk_signs_as_documented(receiver: Receiver) -> None:
    receiver.reply = '{"errcode":0,"errmsg":"ok"}'
    secret = "SEC0123456789abcdef"
    before_ms = int(time.time() * 1000)
    result = await send(
        "dingtalk", {"url": f"{receiver.url}/robot/send?access_token=tok123", "secret": secret}
    )
    after_ms = int(time.time() * 1000)
    assert result.ok
    got = receiver.requests[0]
    # raw query, in order: access_token kept, then timestamp and the url-encoded signature
    parts = [p.split("=", 1) for p in got.raw_query.split("&")]
    assert [k for k, _ in parts] == ["access_token", "timestamp", "sign"]
    query = dict(parts)
    timestamp = int(query["timestamp"])
    assert before_ms - 5 <= timestamp <= after_ms + 5  # wall-clock ms, as the robot requires
    # recompute independently: base64(HMAC-SHA256(secret, "timestamp\nsecret")), then urlencode
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert query["sign"] == urllib.parse.quote_plus(base64.b64encode(digest).decode())
    assert secret not in got.raw_query and secret.encode() not in got.body
    body = got.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[drill] payments-q4")
    assert "drill ack TOKEN-abc" in body["markdown"]["text"]


async def test_dingtalk_without_secret_is_unsigned(receiver: Receiver) -> None:
    result = await send("dingtalk", {"url": f"{receiver.url}/robot/send?access_token=tok"})
    assert result.ok
    assert receiver.requests[0].raw_query == "access_token=tok"


async def test_dingtalk_errcode_is_a_failed_delivery_not_retried(receiver: Receiver) -> None:
    receiver.reply = '{"errcode":310000,"errmsg":"sign not match"}'
    result = await send("dingtalk", {"url": f"{receiver.url}/robot/send?access_token=t", "secret": "x"})
    assert (result.ok, result.attempts) == (False, 1)
    assert result.reason == "DingTalk errcode 310000: sign not match"


async def test_pagerduty_trigger_and_resolve_events(receiver: Receiver) -> None:
    receiver.status = 202
    params = {"url": f"{receiver.url}/v2/enqueue", "routing_key": "R0UTINGKEY0123456789abcdef012345"}
    assert (await send("pagerduty", params)).ok
    assert (await send("pagerduty", params, message(action="resolve"))).ok
    trigger, resolve = (r.json() for r in receiver.requests)
    assert trigger["routing_key"] == params["routing_key"]
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "drill-20261123T090000Z-ab12-page-7" == resolve["dedup_key"]
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "drill/payments-q4"
    assert payload["summary"].startswith("[drill] payments-q4")
    assert payload["custom_details"]["assets"] == ["payments-api", "payments-db"]
    assert payload["custom_details"]["ack_command"] == "drill ack TOKEN-abc"
    assert trigger["links"][0]["href"] == "http://127.0.0.1:1/ack/TOKEN-abc"
    assert resolve == {
        "routing_key": params["routing_key"],
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


async def test_500_is_retried_within_the_bound_then_recorded(receiver: Receiver) -> None:
    receiver.status = 500
    result = await send("webhook", {"url": f"{receiver.url}/hook"})
    assert (result.ok, result.attempts, result.reason) == (False, 3, "HTTP 500: ok")
    assert len(receiver.requests) == 3


async def test_a_transient_failure_then_success_counts_both_attempts(receiver: Receiver) -> None:
    receiver.statuses = [503]
    result = await send("slack", {"url": f"{receiver.url}/hook"})
    assert (result.ok, result.attempts) == (True, 2)


async def test_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.status = 404
    result = await send("webhook", {"url": f"{receiver.url}/hook"})
    assert (result.ok, result.attempts) == (False, 1)
    assert result.reason.startswith("HTTP 404")


async def test_hanging_receiver_is_bounded_by_attempt_timeout_and_deadline(receiver: Receiver) -> None:
    receiver.hang = True
    retry = RetryPolicy(attempts=5, deadline_ms=700, attempt_timeout_ms=300, wait_ms=10)
    started = time.monotonic()
    result = await send("webhook", {"url": f"{receiver.url}/hook"}, retry=retry)
    elapsed = time.monotonic() - started
    assert not result.ok and result.reason.startswith("gave up after 700 ms")
    assert result.attempts == 3  # 300 + 300 + (cut by the 700 ms deadline)
    assert 0.65 <= elapsed < 1.2


async def test_unreachable_receiver_never_quotes_the_secret_url() -> None:
    dead = "http://127.0.0.1:9/secret-token-in-path"  # discard port: refused at once
    result = await send("webhook", {"url": dead}, retry=RetryPolicy(attempts=2, wait_ms=1))
    assert (result.ok, result.attempts) == (False, 2)
    assert "secret-token-in-path" not in result.reason and "ConnectError" in result.reason


@pytest.mark.parametrize(
    ("via", "params", "text"),
    [
        ("webhook", {}, "webhook contact needs `url`"),
        ("slack", {"url": "ftp://x"}, "slack contact: `url` must start with http:// or https://"),
        ("pagerduty", {"url": "https://x"}, "pagerduty contact needs `routing_key`"),
        ("email", {"to": []}, "email contact needs `to`"),
        ("email", {"to": "a@b", "smtp_port": 0}, "email contact: `smtp_port` must be a port number"),
        ("webhook", {"url": "http://x", "headers": {"a": 1}}, "`headers` must map names to strings"),
    ],
)
def test_bad_params_are_user_errors(via: str, params: dict[str, object], text: str) -> None:
    with pytest.raises(NotifierInvalid) as info:
        NOTIFIER_KINDS[via].parse(params)
    assert text in str(info.value)


async def test_email_arrives_with_content_and_no_secret(smtp: SmtpCatcher) -> None:
    params = {
        "to": ["ben@example.com", "oncall@example.com"],
        "from": "drill@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "username": "drill-bot",
        "password": "s3cret-smtp-pass",
    }
    result = await send("email", params)
    assert (result.ok, result.attempts) == (True, 1)
    [mail] = smtp.mails
    assert smtp.logins == [("drill-bot", "s3cret-smtp-pass")]  # auth happened
    assert mail.sender == "drill@example.com"
    assert mail.recipients == ["ben@example.com", "oncall@example.com"]
    text = mail.content.decode()
    assert "Subject: [drill] payments-q4: acknowledge page for payments-api, payments-db" in text
    assert "Acknowledge: http://127.0.0.1:1/ack/TOKEN-abc" in text
    assert "drill ack TOKEN-abc" in text
    assert "Asked: Disaster declared: join the bridge." in text
    assert "s3cret-smtp-pass" not in text and "drill-bot" not in text
    assert base64.b64encode(b"s3cret-smtp-pass").decode() not in text


async def test_email_wrong_password_is_a_recorded_permanent_failure(smtp: SmtpCatcher) -> None:
    params = {"to": "ben@example.com", "smtp_port": smtp.port, "username": "u", "password": "wrong-pass"}
    result = await send("email", params)
    assert (result.ok, result.attempts) == (False, 1)
    assert result.reason.startswith("SMTP 535") and "wrong-pass" not in result.reason
    assert smtp.mails == []


async def test_email_to_a_closed_port_is_retried_and_recorded() -> None:
    retry = RetryPolicy(attempts=2, wait_ms=1, attempt_timeout_ms=500)
    result = await send("email", {"to": "x@example.com", "smtp_port": 9}, retry=retry)
    assert (result.ok, result.attempts) == (False, 2)
    assert "SMTP" in result.reason


def test_message_text_is_the_same_facts_everywhere() -> None:
    msg = message()
    assert msg.text().splitlines()[0] == msg.title
    assert msg.as_dict()["text"] == msg.text()
    assert "[Acknowledge](http://127.0.0.1:1/ack/TOKEN-abc)" in msg.markdown()


def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_email_starttls_with_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_path, key_path = self_signed_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    catcher = SmtpCatcher()
    server = await start_smtp(catcher, tls_context=server_tls, require_starttls=True)
    try:
        untrusted = await send("email", {"to": "x@example.com", "smtp_port": catcher.port, "starttls": True})
        assert (untrusted.ok, untrusted.attempts) == (False, 1)  # a bad certificate is not retried
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.reason
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # now the client trusts our test CA only
        base = {
            "to": "ben@example.com",
            "smtp_port": catcher.port,
            "username": "u",
            "password": "s3cret-smtp-pass",
        }
        plain = await send("email", base)  # the server insists on STARTTLS first
        assert (plain.ok, plain.attempts) == (False, 1)
        assert plain.reason.startswith("SMTP: The SMTP AUTH extension is not supported")
        secured = await send("email", base | {"starttls": True})
        assert (secured.ok, secured.attempts) == (True, 1)
        assert catcher.logins == [("u", "s3cret-smtp-pass")]
        [mail] = catcher.mails
        assert b"s3cret-smtp-pass" not in mail.content and b"drill ack TOKEN-abc" in mail.content
    finally:
        server.close()
        await server.wait_closed()
