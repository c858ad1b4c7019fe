"""PagerDuty Events API v2: trigger (with payload) or resolve, keyed by routing_key and dedup_key."""

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
    require_str,
)

_SUMMARY_MAX = 1024  # the Events API truncates longer summaries


@dataclass(frozen=True, slots=True)
class PagerDutySpec:
    url: str  # e.g. https://events.pagerduty.com/v2/enqueue
    routing_key: str = field(repr=False)


def parse_pagerduty(params: Mapping[str, Any]) -> PagerDutySpec:
    return PagerDutySpec(
        url=require_http_url(params, "url", "pagerduty"),
        routing_key=require_str(params, "routing_key", "pagerduty"),
    )


def pagerduty_event(spec: PagerDutySpec, message: Message) -> dict[str, Any]:
    """An Events API v2 event; a resolve carries only the keys, as the API expects."""
    event: dict[str, Any] = {
        "routing_key": spec.routing_key,
        "event_action": message.action,
        "dedup_key": message.dedup_key,
    }
    if message.action == "resolve":
        return event
    details = message.as_dict()
    del details["text"]
    event["payload"] = {
        "summary": message.title[:_SUMMARY_MAX],
        "source": f"drill/{message.drill}",
        "severity": message.severity,
        "component": ",".join(message.assets),
        "group": message.chain,
        "class": "dr-drill",
        "custom_details": details,
    }
    if message.ack_url:
        event["links"] = [{"href": message.ack_url, "text": "Acknowledge the drill page"}]
    return event


async def send_pagerduty(spec: PagerDutySpec, message: Message, ctx: NotifyContext) -> SendResult:
    """POST the event; PagerDuty answers 202 (any 2xx accepted), 429 on rate limit (retried)."""

    async def attempt() -> None:
        await post_json(spec.url, pagerduty_event(spec, message), ctx)

    return await deliver_with_retries(attempt, ctx)


PAGERDUTY = NotifierKind("pagerduty", parse_pagerduty, send_pagerduty, "PagerDuty Events API v2")
