"""The one list of notifier kinds (the `via` of a contact). Adding a kind: a module and one line."""

from __future__ import annotations

from typing import Any

from drill.notify.base import NotifierKind
from drill.notify.dingtalk import DINGTALK
from drill.notify.email import EMAIL
from drill.notify.pagerduty import PAGERDUTY
from drill.notify.slack import SLACK
from drill.notify.webhook import WEBHOOK

# Keyed by each kind's own name, so a kind cannot be registered under another one.
NOTIFIER_KINDS: dict[str, NotifierKind[Any]] = {
    kind.name: kind for kind in (WEBHOOK, SLACK, DINGTALK, PAGERDUTY, EMAIL)
}
