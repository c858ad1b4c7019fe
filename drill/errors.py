"""The error hierarchy: every problem a user can fix is a DrillError with an exit code.

Anything else that escapes is a bug; the CLI shows it with a traceback and exit code 70.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1  # objectives missed, or verification failed
EXIT_USAGE = 2  # bad input or usage
EXIT_ABORTED = 3  # aborted, or could not run
EXIT_INTERNAL = 70


@dataclass(frozen=True, slots=True)
class Location:
    """Where in an input file a problem is (1-based line and column)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One validation finding, printed gcc-style as FILE:LINE:COL: severity: message."""

    location: Location
    severity: str  # "error" | "warning"
    message: str
    path: str = ""  # JSON path inside the document, e.g. "assets[3].tier"
    code: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.location.file,
            "line": self.location.line,
            "col": self.location.col,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "code": self.code,
        }


class DrillError(Exception):
    """A problem the operator can fix; bugs stay plain exceptions."""

    exit_code: ClassVar[int] = EXIT_ABORTED

    def __init__(self, message: str, *, hint: str = "", location: Location | None = None) -> None:
        self.message = message
        self.hint = hint
        self.location = location
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class UsageError(DrillError):
    """Raised when a command is called with arguments that cannot work."""

    exit_code = EXIT_USAGE


class PlaybookInvalid(DrillError):
    """Raised when a playbook cannot be loaded or fails validation; carries every diagnostic."""

    exit_code = EXIT_USAGE

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        super().__init__(
            first.message if first else "invalid playbook",
            location=first.location if first else None,
        )

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


class SecretUnresolved(DrillError):
    """Raised when a ${env:...}, ${file:...} or ${var:...} reference cannot be resolved at run time."""

    exit_code = EXIT_USAGE


class DrillAborted(DrillError):
    """Raised when a drill stops early: a stop condition, an operator abort, or a signal."""

    exit_code = EXIT_ABORTED


class JournalInvalid(DrillError):
    """Raised when a journal cannot be read or its hash chain is broken."""

    exit_code = EXIT_FAILED


class VerificationFailed(DrillError):
    """Raised when a signed report, its signatures or its evidence do not verify."""

    exit_code = EXIT_FAILED


class KeyProblem(DrillError):
    """Raised when a signing key cannot be read, written or used."""

    exit_code = EXIT_USAGE
