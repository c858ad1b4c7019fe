"""Corrective actions as tickets where teams track work: Jira (REST API v2) or ServiceNow (Table API).

`plan_export` decides, without sending anything, one request per action: an action that is open
or in progress and has no ticket is created; an action that has a ticket of this tracker (of any
status: a closed action's ticket learns of its closure) is updated; anything else is left alone,
with the reason. `export_tickets` sends the plan in order and stops at the first failure; what was
done before it is in the outcome's review, so the caller stores those tickets before reporting the
failure (a second export then updates them instead of creating them again).

The ticket is stored in the action's `ticket` field as "KEY URL": `PAY-12
https://jira.example.com/browse/PAY-12`, `INC0010001
https://example.service-now.com/incident.do?sys_id=<sys_id>`. A Jira ticket may also be a bare key
typed by hand; a ServiceNow one needs its URL (the sys_id is how the Table API names a record).

The subset used:

- Jira: `POST /rest/api/2/issue` {fields: {project: {key}, summary, description, issuetype:
  {name: "Task"}, priority: {name}?, duedate?}} -> 201 {id, key, self}; `PUT
  /rest/api/2/issue/{key}` {fields: {summary, description, priority?, duedate?}} -> 204. Bearer
  token (Data Center personal access token) or basic auth (Cloud: e-mail and API token).
- ServiceNow: `POST /api/now/table/{table}` {short_description, description, urgency, impact,
  due_date?} -> 201 {result: {sys_id, number}}; `PATCH /api/now/table/{table}/{sys_id}` -> 200.
  Basic auth (or a bearer OAuth token).

The tracker's own workflow state is not driven: Jira moves an issue through its project's
transitions and ServiceNow's state models differ by table and need resolution fields, so the
review's status (and its closure) is the first line of the description instead.

Retries: an update (PUT, PATCH) is idempotent, the same fields set to the same values, so it is
tried up to three times on a transport failure or a 429/502/503/504 answer. A create (POST) is not:
a lost answer may hide a created ticket, so it is retried only when the connection could not be
made (nothing was sent); any other failure stops the export and says to look for the ticket first.

Credentials are redacted (drill/secrets.py) from every message this module returns or raises.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from datetime import time as day_time
from typing import Literal, NoReturn
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from drill.errors import EXIT_FAILED, DrillError, UsageError
from drill.practice.review_model import OPEN_STATUSES, Action, Retest, Review, RiskAcceptance
from drill.report.model import Finding, Report
from drill.secrets import Secrets, cut_end
from drill.version import __version__

System = Literal["jira", "servicenow"]
SYSTEMS: tuple[System, ...] = ("jira", "servicenow")
TABLES = ("incident", "problem_task")
Operation = Literal["create", "update"]

CONNECT_TIMEOUT_S = 10.0
TIMEOUT_S = 30.0  # reading, writing, waiting for a pooled connection
MAX_ANSWER_BYTES = 1024 * 1024
RETRY_WAITS_S = (1.0, 2.0)  # before the second and the third attempt (three attempts in all)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
JIRA_SUMMARY_MAX = 255
SERVICENOW_SHORT_MAX = 160

_JIRA_KEY = re.compile(r"[A-Z][A-Z0-9_]*-[1-9][0-9]*")
_SYS_ID = re.compile(r"[0-9a-f]{32}")
_JIRA_PRIORITY = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"}
# ServiceNow's default priority matrix: (urgency, impact) 1/1 -> P1 critical ... 3/3 -> P5 planning
_SERVICENOW_URGENCY_IMPACT = {
    "critical": ("1", "1"),
    "high": ("2", "1"),
    "medium": ("2", "2"),
    "low": ("3", "2"),
    "info": ("3", "3"),
}
_STATUS_TEXT = {
    "open": "open",
    "in-progress": "in progress",
    "done": "done",
    "risk-accepted": "risk accepted",
}


class TicketExportFailed(DrillError):
    """Raised (or returned in ExportOutcome.error) when the tracker refuses a request, answers
    something that is not the API's answer, or cannot be reached: the export could not be done
    (exit 1: the tracker's answer is bad; the review holds what was done before it)."""

    exit_code = EXIT_FAILED


@dataclass(frozen=True, slots=True)
class Tracker:
    """Where tickets go: the system, its base URL (no trailing slash) and where new ones go."""

    system: System
    base_url: str
    project: str = ""  # Jira: the project key new issues are created in
    table: str = "incident"  # ServiceNow: the table new records are created in
    priority: bool = True  # Jira: send a priority (a project whose screen lacks it refuses one)

    @property
    def name(self) -> str:
        return "Jira" if self.system == "jira" else "ServiceNow"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A bearer token, or a user name and password (sent as HTTP basic auth)."""

    token: str = ""
    user: str = ""
    password: str = ""

    def authorization(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def secrets(self) -> Secrets:
        """A redactor that knows these credentials (every encoded form, the basic-auth pair too)."""
        values = {v for v in (self.token, self.password) if v}
        pairs = {f"{self.user}:{self.password}"} if self.password else set()
        return Secrets(env={}, values=values, pairs=pairs)


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """One request of an export: what is sent, for which action."""

    action_id: str
    operation: Operation
    method: str
    url: str
    body: Mapping[str, object]
    key: str = ""  # the existing ticket's key (an update), "" for a create
    table: str = ""  # ServiceNow: the record's table

    def line(self) -> str:
        """The request in one line, as --dry-run prints it."""
        what = f"{self.operation} {self.key}" if self.key else self.operation
        return f"{self.action_id}: {what}: {self.method} {self.url}"


@dataclass(frozen=True, slots=True)
class Skipped:
    action_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExportPlan:
    requests: tuple[TicketRequest, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class TicketDone:
    action_id: str
    operation: Operation
    ticket: str  # what the action's `ticket` field now holds: "KEY URL"
    status_code: int


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """What an export did: `review` holds every ticket created or updated before `error` (if any)."""

    review: Review
    done: tuple[TicketDone, ...]
    error: TicketExportFailed | None
    changed: bool  # a ticket field differs from the exported review's: review.yaml is to be written


# ---------------------------------------------------------------- the tracker and the plan


def parse_tracker(
    system: str, url: str, *, project: str = "", table: str = "", priority: bool = True
) -> Tracker:
    """The tracker the options name; UsageError for a URL or a target that cannot work."""
    if system not in SYSTEMS:
        raise UsageError(f"--tracker {system}: use jira or servicenow")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise UsageError(f"--url {url}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"--url {url}: give the tracker's http(s) base URL, e.g. https://jira.example.com")
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            "--url must not hold credentials: pass them with --token-env, or --user-env and --password-env"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"--url {url}: give the base URL only, without ?query or #fragment")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if system == "jira":
        if table:
            raise UsageError("--table is for ServiceNow; Jira takes --project KEY")
        if not project:
            raise UsageError("--tracker jira needs --project KEY: the project new issues are created in")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", project):
            raise UsageError(
                f"--project {project}: a Jira project key is upper-case letters and digits, e.g. OPS"
            )
        return Tracker("jira", base, project=project, priority=priority)
    if project:
        raise UsageError("--project is for Jira; ServiceNow takes --table incident|problem_task")
    chosen = table or "incident"
    if chosen not in TABLES:
        raise UsageError(f"--table {chosen}: use incident or problem_task")
    return Tracker("servicenow", base, table=chosen)


def ticket_value(key: str, url: str) -> str:
    """What the `ticket` field holds: "KEY URL"."""
    return f"{key} {url}"


def jira_browse_url(tracker: Tracker, key: str) -> str:
    return f"{tracker.base_url}/browse/{key}"


def servicenow_record_url(tracker: Tracker, table: str, sys_id: str) -> str:
    return f"{tracker.base_url}/{table}.do?sys_id={sys_id}"


@dataclass(frozen=True, slots=True)
class _Existing:
    key: str  # Jira key, or ServiceNow number ("" when only the URL is known)
    sys_id: str = ""
    table: str = ""


def _existing(tracker: Tracker, ticket: str) -> _Existing | str:
    """The ticket of this tracker an action names, or why it is not one (a reason to skip it)."""
    tokens = ticket.split()
    urls = [t for t in tokens if "://" in t]
    keys = [t for t in tokens if "://" not in t]
    if len(urls) > 1 or len(keys) > 1:
        return f"ticket {ticket!r} is not 'KEY URL'"
    url = urls[0] if urls else ""
    key = keys[0] if keys else ""
    if tracker.system == "jira":
        if url:
            prefix = f"{tracker.base_url}/browse/"
            if not url.startswith(prefix):
                return f"ticket {url} is not an issue of {tracker.base_url}"
            from_url = url.removeprefix(prefix)
            if not _JIRA_KEY.fullmatch(from_url) or (key and key != from_url):
                return f"ticket {ticket!r} does not name one Jira issue"
            key = from_url
        if not _JIRA_KEY.fullmatch(key):
            return f"ticket {ticket!r} is not a Jira issue key (like OPS-12)"
        return _Existing(key)
    if not url:
        return (
            f"ticket {ticket!r} has no URL, and ServiceNow records are updated by their sys_id: "
            "write it as 'NUMBER URL' (the record's URL holds sys_id=...)"
        )
    if not url.startswith(tracker.base_url + "/"):
        return f"ticket {url} is not a record of {tracker.base_url}"
    parts = urlsplit(url)
    table = parts.path.removeprefix(urlsplit(tracker.base_url).path).removeprefix("/").removesuffix(".do")
    sys_ids = parse_qs(parts.query).get("sys_id", [])
    if table not in TABLES or len(sys_ids) != 1 or not _SYS_ID.fullmatch(sys_ids[0]):
        return f"ticket {url} is not an incident or problem_task record URL (TABLE.do?sys_id=...)"
    return _Existing(key, sys_id=sys_ids[0], table=table)


def plan_export(review: Review, report: Report | None, tracker: Tracker) -> ExportPlan:
    """One request per action that needs one (nothing is sent); the report, when given, adds each
    finding's title and detail to the ticket's description."""
    findings = {f.id: f for f in report.findings} if report is not None else {}
    requests: list[TicketRequest] = []
    skipped: list[Skipped] = []
    for action in review.actions:
        finding = findings.get(action.finding)
        if not action.ticket.strip():
            if action.status not in OPEN_STATUSES:
                skipped.append(
                    Skipped(action.id, f"{_STATUS_TEXT.get(action.status, action.status)}, no ticket")
                )
                continue
            requests.append(_create(review, action, finding, tracker))
            continue
        existing = _existing(tracker, action.ticket)
        if isinstance(existing, str):
            skipped.append(Skipped(action.id, existing + "; left alone"))
            continue
        requests.append(_update(review, action, finding, tracker, existing))
    return ExportPlan(tuple(requests), tuple(skipped))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summary(action: Action, limit: int) -> str:
    return cut_end(_one_line(f"{action.id}: {action.title}"), limit - 1)


def description(review: Review, action: Action, finding: Finding | None) -> str:
    """The ticket's description: the action as the review states it (plain text, one fact a line)."""
    quarter = f" ({review.quarter})" if review.quarter else ""
    lines = [
        f"Status in the after-action review: {_STATUS_TEXT.get(action.status, action.status)}",
        "",
        f"Corrective action {action.id} of the after-action review of the DR drill {review.playbook}{quarter}.",
    ]
    if action.finding:
        about = f": {_one_line(finding.title)}" if finding is not None else ""
        lines.append(f"Finding: {action.finding} ({action.severity}){about}")
        if finding is not None and finding.detail:
            lines.append(f"Detail: {_one_line(finding.detail)}")
    lines.append(f"Severity: {action.severity}")
    if action.asset:
        objective = f", objective {action.objective.upper()}" if action.objective else ""
        lines.append(f"Asset: {action.asset}{objective}")
    if action.root_cause:
        lines.append(f"Root cause: {_one_line(action.root_cause)}")
    lines.append(f"Owner: {action.owner or '(none yet)'}")
    if action.due:
        lines.append(f"Due: {action.due} (a day in {review.time_zone})")
    closure = action.closure
    if isinstance(closure, Retest):
        lines.append(
            f"Closed by a retest: run {closure.run_id}, report SHA-256 {closure.report_sha256}, "
            f"verified {closure.verified_utc}"
        )
    elif isinstance(closure, RiskAcceptance):
        lines.append(
            f"Closed by a risk acceptance signed by {closure.principal}: {_one_line(closure.reason)} "
            f"({closure.file}, SHA-256 {closure.sha256})"
        )
    lines += [
        f"Drill run: {review.run_id}; report {review.report_id}; report.json SHA-256 {review.report_sha256}",
        "",
        "Written by `drill review export` from review.yaml: change the action there; "
        "the next export rewrites this summary and description.",
    ]
    return "\n".join(lines)


def servicenow_due(day: str, zone: str) -> str:
    """The end of `day` (YYYY-MM-DD) in the review's time zone as ServiceNow's UTC date-time."""
    try:
        local = datetime.combine(date.fromisoformat(day), day_time(23, 59, 59), ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise UsageError(f"due date {day!r} in time zone {zone!r} cannot be read: {exc}") from None
    return local.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _jira_fields(
    review: Review, action: Action, finding: Finding | None, tracker: Tracker
) -> dict[str, object]:
    fields: dict[str, object] = {
        "summary": _summary(action, JIRA_SUMMARY_MAX),
        "description": description(review, action, finding),
    }
    if tracker.priority:
        fields["priority"] = {"name": _JIRA_PRIORITY.get(action.severity, "Medium")}
    if action.due:
        if not _is_day(action.due):
            _bad_due(action)
        fields["duedate"] = action.due
    return fields


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", text))


def _bad_due(action: Action) -> NoReturn:
    raise UsageError(f"{action.id}: due {action.due!r} is not a day (YYYY-MM-DD)")


def _servicenow_fields(review: Review, action: Action, finding: Finding | None) -> dict[str, object]:
    urgency, impact = _SERVICENOW_URGENCY_IMPACT.get(action.severity, ("2", "2"))
    fields: dict[str, object] = {
        "short_description": _summary(action, SERVICENOW_SHORT_MAX),
        "description": description(review, action, finding),
        "urgency": urgency,
        "impact": impact,
    }
    if action.due:
        if not _is_day(action.due):
            _bad_due(action)
        fields["due_date"] = servicenow_due(action.due, review.time_zone)
    return fields


def _create(review: Review, action: Action, finding: Finding | None, tracker: Tracker) -> TicketRequest:
    if tracker.system == "jira":
        fields = _jira_fields(review, action, finding, tracker)
        body: dict[str, object] = {
            "fields": {
                "project": {"key": tracker.project},
                "issuetype": {"name": "Task"},
                **fields,
            }
        }
        return TicketRequest(action.id, "create", "POST", f"{tracker.base_url}/rest/api/2/issue", body)
    url = f"{tracker.base_url}/api/now/table/{tracker.table}"
    body = _servicenow_fields(review, action, finding)
    return TicketRequest(action.id, "create", "POST", url, body, table=tracker.table)


def _update(
    review: Review, action: Action, finding: Finding | None, tracker: Tracker, existing: _Existing
) -> TicketRequest:
    if tracker.system == "jira":
        body: dict[str, object] = {"fields": _jira_fields(review, action, finding, tracker)}
        url = f"{tracker.base_url}/rest/api/2/issue/{existing.key}"
        return TicketRequest(action.id, "update", "PUT", url, body, key=existing.key)
    url = f"{tracker.base_url}/api/now/table/{existing.table}/{existing.sys_id}"
    body = _servicenow_fields(review, action, finding)
    key = existing.key or existing.sys_id
    return TicketRequest(action.id, "update", "PATCH", url, body, key=key, table=existing.table)


# ---------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    body: bytes
    location: str


def export_tickets(
    review: Review,
    plan: ExportPlan,
    tracker: Tracker,
    credentials: Credentials,
    *,
    on_attempt: Callable[[str], None] = lambda line: None,
    retry_waits_s: Sequence[float] = RETRY_WAITS_S,
    sleep: Callable[[float], None] = time.sleep,
) -> ExportOutcome:
    """Send the plan's requests in order, stopping at the first failure. `on_attempt` receives a
    redacted line for each retry (what failed, when the next attempt is)."""
    redactor = credentials.secrets()
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": f"drill/{__version__}",
        "Authorization": credentials.authorization(),
    }
    done: list[TicketDone] = []
    current = review
    timeout = httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    # trust_env: a tracker is reached like any web service (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE);
    # redirects are not followed: a moved API is an error to fix in --url, not a silent hop
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True, headers=headers) as client:
        for request in plan.requests:
            try:
                answer = _send(client, request, redactor, on_attempt, retry_waits_s, sleep)
                ticket = _ticket_of(tracker, request, answer, redactor)
            except TicketExportFailed as exc:
                return ExportOutcome(current, tuple(done), exc, current != review)
            current = _with_ticket(current, request.action_id, ticket)
            done.append(TicketDone(request.action_id, request.operation, ticket, answer.status))
    return ExportOutcome(current, tuple(done), None, current != review)


