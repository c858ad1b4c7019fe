"""Real servers from the distribution's packages, for integration drills and probe tests.

Every server listens on 127.0.0.1 on a free high port, keeps its data under a temp dir and is
stopped by PID. Nothing here touches system services. Used by tests/integration/conftest.py and
tests/probes/conftest.py; plain synchronous code because fixtures set up before the loop runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from drill.clock import monotonic_ns

REQUIRE_ENV = "DRILL_REQUIRE_INTEGRATION"
T = TypeVar("T")


class Unavailable(Exception):
    """A server binary is not installed here (the fixture skips, or fails under DRILL_REQUIRE_INTEGRATION=1)."""


def free_port() -> int:
    """A port the kernel just handed out for port 0 (servers that need a number get this one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(what: str, check: Callable[[], T | None], timeout_s: float = 20.0, every_s: float = 0.02) -> T:
    """Poll check until it returns something truthy; raise naming what never happened."""
    deadline = monotonic_ns() + int(timeout_s * 1e9)
    last_error: Exception | None = None
    while monotonic_ns() < deadline:
        try:
            result = check()
        except Exception as exc:  # the server may still be starting
            last_error = exc
            result = None
        if result:
            return result
        time.sleep(every_s)
    raise TimeoutError(f"{what} did not happen within {timeout_s} s (last error: {last_error})")


def find_binary(name: str, *candidates: str) -> str:
    """The path of a server binary, or Unavailable with the package to install."""
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise Unavailable(
        f"{name} is not installed (apt-get install redis-server redis-sentinel postgresql haproxy)"
    )


@dataclass
class Proc:
    """A server process we started; stopped by its PID only."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(timeout=5)

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""


def spawn(name: str, argv: list[str], workdir: Path, *, user: str | None = None) -> Proc:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        # Switching user in the child itself (not through runuser, which stays as a parent
        # process) keeps the PID we hold the server's own, so signals reach the server.
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    return Proc(name=name, popen=popen, log=log)


# ----------------------------------------------------------------------------------- Redis


def _redis_call(port: int, *args: str, timeout_s: float = 0.5) -> str:
    """One RESP command over a raw socket (no client library, so fixtures never depend on one)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(payload.encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if _resp_complete(data):
                break
    return data.decode(errors="replace")


def _resp_complete(data: bytes) -> bool:
    try:
        _, end = _resp_parse(data, 0)
    except (IndexError, ValueError):
        return False
    return end == len(data)


def _resp_parse(data: bytes, at: int) -> tuple[object, int]:
    line_end = data.index(b"\r\n", at)
    kind, body = data[at : at + 1], data[at + 1 : line_end]
    nxt = line_end + 2
    if kind in (b"+", b"-", b":"):
        return body.decode(), nxt
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None, nxt
        if len(data) < nxt + size + 2:
            raise IndexError
        return data[nxt : nxt + size].decode(errors="replace"), nxt + size + 2
    if kind == b"*":
        items = []
        for _ in range(max(int(body), 0)):
            item, nxt = _resp_parse(data, nxt)
            items.append(item)
        return items, nxt
    raise ValueError(f"unexpected RESP type {kind!r}")


def redis_command(port: int, *args: str) -> object:
    """Send one command and return the parsed RESP answer."""
    raw = _redis_call(port, *args).encode()
    value, _ = _resp_parse(raw, 0)
    return value


@dataclass
class RedisSentinelCluster:
    """A master, a replica and three sentinels (quorum 2, down-after 1000 ms)."""

    workdir: Path
    master_port: int
    replica_port: int
    sentinel_ports: list[int]
    name: str = "drillmaster"
    procs: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def start(cls, down_after_ms: int = 1000) -> RedisSentinelCluster:
        server = find_binary("redis-server")
        sentinel = find_binary("redis-sentinel")
        workdir = Path(tempfile.mkdtemp(prefix="drill-redis-"))
        cluster = cls(workdir, free_port(), free_port(), [free_port() for _ in range(3)])
        try:
            cluster._start(server, sentinel, down_after_ms)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _server_argv(self, binary: str, port: int, role: str) -> list[str]:
        data = self.workdir / role
        data.mkdir()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
        argv += ["--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"]
        argv += ["--repl-diskless-sync-delay", "0"]  # the default waits 5 s before a full sync
        if role == "replica":
            argv += ["--replicaof", "127.0.0.1", str(self.master_port)]
        return argv

    def _start(self, server: str, sentinel: str, down_after_ms: int) -> None:
        self.procs["master"] = spawn(
            "master", self._server_argv(server, self.master_port, "master"), self.workdir
        )
        wait_until("redis master listening", lambda: port_open(self.master_port))
        self.procs["replica"] = spawn(
            "replica", self._server_argv(server, self.replica_port, "replica"), self.workdir
        )
        wait_until("redis replica in sync", self._replica_in_sync)
        # Pre-seeding ids, peers and the replica spares the 2 s hello rounds of discovery.
        ids = [f"{i + 1:040x}" for i in range(len(self.sentinel_ports))]
        for i, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel{i}.conf"
            peers = "".join(
                f"sentinel known-sentinel {self.name} 127.0.0.1 {other} {ids[j]}\n"
                for j, other in enumerate(self.sentinel_ports)
                if j != i
            )
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\nprotected-mode no\n"
                f"sentinel myid {ids[i]}\n"
                f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {self.name} {down_after_ms}\n"
                f"sentinel failover-timeout {self.name} 5000\n"
                f"sentinel parallel-syncs {self.name} 1\n"
                f"sentinel known-replica {self.name} 127.0.0.1 {self.replica_port}\n" + peers
            )
            self.procs[f"sentinel{i}"] = spawn(f"sentinel{i}", [sentinel, str(conf)], self.workdir)
        wait_until("sentinels know each other and the replica", self._sentinels_ready)

    def _replica_in_sync(self) -> bool:
        info = str(redis_command(self.replica_port, "INFO", "replication"))
        return "master_link_status:up" in info

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            others = redis_command(port, "SENTINEL", "sentinels", self.name)
            replicas = redis_command(port, "SENTINEL", "replicas", self.name)
            if not isinstance(others, list) or len(others) < 2 or not replicas:
                return False
            if "disconnected" in str(others):
                return False
        return True

    def master_addr(self, sentinel_index: int = 0) -> tuple[str, int] | None:
        answer = redis_command(
            self.sentinel_ports[sentinel_index], "SENTINEL", "get-master-addr-by-name", self.name
        )
        if isinstance(answer, list) and len(answer) == 2:
            return str(answer[0]), int(str(answer[1]))
        return None

    def sentinels(self) -> list[dict[str, object]]:
        """The probe parameter `sentinels`."""
        return [{"host": "127.0.0.1", "port": p} for p in self.sentinel_ports]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------------------ PostgreSQL


def postgres_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise Unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


def _postgres_user() -> str | None:
    """PostgreSQL refuses root: run it as `postgres` (created if missing) when we are root."""
    if os.geteuid() != 0:
        return None
    if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True
        )
    return "postgres"


