"""Slack-compatible incoming webhook: `text` (fallback) plus Block Kit `blocks`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drill.notify.base import (
    Message,
    NotifierKind,
    NotifyContext,
    SendResult,
    deliver_with_retries,
    post_json,
    require_http_url,
)


@dataclass(frozen=True, slots=True)
class SlackSpec:
    url: str


def parse_slack(params: Mapping[str, Any]) -> SlackSpec:
    return SlackSpec(url=require_http_url(params, "url", "slack"))


def slack_payload(message: Message) -> dict[str, Any]:
    """Incoming-webhook body: `text` for notifications, `blocks` for the rendered message."""
    fields = [
        f"*Drill:* {message.drill} (run `{message.run_id}`)",
        f"*Assets:* {', '.join(message.assets) or '(none: contact-chain drill)'}",
        f"*Chain:* {message.chain}; paged: {message.contact}",
        f"*Asked:* {message.asked}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(fields)}},
    ]
    if message.action == "trigger" and message.ack_url:
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Acknowledge"},
            "url": message.ack_url,
            "style": "primary",
        }
        blocks.append({"type": "actions", "elements": [button]})
    if message.action == "trigger" and message.ack_command:
        context = {"type": "mrkdwn", "text": f"or from a shell: `{message.ack_command}`"}
        blocks.append({"type": "context", "elements": [context]})
    return {"text": message.text(), "blocks": blocks}


async def send_slack(spec: SlackSpec, message: Message, ctx: NotifyContext) -> SendResult:
    """POST to the incoming webhook; Slack answers 200 `ok`."""

    async def attempt() -> None:
        await post_json(spec.url, slack_payload(message), ctx)

    return await deliver_with_retries(attempt, ctx)


SLACK = NotifierKind("slack", parse_slack, send_slack, "Slack-compatible incoming webhook")
