"""End to end: every secret of a playbook, in every field that takes one, reaches no output in any form.

One playbook puts `${env:...}` and `${file:...}` secrets into an http probe (userinfo, query, a
Bearer header), a kv probe URL, a command probe that prints its secret across the 200-character
tail cut, an http action (query and header), a command action that prints its secret to stderr
across the 400-character cut and fails, a webhook contact (a path segment) and a PagerDuty contact
(the routing_key), and a rollback action. The targets are real servers on 127.0.0.1: one ECHOES
every request (method, path and query, every header, the body) back in a 500 answer, one speaks a
BROKEN protocol, and one port REFUSES. `drill run`, `drill report JOURNAL` and `drill run --dry-run`
run as subprocesses; every file they leave and everything they print is then searched for every
form of every secret: raw, URL-encoded, JSON- and repr-escaped, HTML-escaped, base64 (of the
value and of the `user:password` pair), and every prefix and suffix of at least 8 characters.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, quote_plus, unquote

import httpx
import pytest

from drill.secrets import REDACTED
from tests.conftest import drill_run_argv

MIN_CUT = 8  # the shortest prefix or suffix of a secret that counts as a leak here
USER = "drill-svc"

# Every secret holds a quote, a backslash, a colon and a space (HTTP header values must be ASCII,
# so those two secrets lack the non-ASCII letter; an action URL refuses a space, so those two
# hold a `+` instead). Each starts with its own tag, so a hit
# names its field, and none is a substring of another.
SECRETS: dict[str, str] = {
    "PROBE_PASSWORD": "Pw0probe'pa\\ss:wörd 7Kq2zX",  # http probe userinfo (env)
    "PROBE_TOKEN": "Tk1probe'to\\ken:välue 9Rb4",  # http probe ?token= (file)
    "PROBE_BEARER": "Br2probe'be\\arer:tok en 3Jd8",  # http probe Authorization header (env, ASCII)
    "KV_SEGMENT": "Kv3kvseg'pa\\th:sëgment 5Wn1",  # kv probe URL path segment (file)
    "CMD_PROBE": "Cp4cmdprobe'ar\\gv:sécret 2Lm6",  # command probe argv, printed (env)
    "ACTION_TOKEN": "At5action'qu\\ery:tøken+8Hs3",  # http action ?key= (env; action URLs refuse spaces)
    "ACTION_HEADER": "Ah6action'he\\ader:key val 4Pc7",  # http action X-Api-Key header (file, ASCII)
    "CMD_ACTION": "Ca7cmdaction'st\\derr:lëak 6Gt9",  # command action argv, to stderr (file)
    "HOOK_SEGMENT": "Hk8webhook'pa\\th:sègment 1Vf5",  # webhook URL path segment (env)
    "PD_KEY": "Pd9pagerduty'ro\\uting:kéy 0Qy2",  # pagerduty routing_key (file)
    "ROLLBACK_TOKEN": "Rb0rollback'qu\\ery:tōken+7Nx4",  # rollback http action ?token= (env; no space, as above)
}
FILE_SECRETS = {"PROBE_TOKEN", "KV_SEGMENT", "ACTION_HEADER", "CMD_ACTION", "PD_KEY"}
ENV_PREFIX = "DRILL_E2E_"


def ref(name: str) -> str:
    """The playbook reference of a secret: ${file:NAME.txt} or ${env:DRILL_E2E_NAME}."""
    return f"${{file:{name.lower()}.txt}}" if name in FILE_SECRETS else f"${{env:{ENV_PREFIX}{name}}}"


def yaml_str(text: str) -> str:
    """A YAML single-quoted scalar (only the quote is special in it)."""
    return "'" + text.replace("'", "''") + "'"


# --- servers ------------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def text(self) -> str:
        """Everything the request carried, percent-decoded too, as UTF-8 text."""
        lines = [f"{self.method} {self.path}", unquote(self.path)]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(self.body.decode("utf-8", "replace"))
        return "\n".join(lines)


class EchoHandler(BaseHTTPRequestHandler):
    """Answers 500 with the whole request in the body: what a chatty, failing target does."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # http.server decodes header bytes as latin-1: undo it to see the UTF-8 the client sent
        headers = [(k, v.encode("latin-1").decode("utf-8", "replace")) for k, v in self.headers.items()]
        server: EchoServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.received.append(Received(self.command, self.path, headers, body))
        echo = f"{self.command} {self.path}\n" + "".join(f"{k}: {v}\n" for k, v in headers)
        answer = echo.encode() + b"\n" + body
        self.send_response(500)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.lock = threading.Lock()
        self.received: list[Received] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def transcript(self) -> str:
        with self.lock:
            return "\n".join(r.text() for r in self.received)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def broken_server() -> Iterator[tuple[int, list[bytes]]]:
    """A port that accepts TCP, reads what the client sends first (kept), writes garbage that is
    no protocol at all, and closes."""
    received: list[bytes] = []
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    conn.settimeout(0.1)
                    chunks = []
                    with contextlib.suppress(OSError):  # until the client pauses: headers and body
                        while chunk := conn.recv(65536):
                            chunks.append(chunk)
                    received.append(b"".join(chunks))
                    conn.sendall(b"\x00\xffGARBAGE \x1b[31m not a protocol \xfe\r\n\r\n\x00")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], received
    stop.set()
    thread.join(timeout=5)
    listener.close()