@dataclass
class PostgresPair:
    """A primary and a streaming standby (pg_basebackup), asynchronous or synchronous."""

    workdir: Path
    bindir: Path
    user: str | None
    primary_port: int
    standby_port: int
    synchronous: bool
    procs: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def start(cls, *, synchronous: bool = False) -> PostgresPair:
        bindir = postgres_bindir()
        user = _postgres_user()
        workdir = Path(tempfile.mkdtemp(prefix="drill-pg-"))
        pair = cls(workdir, bindir, user, free_port(), free_port(), synchronous)
        if user:
            shutil.chown(workdir, user=user)
        try:
            pair._start()
        except BaseException:
            pair.stop()
            raise
        return pair

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, cwd=self.workdir, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')[-1500:]}")

    def datadir(self, role: str) -> Path:
        return self.workdir / role

    def _configure(self, role: str, port: int) -> None:
        with (self.datadir(role) / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.datadir(role)}'\n"
                "fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 200\n"
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nwal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 100ms\n"
            )

    def _start_server(self, role: str) -> None:
        self.procs[role] = spawn(
            role, [str(self.bindir / "postgres"), "-D", str(self.datadir(role))], self.workdir, user=self.user
        )

    def _start(self) -> None:
        self._run("initdb", "-D", str(self.datadir("primary")), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self._configure("primary", self.primary_port)
        self._start_server("primary")
        wait_until("primary accepts connections", lambda: self.sql(self.primary_port, "SELECT 1") == "1")
        if self.synchronous:
            # ALTER SYSTEM writes postgresql.auto.conf, which pg_basebackup copies: the standby
            # inherits the setting (NOTES' gotcha) and ALTER SYSTEM RESET clears it after promotion.
            self.sql(self.primary_port, "ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
            self.sql(self.primary_port, "SELECT pg_reload_conf()")
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(self.datadir("standby")), "-R", "-X", "stream", "-c", "fast",
                  "-d", "application_name=standby1")  # fmt: skip
        self._configure("standby", self.standby_port)
        self._start_server("standby")
        want = "sync" if self.synchronous else "async"
        wait_until(
            "standby streaming",
            lambda: self.sql(self.primary_port, "SELECT sync_state FROM pg_stat_replication") == want,
        )

    def sql(self, port: int, query: str, timeout_s: float = 5.0) -> str:
        """Run one statement with psql and return its unaligned output."""
        cmd = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
               "-XAtqc", query]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode(errors="replace").strip())
        return done.stdout.decode().strip()

    def dsn(self, *, both: bool = True) -> str:
        """libpq URI; with both=True it names primary then standby and asks for the writable one."""
        if not both:
            return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres?connect_timeout=2"
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}/postgres"
            "?target_session_attrs=read-write&connect_timeout=2"
        )

    def postmaster_pid(self, role: str) -> int:
        return int((self.datadir(role) / "postmaster.pid").read_text().split()[0])

    def stop_primary_immediately(self) -> None:
        """SIGQUIT the primary's postmaster: PostgreSQL's immediate shutdown (no checkpoint)."""
        os.kill(self.procs["primary"].pid, signal.SIGQUIT)

    def promote_standby_argv(self) -> list[str]:
        """The command a playbook's action runs to promote the standby (waits for completion)."""
        argv = [str(self.bindir / "pg_ctl"), "promote", "-w", "-D", str(self.datadir("standby"))]
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def pg_ctl_wrapper(self) -> Path:
        """An executable that runs pg_ctl as the PostgreSQL user (pg_ctl refuses root), for playbook actions."""
        path = self.workdir / "pg_ctl"
        prefix = f"runuser -u {self.user} -- " if self.user else ""
        path.write_text(f'#!/bin/sh\nexec {prefix}{self.bindir / "pg_ctl"} "$@"\n')
        path.chmod(0o755)
        return path

    def promote_standby(self) -> None:
        self._run("pg_ctl", "promote", "-w", "-D", str(self.datadir("standby")))

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.kill(signal.SIGQUIT)  # immediate shutdown: fast, and we throw the data away
                try:
                    proc.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill(signal.SIGKILL)
                    proc.popen.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


