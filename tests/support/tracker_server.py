"""A stand-in for Jira and ServiceNow, for the tests of `drill review export` (drill/practice/tickets.py).

Both Jira and ServiceNow cannot run here (neither is packaged, both are licensed services), so
this stand-in speaks the subset drill uses, following the public API docs:

- Jira REST API v2: `POST /rest/api/2/issue` -> 201 {id, key, self}; `PUT /rest/api/2/issue/{key}`
  -> 204 with no body. A bad field is 400 with Jira's error shape {errorMessages: [...], errors:
  {field: message}}; an unknown issue 404 in the same shape; bad or missing credentials 401.
- ServiceNow Table API: `POST /api/now/table/{table}` -> 201 {result: {sys_id, number, ...}};
  `PATCH /api/now/table/{table}/{sys_id}` -> 200 {result: {...}}. Errors as ServiceNow answers
  them: {error: {message, detail}, status: "failure"} (401 "User Not Authenticated", 404 "No
  Record found", 400 "Invalid table").

Both accept `Authorization: Bearer TOKEN` or `Basic base64(user:password)` with the credentials the
test gave. Every request is recorded (method, path, headers, JSON body) for assertions, and the
server can be told to fail the next N requests with a 503 or by closing the connection without an
answer (after reading the request, as a proxy that lost its upstream does), for the retry rules of
tickets.py. It is a real HTTP/1.1 server on 127.0.0.1 (a free port), run in a thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Fault = Literal["503", "drop"]
JIRA_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
JIRA_ISSUE_TYPES = ("Task", "Bug", "Story")
SERVICENOW_TABLES = {"incident": "INC", "problem_task": "PTASK"}
_JIRA_UPDATABLE = {"summary", "description", "priority", "duedate", "labels"}
_ISSUE_PATH = re.compile(r"/rest/api/2/issue/([^/]+)")
_TABLE_PATH = re.compile(r"/api/now/table/([a-z_]+)")
_RECORD_PATH = re.compile(r"/api/now/table/([a-z_]+)/([^/]+)")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server received it; `answered` is the status sent, 0 for a dropped one."""

    method: str
    path: str
    headers: Mapping[str, str]  # names in lower case
    body: object  # the parsed JSON body, None when there was none or it was not JSON
    answered: int


@dataclass
class TrackerState:
    """What the stand-in holds: the credentials it accepts, its tickets and what it was sent."""

    token: str = ""
    user: str = ""
    password: str = ""
    projects: tuple[str, ...] = ("OPS",)
    requests: list[Recorded] = field(default_factory=list)
    issues: dict[str, dict[str, object]] = field(default_factory=dict)  # Jira key -> fields
    records: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)  # (table, sys_id)
    faults: list[Fault | None] = field(default_factory=list)  # per coming request; None: answer it
    lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: int = 0

    def fail_next(self, count: int, fault: Fault = "503", *, after: int = 0) -> None:
        """The `count` requests (any path) after the next `after` ones are answered 503, or dropped
        without an answer."""
        with self.lock:
            self.faults = [None] * after + [fault] * count

    def next_number(self) -> int:
        self._counter += 1
        return self._counter

    def authorised(self, header: str) -> bool:
        if self.token and header == f"Bearer {self.token}":
            return True
        if self.user and self.password:
            pair = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            return header == f"Basic {pair}"
        return False


