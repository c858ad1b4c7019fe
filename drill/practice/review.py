"""Read, check and write an after-action review (review.yaml), and the rules that bind it to its
report.

The file is edited by people, so it is read the way a playbook is (drill.playbook.load: YAML 1.2
core scalars, so `due: 2026-12-31` stays a string and `owner: no` stays "no"; every node keeps its
line and column) and checked against schemas/review.schema.json; a problem names FILE:LINE:COL and
the path in the document. It is written back in one stable form (keys in the model's order, every
field present so people see what is left to fill), atomically, because signatures cover its exact
bytes.

The rules a schema cannot state (a `done` action has a retest closure, a due date is a real day,
finding ids exist in the bound report, the report's SHA-256 matches) are `check_review`: they are
reported, not raised, because `drill review validate` lists them all.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml

from drill.clock import parse_utc, utc_iso
from drill.errors import (
    EXIT_FAILED,
    Diagnostic,
    DrillError,
    Location,
    PlaybookInvalid,
    UsageError,
    VerificationFailed,
)
from drill.playbook.load import Document, format_path, parse_document
from drill.practice.history import History, read_record
from drill.practice.records import VERIFIED, RunRecord
from drill.practice.review_model import (
    OPEN_STATUSES,
    REVIEW_FILE,
    REVIEW_NAMESPACE,
    RISK_NAMESPACE,
    Action,
    ActionStatus,
    ObjectiveRating,
    Rating,
    Retest,
    Review,
    ReviewParticipant,
    RiskAcceptance,
    StatusChange,
)
from drill.report.build import parse_report, read_report_file
from drill.report.model import Finding, Report
from drill.report.sign import (
    REPORT_FILE,
    SIG_SUFFIX,
    Passphrase,
    SignatureMalformed,
    check_principal,
    load_private_key,
    parse_signature,
    sign_bytes,
    signature_matches,
)
from drill.report.signoff import COUNTERSIGNER, PREPARER, sign_offs_in
from drill.report.verify import load_allowed_signers, verify_signature
from drill.resources import load_schema

SCHEMA = "review.schema.json"
MAX_BYTES = 4 * 1024 * 1024  # a review is people's text; a file this big is not one


class ReviewInvalid(UsageError):
    """A review file that cannot be read or does not match the schema; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0]
        super().__init__(first.message, location=first.location)

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


class ReviewSchemaInvalid(ReviewInvalid):
    """A review that is YAML but does not match the schema (validate lists these as problems)."""


# ---------------------------------------------------------------- reading


def load_review(path: Path) -> Review:
    """review.yaml as a typed Review, checked against the schema; ReviewInvalid (exit 2) otherwise."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read the review: {exc.strerror or exc}") from None
    return parse_review(raw, name)


def parse_review(raw: bytes, name: str = REVIEW_FILE) -> Review:
    """A review from its bytes (see load_review)."""
    if len(raw) > MAX_BYTES:
        raise _invalid(name, f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB; not a review")
    if not raw.strip():
        raise _invalid(name, "file is empty; a review is a YAML mapping (see `drill review init`)")
    try:
        doc = parse_document(raw, name)
    except PlaybookInvalid as exc:  # the YAML reader speaks of playbooks; this file is a review
        raise ReviewInvalid(
            [Diagnostic(d.location, d.severity, _as_review(d.message), d.path) for d in exc.diagnostics]
        ) from None
    problems = schema_problems(doc)
    if problems:
        raise ReviewSchemaInvalid(problems)
    return review_from_data(doc.data)


def _as_review(message: str) -> str:
    """The YAML reader's message, which speaks of a playbook, about a review."""
    message = message.replace("(apiVersion: ..., kind: Playbook, ...)", "(run_id: ..., actions: ...)")
    return message.replace("playbook", "review")


def schema_problems(doc: Document) -> list[Diagnostic]:
    """Every schema violation, in document order, each at its line and column."""
    validator = jsonschema.Draft202012Validator(load_schema(SCHEMA))
    found: list[Diagnostic] = []
    for error in validator.iter_errors(doc.data):
        best = jsonschema.exceptions.best_match([error])  # the most specific one of a oneOf
        path: tuple[str | int, ...] = tuple(best.absolute_path)
        key = False
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            allowed = best.schema.get("properties", {}) if isinstance(best.schema, dict) else {}
            extra = next((k for k in best.instance if k not in allowed), None)
            if extra is not None:  # point at the unknown key itself, not at its mapping
                path, key = (*path, extra), True
        where = format_path(path) or "(top level)"
        found.append(
            Diagnostic(
                doc.location(path, key=key), "error", f"{where}: {_schema_message(best)}", format_path(path)
            )
        )
    return sorted(found, key=lambda d: (d.location.line, d.location.col))


