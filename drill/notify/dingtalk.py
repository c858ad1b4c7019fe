"""DingTalk custom robot: markdown message; signed with `timestamp` + `sign` when a secret is set.

The signature is DingTalk's documented one: sign = urlencode(base64(HMAC-SHA256(key=secret,
msg=f"{timestamp}\\n{secret}"))) with timestamp in milliseconds since the epoch (the robot
refuses timestamps more than an hour off). DingTalk answers HTTP 200 with a JSON `errcode`;
anything but 0 is a failed delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drill.notify.base import (
    DeliveryFailed,
    Message,
    NotifierKind,
    NotifyContext,
    SendResult,
    deliver_with_retries,
    optional_str,
    post_json,
    require_http_url,
    snippet,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RATE_LIMITED = 130101  # "send too fast": worth another attempt


@dataclass(frozen=True, slots=True)
class DingTalkSpec:
    url: str
    secret: str = field(default="", repr=False)


def parse_dingtalk(params: Mapping[str, Any]) -> DingTalkSpec:
    return DingTalkSpec(
        url=require_http_url(params, "url", "dingtalk"), secret=optional_str(params, "secret", "dingtalk")
    )


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """The `sign` query value (already URL-encoded), as DingTalk documents it."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(url: str, timestamp_ms: int, secret: str) -> str:
    """`url` with `timestamp` and `sign` appended (the robot URL already carries access_token)."""
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(timestamp_ms, secret)}"


def dingtalk_payload(message: Message) -> dict[str, Any]:
    """A markdown message; the title is what the notification preview shows."""
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.markdown()}}


def _now_ms(ctx: NotifyContext) -> int:
    now = ctx.clock.utc_at(ctx.clock.monotonic_ns())
    return (now - _EPOCH) // timedelta(milliseconds=1)


async def send_dingtalk(spec: DingTalkSpec, message: Message, ctx: NotifyContext) -> SendResult:
    """POST the markdown message; sign each attempt afresh (the timestamp must be current)."""

    async def attempt() -> None:
        url = signed_url(spec.url, _now_ms(ctx), spec.secret) if spec.secret else spec.url
        response = await post_json(url, dingtalk_payload(message), ctx)
        try:
            answer = response.json()
        except ValueError:
            return  # a 2xx without JSON: a compatible relay, not the robot itself
        code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
        if code != 0:
            text = snippet(str(answer.get("errmsg", "")), ctx.redact)
            raise DeliveryFailed(f"DingTalk errcode {code}: {text}", transient=code == _RATE_LIMITED)

    return await deliver_with_retries(attempt, ctx)


DINGTALK = NotifierKind("dingtalk", parse_dingtalk, send_dingtalk, "DingTalk custom robot (signed)")