class TrackerServer:
    """The running stand-in: `url` is its base URL (as --url takes it), `state` what it holds."""

    def __init__(self, state: TrackerState) -> None:
        self.state = state
        handler = type("BoundHandler", (_Handler,), {"state": state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="tracker-stand-in", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)

    def fail_next(self, count: int, fault: Fault = "503", *, after: int = 0) -> None:
        self.state.fail_next(count, fault, after=after)


@contextlib.contextmanager
def running_tracker(
    *, token: str = "", user: str = "", password: str = "", projects: tuple[str, ...] = ("OPS",)
) -> Iterator[TrackerServer]:
    """A stand-in listening on 127.0.0.1 (a free port) until the block ends."""
    server = TrackerServer(TrackerState(token=token, user=user, password=password, projects=projects))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the trackers serve (httpx reuses connections)
    state: TrackerState

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the recorded requests are what tests look at."""

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.state
        with state.lock:
            fault = state.faults.pop(0) if state.faults else None
            if fault == "drop":
                state.requests.append(Recorded(self.command, self.path, headers, body, 0))
            elif fault == "503":
                status, answer = 503, b"<html><body>503 Service Unavailable</body></html>"
                state.requests.append(Recorded(self.command, self.path, headers, body, status))
            else:
                status, payload = self._route(body, headers.get("authorization", ""))
                answer = json.dumps(payload).encode() if payload is not None else b""
                state.requests.append(Recorded(self.command, self.path, headers, body, status))
        if fault == "drop":
            self.close_connection = True  # read, never answered: the client sees the connection close
            return
        self.send_response(status)
        if answer:
            is_json = fault is None
            self.send_header("Content-Type", "application/json;charset=UTF-8" if is_json else "text/html")
            self.send_header("Content-Length", str(len(answer)))
        elif status != 204:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if answer:
            self.wfile.write(answer)

    # ------------------------------------------------------------ routing (under the state's lock)

    def _route(self, body: object, authorization: str) -> tuple[int, object]:
        path = self.path.split("?", 1)[0]
        jira = path.startswith("/rest/api/2/")
        tracked = jira or path.startswith("/api/now/table/")
        if tracked and not self.state.authorised(authorization):
            if jira:
                return _jira_unauthorised()
            return _servicenow_error(401, "User Not Authenticated", "Required to provide Auth information")
        if self.command == "POST" and path == "/rest/api/2/issue":
            return self._jira_create(body)
        if self.command == "PUT" and (match := _ISSUE_PATH.fullmatch(path)):
            return self._jira_update(match.group(1), body)
        if self.command == "POST" and (match := _TABLE_PATH.fullmatch(path)):
            return self._servicenow_create(match.group(1), body)
        if self.command == "PATCH" and (match := _RECORD_PATH.fullmatch(path)):
            return self._servicenow_update(match.group(1), match.group(2), body)
        if jira:
            return 404, {"errorMessages": ["null for uri: " + self.path], "errors": {}}
        return 404, None

    def _base(self) -> str:
        return f"http://{self.headers.get('Host', '127.0.0.1')}"

    def _jira_create(self, body: object) -> tuple[int, object]:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["Can not deserialize instance of issue: no fields"], "errors": {}}
        errors: dict[str, str] = {}
        project = fields.get("project")
        key = project.get("key") if isinstance(project, dict) else None
        if key not in self.state.projects:
            errors["project"] = "valid project is required"
        issuetype = fields.get("issuetype")
        if not isinstance(issuetype, dict) or issuetype.get("name") not in JIRA_ISSUE_TYPES:
            errors["issuetype"] = "valid issue type is required"
        errors |= _jira_field_errors(fields, creating=True)
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        number = self.state.next_number()
        issue_key = f"{key}-{number}"
        issue_id = str(10000 + number)
        self.state.issues[issue_key] = dict(fields)
        return 201, {"id": issue_id, "key": issue_key, "self": f"{self._base()}/rest/api/2/issue/{issue_id}"}

    def _jira_update(self, key: str, body: object) -> tuple[int, object]:
        if key not in self.state.issues:
            return 404, {"errorMessages": ["Issue Does Not Exist"], "errors": {}}
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return 400, {"errorMessages": ["Can not deserialize instance of issue: no fields"], "errors": {}}
        errors = {
            name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            for name in fields
            if name not in _JIRA_UPDATABLE
        }
        errors |= _jira_field_errors(fields, creating=False)
        if errors:
            return 400, {"errorMessages": [], "errors": errors}
        self.state.issues[key].update(fields)
        return 204, None

    def _servicenow_create(self, table: str, body: object) -> tuple[int, object]:
        prefix = SERVICENOW_TABLES.get(table)
        if prefix is None:
            return _servicenow_error(400, f"Invalid table {table}", None)
        if not isinstance(body, dict):
            return _servicenow_error(400, "Exception while reading request", "The payload is not valid JSON.")
        number = self.state.next_number()
        sys_id = f"{number:032x}"
        record: dict[str, object] = {
            **{k: v for k, v in body.items() if isinstance(v, str)},
            "sys_id": sys_id,
            "number": f"{prefix}{10000 + number:07d}",
        }
        self.state.records[(table, sys_id)] = record
        return 201, {"result": record}

    def _servicenow_update(self, table: str, sys_id: str, body: object) -> tuple[int, object]:
        if table not in SERVICENOW_TABLES:
            return _servicenow_error(400, f"Invalid table {table}", None)
        record = self.state.records.get((table, sys_id))
        if record is None:
            return _servicenow_error(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        if not isinstance(body, dict):
            return _servicenow_error(400, "Exception while reading request", "The payload is not valid JSON.")
        record.update({k: v for k, v in body.items() if isinstance(v, str)})
        return 200, {"result": record}


def _jira_field_errors(fields: Mapping[str, object], *, creating: bool) -> dict[str, str]:
    errors: dict[str, str] = {}
    summary = fields.get("summary")
    if (creating or "summary" in fields) and (not isinstance(summary, str) or not summary.strip()):
        errors["summary"] = "You must specify a summary of the issue."
    elif isinstance(summary, str) and (len(summary) > 255 or "\n" in summary):
        errors["summary"] = "The summary is invalid because it contains newline characters or is too long."
    if "priority" in fields:
        priority = fields["priority"]
        if not isinstance(priority, dict) or priority.get("name") not in JIRA_PRIORITIES:
            errors["priority"] = "Specify a valid priority."
    if "duedate" in fields:
        due = fields["duedate"]
        if not isinstance(due, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", due):
            errors["duedate"] = "Error parsing date string: " + str(due)
    return errors


def _jira_unauthorised() -> tuple[int, object]:
    return 401, {
        "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
        "errors": {},
    }


def _servicenow_error(status: int, message: str, detail: str | None) -> tuple[int, object]:
    return status, {"error": {"message": message, "detail": detail}, "status": "failure"}