# --------------------------------------------------------------------------------- HAProxy

_BACKEND = """
import http.server, sys
name = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@dataclass
class HAProxyPair:
    """HAProxy in front of two HTTP backends (the second `backup`) with 100 ms health checks."""

    workdir: Path
    front_port: int
    primary_port: int
    backup_port: int
    check_ms: int
    procs: dict[str, Proc] = field(default_factory=dict)

    @classmethod
    def start(cls, check_ms: int = 100) -> HAProxyPair:
        binary = find_binary("haproxy", "/usr/sbin/haproxy")
        workdir = Path(tempfile.mkdtemp(prefix="drill-haproxy-"))
        pair = cls(workdir, free_port(), free_port(), free_port(), check_ms)
        try:
            pair._start(binary)
        except BaseException:
            pair.stop()
            raise
        return pair

    def _start(self, binary: str) -> None:
        script = self.workdir / "backend.py"
        script.write_text(_BACKEND)
        for name, port in (("primary", self.primary_port), ("backup", self.backup_port)):
            self.procs[name] = spawn(name, [sys.executable, str(script), str(port), name], self.workdir)
            wait_until(f"{name} backend listening", lambda port=port: port_open(port))  # type: ignore[misc]
        conf = self.workdir / "haproxy.cfg"
        conf.write_text(
            "global\n  maxconn 256\n"
            "defaults\n  mode http\n  timeout connect 500ms\n  timeout client 5s\n  timeout server 5s\n"
            "  retries 0\n"  # a refused connection answers 503 at once instead of stalling the client
            f"frontend fe\n  bind 127.0.0.1:{self.front_port}\n  default_backend be\n"
            "backend be\n  option httpchk GET /health\n"
            f"  default-server inter {self.check_ms}ms fastinter {self.check_ms}ms downinter {self.check_ms}ms"
            " fall 2 rise 2\n"
            f"  server primary 127.0.0.1:{self.primary_port} check\n"
            f"  server backup 127.0.0.1:{self.backup_port} check backup\n"
        )
        self.procs["haproxy"] = spawn("haproxy", [binary, "-db", "-f", str(conf)], self.workdir)
        wait_until("haproxy serves the primary", lambda: self.get() == "primary")

    def get(self, path: str = "/health", timeout_s: float = 0.5) -> str | None:
        """The body the frontend serves (None on any failure)."""
        try:
            with socket.create_connection(("127.0.0.1", self.front_port), timeout=timeout_s) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: drill\r\n\r\n".encode())
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode() if head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200") else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}/health"

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(factory: Callable[[], T], stop: Callable[[T], None]) -> Iterator[T]:
    """Start with factory, always stop."""
    thing = factory()
    try:
        yield thing
    finally:
        stop(thing)


def start_or_skip(factory: Callable[[], T]) -> T:
    """Start servers; when a binary is missing skip the test, or fail under DRILL_REQUIRE_INTEGRATION=1."""
    import pytest  # only tests call this

    try:
        return factory()
    except Unavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{exc}; {REQUIRE_ENV}=1 forbids skipping")
        pytest.skip(str(exc))
