"""A real nats-server with JetStream on 127.0.0.1, and `drill agent` processes, for site tests.

Both are started as processes and stopped by PID; the broker keeps its stream store in the
test's folder, so a restart on the same port finds its streams again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import Proc, find_binary, free_port, port_open, spawn, wait_until


@dataclass
class NatsServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        binary = find_binary("nats-server", "/usr/sbin/nats-server")
        store = self.workdir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        argv = [binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(self.port)]
        self.proc = spawn("nats-server", argv, self.workdir)
        wait_until("nats-server listening", lambda: port_open(self.port) or None)
        return self

    def kill(self) -> None:
        """SIGKILL, and wait until the port is closed (a killed process lingers, see NOTES)."""
        assert self.proc is not None
        self.proc.kill(signal.SIGKILL)
        self.proc.popen.wait(timeout=10)
        wait_until("nats-server gone", lambda: (not port_open(self.port)) or None)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@dataclass
class AgentProc:
    site: str
    proc: Proc

    def kill(self) -> None:
        self.proc.kill(signal.SIGKILL)
        self.proc.popen.wait(timeout=10)

    def stop(self) -> None:
        self.proc.stop()

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")


def start_agent(broker: str, site: str, workdir: Path, env: Mapping[str, str] | None = None) -> AgentProc:
    """`drill agent --site SITE` in its own process, with extra environment variables."""
    argv = [
        sys.executable,
        "-m",
        "drill",
        "--log-format",
        "json",
        "agent",
        "--site",
        site,
        "--broker",
        broker,
    ]
    full_env = {**os.environ, **(env or {})}
    log = workdir / f"agent-{site}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=full_env, start_new_session=True
        )
    return AgentProc(site, Proc(f"agent-{site}", popen, log))
