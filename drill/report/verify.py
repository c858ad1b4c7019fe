"""Verify a signed evidence folder: signatures against an OpenSSH allowed_signers file, the
report against its schema, the journal's digest and hash chain, every evidence file's digest,
that report.json is what the journal folds to (the report is rebuilt from the journal and
compared), and that each rendered view present (report.html, report.md, report.junit.xml) is
the rendering of the signed report (re-rendered and compared byte for byte).

Every file is read as drill.evidence.inputs reads hostile input: regular files only, each kind
with a size limit, JSON nesting bounded before parsing (InputRejected, exit 2, otherwise).

Trust decisions follow `ssh-keygen -Y verify` (sshsig.c): a signature is accepted when some
allowed_signers line lists the signing key for a pattern matching the principal, and that
line's namespaces= and valid-after/valid-before options accept it. drill checks the validity
window at the report's signing time (its generated_utc), so rotating a key later does not
invalidate reports it signed while it was valid; `ssh-keygen -Y verify -Overify-time=...`
gives the same answer. Any failure is a VerificationFailed with one line saying why; an
input verify refuses (a missing folder, report.json or allowed_signers file, one that is not a
regular file, too large or nested too deeply) is a UsageError or InputRejected (exit 2).

Which signatures must be trusted. Every report.json.<principal>.sig in the folder is read, and
each one made with an Ed25519 key must match report.json's bytes: a signature that does not
(a tampered .sig, or one over other bytes) is evidence of tampering and always fails, as does
one that is not an SSH signature at all, or one by a key in the revoked-keys file. A signature
that matches but that allowed_signers does not trust (unknown key, principal not listed for
it, another namespace, outside its validity window) is *untrusted*; one drill cannot check (a
non-Ed25519 key, trust only through a cert-authority line) is *unverifiable*. Both are
reported in Verification.signatures, with the reason, and fail verification only when they
matter: the report's preparer (its prepared_by principal) and every --require'd principal
must have a trusted signature, at least one signature must be trusted, and with strict=True
every signature must be.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drill.clock import parse_utc
from drill.errors import DrillError, JournalInvalid, UsageError, VerificationFailed
from drill.evidence.canonical import canonical_bytes, is_canonical
from drill.evidence.inputs import (
    ALLOWED_SIGNERS_LIMIT,
    REPORT_LIMIT,
    SIGNATURE_LIMIT,
    VIEW_LIMIT,
    check_json_depth,
    open_regular,
    read_bounded,
)
from drill.evidence.journal import JournalSummary, file_sha256, verify_journal
from drill.jsontypes import JsonObject
from drill.report import build as _build
from drill.report.build import build_report_from_journal, report_bytes
from drill.report.evidence import RENDERERS
from drill.report.model import EvidenceFile, JournalBlock, Report, report_from_data
from drill.report.sign import (
    KEY_TYPE,
    NAMESPACE,
    REPORT_FILE,
    ParsedSignature,
    SignatureMalformed,
    check_principal,
    existing_signatures,
    fingerprint,
    parse_signature,
    principal_of,
    signature_matches,
)
from drill.report.signoff import COUNTERSIGNER, PREPARER, sign_offs_in

SCHEMA_FILE = "report.schema.json"
_KRL_MAGIC = b"SSHKRL\n\0"
_KEY_TYPE = re.compile(r"(ssh-|ecdsa-|sk-)[A-Za-z0-9@._-]+")
_TIMESTAMP = re.compile(r"(\d{8})(\d{4}(\d{2})?)?(Z?)")


# ---------------------------------------------------------------- allowed_signers


@dataclass(frozen=True, slots=True)
class AllowedSigner:
    """One line of an OpenSSH allowed_signers file."""

    principals: str  # the pattern list as written, e.g. "lead,*@example.com,!bob@example.com"
    key_type: str
    key_blob: bytes  # SSH wire-format public key
    namespaces: str | None = None  # a pattern list; None = any namespace
    valid_after: datetime | None = None
    valid_before: datetime | None = None
    cert_authority: bool = False
    source: str = "allowed_signers"
    line: int = 0

    @property
    def where(self) -> str:
        """file:line of this entry, for messages."""
        return f"{self.source}:{self.line}"

    @property
    def fingerprint(self) -> str:
        """SHA256:... of the listed key."""
        return fingerprint(self.key_blob)


def load_allowed_signers(path: Path | str) -> tuple[AllowedSigner, ...]:
    """Read and parse an allowed_signers file.

    A file that is missing, cannot be read or has a malformed line is bad input: UsageError
    naming file:line (InputRejected when it is not a regular file or too large), exit 2.
    """
    text = _read_text(Path(path), "allowed signers file", ALLOWED_SIGNERS_LIMIT, refuse=UsageError)
    return parse_allowed_signers(text, source=str(path))


def parse_allowed_signers(text: str, *, source: str = "allowed_signers") -> tuple[AllowedSigner, ...]:
    """Parse allowed_signers text: `principals [options] keytype base64 [comment]` per line."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(_parse_signer_line(line, source, number))
        except ValueError as exc:
            raise UsageError(f"{source}:{number}: {exc}") from None
    return tuple(entries)


