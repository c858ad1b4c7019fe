"""Shared fixtures: real servers on 127.0.0.1 port 0, stopped by the test that started them."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.servers import HAProxyPair, PostgresPair, RedisSentinelCluster, start_or_skip


def drill_run_argv(playbook: Path, runs: Path, *extra: str, yes: bool = True) -> list[str]:
    """`drill run PLAYBOOK` as a script types it, in a subprocess of this interpreter, JSON logs;
    yes=False leaves out --yes (the confirmation before harm is what is tested)."""
    return [
        sys.executable,
        "-m",
        "drill",
        "run",
        str(playbook),
        "--runs-dir",
        str(runs),
        "--log-format",
        "json",
        *(["--yes"] if yes else []),  # as a script runs it: confirmed up front
        *extra,
    ]


def run_files(runs: Path, name: str) -> list[Path]:
    """runs/<run-id>/NAME of every run, without the runs/latest symlink's second copy."""
    return sorted(p for p in runs.glob(f"*/{name}") if not p.parent.is_symlink())


def require_binary(name: str) -> str:
    """Path of a server binary; skip (or fail under DRILL_REQUIRE_INTEGRATION=1) when it is absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it, or see .ci/run)"
        if os.environ.get("DRILL_REQUIRE_INTEGRATION") == "1":
            pytest.fail(message + "; DRILL_REQUIRE_INTEGRATION=1 forbids skipping")
        pytest.skip(message)
    return path


class SwitchableHandler(BaseHTTPRequestHandler):
    """Answers every request with the server's current status; records each request's path."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._answer()

    def _answer(self) -> None:
        server: SwitchableServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append(self.path)
            server.calls.append((self.command, self.path))
            status = server.statuses.pop(0) if server.statuses else server.status
            delay_s = server.delay_s
        if delay_s:
            time.sleep(delay_s)  # the simulated slow service, in this request's own thread
        body = b"ok\n" if status < 400 else b"failing\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SwitchableServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SwitchableHandler)
        self.lock = threading.Lock()
        self.status = 200
        self.delay_s = 0.0  # how long each answer takes (a slow service)
        self.statuses: list[int] = []  # answered first, one per request
        self.requests: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


def serving(server: SwitchableServer) -> Iterator[SwitchableServer]:
    """Serve in a thread until the test ends; its loop is polled every 50 ms, so shutting it
    down takes 50 ms, not the default 0.5 s."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[SwitchableServer]:
    yield from serving(SwitchableServer())


# Real database and proxy servers (tests/integration and the redis/postgres probe tests).
@pytest.fixture
def redis_cluster() -> Iterator[RedisSentinelCluster]:
    cluster = start_or_skip(RedisSentinelCluster.start)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_async() -> Iterator[PostgresPair]:
    pair = start_or_skip(lambda: PostgresPair.start(synchronous=False))
    yield pair
    pair.stop()


@pytest.fixture
def pg_sync() -> Iterator[PostgresPair]:
    pair = start_or_skip(lambda: PostgresPair.start(synchronous=True))
    yield pair
    pair.stop()


@pytest.fixture
def haproxy() -> Iterator[HAProxyPair]:
    pair = start_or_skip(HAProxyPair.start)
    yield pair
    pair.stop()
