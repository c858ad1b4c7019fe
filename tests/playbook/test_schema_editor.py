"""The bundled schema in a real editor backend: yaml-language-server 1.25 over stdio LSP.

The playbook names its schema the way the starter does (`# yaml-language-server:
$schema=drill.schema.json`, the file `drill schema` wrote beside it). The server comes from
DRILL_YAML_LANGUAGE_SERVER (the path of its `bin/yaml-language-server`), or is installed with npm
into a temporary folder; without node, npm or the registry the tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from drill.durations import DURATION_HINT
from drill.playbook.schema import bundled_schema

ROOT = Path(__file__).resolve().parents[2]
VERSION = "1.25"
MODELINE = "# yaml-language-server: $schema=drill.schema.json\n"
WAIT_S = 20.0  # for any one answer of the server


def _server_path(tmp: Path) -> Path:
    given = os.environ.get("DRILL_YAML_LANGUAGE_SERVER")
    if given:
        return Path(given)
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run yaml-language-server")
    try:
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--fetch-retries=1",  # offline: give up in seconds, not minutes
                "--fetch-timeout=30000",
                "--prefix",
                str(tmp),
                f"yaml-language-server@{VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not install yaml-language-server@{VERSION} with npm: {exc}")
    return tmp / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"


class LanguageServer:
    """A minimal LSP client: requests with a deadline, diagnostics collected as they arrive."""

    def __init__(self, server: Path, folder: Path) -> None:
        self.proc = subprocess.Popen(
            ["node", str(server), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 0
        assert self.proc.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self.reader.start()
        root = folder.as_uri()
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root,
                "workspaceFolders": [{"uri": root, "name": "drill"}],
                "capabilities": {
                    "textDocument": {"hover": {"contentFormat": ["markdown"]}},
                    "workspace": {"configuration": True},
                },
            },
        )
        self.notify("initialized", {})
        settings = {"yaml": {"validate": True, "hover": True, "schemaStore": {"enable": False}}}
        self.notify("workspace/didChangeConfiguration", {"settings": settings})

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = 0
            while (line := stream.readline().decode()) not in ("\r\n", ""):
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line:
                return
            self.inbox.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        self._send({"id": self.next_id, "method": method, "params": params})
        return self._until(lambda m: m.get("id") == self.next_id and "method" not in m, method)["result"]

    def _until(self, done: Any, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if done(message):
                return message
            self._handle(message)
        raise AssertionError(f"yaml-language-server gave no {what} within {WAIT_S} s")

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("method") == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif "id" in message and "method" in message:  # the server asks: its settings, or anything else
            items = message.get("params", {}).get("items", [])
            answer = [{"validate": True, "hover": True}] * len(items) if items else None
            self._send({"id": message["id"], "result": answer})

    def open(self, path: Path) -> list[dict[str, Any]]:
        """Open a document; its diagnostics once the server has checked it against the schema."""
        uri = path.as_uri()
        self.diagnostics.pop(uri, None)
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text(encoding="utf-8")}
        self.notify("textDocument/didOpen", {"textDocument": document})
        self._until(lambda m: self._diagnosed(m, uri), f"diagnostics for {path.name}")
        return self.diagnostics[uri]

    def _diagnosed(self, message: dict[str, Any], uri: str) -> bool:
        self._handle(message)
        return uri in self.diagnostics

    def hover(self, path: Path, line: int, character: int) -> str:
        """The hover's Markdown at a position (underscores unescaped)."""
        params = {"textDocument": {"uri": path.as_uri()}, "position": {"line": line, "character": character}}
        result = self.request("textDocument/hover", params)
        assert result is not None, f"no hover at {line}:{character}"
        value: str = result["contents"]["value"]
        return value.replace("\\_", "_")  # the Markdown escape of max_latency's underscore

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)  # the pipe reached its end with the process
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LanguageServer, Path]]:
    server = _server_path(tmp_path_factory.mktemp("yaml-language-server"))
    folder = tmp_path_factory.mktemp("workspace")
    (folder / "drill.schema.json").write_text(json.dumps(bundled_schema(), indent=2), encoding="utf-8")
    client = LanguageServer(server, folder)
    try:
        yield client, folder
    finally:
        client.close()


BAD = """\
apiVersion: drill/v1
kind: Playbook
metadata: {name: editor-check, owner: dr-team@example.com}
tiers:
  - name: tier-0
    rto: 30 minutes
assets:
  - id: api
    tier: tier-0
    probes:
      - name: health
        http: {url: "http://127.0.0.1:8080/healthz", max_latency: 1m30}
scenario:
  - {name: declare, mark: disaster}
"""


def where(path: Path, text: str) -> tuple[int, int]:
    """(line, character), 0-based as LSP counts, of the first occurrence of text in the file."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if text in line:
            return number, line.index(text)
    raise AssertionError(f"{text!r} is not in {path.name}")


@pytest.mark.timeout(300)
def test_a_duration_hover_shows_its_title_the_words_and_one_example(
    editor: tuple[LanguageServer, Path],
) -> None:
    client, folder = editor
    path = folder / "bad.yaml"
    path.write_text(MODELINE + BAD, encoding="utf-8")
    diagnostics = client.open(path)
    starts = sorted((d["range"]["start"]["line"], d["range"]["start"]["character"]) for d in diagnostics)
    assert starts == [where(path, "30 minutes"), where(path, "1m30")], diagnostics
    for diagnostic in diagnostics:  # the words (patternErrorMessage), never the regex
        assert DURATION_HINT in diagnostic["message"] and "^(" not in diagnostic["message"], diagnostic
    rto = client.hover(path, *where(path, "rto"))
    assert rto.startswith("#### tier: rto\n"), rto
    assert DURATION_HINT in rto
    assert rto.count("Example:") == 1 and "15m" in rto
    latency = client.hover(path, *where(path, "max_latency"))
    assert latency.startswith("#### http probe: max_latency\n") and DURATION_HINT in latency, latency
    assert latency.count("Example:") == 1


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "playbooks").glob("*.yaml")))
def test_shipped_playbooks_have_no_diagnostic_in_the_editor(
    editor: tuple[LanguageServer, Path], name: str
) -> None:
    client, folder = editor
    path = folder / name
    path.write_text(MODELINE + (ROOT / "playbooks" / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert client.open(path) == []
    assert client.hover(path, *where(path, "apiVersion")).startswith("#### playbook: apiVersion\n")  # checked
