"""Generic JSON webhook: POST the page as a JSON object (Message.as_dict) to `url`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drill.notify.base import (
    Message,
    NotifierKind,
    NotifyContext,
    SendResult,
    deliver_with_retries,
    post_json,
    require_http_url,
    str_mapping,
)


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_webhook(params: Mapping[str, Any]) -> WebhookSpec:
    return WebhookSpec(
        url=require_http_url(params, "url", "webhook"), headers=str_mapping(params, "headers", "webhook")
    )


def webhook_payload(message: Message) -> dict[str, Any]:
    """The JSON body: every fact of the page, ack link and command included."""
    return message.as_dict()


async def send_webhook(spec: WebhookSpec, message: Message, ctx: NotifyContext) -> SendResult:
    """POST the page; any 2xx is a delivery."""

    async def attempt() -> None:
        await post_json(spec.url, webhook_payload(message), ctx, spec.headers)

    return await deliver_with_retries(attempt, ctx)


WEBHOOK = NotifierKind("webhook", parse_webhook, send_webhook, "generic JSON POST")
