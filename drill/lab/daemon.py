"""The lab as a background process: `drill lab up | down | status`, found through its state file.

`start_lab` checks the ports, starts the serving command detached (its own session, stdin from
/dev/null, stdout and stderr appended to `lab.log`), and returns only once the lab answers its
health URL with the PID it was started as; the serving process (`serve`) writes `state.json`
once every server listens and removes it when it stops. `stop_lab` stops it by that PID:
SIGTERM, then SIGKILL after a bound. Both files live in one folder, `.drill-lab/` of the current
folder by default, so a tour run in one folder finds its lab again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drill.clock import monotonic_ns, utc_iso, wall_utc_now
from drill.errors import EXIT_ABORTED, DrillError, UsageError
from drill.lab.lab import DEFAULT_PORT_BASE, PORTS, Lab, LabConfig, LabLog

DEFAULT_DIR = Path(".drill-lab")
STATE_FILE = "state.json"
LOG_FILE = "lab.log"
READY_TIMEOUT_S = 10.0  # starting takes well under a second; this bounds a wedged start
TERM_TIMEOUT_S = 5.0  # after SIGTERM, before SIGKILL
KILL_TIMEOUT_S = 2.0  # after SIGKILL, before giving up
_POLL_S = 0.05
_SERVE_MARK = b"\0lab\0serve\0"  # in /proc/PID/cmdline of a serving lab: a reused PID is not ours


class LabPortInUse(DrillError):
    """Raised when a port of the lab's layout is already taken on 127.0.0.1."""

    exit_code = EXIT_ABORTED


class LabNotReady(DrillError):
    """Raised when the background lab exits or does not answer within its start bound."""

    exit_code = EXIT_ABORTED


@dataclass(frozen=True, slots=True)
class LabState:
    """What state.json records of a running lab."""

    pid: int
    port_base: int
    started_utc: str
    urls: dict[str, str]  # server name -> base URL
    health: str  # GET this: 200 with {"lab": "drill", "pid": PID} while the lab runs
    log: str  # absolute path of the lab's log file

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        return cls(
            pid=int(data["pid"]),
            port_base=int(data["port_base"]),
            started_utc=str(data["started_utc"]),
            urls={str(k): str(v) for k, v in dict(data["urls"]).items()},
            health=str(data["health"]),
            log=str(data["log"]),
        )


@dataclass(frozen=True, slots=True)
class StopResult:
    """What `stop_lab` did, in one line for people."""

    stopped: bool
    message: str


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def read_state(directory: Path) -> LabState | None:
    """The recorded lab, or None when there is no state file; an unreadable one is bad input."""
    path = state_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return LabState.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path} is not a lab state file ({type(exc).__name__}: {exc})",
            hint=f"if no lab runs, remove {path}",
        ) from None


def write_state(directory: Path, state: LabState) -> None:
    """Write state.json atomically: a reader sees no file or a whole one."""
    path = state_path(directory)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    """Whether PID is a live process (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        stat = ""
    if stat:
        return stat.rpartition(")")[2].split()[:1] != ["Z"]
    try:  # no /proc: ask the kernel
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_lab_process(pid: int) -> bool:
    """Whether PID runs the lab's serving command (so a reused PID is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and process_alive(pid)  # no /proc at all: trust the PID
    except OSError:
        return False
    return _SERVE_MARK in cmdline + b"\0"


def running_lab(directory: Path) -> LabState | None:
    """The lab this folder's state file names, if its process still runs."""
    state = read_state(directory)
    if state is None or not (process_alive(state.pid) and is_lab_process(state.pid)):
        return None
    return state


def check_port_base(port_base: int) -> None:
    top = 65535 - max(PORTS.values())
    if not 1024 <= port_base <= top:
        raise UsageError(
            f"--port-base {port_base}: expected 1024 to {top} (the lab uses {len(PORTS)} ports from it)"
        )


def check_ports_free(port_base: int) -> None:
    """LabPortInUse naming the first port of the layout something else listens on."""
    for name, offset in PORTS.items():
        port = port_base + offset
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the lab's servers do
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise port_in_use(name, port, exc) from None


def port_in_use(name: str, port: int, exc: OSError) -> DrillError:
    """The error for a port of the layout that cannot be bound: LabPortInUse when it is taken."""
    if exc.errno != errno.EADDRINUSE:
        return LabNotReady(f"cannot listen on 127.0.0.1:{port} ({name}): {exc.strerror or exc}")
    return LabPortInUse(
        f"port {port} ({name}) on 127.0.0.1 is already in use",
        hint="stop what listens there, or move the lab: drill lab up --port-base N"
        f" (it uses N to N+{max(PORTS.values())})",
    )


def health_pid(url: str, timeout_s: float = 0.5) -> int | None:
    """The PID the lab's health URL reports, or None when nothing (or not a lab) answers."""
    import httpx  # here: `drill init` reads the lab's state without paying for httpx

    try:
        with httpx.Client(trust_env=False, timeout=timeout_s) as client:
            resp = client.get(url)
        data = resp.json()
    except (httpx.HTTPError, ValueError):
        return None
    if resp.status_code != 200 or not isinstance(data, dict) or data.get("lab") != "drill":
        return None
    pid = data.get("pid")
    return pid if isinstance(pid, int) else None