def _schema_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, shortened where it would print a whole object back."""
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key")
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        kind = error.instance.get("kind")
        return (
            f"a closure is `kind: retest` (run_id, report_sha256, verified_utc) or "
            f"`kind: risk-acceptance` (file, sha256, principal, reason); got kind {kind!r}"
        )
    if error.validator == "required":
        return error.message
    text = error.message
    return text if len(text) <= 200 else text[:197] + "..."


def _invalid(name: str, message: str) -> ReviewInvalid:
    return ReviewInvalid([Diagnostic(Location(name, 1, 1), "error", message)])


def review_from_data(data: dict[str, Any]) -> Review:
    """A schema-valid document as a Review (the schema guarantees the keys and types used here)."""
    return Review(
        run_id=data["run_id"],
        report_id=data["report_id"],
        report_sha256=data["report_sha256"],
        playbook=data["playbook"],
        quarter=data["quarter"],
        time_zone=data["time_zone"],
        prepared_utc=data["prepared_utc"],
        participants=tuple(ReviewParticipant(p["name"], p["role"]) for p in data.get("participants") or ()),
        objectives=tuple(
            ObjectiveRating(o["asset"], o["objective"], cast(Rating, o.get("rating", "")), o.get("note", ""))
            for o in data.get("objectives") or ()
        ),
        actions=tuple(_action(a) for a in data.get("actions") or ()),
        lessons=tuple(data.get("lessons") or ()),
    )


def _action(a: dict[str, Any]) -> Action:
    return Action(
        id=a["id"],
        finding=a.get("finding", ""),
        title=a["title"],
        severity=a["severity"],
        asset=a.get("asset", ""),
        objective=a.get("objective", ""),
        root_cause=a.get("root_cause", ""),
        owner=a.get("owner", ""),
        due=a.get("due", ""),
        status=cast(ActionStatus, a["status"]),
        ticket=a.get("ticket", ""),
        closure=_closure(a.get("closure")),
        history=tuple(
            StatusChange(h["utc"], cast(ActionStatus, h["status"]), h["by"], h.get("note", ""))
            for h in a.get("history") or ()
        ),
    )


def _closure(c: dict[str, Any] | None) -> Retest | RiskAcceptance | None:
    if c is None:
        return None
    if c["kind"] == "retest":
        return Retest(c["run_id"], c["report_sha256"], c["verified_utc"])
    return RiskAcceptance(c["file"], c["sha256"], c["principal"], c["reason"])


# ---------------------------------------------------------------- writing

_HEADER = """\
# After-action review of a drill (drill review). Edit owner, due (YYYY-MM-DD, a day in
# time_zone), root_cause, ticket, the objective ratings (P performed without challenges,
# S with some, M with major challenges, U unable to be performed) and lessons by hand.
# Close an action only by evidence: `drill review close` (a later verified drill that met the
# objective) or `drill review accept` (a signed risk acceptance). Any edit makes the review's
# signatures stale: sign it again with `drill review sign`. Check it: `drill review validate`.
"""


def review_data(review: Review) -> dict[str, Any]:
    """The review as plain data, keys in the model's order, every field present."""
    return {
        "run_id": review.run_id,
        "report_id": review.report_id,
        "report_sha256": review.report_sha256,
        "playbook": review.playbook,
        "quarter": review.quarter,
        "time_zone": review.time_zone,
        "prepared_utc": review.prepared_utc,
        "participants": [{"name": p.name, "role": p.role} for p in review.participants],
        "objectives": [
            {"asset": o.asset, "objective": o.objective, "rating": o.rating, "note": o.note}
            for o in review.objectives
        ],
        "actions": [_action_data(a) for a in review.actions],
        "lessons": list(review.lessons),
    }


def _action_data(a: Action) -> dict[str, Any]:
    return {
        "id": a.id,
        "finding": a.finding,
        "title": a.title,
        "severity": a.severity,
        "asset": a.asset,
        "objective": a.objective,
        "root_cause": a.root_cause,
        "owner": a.owner,
        "due": a.due,
        "status": a.status,
        "ticket": a.ticket,
        "closure": _closure_data(a.closure),
        "history": [{"utc": h.utc, "status": h.status, "by": h.by, "note": h.note} for h in a.history],
    }