@pytest.fixture(scope="module")
def refused_port() -> int:
    """A port nothing listens on (bound, never listened, closed): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the playbook -------------------------------------------------------------------------------


def playbook_text(echo: str, broken: int, refused: int) -> str:
    py = yaml_str(sys.executable)
    # the secret line is longer than the 200-character tail a probe reason keeps: the cut lands in it
    probe_code = yaml_str("import sys; print('x' * 150); print(sys.argv[1] + 'x' * 190); sys.exit(1)")
    # stderr longer than the 400 characters an action reason keeps: the cut lands in the secret
    action_code = yaml_str(
        "import sys; print('out ' + sys.argv[1]); "
        "sys.stderr.write('y' * 150 + '\\n' + sys.argv[1] + 'y' * 390 + '\\n'); sys.exit(1)"
    )
    r = ref
    return f"""\
apiVersion: drill/v1
kind: Playbook
metadata: {{name: secret-leaks-e2e, owner: tests}}
settings: {{interval: 200ms, timeout: 500ms, fall: 1, rise: 1, page_on: declare}}
tiers: [{{name: tier-0, rto: 30s, waive: {{rpo: "no canary in this test"}}}}]
contacts:
  chains:
    oncall:
      respond_within: 1s
      contacts:
        - name: hook
          via: webhook
          url: "{echo}/hooks/{r("HOOK_SEGMENT")}/page"
          ack_within: 300ms
        - name: pd
          via: pagerduty
          url: "http://127.0.0.1:{broken}/v2/enqueue"
          routing_key: "{r("PD_KEY")}"
          ack_within: 300ms
assets:
  - id: web
    tier: tier-0
    contact_chain: oncall
    probes:
      - name: echo-basic
        http:
          url: "http://{USER}:{r("PROBE_PASSWORD")}@127.0.0.1:{echo.rsplit(":", 1)[1]}/health?token={r("PROBE_TOKEN")}"
      - name: echo-bearer  # apart: credentials in the URL win over an Authorization header
        http:
          url: "{echo}/ready?token={r("PROBE_TOKEN")}"
          headers: {{Authorization: "Bearer {r("PROBE_BEARER")}"}}
      - name: broken
        http:
          url: "http://{USER}:{r("PROBE_PASSWORD")}@127.0.0.1:{broken}/health?token={r("PROBE_TOKEN")}"
          headers: {{Authorization: "Bearer {r("PROBE_BEARER")}"}}
      - name: refused
        http:
          url: "http://{USER}:{r("PROBE_PASSWORD")}@127.0.0.1:{refused}/health?token={r("PROBE_TOKEN")}"
  - id: store
    tier: tier-0
    probes:
      - name: kv-broken
        kv: {{url: "http://127.0.0.1:{broken}/{r("KV_SEGMENT")}"}}
      - name: kv-refused
        kv: {{url: "http://127.0.0.1:{refused}/{r("KV_SEGMENT")}"}}
  - id: job
    tier: tier-0
    probes:
      - name: cmd
        command: {{argv: [{py}, "-c", {probe_code}, "{r("CMD_PROBE")}"]}}
scenario:
  - {{name: declare, mark: disaster}}
  - {{name: settle, pause: 1s}}
  - name: fail over
    parallel:
      - name: call the injector
        action:
          http:
            url: "{echo}/failover?key={r("ACTION_TOKEN")}"
            method: POST
            headers: {{X-Api-Key: "{r("ACTION_HEADER")}"}}
            body: "token {r("ACTION_TOKEN")}"
        timeout: 3s
      - name: run the script
        action: {{command: {{argv: [{py}, "-c", {action_code}, "{r("CMD_ACTION")}"]}}}}
        timeout: 5s
