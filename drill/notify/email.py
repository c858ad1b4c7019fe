"""Email over SMTP (aiosmtplib): a plain-text mail; STARTTLS and authentication optional."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from socket import gethostname
from typing import Any

import aiosmtplib

from drill.notify.base import (
    DeliveryFailed,
    Message,
    NotifierInvalid,
    NotifierKind,
    NotifyContext,
    SendResult,
    deliver_with_retries,
    optional_str,
    snippet,
    str_list,
)


@dataclass(frozen=True, slots=True)
class EmailSpec:
    to: tuple[str, ...]
    sender: str = ""  # the `from` parameter; default drill@<host name>
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False


def parse_email(params: Mapping[str, Any]) -> EmailSpec:
    port = params.get("smtp_port", 25)
    if isinstance(port, str) and port.isdigit():
        port = int(port)  # a secret reference resolves to a string
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise NotifierInvalid("email contact: `smtp_port` must be a port number (1-65535)")
    starttls = params.get("starttls", False)
    if not isinstance(starttls, bool):
        raise NotifierInvalid("email contact: `starttls` must be true or false")
    return EmailSpec(
        to=str_list(params, "to", "email"),
        sender=optional_str(params, "from", "email") or f"drill@{gethostname()}",
        smtp_host=optional_str(params, "smtp_host", "email", "127.0.0.1") or "127.0.0.1",
        smtp_port=port,
        username=optional_str(params, "username", "email"),
        password=optional_str(params, "password", "email"),
        starttls=starttls,
    )


def email_message(spec: EmailSpec, message: Message) -> EmailMessage:
    """The mail: subject = the page's title, body = its plain text."""
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = spec.sender or f"drill@{gethostname()}"
    mail["To"] = ", ".join(spec.to)
    mail["Message-ID"] = make_msgid(idstring=message.page_id, domain="drill.invalid")
    mail["X-Drill-Run"] = message.run_id
    mail["X-Drill-Page"] = message.page_id
    mail.set_content(message.text())
    return mail


async def send_email(spec: EmailSpec, message: Message, ctx: NotifyContext) -> SendResult:
    """Hand the mail to the SMTP server; 4xx answers and connection problems are retried."""
    mail = email_message(spec, message)

    async def attempt() -> None:
        try:
            await aiosmtplib.send(
                mail,
                hostname=spec.smtp_host,
                port=spec.smtp_port,
                username=spec.username or None,
                password=spec.password or None,
                start_tls=spec.starttls,  # explicit: aiosmtplib would otherwise upgrade on its own
                timeout=ctx.retry.attempt_timeout_ms / 1000,
            )
        except aiosmtplib.SMTPResponseException as exc:
            text = snippet(str(exc.message), ctx.redact)
            raise DeliveryFailed(f"SMTP {exc.code}: {text}", transient=400 <= exc.code < 500) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed(
                f"SMTP refused every recipient ({len(exc.recipients)})", transient=False
            ) from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            raise DeliveryFailed("SMTP server did not answer in time", transient=True) from None
        except ssl.SSLError as exc:  # a certificate problem does not heal by retrying
            raise DeliveryFailed(f"SMTP TLS failed: {exc.reason or exc}", transient=False) from None
        except OSError as exc:  # refused, reset, disconnected: worth another attempt
            why = exc.strerror or f"{type(exc).__name__}: {exc}"
            raise DeliveryFailed(f"cannot reach the SMTP server: {why}", transient=True) from None
        except aiosmtplib.SMTPException as exc:  # e.g. AUTH not offered without STARTTLS
            raise DeliveryFailed(f"SMTP: {exc}", transient=False) from None

    return await deliver_with_retries(attempt, ctx)


EMAIL = NotifierKind("email", parse_email, send_email, "plain-text mail over SMTP")
