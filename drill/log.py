"""Logging for operators: structlog on stderr, readable on a TTY, JSON lines otherwise.

The global options (`drill -v/-q/--log-level/--log-format`) are recorded here before any
command runs; structlog itself is imported and configured only when something logs, so
commands that never log start without it. Secrets are redacted before rendering. Each line has
one time field, `utc` (ISO 8601 with offset): an event that carries its own journalled `utc`
keeps it, others get the moment they were logged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    import structlog

EventDict = MutableMapping[str, Any]  # structlog's own: what a processor receives and passes on
Redactor = Callable[[EventDict], EventDict]

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "console", "json")
_NUMERIC = {"debug": 10, "info": 20, "warning": 30, "error": 40}


@dataclass(slots=True)
class LogOptions:
    fmt: str = "auto"
    level: str = "info"


_options = LogOptions()
_configured = False


def level_from_counts(verbose: int, quiet: int) -> str:
    """-v and -q as a level: info by default, -v debug, -q warning, -qq error."""
    index = LEVELS.index("info") - verbose + quiet
    return LEVELS[max(0, min(len(LEVELS) - 1, index))]


def set_log_options(fmt: str | None = None, level: str | None = None) -> None:
    """Record the global logging options (the CLI group's); takes effect at configure_logging."""
    global _configured
    if fmt is not None:
        _options.fmt = fmt
    if level is not None:
        _options.level = level.lower()
    _configured = False


def log_format() -> str:
    """The logging format in force: auto, console or json."""
    return _options.fmt


class _CurrentStderr:
    """sys.stderr as it is at each write, not at configuration: the live view (rich) swaps in its
    own stderr so that a log line prints above its frame instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _add_utc(_: object, __: str, event_dict: EventDict) -> EventDict:
    from drill.clock import utc_iso, wall_utc_now

    event_dict.setdefault("utc", utc_iso(wall_utc_now()))
    return event_dict


def _redact_processor(redact: Redactor) -> Callable[[object, str, EventDict], EventDict]:
    def redact_secrets(_: object, __: str, event_dict: EventDict) -> EventDict:
        return redact(dict(event_dict))

    return redact_secrets


def configure_logging(
    fmt: str | None = None, level: str | None = None, redact: Redactor | None = None
) -> None:
    """Configure structlog for this process: the global options unless told otherwise here
    (fmt: auto | console | json; level: debug | info | warning | error)."""
    import structlog

    global _configured
    fmt = fmt or _options.fmt
    level = (level or _options.level).lower()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_utc,
    ]
    if redact is not None:
        processors.append(_redact_processor(redact))
    processors.append(
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_NUMERIC[level]),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(name: str = "drill") -> structlog.typing.FilteringBoundLogger:
    """A logger; configured from the global options if nothing configured logging yet (so a
    library log line goes to stderr, never to stdout where JSON output goes)."""
    import structlog

    if not _configured:
        configure_logging()
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
