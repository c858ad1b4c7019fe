"""The sign-off of a report: the signatures present beside report.json, as the views show them.

A view lists what is in the folder (principal, role, key fingerprint); whether a key is trusted
is for `drill verify` and the auditor's allowed_signers to say, never for a view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drill.report.model import Report
from drill.report.sign import SignatureMalformed, existing_signatures, parse_signature, principal_of

PREPARER = "prepared the report"
COUNTERSIGNER = "countersigned"

_SIG_LIMIT = 64 * 1024  # as verify's bound for a .sig


@dataclass(frozen=True, slots=True)
class SignOff:
    principal: str
    role: str  # PREPARER or COUNTERSIGNER
    fingerprint: str  # SHA256:... of the key that made the signature; "" when unreadable
    file: str


def sign_offs_in(directory: Path, report: Report) -> tuple[SignOff, ...]:
    """Every report.json.<principal>.sig in directory, the preparer first, then by name."""
    found = [_sign_off(path, report) for path in existing_signatures(directory)]
    return tuple(sorted(found, key=lambda s: (s.role != PREPARER, s.principal)))


def _sign_off(path: Path, report: Report) -> SignOff:
    principal = principal_of(path)
    preparer = report.prepared_by is not None and report.prepared_by.principal == principal
    role = PREPARER if preparer else COUNTERSIGNER
    try:
        with path.open("rb") as fh:
            key = parse_signature(fh.read(_SIG_LIMIT)).fingerprint
    except (OSError, SignatureMalformed):
        key = ""  # the view says "unreadable"; verify says why
    return SignOff(principal, role, key, path.name)