def _failure(log: Path, offset: int) -> tuple[str, str]:
    """The error the serving command printed in its log since `offset`: (message, hint)."""
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return "", ""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("drill: "):
            rest = lines[i + 1 : i + 2]
            hint = rest[0].strip().removeprefix("hint: ") if rest and rest[0].startswith("  hint: ") else ""
            return lines[i].removeprefix("drill: "), hint
    return "", ""


def start_lab(
    directory: Path,
    serve_argv: Sequence[str],
    port_base: int = DEFAULT_PORT_BASE,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> tuple[LabState, bool]:
    """Start the lab in the background (or find it running); (its state, whether it was started now).

    `serve_argv` is the serving command without its options (`--port-base`, `--dir` are added);
    it must end up calling `serve`. Returns once the lab answers its health URL."""
    check_port_base(port_base)
    directory = directory.resolve()
    running = running_lab(directory)
    if running is not None:
        return running, False
    state_path(directory).unlink(missing_ok=True)  # a stale one: its process is gone
    try:
        check_ports_free(port_base)
    except LabPortInUse:
        other = health_pid(f"http://127.0.0.1:{port_base + PORTS['control']}/health")
        if other is None:
            raise
        raise LabPortInUse(
            f"a drill lab (pid {other}) started from another folder already listens on 127.0.0.1:{port_base}",
            hint="use it from there, stop it with `drill lab down` in its folder, or move this one:"
            " drill lab up --port-base N",
        ) from None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        log = (directory / LOG_FILE).open("ab")
    except OSError as exc:
        raise UsageError(f"cannot write the lab's files in {directory}: {exc.strerror or exc}") from None
    with log:
        offset = log.seek(0, os.SEEK_END)
        proc = subprocess.Popen(
            [*serve_argv, "--port-base", str(port_base), "--dir", str(directory)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # detached: the terminal's Ctrl-C and hang-up do not reach it
        )
    deadline = monotonic_ns() + int(ready_timeout_s * 1e9)
    while monotonic_ns() < deadline:
        code = proc.poll()
        if code is not None:
            why, hint = _failure(directory / LOG_FILE, offset)
            raise LabNotReady(
                f"the lab did not start: {why or f'exit status {code}'}",
                hint=hint or f"its log: {directory / LOG_FILE}",
            )
        state = read_state(directory)
        if state is not None and state.pid == proc.pid and health_pid(state.health) == proc.pid:
            return state, True
        time.sleep(_POLL_S)
    _kill_and_reap(proc)
    state_path(directory).unlink(missing_ok=True)
    raise LabNotReady(
        f"the lab did not answer within {ready_timeout_s:g} s; it was stopped",
        hint=f"its log: {directory / LOG_FILE}",
    )


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_TIMEOUT_S)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = monotonic_ns() + int(timeout_s * 1e9)
    while process_alive(pid):
        if monotonic_ns() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def stop_lab(
    directory: Path, term_timeout_s: float = TERM_TIMEOUT_S, kill_timeout_s: float = KILL_TIMEOUT_S
) -> StopResult:
    """Stop the lab the state file names (SIGTERM, then SIGKILL) and remove the state file.

    Idempotent: with no state file, or a stale one, nothing is signalled."""
    path = state_path(directory)  # as given: the messages name it as the operator typed it
    state = read_state(directory)
    if state is None:
        return StopResult(False, f"no lab running here (no {path})")
    if not (process_alive(state.pid) and is_lab_process(state.pid)):
        path.unlink(missing_ok=True)
        return StopResult(False, f"no lab running here (pid {state.pid} is gone); removed the stale {path}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    how = "stopped"
    if not _wait_gone(state.pid, term_timeout_s):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
        how = f"killed (still running {term_timeout_s:g} s after SIGTERM)"
        if not _wait_gone(state.pid, kill_timeout_s):
            raise DrillError(
                f"the lab (pid {state.pid}) is still running after SIGKILL; state kept in {path}"
            )
    path.unlink(missing_ok=True)
    return StopResult(True, f"lab (pid {state.pid}) {how}; removed {path}")


async def serve(directory: Path, port_base: int, log: LabLog) -> None:
    """Run the lab on port_base's layout until SIGTERM or SIGINT; state.json exists while it serves.

    `directory` is absolute (the state records the log's path). A port that cannot be bound
    raises LabPortInUse (or LabNotReady) before any state is written."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    async with contextlib.AsyncExitStack() as stack:
        try:
            lab = await stack.enter_async_context(Lab.start(LabConfig(port_base=port_base), log=log))
        except OSError as exc:
            check_ports_free(port_base)  # the servers already started are stopped: name the taken one
            raise LabNotReady(f"the lab could not listen: {exc.strerror or exc}") from None
        urls = lab.urls
        state = LabState(
            pid=os.getpid(),
            port_base=port_base,
            started_utc=utc_iso(wall_utc_now()),
            urls=urls,
            health=f"{urls['control']}/health",
            log=str(directory / LOG_FILE),
        )
        write_state(directory, state)
        log("lab.ready", {"pid": state.pid, "urls": urls})
        try:
            await stop.wait()
        finally:
            log("lab.stopping", {"pid": state.pid})
            current = read_state(directory)
            if current is not None and current.pid == state.pid:
                state_path(directory).unlink(missing_ok=True)
    log("lab.stopped", {"pid": os.getpid()})