rollback:
  - name: fail back
    action:
      http:
        url: "http://127.0.0.1:{refused}/failback?token={r("ROLLBACK_TOKEN")}"
        headers: {{X-Api-Key: "{r("ACTION_HEADER")}"}}
    timeout: 2s
"""


# --- the forms searched for ---------------------------------------------------------------------


def _b64(raw: bytes) -> dict[str, str]:
    out = {}
    for label, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        text = encode(raw).decode("ascii")
        out[label] = text
        out[label + " unpadded"] = text.rstrip("=")
    return out


def forms_of(name: str, secret: str) -> dict[str, str]:
    """label -> text: every form of one secret this test looks for."""
    forms = {
        "raw": secret,
        "quote(safe='')": quote(secret, safe=""),
        "quote(safe='/')": quote(secret, safe="/"),
        "quote_plus": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "json-escaped (utf-8)": json.dumps(secret, ensure_ascii=False)[1:-1],
        "repr-escaped": repr(secret)[1:-1],
        "html-escaped": html.escape(secret),
        **_b64(secret.encode()),
        # what httpx puts on the wire, so what an echoing target quotes: only some characters encoded
        "as httpx sends it in a path": httpx.URL("http://h/" + secret).raw_path.decode("ascii")[1:],
        "as httpx sends it in a query": httpx.URL("http://h/?t=" + secret).raw_path.decode("ascii")[4:],
    }
    for where in ("path", "query"):
        sent = forms[f"as httpx sends it in a {where}"]
        forms[f"as httpx sends it in a {where}, json-escaped"] = json.dumps(sent)[1:-1]
        forms[f"as httpx sends it in a {where}, html-escaped"] = html.escape(sent)
    if name == "PROBE_PASSWORD":
        forms |= {f"user:secret {k}": v for k, v in _b64(f"{USER}:{secret}".encode()).items()}
    for n in range(MIN_CUT, len(secret)):
        forms[f"prefix[:{n}]"] = secret[:n]
        forms[f"suffix[-{n}:]"] = secret[-n:]
    return forms


FORMS = {name: forms_of(name, s) for name, s in SECRETS.items()}
_EVERY_FORM = sorted({f for forms in FORMS.values() for f in forms.values()}, key=len, reverse=True)


def masked(text: str) -> str:
    """text with every form of every secret masked: a failure message must not leak either."""
    for form in _EVERY_FORM:
        text = text.replace(form, "<SECRET>")
    return text


def hits(name: str, texts: dict[str, str]) -> list[str]:
    """Where a form of secret `name` occurs: the output, the form and a masked context. Of the cut
    forms only the longest prefix and the longest suffix found in an output are named."""
    found = []
    for where, text in texts.items():
        longest: dict[str, tuple[int, str, int]] = {}
        for label, form in FORMS[name].items():
            at = text.find(form)
            if at < 0:
                continue
            cut = label.split("[")[0] if label.startswith(("prefix[", "suffix[")) else ""
            if cut:
                if len(form) > longest.get(cut, (0, "", 0))[0]:
                    longest[cut] = (len(form), label, at)
                continue
            found.append(
                f"{where}: {label} at {at}: ...{masked(text[max(0, at - 60) : at + len(form) + 60])}..."
            )
        for size, label, at in longest.values():
            context = masked(text[max(0, at - 60) : at + size + 60])
            found.append(f"{where}: {label} at {at}: ...{context}...")
    return found


# --- one run of drill, searched once per secret -------------------------------------------------


@dataclass
class Evidence:
    texts: dict[str, str] = field(default_factory=dict)  # output name -> its text
    seen: str = ""  # everything the echo server received
    broken_seen: str = ""  # what the broken server read first from each connection
    events: int = 0
    elapsed: float = 0.0

    def add(self, where: str, data: bytes) -> None:
        self.texts[where] = data.decode("utf-8", "replace")


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, env=env, timeout=timeout)


def _tail(proc: subprocess.CompletedProcess[bytes]) -> str:
    return masked(proc.stderr.decode("utf-8", "replace")[-3000:])


@pytest.fixture(scope="module")
def evidence(
    tmp_path_factory: pytest.TempPathFactory,
    echo_server: EchoServer,
    broken_server: tuple[int, list[bytes]],
    refused_port: int,
) -> Evidence:
    """`drill run`, `drill report JOURNAL`, `drill run --dry-run`: every file and every output."""
    tmp = tmp_path_factory.mktemp("leaks")
    folder = tmp / "pb"
    folder.mkdir()
    for name in FILE_SECRETS:
        (folder / f"{name.lower()}.txt").write_text(SECRETS[name] + "\n", encoding="utf-8")
    playbook = folder / "playbook.yaml"
    broken_port, broken_received = broken_server
    playbook.write_text(playbook_text(echo_server.url, broken_port, refused_port), encoding="utf-8")
    env = {**os.environ, **{ENV_PREFIX + n: s for n, s in SECRETS.items() if n not in FILE_SECRETS}}
    env.pop("DRILL_SECRET_DIRS", None)
    runs, dry_runs = tmp / "runs", tmp / "dry-runs"
    out = Evidence()
    started = time.monotonic()

    run = _run(
        drill_run_argv(playbook, runs, "--rollback", "always", "--allow-degraded", "--ack-wait", "1s"),
        env,
        60,
    )
    out.add("run stdout", run.stdout)
    out.add("run stderr", run.stderr)
    assert run.returncode in (1, 3), _tail(run)  # the assets are down and the actions fail: a failed drill

    journals = sorted(runs.rglob("journal.jsonl"))
    assert len(journals) == 1, sorted(str(p) for p in runs.rglob("*"))
    journal = journals[0]
    out.events = len([line for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()])

    report = _run([sys.executable, "-m", "drill", "report", str(journal)], env, 30)
    out.add("report stdout", report.stdout)
    out.add("report stderr", report.stderr)
    assert report.returncode == 0, _tail(report)

    dry = _run(drill_run_argv(playbook, dry_runs, "--dry-run"), env, 30)
    out.add("dry-run stdout", dry.stdout)
    out.add("dry-run stderr", dry.stderr)
    assert dry.returncode in (0, 3), _tail(dry)  # 3: not ready (the targets fail), as meant
    out.elapsed = time.monotonic() - started

    files = [p for root in (runs, dry_runs) if root.exists() for p in sorted(root.rglob("*")) if p.is_file()]
    out.texts |= {str(p.relative_to(tmp)): p.read_bytes().decode("utf-8", "replace") for p in files}
    names = {p.name for p in files}
    expected = {
        "journal.jsonl",
        "results.json",
        "report.json",
        "report.html",
        "report.md",
        "report.junit.xml",
    }
    assert expected <= names, sorted(names)
    out.seen = echo_server.transcript()
    out.broken_seen = b"".join(broken_received).decode("utf-8", "replace")
    return out


# A leak this test found, now fixed: a webhook's failure reason quoted the target's 500 body, which
# echoed the request path as httpx sent it (' \ : raw, space and non-ASCII percent-encoded).
LEAKS: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=LEAKS[n])) if n in LEAKS else n
        for n in SECRETS
    ],
)
def test_no_form_of_the_secret_reaches_any_output(name: str, evidence: Evidence) -> None:
    found = hits(name, evidence.texts)
    assert not found, f"{name} leaked ({len(found)} hit(s)):\n" + "\n".join(found[:30])


def test_the_secrets_were_used_and_redacted(evidence: Evidence) -> None:
    """Controls: the run made evidence, the targets received the secrets, redaction had work to do."""
    assert evidence.events > 5
    assert evidence.elapsed < 40, f"the three commands took {evidence.elapsed:.1f}s"
    seen = evidence.seen
    for name in ("PROBE_TOKEN", "PROBE_BEARER", "ACTION_TOKEN", "ACTION_HEADER", "HOOK_SEGMENT"):
        assert SECRETS[name] in seen, f"the echo server never received {name}"
    basic = base64.b64encode(f"{USER}:{SECRETS['PROBE_PASSWORD']}".encode()).decode()
    assert f"Authorization: Basic {basic}" in seen, (
        "the echo server never received the probe's Basic credentials"
    )
    broken = evidence.broken_seen
    pd_key = SECRETS["PD_KEY"]
    assert json.dumps(pd_key)[1:-1] in broken or json.dumps(pd_key, ensure_ascii=False)[1:-1] in broken, (
        "the broken server never received the PagerDuty routing_key"
    )
    assert FORMS["KV_SEGMENT"]["as httpx sends it in a path"] in broken, "the kv probe never sent its URL"
    assert {
        "run stdout",
        "run stderr",
        "report stdout",
        "report stderr",
        "dry-run stdout",
        "dry-run stderr",
    } <= set(evidence.texts)
    assert REDACTED in "".join(evidence.texts.values()), "nothing was redacted: the test saw no secret"