def _closure_data(c: Retest | RiskAcceptance | None) -> dict[str, str] | None:
    if c is None:
        return None
    if isinstance(c, Retest):
        return {
            "kind": "retest",
            "run_id": c.run_id,
            "report_sha256": c.report_sha256,
            "verified_utc": c.verified_utc,
        }
    return {
        "kind": "risk-acceptance",
        "file": c.file,
        "sha256": c.sha256,
        "principal": c.principal,
        "reason": c.reason,
    }


def dump_review(review: Review) -> str:
    """The review as YAML text: the same review always gives the same text (signatures cover it)."""
    body = yaml.dump(
        review_data(review),
        Dumper=yaml.SafeDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
        indent=2,
    )
    return _HEADER + "\n" + body


def write_review(path: Path, review: Review) -> None:
    """Write the review atomically (a temporary file beside it, renamed over it)."""
    write_text_atomically(path, dump_review(review))


def write_text_atomically(path: Path, text: str) -> None:
    """Write text beside path and rename it over path: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- rules beyond the schema


@dataclass(frozen=True, slots=True)
class Problem:
    """A rule a review breaks, named by the path of the offending value."""

    path: str
    message: str
    location: str = ""  # FILE:LINE:COL when known (schema problems)

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{self.location}: {text}" if self.location else text


def check_review(
    review: Review, report: Report | None = None, report_sha256: str | None = None
) -> list[Problem]:
    """Every rule the review breaks; report and its SHA-256 when the report is beside the review."""
    problems: list[Problem] = []
    problems += _zone_problems(review)
    problems += _action_problems(review)
    if report_sha256 is not None and report_sha256 != review.report_sha256:
        problems.append(
            Problem(
                "report_sha256",
                f"the review is bound to report {review.report_sha256[:12]}..., but report.json beside it "
                f"is {report_sha256[:12]}...: the report changed or the review belongs to another run",
            )
        )
    if report is not None:
        problems += _report_problems(review, report)
    return problems


def _zone_problems(review: Review) -> list[Problem]:
    try:
        ZoneInfo(review.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [Problem("time_zone", f"{review.time_zone!r} is not an IANA time zone (e.g. Europe/Berlin)")]
    return []


def _action_problems(review: Review) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, action in enumerate(review.actions):
        where = f"actions[{i}]"
        if action.id in seen:
            problems.append(Problem(f"{where}.id", f"action id {action.id} is used twice"))
        seen.add(action.id)
        if action.due and parse_day(action.due) is None:
            problems.append(Problem(f"{where}.due", f"{action.due} is not a real day (YYYY-MM-DD)"))
        problems += _closure_problems(action, where)
    return problems


def _closure_problems(action: Action, where: str) -> list[Problem]:
    closure = action.closure
    if action.status == "done" and not isinstance(closure, Retest):
        return [
            Problem(
                f"{where}.closure", f"{action.id} is done without a retest closure (use `drill review close`)"
            )
        ]
    if action.status == "risk-accepted" and not isinstance(closure, RiskAcceptance):
        return [
            Problem(
                f"{where}.closure",
                f"{action.id} is risk-accepted without a risk-acceptance closure (use `drill review accept`)",
            )
        ]
    if action.status in ("open", "in-progress") and closure is not None:
        return [Problem(f"{where}.closure", f"{action.id} is {action.status} but has a closure")]
    return []


def _report_problems(review: Review, report: Report) -> list[Problem]:
    problems: list[Problem] = []
    if review.run_id != report.run_id:
        problems.append(
            Problem("run_id", f"{review.run_id} is not the run of the report beside it ({report.run_id})")
        )
    findings = {f.id for f in report.findings}
    for i, action in enumerate(review.actions):
        if action.finding and action.finding not in findings:
            problems.append(
                Problem(f"actions[{i}].finding", f"{action.finding} is not a finding of the report")
            )
    return problems


def parse_day(text: str) -> dt.date | None:
    """A YYYY-MM-DD day, or None when it is no real day (2026-02-30)."""
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- init: a review from a report


def new_review(run_dir: Path, time_zone: str, prepared: dt.datetime) -> Review:
    """A review of the report in run_dir, pre-filled: one open action per finding (about the asset
    and objective it names, when it names one), one unrated row per objective the drill measured,
    the exercise's participants and the report's signers. Owner, due and the ratings are left
    empty for people to fill: drill does not guess who will fix what by when."""
    if _zone_problems_of(time_zone):
        raise UsageError(
            f"--time-zone {time_zone!r} is not an IANA time zone", hint="e.g. Europe/Berlin, UTC"
        )
    data = read_report_file(run_dir)
    report = parse_report(data, str(run_dir / REPORT_FILE))  # the digest below is of these bytes
    assets = sorted((a.id for a in report.assets), key=len, reverse=True)  # longest id first
    return Review(
        run_id=report.run_id,
        report_id=report.report_id,
        report_sha256=sha256_hex(data),
        playbook=report.playbook.name,
        quarter=report.playbook.quarter,
        time_zone=time_zone,
        prepared_utc=utc_iso(prepared),
        participants=_participants(run_dir, report),
        objectives=tuple(
            ObjectiveRating(a.id, str(o.objective))
            for a in report.assets
            for o in a.objectives
            if o.state in ("met", "missed")
        ),
        actions=tuple(
            _action_for(f"A-{n:03d}", finding, assets) for n, finding in enumerate(report.findings, start=1)
        ),
    )


def _zone_problems_of(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return True
    return False


_SIGNER_ROLES = {PREPARER: "prepared and signed the report", COUNTERSIGNER: "countersigned the report"}


def _participants(run_dir: Path, report: Report) -> tuple[ReviewParticipant, ...]:
    """The exercise's participants (playbook metadata), then each principal who signed the report."""
    people = [ReviewParticipant(p.name, p.role) for p in report.participants]
    named = {p.name for p in people}
    for so in sign_offs_in(run_dir, report):
        if so.principal not in named:
            people.append(ReviewParticipant(so.principal, _SIGNER_ROLES.get(so.role, so.role)))
            named.add(so.principal)
    return tuple(people)