def _with_ticket(review: Review, action_id: str, ticket: str) -> Review:
    actions = tuple(replace(a, ticket=ticket) if a.id == action_id else a for a in review.actions)
    return replace(review, actions=actions)


def _send(
    client: httpx.Client,
    request: TicketRequest,
    redactor: Secrets,
    on_attempt: Callable[[str], None],
    waits: Sequence[float],
    sleep: Callable[[float], None],
) -> _Answer:
    idempotent = request.method in ("PUT", "PATCH")
    attempts = 1 + len(waits)
    content = json.dumps(request.body, ensure_ascii=False).encode("utf-8")
    for attempt in range(1, attempts + 1):
        last = attempt == attempts
        try:
            answer = _exchange(client, request, content)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: safe to retry
            why = f"cannot connect ({type(exc).__name__}: {exc})"
            if last:
                raise _failure(request, why, redactor) from None
        except httpx.TransportError as exc:
            why = f"no answer ({type(exc).__name__}: {exc})"
            if not idempotent:
                raise _failure(request, why, redactor, lost_create=True) from None
            if last:
                raise _failure(request, why, redactor) from None
        else:
            if not (idempotent and answer.status in RETRY_STATUSES) or last:
                return answer
            why = f"answered {answer.status} {answer.reason}"
        wait = waits[attempt - 1]
        on_attempt(
            redactor.redact_text(
                f"{request.action_id}: {request.method} {request.url}: {why}; "
                f"attempt {attempt + 1} of {attempts} in {wait:g} s"
            )
        )
        sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _exchange(client: httpx.Client, request: TicketRequest, content: bytes) -> _Answer:
    """One request; the answer's body read up to MAX_ANSWER_BYTES (a tracker that streams more
    is not believed: its first MiB is enough for any answer of the subset used)."""
    with client.stream(request.method, request.url, content=content) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                break
        return _Answer(
            response.status_code,
            response.reason_phrase,
            bytes(body[:MAX_ANSWER_BYTES]),
            response.headers.get("location", ""),
        )


