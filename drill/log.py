"""structlog set-up: readable on a TTY, JSON otherwise (or when asked), secrets redacted first."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

EventDict = MutableMapping[str, Any]  # structlog's own: what a processor receives and passes on
Redactor = Callable[[EventDict], EventDict]


def _redact_processor(redact: Redactor) -> Callable[[object, str, EventDict], EventDict]:
    def redact_secrets(_: object, __: str, event_dict: EventDict) -> EventDict:
        return redact(dict(event_dict))

    return redact_secrets


def configure_logging(fmt: str = "auto", level: str = "info", redact: Redactor | None = None) -> None:
    """Configure structlog once per process. fmt: auto | console | json."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if redact is not None:
        processors.append(_redact_processor(redact))
    processors.append(
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "drill") -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