def _action_for(action_id: str, finding: Finding, assets: list[str]) -> Action:
    asset, objective = finding_subject(finding.title, assets)
    return Action(
        id=action_id,
        finding=finding.id,
        title=finding.title,
        severity=str(finding.severity),
        asset=asset,
        objective=objective,
    )


def finding_subject(title: str, assets: list[str]) -> tuple[str, str]:
    """(asset, objective) a finding is about, from its title as drill/report/build.py words it:
    "orders-kv missed its RTO", "web: RPO not measured", "Probe p on web: ..."; ("", "") when
    it is about the drill as a whole (a failed step, a stop, a contact chain)."""
    for asset in assets:  # longest first: "kv" must not claim "orders-kv missed its RTO"
        if title.startswith((f"{asset} ", f"{asset}:")):
            rest = title[len(asset) :]
            if "RPO" in rest or "writes at risk" in rest:
                return asset, "rpo"
            if "RTO" in rest or "did not recover" in rest:
                return asset, "rto"
            return asset, ""
        if title.startswith("Probe ") and f" on {asset}: " in title:
            return asset, ""
    return "", ""


# ---------------------------------------------------------------- the report beside a review


@dataclass(frozen=True, slots=True)
class Beside:
    """The report.json in the review's folder: its bytes' SHA-256 and the report."""

    sha256: str
    report: Report


def report_beside(review_path: Path) -> Beside | None:
    """The report in the review's folder, or None when there is none (UsageError when it is there
    but is no drill report)."""
    folder = review_path.parent
    if not (folder / REPORT_FILE).exists():
        return None
    data = read_report_file(folder)
    return Beside(sha256_hex(data), parse_report(data, str(folder / REPORT_FILE)))


def require_bound_report(review_path: Path, review: Review) -> Beside:
    """The report beside the review, which must be the one the review is bound to."""
    beside = report_beside(review_path)
    if beside is None:
        raise UsageError(
            f"no {REPORT_FILE} beside {review_path}: the review's binding cannot be checked",
            hint="keep review.yaml in the run's evidence folder",
        )
    if beside.sha256 != review.report_sha256:
        raise UsageError(
            f"{review_path} is bound to report {review.report_sha256[:12]}..., but {REPORT_FILE} beside it "
            f"is {beside.sha256[:12]}...",
            hint="the report changed since the review was made, or the review belongs to another run",
        )
    return beside


def validate_file(path: Path) -> tuple[Review | None, list[Problem]]:
    """The review and every rule it breaks, against the report and risk files beside it; None and
    the schema problems when it does not match the schema (UsageError when it is no YAML)."""
    try:
        review = load_review(path)
    except ReviewSchemaInvalid as exc:
        return None, [_schema_problem(d) for d in exc.diagnostics]
    beside = report_beside(path)
    problems = check_review(review, beside.report if beside else None, beside.sha256 if beside else None)
    problems += _risk_file_problems(path, review)
    return review, problems


def _schema_problem(d: Diagnostic) -> Problem:
    where = d.path or "(top level)"
    return Problem(d.path, d.message.removeprefix(f"{where}: "), str(d.location))