def _failure(
    request: TicketRequest, why: str, redactor: Secrets, *, lost_create: bool = False
) -> TicketExportFailed:
    text = f"{request.action_id}: {request.method} {request.url}: {why}"
    if lost_create:
        text += _lost_create_hint(request)
    return TicketExportFailed(cut_end(redactor.redact_text(_one_line(text)), 2000))


def _lost_create_hint(request: TicketRequest) -> str:
    return (
        f"; the ticket may have been created: look for '{request.action_id}:' in the tracker "
        "and put its key in the action's ticket field before exporting again"
    )


def _refused(
    request: TicketRequest, answer: _Answer, tracker: Tracker, redactor: Secrets
) -> TicketExportFailed:
    message = _server_message(answer.body)
    text = f"{request.action_id}: {tracker.name} answered {answer.status} {answer.reason} to {request.method} {request.url}"
    if message:
        text += f": {message}"
    if answer.status in (301, 302, 303, 307, 308):
        text += f" (redirected to {answer.location or '?'}: give that base URL as --url)"
    elif answer.status == 401:
        text += " (the credentials were not accepted: check --token-env, or --user-env and --password-env)"
    elif answer.status == 403:
        text += " (the account may not do this: ask for create/edit permission)"
    elif answer.status == 404 and request.operation == "update":
        text += f" (no ticket {request.key}, or the account cannot see it)"
    elif answer.status >= 500 and request.operation == "create":  # a gateway may answer after the create
        text += _lost_create_hint(request)
    return TicketExportFailed(cut_end(redactor.redact_text(_one_line(text)), 2000))