def _parse_signer_line(line: str, source: str, number: int) -> AllowedSigner:
    principals, rest = _first_token(line)
    if not principals or not rest:
        raise ValueError("expected: principals [options] keytype base64-key [comment]")
    options = ""
    key = _try_key(rest)
    if key is None:
        options, rest = _split_options(rest)
        key = _try_key(rest)
        if key is None:
            raise ValueError("missing or invalid public key")
    parsed = _parse_options(options)
    return AllowedSigner(
        principals=principals,
        key_type=key[0],
        key_blob=key[1],
        namespaces=parsed.get("namespaces"),
        valid_after=_timestamp(parsed["valid-after"]) if "valid-after" in parsed else None,
        valid_before=_timestamp(parsed["valid-before"]) if "valid-before" in parsed else None,
        cert_authority="cert-authority" in parsed,
        source=source,
        line=number,
    )


def _first_token(text: str) -> tuple[str, str]:
    """The principals field (double quotes allowed, as OpenSSH's strdelimw) and the rest."""
    if text.startswith('"'):
        end = text.find('"', 1)
        if end < 0:
            raise ValueError("unterminated quote in principals")
        return text[1:end], text[end + 1 :].lstrip()
    parts = text.split(None, 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _split_options(text: str) -> tuple[str, str]:
    """Options run up to the first white space outside double quotes."""
    quoted = False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char in " \t" and not quoted:
            return text[:i], text[i:].lstrip()
    if quoted:
        raise ValueError("unterminated quote in options")
    return text, ""


def _try_key(text: str) -> tuple[str, bytes] | None:
    """(key type, wire blob) if text starts with `keytype base64`, else None."""
    parts = text.split(None, 2)
    if len(parts) < 2 or not _KEY_TYPE.fullmatch(parts[0]):
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    declared = blob[4 : 4 + int.from_bytes(blob[:4], "big")] if len(blob) >= 4 else b""
    if declared != parts[0].encode():
        return None
    return parts[0], blob


def _parse_options(text: str) -> dict[str, str]:
    """cert-authority, namespaces="...", valid-after="...", valid-before="..." (as sshsigopt_parse)."""
    found: dict[str, str] = {}
    rest = text
    while rest:
        match = re.match(
            r'(cert-authority|namespaces|valid-after|valid-before)(="([^"]*)")?(,|$)', rest, re.I
        )
        if match is None:
            bad = rest.split(",", 1)[0]
            raise ValueError(f"unknown or malformed option {bad!r}")
        name = match.group(1).lower()
        if name in found:
            raise ValueError(f"option {name} given twice")
        if (name == "cert-authority") != (match.group(2) is None):
            raise ValueError(
                f'option {name} needs a quoted value ({name}="...")'
                if name != "cert-authority"
                else "option cert-authority takes no value"
            )
        found[name] = match.group(3) or ""
        rest = rest[match.end() :]
    return found


def _timestamp(text: str) -> datetime:
    """YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]; local time unless Z, as ssh-keygen reads them."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"bad timestamp {text!r} (expected YYYYMMDD[HHMM[SS]][Z])")
    digits = match.group(1) + (match.group(2) or "0000") + ("" if match.group(3) else "00")
    try:
        naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError:
        raise ValueError(f"bad timestamp {text!r}") from None
    if match.group(4):
        return naive.replace(tzinfo=UTC)
    return naive.astimezone(UTC)  # naive = the system's local time zone, as ssh-keygen


def match_pattern_list(name: str, patterns: str) -> bool:
    """OpenSSH pattern-list matching (ssh_config PATTERNS): * and ?, comma lists, ! negates."""
    positive = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if _glob(body).fullmatch(name):
            if negated:
                return False
            positive = True
    return positive


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


# ---------------------------------------------------------------- revoked keys


def load_revoked_keys(path: Path | str) -> frozenset[bytes]:
    """Public key blobs listed in a revoked-keys file (one OpenSSH public key per line).

    UsageError (exit 2) when the file is missing or unreadable, as for allowed_signers.
    """
    source = Path(path)
    what = "revoked keys file"
    try:
        data = read_bounded(source, ALLOWED_SIGNERS_LIMIT, what)
    except FileNotFoundError:
        raise UsageError(f"{what} {source} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {source}: {exc.strerror}") from None
    if data.startswith(_KRL_MAGIC):
        raise VerificationFailed(
            f"{source} is a binary KRL, which drill verify does not read; list the revoked public keys "
            "one per line (ssh-keygen -Y verify -r accepts both)"
        )
    return parse_revoked_keys(_decode(data, source, what), source=str(source))


def parse_revoked_keys(text: str, *, source: str = "revoked_keys") -> frozenset[bytes]:
    """Parse public key lines (`[options] keytype base64 [comment]`); comments and blanks skipped."""
    blobs = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = _try_key(line)
        if key is None:
            try:
                key = _try_key(_split_options(line)[1])
            except ValueError:
                key = None
        if key is None:
            raise UsageError(f"{source}:{number}: not a public key line")
        blobs.add(key[1])
    return frozenset(blobs)


# ---------------------------------------------------------------- one signature


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who made an accepted signature, and which allowed_signers line vouched for the key."""

    principal: str
    fingerprint: str
    key_type: str
    namespace: str
    allowed_by: str  # file:line
    file: str = ""


def verify_signature(
    data: bytes,
    armored_sig: str | bytes,
    allowed_signers: Sequence[AllowedSigner],
    principal: str,
    namespace: str,
    at: datetime,
    *,
    revoked: Collection[bytes] = (),
    source: str = "signature",
) -> SignerInfo:
    """Check one SSHSIG signature of data as `ssh-keygen -Y verify` does, at time `at`."""
    try:
        parsed = parse_signature(armored_sig)
    except SignatureMalformed as exc:
        raise VerificationFailed(f"{source}: {exc}") from None
    if parsed.namespace != namespace:
        raise VerificationFailed(
            f"{source}: signed for namespace {parsed.namespace!r}, expected {namespace!r}"
        )
    try:
        intact = signature_matches(data, parsed)
    except SignatureMalformed as exc:
        raise VerificationFailed(f"{source}: {exc}") from None
    if not intact:
        raise VerificationFailed(
            f"{source}: signature does not match {REPORT_FILE} (altered after signing, or not its signature)"
        )
    if parsed.public_key in revoked:
        raise VerificationFailed(f"{source}: key {parsed.fingerprint} is revoked")
    entry = _trusted_entry(parsed, allowed_signers, principal, at, source)
    return SignerInfo(principal, parsed.fingerprint, parsed.key_type, parsed.namespace, entry.where)


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why allowed_signers does not vouch for a signature."""

    reason: str
    unverifiable: bool = False  # drill cannot decide (a cert-authority entry), ssh-keygen can


def _trusted_entry(
    parsed: ParsedSignature, allowed: Sequence[AllowedSigner], principal: str, at: datetime, source: str
) -> AllowedSigner:
    """The first allowed_signers line accepting this key for principal at `at` (as sshsig.c)."""
    decision = _trust_decision(parsed, allowed, principal, at)
    if isinstance(decision, _Refusal):
        raise VerificationFailed(f"{source}: {decision.reason}")
    return decision


def _trust_decision(
    parsed: ParsedSignature, allowed: Sequence[AllowedSigner], principal: str, at: datetime
) -> AllowedSigner | _Refusal:
    same_key = [e for e in allowed if e.key_blob == parsed.public_key and not e.cert_authority]
    candidates = [e for e in same_key if match_pattern_list(principal, e.principals)]
    if not candidates:
        if any(e.cert_authority and match_pattern_list(principal, e.principals) for e in allowed):
            return _Refusal(
                f"{principal!r} is trusted only through a cert-authority entry, which drill "
                "verify does not support (use ssh-keygen -Y verify, or list the signer's key)",
                unverifiable=True,
            )
        listed = f" (listed for {', '.join(repr(e.principals) for e in same_key)})" if same_key else ""
        return _Refusal(f"key {parsed.fingerprint} is not allowed to sign as {principal!r}{listed}")
    at = at.replace(microsecond=0)  # ssh-keygen compares whole seconds
    reasons = []
    for entry in candidates:
        reason = _entry_rejects(entry, parsed.namespace, at)
        if reason is None:
            return entry
        reasons.append(reason)
    return _Refusal(reasons[0])


def _entry_rejects(entry: AllowedSigner, namespace: str, at: datetime) -> str | None:
    if entry.namespaces is not None and not match_pattern_list(namespace, entry.namespaces):
        return f'namespace {namespace!r} not allowed by {entry.where} (namespaces="{entry.namespaces}")'
    when = at.isoformat()
    if entry.valid_after is not None and at < entry.valid_after:
        limit = entry.valid_after.isoformat()
        return f"key {entry.fingerprint} not yet valid at {when} (valid-after {limit}, {entry.where})"
    if entry.valid_before is not None and at > entry.valid_before:
        limit = entry.valid_before.isoformat()
        return f"key {entry.fingerprint} expired at {when} (valid-before {limit}, {entry.where})"
    return None


# ---------------------------------------------------------------- a report folder


@dataclass(frozen=True, slots=True)
class JournalCheck:
    """The journal as verified against the signed report's journal block."""

    file: str
    sha256: str
    events: int
    head: str


TIME_PREPARER = "report generated {generated_utc}"
TIME_NOT_RECORDED = "time not recorded in the signature"  # an SSHSIG signature carries no time


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One report.json.<principal>.sig as verify judged it: trusted, or reported with the reason.

    role is PREPARER ("prepared the report") for the report's prepared_by principal, else
    COUNTERSIGNER ("countersigned"), the words the views use. time says what is known of when
    it was made: an SSHSIG signature carries no time, so for the preparer it is the report's
    generated_utc (a claim of the signer's) and for anyone else TIME_NOT_RECORDED.
    """

    principal: str
    role: str
    fingerprint: str  # SHA256:... of the key that made it
    file: str
    trusted: bool
    trusted_by: str = ""  # file:line of the allowed_signers entry; "" when not trusted
    time: str = ""
    note: str = ""  # when not trusted: "untrusted: <why>" or "unverifiable: <why>"


@dataclass(frozen=True, slots=True)
class Verification:
    """A verified evidence folder: what drill it is, who signed, when, and what was checked.

    Verified means the evidence is authentic and complete, not that the drill passed: `verdict`
    is the drill's own verdict ("pass", "fail", ...), as signed.
    """

    report_id: str
    signed_at: str
    signers: tuple[SignerInfo, ...]  # the trusted signatures, by file name
    journal: JournalCheck
    evidence: tuple[str, ...]  # evidence file names whose digests matched
    notes: tuple[str, ...] = ()  # checks that could not run (e.g. no schema shipped)
    views: tuple[str, ...] = ()  # rendered views that match a re-rendering of report.json
    views_absent: tuple[str, ...] = ()  # views not in the folder (nothing to check)
    folded: bool = False  # report.json equals the report rebuilt from the journal
    not_checked: tuple[str, ...] = ()  # checks that were not made, each with the reason
    run_id: str = ""
    generated_utc: str = ""
    playbook: str = ""  # the playbook's name
    quarter: str = ""
    test_type: str = ""  # tabletop | functional | full-scale | switchover
    verdict: str = ""  # the drill's verdict as signed: pass, fail, incomplete, aborted ...
    verdict_reason: str = ""  # why the verdict is not pass ("" when it is)
    signatures: tuple[SignatureCheck, ...] = ()  # every signature, trusted or not, preparer first
    strict: bool = False  # whether every signature had to be trusted

    @property
    def untrusted(self) -> tuple[SignatureCheck, ...]:
        """The signatures reported but not trusted (none when strict)."""
        return tuple(s for s in self.signatures if not s.trusted)

    @property
    def covered_checks(self) -> tuple[str, ...]:
        """The names of the checks made, in the order of the `covered:` line."""
        parts = ["signatures", "schema" if not self.notes else "schema (skipped)", "journal chain and digest"]
        if self.evidence:
            parts.append("evidence digests")
        if self.folded:
            parts.append("report = journal fold")
        if self.views:
            parts.append("views")
        return tuple(parts)

    @property
    def covered(self) -> str:
        """One line saying what was checked, e.g. for `drill verify`'s output."""
        parts = [f"views: {' '.join(self.views)}" if p == "views" else p for p in self.covered_checks]
        line = f"covered: {', '.join(parts)}"
        if self.views_absent:
            line += f"; not present: {' '.join(self.views_absent)}"
        return line


def verify_report_dir(
    report_dir: Path | str,
    allowed_signers_path: Path | str,
    require: Iterable[str] = (),
    revoked_path: Path | str | None = None,
    *,
    strict: bool = False,
) -> Verification:
    """Verify an evidence folder; VerificationFailed with one line saying why on the first failure.

    The preparer's signature and those of the `require`d principals must be trusted by
    allowed_signers; other signatures that are untrusted or unverifiable are reported in
    Verification.signatures, or fail with strict=True. A signature that does not match
    report.json, or by a revoked key, always fails (see the module docstring). UsageError
    (exit 2) for a missing folder, report.json or allowed_signers / revoked-keys file.
    """
    directory = Path(report_dir)
    data = _read_report(directory)
    allowed = load_allowed_signers(allowed_signers_path)
    revoked = load_revoked_keys(revoked_path) if revoked_path is not None else frozenset()
    signatures = existing_signatures(directory)
    if not signatures:
        raise VerificationFailed(f"no signatures ({REPORT_FILE}.*.sig) in {directory}")
    read = _untrusted_check(data, signatures)
    report = _report_document(data)
    signed_at = _signing_time(report)
    judged = [_judge(sig, allowed, revoked, parse_utc(signed_at)) for sig in read]
    _check_trust(judged, tuple(require), _preparer_principal(report), strict=strict)
    signers = tuple(j.info for j in judged if j.info is not None)
    notes = _check_schema(report)
    typed = _typed(report)
    _check_preparer(typed, signers)
    current = _build.tool_version()
    if typed.tool.version == current:
        # The rebuild streams the journal with the full line-by-line check, so its summary
        # stands in for the chain pass (one read of the journal instead of two).
        _evidence_path(directory, typed.journal.file, "journal")
        evidence = _check_evidence(directory, typed.evidence)
        rebuilt = _rebuild(directory, typed)
        block = rebuilt.journal
        summary = JournalSummary(block.sha256, block.events, block.head)
        journal = _check_journal(directory, typed.journal, summary)
        views, absent = _check_views(directory, typed)
        _check_fold(directory, report, typed, rebuilt)
        skipped: tuple[str, ...] = ()
    else:  # the fold and the renderings are those of the drill that made the report
        journal = _check_journal(directory, typed.journal)
        evidence = _check_evidence(directory, typed.evidence)
        views, absent = (), ()
        skipped = (
            f"report = journal fold and views: the report was built by drill {typed.tool.version}, "
            f"this is drill {current} (both can differ between versions; verify with drill "
            f"{typed.tool.version} to compare them)",
        )
    return Verification(
        typed.report_id,
        signed_at,
        signers,
        journal,
        evidence,
        notes,
        views=views,
        views_absent=absent,
        folded=not skipped,
        not_checked=skipped,
        run_id=typed.run_id,
        generated_utc=typed.generated_utc,
        playbook=typed.playbook.name,
        quarter=typed.playbook.quarter,
        test_type=typed.exercise.test_type,
        verdict=typed.verdict,
        verdict_reason=typed.run.verdict_reason or typed.run.reason,
        signatures=_signature_checks(judged, typed),
        strict=strict,
    )


def _typed(report: JsonObject) -> Report:
    try:
        return report_from_data(report)
    except ValueError as exc:
        raise VerificationFailed(f"{REPORT_FILE} does not match its schema: {exc}") from None


def _read_report(directory: Path) -> bytes:
    """report.json's bytes; a folder or report.json that is not there is bad input (exit 2)."""
    path = directory / REPORT_FILE
    if not directory.exists():
        raise UsageError(f"report folder {directory} does not exist")
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder (pass the evidence folder, runs/RUN_ID)")
    try:
        return read_bounded(path, REPORT_LIMIT, "report")
    except FileNotFoundError:
        raise UsageError(f"{path} is missing (is {directory} an evidence folder?)") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class _ReadSignature:
    path: Path
    parsed: ParsedSignature
    unverifiable: str = ""  # why drill cannot check its bytes ("" when they matched)


def _untrusted_check(data: bytes, signatures: Sequence[Path]) -> list[_ReadSignature]:
    """Every signature must match the bytes before anything in them is believed.

    One that does not, or is no SSH signature, fails: that is tampering. One made with a key
    type drill does not verify is kept, marked unverifiable, for the trust policy to judge.
    """
    found = []
    for sig in signatures:
        try:
            check_principal(principal_of(sig))
        except UsageError:
            raise VerificationFailed(f"{sig.name}: the file name does not hold a valid principal") from None
        text = _read_text(sig, "signature", SIGNATURE_LIMIT)
        try:
            parsed = parse_signature(text)
            key_type = parsed.key_type
            if key_type != KEY_TYPE:
                found.append(_ReadSignature(sig, parsed, _other_key_type(key_type)))
                continue
            intact = signature_matches(data, parsed)
        except SignatureMalformed as exc:
            raise VerificationFailed(f"{sig.name}: {exc}") from None
        if not intact:
            raise VerificationFailed(
                f"{sig.name}: signature does not match {REPORT_FILE} (the report was altered after signing)"
            )
        found.append(_ReadSignature(sig, parsed))
    return found


def _other_key_type(key_type: str) -> str:
    return (
        f"made with a key of type {key_type}; drill verify checks {KEY_TYPE} signatures only "
        "(ssh-keygen -Y verify can check this one)"
    )


@dataclass(frozen=True, slots=True)
class _Judged:
    """One signature after the trust policy: info when trusted, else the kind and the reason."""

    file: str
    principal: str
    fingerprint: str
    info: SignerInfo | None
    kind: str = ""  # "untrusted" | "unverifiable"
    reason: str = ""


def _judge(
    sig: _ReadSignature, allowed: Sequence[AllowedSigner], revoked: Collection[bytes], at: datetime
) -> _Judged:
    """Trusted, untrusted or unverifiable; a revoked key fails outright (the auditor said so)."""
    name, principal, parsed = sig.path.name, principal_of(sig.path), sig.parsed
    if parsed.public_key in revoked:
        raise VerificationFailed(f"{name}: key {parsed.fingerprint} is revoked")
    if sig.unverifiable:
        return _Judged(name, principal, parsed.fingerprint, None, "unverifiable", sig.unverifiable)
    if parsed.namespace != NAMESPACE:
        reason = f"signed for namespace {parsed.namespace!r}, expected {NAMESPACE!r}"
        return _Judged(name, principal, parsed.fingerprint, None, "untrusted", reason)
    decision = _trust_decision(parsed, allowed, principal, at)
    if isinstance(decision, _Refusal):
        kind = "unverifiable" if decision.unverifiable else "untrusted"
        return _Judged(name, principal, parsed.fingerprint, None, kind, decision.reason)
    info = SignerInfo(principal, parsed.fingerprint, parsed.key_type, parsed.namespace, decision.where, name)
    return _Judged(name, principal, parsed.fingerprint, info)


def _check_trust(
    judged: Sequence[_Judged], require: Sequence[str], preparer: str | None, *, strict: bool
) -> None:
    """Fail on the first signature that must be trusted and is not, naming it and why."""

    def refuse(sig: _Judged, why: str) -> VerificationFailed:
        return VerificationFailed(f"{sig.file}: {sig.reason} ({why})")

    if strict:
        for sig in judged:
            if sig.info is None:
                raise refuse(sig, f"{sig.kind}; --strict needs every signature trusted")
    by_principal = {sig.principal: sig for sig in judged}
    prepared = by_principal.get(preparer) if preparer is not None else None
    if prepared is not None and prepared.info is None:
        raise refuse(prepared, "the signature of the report's preparer must be trusted")
    for principal in require:
        named = by_principal.get(principal)
        if named is None:
            raise VerificationFailed(
                f"required signer {principal!r} has not signed (signed by: {', '.join(by_principal)})"
            )
        if named.info is None:
            raise refuse(named, f"required signer {principal!r} needs a trusted signature")
    if all(sig.info is None for sig in judged):
        raise refuse(judged[0], "no signature is trusted")


def _preparer_principal(report: JsonObject) -> str | None:
    """prepared_by.principal, read before the schema check (so: defensively)."""
    prepared = report.get("prepared_by")
    principal = prepared.get("principal") if isinstance(prepared, dict) else None
    return principal if isinstance(principal, str) else None


def _signature_checks(judged: Sequence[_Judged], report: Report) -> tuple[SignatureCheck, ...]:
    """Every signature as the output shows it: the preparer first, then by principal (as the views)."""
    preparer = report.prepared_by.principal if report.prepared_by is not None else None
    checks = []
    for sig in judged:
        role = PREPARER if sig.principal == preparer else COUNTERSIGNER
        time = (
            TIME_PREPARER.format(generated_utc=report.generated_utc)
            if role == PREPARER
            else TIME_NOT_RECORDED
        )
        checks.append(
            SignatureCheck(
                principal=sig.principal,
                role=role,
                fingerprint=sig.fingerprint,
                file=sig.file,
                trusted=sig.info is not None,
                trusted_by=sig.info.allowed_by if sig.info is not None else "",
                time=time,
                note=f"{sig.kind}: {sig.reason}" if sig.info is None else "",
            )
        )
    return tuple(sorted(checks, key=lambda c: (c.role != PREPARER, c.principal)))


def _report_document(data: bytes) -> JsonObject:
    check_json_depth(data, REPORT_FILE)
    try:
        report = json.loads(data)
    except ValueError as exc:
        raise VerificationFailed(f"{REPORT_FILE} is not JSON ({exc})") from None
    if not isinstance(report, dict):
        raise VerificationFailed(f"{REPORT_FILE} is not a JSON object")
    if not is_canonical(data):
        raise VerificationFailed(f"{REPORT_FILE} is not stored as RFC 8785 canonical JSON")
    return report


def _signing_time(report: JsonObject) -> str:
    value = report.get("signed_at") or report.get("generated_utc")
    if not isinstance(value, str):
        raise VerificationFailed(f"{REPORT_FILE} has no generated_utc (the signing time keys are checked at)")
    try:
        parse_utc(value)
    except ValueError:
        raise VerificationFailed(
            f"{REPORT_FILE}: generated_utc {value!r} is not an ISO 8601 time with offset"
        ) from None
    return value


def _check_preparer(report: Report, signers: Sequence[SignerInfo]) -> None:
    """A report that names who prepared it must carry that person's valid signature."""
    prepared = report.prepared_by
    if prepared is None:
        return
    principal, fpr = prepared.principal, prepared.fingerprint
    if not any(s.principal == principal and s.fingerprint == fpr for s in signers):
        raise VerificationFailed(
            f"{REPORT_FILE} names {principal!r} ({fpr}) as preparer, but has no signature by that key"
        )


def _check_schema(report: JsonObject) -> tuple[str, ...]:
    import jsonschema

    from drill.resources import schema_dir

    path = schema_dir() / SCHEMA_FILE
    if not path.is_file():
        return (f"schema check skipped: {SCHEMA_FILE} is not shipped with this drill",)
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is not None:
        where = error.json_path
        message = " ".join(error.message.split())
        message = message if len(message) <= 200 else message[:197] + "..."
        raise VerificationFailed(f"{REPORT_FILE} does not match its schema at {where}: {message}")
    return ()


def _check_journal(
    directory: Path, block: JournalBlock, summary: JournalSummary | None = None
) -> JournalCheck:
    """The journal against the signed report's block; summary: of a full pass already made."""
    path = _evidence_path(directory, block.file, "journal")
    # One pass hashes the file and follows the chain. When the SHA-256 is the signed one the
    # bytes are what was signed (their form was checked when the report was built); any other
    # file gets the full line-by-line check, which names the first broken line.
    if summary is None:
        try:
            summary = verify_journal(path, chain_only=True)
        except JournalInvalid:
            summary = None
    if summary is None or summary.sha256 != block.sha256:
        try:
            summary = verify_journal(path)
        except JournalInvalid as exc:
            raise VerificationFailed(f"{path.name}: {exc.message}") from None
    expected = block.events
    if summary.count != expected:
        tail = (
            f"lines after {summary.count} are missing"
            if summary.count < expected
            else f"lines after {expected} are not covered by the report"
        )
        raise VerificationFailed(
            f"{path.name}: {summary.count} events, the signed report says {expected} ({tail})"
        )
    if summary.head != block.head:
        raise VerificationFailed(f"{path.name}: chain head {summary.head} differs from the signed report's")
    if summary.sha256 != block.sha256:
        raise VerificationFailed(
            f"{path.name}: SHA-256 {summary.sha256} differs from the signed report's {block.sha256}"
        )
    return JournalCheck(path.name, summary.sha256, summary.count, summary.head)


def _check_evidence(directory: Path, entries: Iterable[EvidenceFile]) -> tuple[str, ...]:
    checked = []
    for entry in entries:
        path = _evidence_path(directory, entry.file, "evidence")
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise VerificationFailed(
                f"{path.name}: SHA-256 {digest} differs from the signed report's {entry.sha256}"
            )
        checked.append(path.name)
    return tuple(checked)


def _evidence_path(directory: Path, name: str, what: str) -> Path:
    """A file the report names, which must sit in the report's own folder."""
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise VerificationFailed(f"{REPORT_FILE} names {what} file {name!r}, which is not a plain file name")
    path = directory / name
    try:
        open_regular(path, f"{what} file").close()  # InputRejected for a FIFO, a device ...
    except FileNotFoundError:
        raise VerificationFailed(f"{what} file {name} listed in the signed report is missing") from None
    except OSError as exc:
        raise VerificationFailed(f"cannot read {what} file {path}: {exc.strerror}") from None
    return path


def _check_views(directory: Path, report: Report) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Each view present must be the rendering of the signed report (renderers are deterministic)."""
    present, absent = [], []
    sign_offs = sign_offs_in(directory, report)
    for renderer, name in RENDERERS.values():
        path = directory / name
        try:
            data = read_bounded(path, VIEW_LIMIT, "view")
        except FileNotFoundError:
            absent.append(name)
            continue
        except OSError as exc:
            raise VerificationFailed(f"cannot read {path}: {exc.strerror}") from None
        if data != renderer(report, sign_offs).encode("utf-8"):
            raise VerificationFailed(
                f"{name} does not match {REPORT_FILE} (edited after rendering, or rendered from another "
                f"report; `drill report render {directory} --to ...` re-renders it)"
            )
        present.append(name)
    return tuple(present), tuple(absent)


# Not derivable from the journal: which drill built the report.
_NOT_FOLDED = frozenset({"tool"})


def _rebuild(directory: Path, report: Report) -> Report:
    """The report the journal folds to, with the signer and evidence files write_evidence uses."""
    journal = directory / report.journal.file
    evidence = [directory / entry.file for entry in report.evidence]
    try:
        return build_report_from_journal(journal, signer=report.prepared_by, evidence_files=evidence)
    except JournalInvalid as exc:  # names the first broken line, as the chain check does
        raise VerificationFailed(f"{journal.name}: {exc.message}") from None


def _check_fold(directory: Path, stored: JsonObject, report: Report, rebuilt: Report) -> None:
    """report.json must be what its journal folds to (`rebuilt`); the first differing field is named."""
    journal = directory / report.journal.file
    fresh = json.loads(report_bytes(rebuilt))  # as stored: lists, not tuples
    for key in [*fresh, *(k for k in stored if k not in fresh)]:
        if key in _NOT_FOLDED:
            continue
        mine, theirs = stored.get(key), fresh.get(key)
        if key not in stored or key not in fresh or canonical_bytes(mine) != canonical_bytes(theirs):
            where = _first_difference(key, mine, theirs)
            built = ""
            if rebuilt.tool.version != report.tool.version:
                built = f"; it was built by drill {report.tool.version}, this is drill {rebuilt.tool.version}"
            raise VerificationFailed(
                f"{REPORT_FILE} does not match the journal: {where} differs from what {journal.name} "
                f"folds to{built}"
            )


def _first_difference(path: str, mine: object, theirs: object) -> str:
    """The dotted path of the first place two JSON values differ (bounded: depth <= 64)."""
    while True:
        if isinstance(mine, dict) and isinstance(theirs, dict):
            keys = [k for k in [*mine, *(k for k in theirs if k not in mine)]]
            diff = next(
                (
                    k
                    for k in keys
                    if k not in mine
                    or k not in theirs
                    or canonical_bytes(mine[k]) != canonical_bytes(theirs[k])
                ),
                None,
            )
            if diff is None:
                return path
            path, mine, theirs = f"{path}.{diff}", mine.get(diff), theirs.get(diff)
        elif isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
            index = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
                    if canonical_bytes(a) != canonical_bytes(b)
                ),
                None,
            )
            if index is None:
                return path
            path, mine, theirs = f"{path}[{index}]", mine[index], theirs[index]
        else:
            return path


def _read_text(path: Path, what: str, limit: int, *, refuse: type[DrillError] = VerificationFailed) -> str:
    """path as UTF-8 text; `refuse` is raised when it is missing or unreadable."""
    try:
        data = read_bounded(path, limit, what)
    except FileNotFoundError:
        raise refuse(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise refuse(f"cannot read {what} {path}: {exc.strerror}") from None
    return _decode(data, path, what)


def _decode(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationFailed(f"{what} {path} is not UTF-8 text") from None