def _risk_file_problems(path: Path, review: Review) -> list[Problem]:
    """A risk-acceptance closure names a file beside the review: it must be there, unchanged."""
    problems = []
    for i, action in enumerate(review.actions):
        closure = action.closure
        if not isinstance(closure, RiskAcceptance):
            continue
        where = f"actions[{i}].closure.file"
        try:
            digest = sha256_hex((path.parent / closure.file).read_bytes())
        except OSError:
            problems.append(Problem(where, f"{closure.file} is not beside the review"))
            continue
        if digest != closure.sha256:
            problems.append(
                Problem(where, f"{closure.file} changed since it was accepted (SHA-256 {digest[:12]}...)")
            )
        if not signature_file(path.parent / closure.file, closure.principal).exists():
            problems.append(Problem(where, f"{closure.file} has no signature by {closure.principal}"))
    return problems


# ---------------------------------------------------------------- signatures of a review


def signature_file(signed: Path, principal: str) -> Path:
    """FILE.<principal>.sig beside FILE: the report's naming scheme (report.json.<principal>.sig)."""
    return signed.with_name(f"{signed.name}.{check_principal(principal)}{SIG_SUFFIX}")


def signatures_of(signed: Path) -> list[Path]:
    """The FILE.<principal>.sig files beside FILE, sorted by name."""
    return sorted(signed.parent.glob(f"{glob.escape(signed.name)}.*{SIG_SUFFIX}"))


def principal_in(sig: Path, signed: Path) -> str:
    return sig.name.removeprefix(f"{signed.name}.").removesuffix(SIG_SUFFIX)


def sign_file(
    signed: Path, data: bytes, key_path: Path, principal: str, namespace: str, passphrase: Passphrase = None
) -> Path:
    """Sign `data` (FILE's bytes as read and checked by the caller) in `namespace`; writes
    FILE.<principal>.sig. The same key again is a no-op; another signature by the same principal
    is refused (each signer signs once)."""
    target = signature_file(signed, principal)
    key = load_private_key(key_path, passphrase)
    text = sign_bytes(data, key, namespace)
    if target.exists():
        old = target.read_text(encoding="ascii", errors="replace")
        if old == text:
            return target
        try:
            stale = not signature_matches(data, parse_signature(old))
        except SignatureMalformed:
            stale = True
        if not stale:
            raise UsageError(
                f"{target} already exists (a different signature by {principal!r} of these bytes)",
                hint="each signer signs once; delete the old file only if it is wrong",
            )
        # a signature of earlier bytes (the review was edited since): the new one replaces it
    write_text_atomically(target, text)
    return target


def check_signable(path: Path, data: bytes) -> Review:
    """The review in `data` if it may be signed: it validates and is bound to the report beside it."""
    review = parse_review(data, str(path))
    require_bound_report(path, review)
    _, problems = validate_file(path)
    if problems:
        raise UsageError(
            f"{path} does not validate ({len(problems)} problem(s)); refusing to sign it: {problems[0]}",
            hint=f"see `drill review validate {path}`",
        )
    return review


def check_review_countersignable(path: Path, data: bytes, principal: str) -> None:
    """Someone else signed these very bytes already (a countersignature confirms a signature)."""
    check_principal(principal)
    others = [s for s in signatures_of(path) if principal_in(s, path) != principal]
    matching = [s for s in others if _matches(data, s)]
    if not matching:
        stale = f" ({len(others)} signature(s) of an earlier version)" if others else ""
        raise UsageError(
            f"{path} has no signature by anyone else of its current bytes to countersign{stale}",
            hint=f"the lead signs first: `drill review sign {path} --sign-key KEY --signer NAME`",
        )


def _matches(data: bytes, sig: Path) -> bool:
    try:
        return signature_matches(data, parse_signature(sig.read_bytes()))
    except (OSError, SignatureMalformed):
        return False


SignatureStateName = Literal["verified", "does not match", "untrusted", "unreadable"]


@dataclass(frozen=True, slots=True)
class SignatureState:
    principal: str
    file: str
    state: SignatureStateName
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SignaturesSummary:
    """The signatures of one file: each one's state, and the file's in one phrase."""

    signatures: tuple[SignatureState, ...]

    @property
    def state(self) -> str:
        """signed and verified | unsigned | signature does not match | signed, not trusted."""
        states = {s.state for s in self.signatures}
        if not self.signatures:
            return "unsigned"
        if "does not match" in states or "unreadable" in states:
            return "signature does not match"
        if "verified" in states:
            return "signed and verified"
        return "signed, not trusted"