def _server_message(body: bytes) -> str:
    """The error the tracker states (Jira's errorMessages and errors, ServiceNow's error message
    and detail), else the start of its answer; one line, at most 300 characters."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    parts: list[str] = []
    if isinstance(data, dict):
        messages = data.get("errorMessages")
        if isinstance(messages, list):
            parts += [str(m) for m in messages]
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        error = data.get("error")
        if isinstance(error, dict):
            parts += [str(error[k]) for k in ("message", "detail") if error.get(k)]
        elif isinstance(error, str):
            parts.append(error)
    if not parts:
        stripped = text.strip()
        if stripped.startswith("<"):
            return "(an HTML page)"
        parts = [stripped]
    line = "".join(ch if ch.isprintable() else " " for ch in _one_line("; ".join(parts)))
    return cut_end(line, 300)


def _json_of(answer: _Answer) -> Mapping[str, object] | None:
    try:
        data = json.loads(answer.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _ticket_of(tracker: Tracker, request: TicketRequest, answer: _Answer, redactor: Secrets) -> str:
    """The ticket value to store after a successful answer; TicketExportFailed otherwise."""
    if tracker.system == "jira":
        if request.operation == "update":
            if answer.status not in (200, 204):
                raise _refused(request, answer, tracker, redactor)
            return ticket_value(request.key, jira_browse_url(tracker, request.key))
        if answer.status not in (200, 201):
            raise _refused(request, answer, tracker, redactor)
        data = _json_of(answer)
        key = data.get("key") if data else None
        if not isinstance(key, str) or not _JIRA_KEY.fullmatch(key):
            raise _unexpected(request, answer, "no issue key in it", redactor)
        return ticket_value(key, jira_browse_url(tracker, key))
    expected = (200,) if request.operation == "update" else (200, 201)
    if answer.status not in expected:
        raise _refused(request, answer, tracker, redactor)
    data = _json_of(answer)
    result = data.get("result") if data else None
    if not isinstance(result, dict):
        raise _unexpected(request, answer, "no result object in it", redactor)
    sys_id, number = result.get("sys_id"), result.get("number")
    if not isinstance(sys_id, str) or not _SYS_ID.fullmatch(sys_id):
        raise _unexpected(request, answer, "no sys_id in its result", redactor)
    if not isinstance(number, str) or not number or any(c.isspace() for c in number):
        number = request.key if request.key and request.key != sys_id else sys_id
    return ticket_value(number, servicenow_record_url(tracker, request.table, sys_id))


def _unexpected(request: TicketRequest, answer: _Answer, what: str, redactor: Secrets) -> TicketExportFailed:
    lost = request.operation == "create"
    return _failure(
        request,
        f"answered {answer.status} {answer.reason} but not as the API does ({what})",
        redactor,
        lost_create=lost,
    )