def signature_states(
    signed: Path, data: bytes, allowed_signers: Path, namespace: str, at: dt.datetime
) -> SignaturesSummary:
    """Each FILE.<principal>.sig judged as `ssh-keygen -Y verify -n NAMESPACE` would at `at`."""
    allowed = load_allowed_signers(allowed_signers)
    found = []
    for sig in signatures_of(signed):
        principal = principal_in(sig, signed)
        try:
            armored = sig.read_bytes()
            parsed = parse_signature(armored)
        except (OSError, SignatureMalformed) as exc:
            found.append(SignatureState(principal, sig.name, "unreadable", str(exc)))
            continue
        try:
            intact = signature_matches(data, parsed)
        except SignatureMalformed as exc:
            found.append(SignatureState(principal, sig.name, "unreadable", str(exc)))
            continue
        if not intact:
            found.append(
                SignatureState(principal, sig.name, "does not match", f"{signed.name} changed since")
            )
            continue
        try:
            verify_signature(data, armored, allowed, principal, namespace, at, source=sig.name)
        except (VerificationFailed, UsageError) as exc:
            found.append(SignatureState(principal, sig.name, "untrusted", exc.message))
            continue
        found.append(SignatureState(principal, sig.name, "verified"))
    return SignaturesSummary(tuple(found))


def verified_principal(
    signed: Path, data: bytes, principal: str, allowed_signers: Path, namespace: str, at: dt.datetime
) -> None:
    """VerificationFailed unless principal's signature of data verifies for namespace at `at`."""
    sig = signature_file(signed, principal)
    verify_signature(
        data,
        sig.read_bytes(),
        load_allowed_signers(allowed_signers),
        principal,
        namespace,
        at,
        source=sig.name,
    )


# ---------------------------------------------------------------- edits


class ClosureRefused(DrillError):
    """The evidence does not close the action: the answer is bad (exit 1), nothing was written."""

    exit_code = EXIT_FAILED


def find_action(review: Review, action_id: str) -> Action:
    for action in review.actions:
        if action.id == action_id:
            return action
    known = ", ".join(a.id for a in review.actions) or "none"
    raise UsageError(f"the review has no action {action_id!r} (actions: {known})")


def replace_action(review: Review, action: Action) -> Review:
    return replace(review, actions=tuple(action if a.id == action.id else a for a in review.actions))


def _open_for_closing(review: Review, action_id: str) -> Action:
    action = find_action(review, action_id)
    if action.status not in OPEN_STATUSES:
        raise UsageError(
            f"{action_id} is {action.status} already", hint="only an open or in-progress action is closed"
        )
    return action


def _changed(action: Action, status: ActionStatus, by: str, note: str, now: dt.datetime) -> Action:
    change = StatusChange(utc_iso(now), status, by, note)
    return replace(action, status=status, history=(*action.history, change))


def set_action(
    review: Review,
    action_id: str,
    *,
    status: ActionStatus | None,
    owner: str | None,
    due: str | None,
    ticket: str | None,
    by: str,
    now: dt.datetime,
) -> Review:
    """The non-closing edits: status open / in-progress, owner, due, ticket. A status change is
    recorded in the action's history; done and risk-accepted are reached only through evidence."""
    action = find_action(review, action_id)
    if due is not None and due and parse_day(due) is None:
        raise UsageError(f"--due {due!r} is not a real day (YYYY-MM-DD)")
    if status is not None and status not in OPEN_STATUSES:
        raise UsageError(
            f"--status {status} is set only by evidence",
            hint="`drill review close` (a retest) or `drill review accept` (a signed risk acceptance)",
        )
    if status is not None and status != action.status:
        if action.status not in OPEN_STATUSES:
            raise UsageError(f"{action_id} is {action.status} (closed by evidence); its status stays")
        action = _changed(action, status, by, "", now)
    action = replace(
        action,
        owner=action.owner if owner is None else owner,
        due=action.due if due is None else due,
        ticket=action.ticket if ticket is None else ticket,
    )
    return replace_action(review, action)


@dataclass(frozen=True, slots=True)
class RetestJudgement:
    """One folder of the retest run, judged: the record re-read now, and why it does not close."""

    folder: str
    record: RunRecord
    refusal: str  # "" when it closes the action


def close_by_retest(
    review_path: Path,
    review: Review,
    action_id: str,
    run_id: str,
    index: Path,
    allowed_signers: Path,
    *,
    by: str,
    now: dt.datetime,
    revoked: Path | None = None,
) -> tuple[Review, RetestJudgement]:
    """The review with the action done, closed by the retest run: ClosureRefused (nothing written)
    unless that run is in the history, verifies now, is a drill of the same playbook started
    after the reviewed run, and its report shows the action's objective met."""
    action = _open_for_closing(review, action_id)
    reviewed = require_bound_report(review_path, review).report
    with History.open(index, create=False) as history:
        candidates = [r for r in history.records(run_id=run_id) if r.run_id == run_id]
    if not candidates:
        raise ClosureRefused(f"run {run_id} is not in the history index {index}; nothing was written")
    judged = [
        _judge_retest(Path(c.folder), run_id, review, reviewed, action, allowed_signers, revoked)
        for c in candidates
    ]
    good = next((j for j in judged if not j.refusal), None)
    if good is None:
        reasons = "; ".join(f"{j.folder}: {j.refusal}" for j in judged)
        raise ClosureRefused(f"run {run_id} does not close {action_id}: {reasons}; nothing was written")
    note = f"retest {run_id}: {_met_text(action)}"
    closed = replace(
        _changed(action, "done", by, note, now),
        closure=Retest(run_id, good.record.report_sha256, utc_iso(now)),
    )
    return replace_action(review, closed), good


def _judge_retest(
    folder: Path,
    run_id: str,
    review: Review,
    reviewed: Report,
    action: Action,
    allowed_signers: Path,
    revoked: Path | None,
) -> RetestJudgement:
    record = read_record(folder, allowed_signers, revoked)  # verified again now, not as indexed
    return RetestJudgement(str(folder), record, _refusal(record, run_id, review, reviewed, action))


def _refusal(record: RunRecord, run_id: str, review: Review, reviewed: Report, action: Action) -> str:
    if record.status != VERIFIED:
        return f"does not verify now ({record.status}: {record.problem})"
    if record.run_id != run_id:
        return f"holds run {record.run_id} now, not {run_id}"
    if record.mode != "drill":
        return f"is a {record.mode} test, not a drill"
    if record.playbook != review.playbook:
        return f"is a drill of playbook {record.playbook!r}, not {review.playbook!r}"
    if not _started_after(record.started_utc, reviewed.run.started_utc):
        return f"started {record.started_utc or 'never'}, not after the reviewed run ({reviewed.run.started_utc})"
    return _objective_refusal(record, action)


def _started_after(started: str, reviewed_started: str | None) -> bool:
    if not started or not reviewed_started:
        return False
    try:
        return parse_utc(started) > parse_utc(reviewed_started)
    except ValueError:
        return False


def _objective_refusal(record: RunRecord, action: Action) -> str:
    if not action.asset:
        return "" if record.verdict == "pass" else f"the drill's verdict is {record.verdict}, not pass"
    asset = next((a for a in record.assets if a.asset == action.asset), None)
    if asset is None:
        return f"has no asset {action.asset}"
    if not action.objective:
        return "" if asset.verdict == "pass" else f"{action.asset}'s verdict is {asset.verdict}, not pass"
    state = asset.rto_state if action.objective == "rto" else asset.rpo_state
    if state != "met":
        return f"{action.asset}'s {action.objective.upper()} is {state or 'not an objective there'}, not met"
    return ""


def _met_text(action: Action) -> str:
    if not action.asset:
        return "the drill passed"
    if not action.objective:
        return f"{action.asset} passed"
    return f"{action.asset} {action.objective.upper()} met"


def risk_file_name(action_id: str) -> str:
    return f"risk-{action_id}.yaml"


def risk_document(review: Review, action: Action, reason: str, principal: str, now: dt.datetime) -> str:
    """What a risk owner signs: the action, the reason, the report it is about, when (UTC)."""
    data = {
        "kind": "risk-acceptance",
        "accepted": f"the risk of not doing {action.id} ({action.title})",
        "action": {
            "id": action.id,
            "finding": action.finding,
            "title": action.title,
            "severity": action.severity,
            "asset": action.asset,
            "objective": action.objective,
        },
        "reason": reason,
        "run_id": review.run_id,
        "playbook": review.playbook,
        "quarter": review.quarter,
        "report_sha256": review.report_sha256,
        "accepted_by": principal,
        "accepted_utc": utc_iso(now),
    }
    header = (
        "# A signed risk acceptance (drill review accept): the risk owner accepts not doing this\n"
        f"# corrective action. Signature: {risk_file_name(action.id)}.{principal}{SIG_SUFFIX}, "
        f"namespace {RISK_NAMESPACE}.\n"
    )
    return header + yaml.dump(data, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, width=100)


def accept_risk(
    review_path: Path,
    review: Review,
    action_id: str,
    reason: str,
    key_path: Path,
    principal: str,
    allowed_signers: Path,
    *,
    now: dt.datetime,
    passphrase: Passphrase = None,
) -> tuple[Review, Path]:
    """Write and sign risk-<ACTION_ID>.yaml, verify the signature against allowed_signers for the
    risk-acceptance namespace, and return the review with the action risk-accepted. A principal
    the trust file does not allow is refused (ClosureRefused) and the files are removed."""
    action = _open_for_closing(review, action_id)
    if not reason.strip():
        raise UsageError("--reason is empty: a risk acceptance says why the risk is accepted")
    check_principal(principal)
    require_bound_report(review_path, review)
    load_allowed_signers(allowed_signers)  # a trust file that cannot be used is refused before writing
    target = review_path.parent / risk_file_name(action_id)
    if target.exists():
        raise UsageError(
            f"{target} exists already", hint="it belongs to an earlier acceptance; move it away first"
        )
    text = risk_document(review, action, reason, principal, now)
    data = text.encode("utf-8")
    write_text_atomically(target, text)
    sig = signature_file(target, principal)
    try:
        sign_file(target, data, key_path, principal, RISK_NAMESPACE, passphrase)
        verified_principal(target, data, principal, allowed_signers, RISK_NAMESPACE, now)
    except BaseException as exc:
        target.unlink(missing_ok=True)
        sig.unlink(missing_ok=True)
        if isinstance(exc, VerificationFailed):
            raise ClosureRefused(
                f"{principal} may not accept this risk: {exc.message}; nothing was written",
                hint=f'the auditor\'s allowed_signers must list {principal} with namespaces="{RISK_NAMESPACE}"',
            ) from None
        raise
    closure = RiskAcceptance(target.name, sha256_hex(data), principal, reason)
    accepted = replace(_changed(action, "risk-accepted", principal, reason, now), closure=closure)
    return replace_action(review, accepted), target


# ---------------------------------------------------------------- status across the history


@dataclass(frozen=True, slots=True)
class OpenAction:
    action: Action
    overdue: bool


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    """The review beside one indexed report: its signatures and its actions still open."""

    folder: str
    review_file: str
    run_id: str
    playbook: str
    quarter: str
    signatures: SignaturesSummary | None  # None when the review cannot be read
    problem: str  # why the review cannot be read ("" when it can)
    as_of: str  # the day overdue is judged on (YYYY-MM-DD, in the review's time zone)
    open_actions: tuple[OpenAction, ...]

    @property
    def overdue(self) -> int:
        return sum(1 for a in self.open_actions if a.overdue)


def review_status(
    index: Path, allowed_signers: Path, *, as_of: dt.date | None, now: dt.datetime
) -> list[ReviewStatus]:
    """Every review.yaml beside an indexed report (each folder once, oldest run first)."""
    load_allowed_signers(allowed_signers)
    with History.open(index, create=False) as history:
        records = history.records()
    seen: set[str] = set()
    found = []
    for record in records:
        if record.folder in seen:
            continue
        seen.add(record.folder)
        path = Path(record.folder) / REVIEW_FILE
        if path.is_file():
            found.append(_status_of(path, record, allowed_signers, as_of, now))
    return found


def _status_of(
    path: Path, record: RunRecord, allowed_signers: Path, as_of: dt.date | None, now: dt.datetime
) -> ReviewStatus:
    try:
        data = path.read_bytes()
        review = parse_review(data, str(path))
    except (OSError, UsageError) as exc:
        problem = str(exc).splitlines()[0] if isinstance(exc, UsageError) else str(exc)
        return ReviewStatus(
            str(record.folder),
            str(path),
            record.run_id,
            record.playbook,
            record.quarter,
            None,
            problem,
            "",
            (),
        )
    day = as_of or _today_in(review.time_zone, now)
    open_actions = [
        OpenAction(a, bool(a.due) and (parse_day(a.due) or dt.date.max) < day)
        for a in review.actions
        if a.status in OPEN_STATUSES
    ]
    open_actions.sort(key=lambda o: (not o.overdue, o.action.due or "9999-99-99", o.action.id))
    return ReviewStatus(
        str(record.folder),
        str(path),
        review.run_id,
        review.playbook,
        review.quarter,
        signature_states(path, data, allowed_signers, REVIEW_NAMESPACE, now),
        "",
        day.isoformat(),
        tuple(open_actions),
    )


def _today_in(zone: str, now: dt.datetime) -> dt.date:
    try:
        return now.astimezone(ZoneInfo(zone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return now.astimezone(dt.UTC).date()
