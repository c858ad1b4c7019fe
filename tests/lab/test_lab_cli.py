"""`drill lab up | status | down` with a real background lab, stopped by its PID; and the lab's
starter playbook (`drill init --lab`) run against it."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drill.errors import DrillError
from drill.lab.daemon import (
    LOG_FILE,
    STATE_FILE,
    LabNotReady,
    LabState,
    check_ports_free,
    health_pid,
    is_lab_process,
    process_alive,
    read_state,
    start_lab,
    stop_lab,
    write_state,
)
from drill.lab.lab import PORTS
from drill.playbook.validate import check_playbook

SPAN = max(PORTS.values()) + 1


def drill(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drill", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port_base() -> int:
    """A base with all of the lab's ports free (never the default: the README tour test uses it)."""
    for _ in range(100):
        base = random.randrange(20000, 40000 - SPAN)
        try:
            check_ports_free(base)
        except DrillError:
            continue
        return base
    raise AssertionError("no free run of ports found")


def gone_within(pid: int, timeout_s: float) -> bool:
    """Whether PID is gone within the bound; the lab is not our child, so there is no exit to await."""
    deadline = time.monotonic() + timeout_s
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder to run `drill lab` in; any lab left in it is killed by its PID afterwards."""
    yield tmp_path
    state = read_state(tmp_path / ".drill-lab")
    if state is not None and is_lab_process(state.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)
        assert gone_within(state.pid, 5)


def test_up_status_down_runs_a_real_background_lab_and_stops_it_by_pid(workdir: Path) -> None:
    base = free_port_base()
    up = drill("lab", "up", "--port-base", str(base), cwd=workdir)
    assert up.returncode == 0, up.stderr
    state_dir = workdir / ".drill-lab"
    state = read_state(state_dir)
    assert state is not None and state.port_base == base
    assert f"lab up (pid {state.pid})" in up.stdout
    assert (
        state.urls["control"] == f"http://127.0.0.1:{base}"
        and state.urls["kv"] == f"http://127.0.0.1:{base + 5}"
    )
    assert health_pid(state.health) == state.pid  # it answered before `up` returned
    assert is_lab_process(state.pid) and state.pid != os.getpid()
    assert Path(state.log) == state_dir / LOG_FILE
    assert httpx.get(f"{state.urls['front']}/health", trust_env=False).headers["x-served-by"] == "primary"

    again = drill("lab", "up", "--port-base", str(base), cwd=workdir)
    assert again.returncode == 0 and f"a lab already runs here (pid {state.pid}" in again.stdout

    status = drill("lab", "status", cwd=workdir)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"lab running (pid {state.pid}, since {state.started_utc}) and answers")
    as_json = json.loads(drill("lab", "status", "--format", "json", cwd=workdir).stdout)
    assert as_json["running"] and as_json["answering"] and as_json["state"]["pid"] == state.pid

    down = drill("lab", "down", cwd=workdir)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"lab (pid {state.pid}) stopped; removed .drill-lab/state.json"
    assert gone_within(state.pid, 1)  # `down` returned only once the process was gone
    assert not (state_dir / STATE_FILE).exists()
    log = [json.loads(line) for line in (state_dir / LOG_FILE).read_text().splitlines()]
    assert [e["event"] for e in log if e["event"].startswith("lab.")][-3:] == [
        "lab.ready",
        "lab.stopping",
        "lab.stopped",
    ]

    twice = drill("lab", "down", cwd=workdir)
    assert (twice.returncode, twice.stdout.strip()) == (0, "no lab running here (no .drill-lab/state.json)")
    after = drill("lab", "status", cwd=workdir)
    assert (after.returncode, after.stdout.strip()) == (
        3,
        "no lab running here; start one with: drill lab up",
    )


def test_a_port_in_use_is_one_clear_line_and_exit_3(workdir: Path) -> None:
    base = free_port_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + PORTS["front"]))
        taken.listen()
        up = drill("lab", "up", "--port-base", str(base), cwd=workdir)
        # the serving process itself says the same when the port is taken after the check
        serve = drill("lab", "serve", "--port-base", str(base), "--dir", str(workdir / "srv"), cwd=workdir)
    assert up.returncode == 3
    assert up.stderr.splitlines() == [
        f"drill: port {base + 1} (front) on 127.0.0.1 is already in use",
        f"  hint: stop what listens there, or move the lab: drill lab up --port-base N (it uses N to N+{SPAN - 1})",
    ]
    assert not (workdir / ".drill-lab" / STATE_FILE).exists()
    assert serve.returncode == 3
    assert serve.stderr.splitlines()[0] == f"drill: port {base + 1} (front) on 127.0.0.1 is already in use"
    assert not (workdir / "srv" / STATE_FILE).exists()


def test_a_bad_port_base_is_bad_usage(workdir: Path) -> None:
    up = drill("lab", "up", "--port-base", "65533", cwd=workdir)
    assert up.returncode == 2
    assert (
        up.stderr.strip() == "drill: --port-base 65533: expected 1024 to 65530 (the lab uses 6 ports from it)"
    )


def test_down_with_a_stale_state_file_signals_nobody(workdir: Path) -> None:
    state_dir = workdir / ".drill-lab"
    state_dir.mkdir()
    # this test's own PID: alive, but not a lab; a PID reused by another program is never signalled
    write_state(state_dir, LabState(os.getpid(), 20000, "2026-01-01T00:00:00.000+00:00", {}, "", ""))
    result = stop_lab(state_dir)
    assert not result.stopped
    assert result.message.startswith(f"no lab running here (pid {os.getpid()} is gone); removed the stale")
    assert not (state_dir / STATE_FILE).exists()


def test_down_kills_a_lab_that_ignores_sigterm(workdir: Path) -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True);"
            " time.sleep(60)",
            "lab",
            "serve",  # what the cmdline of a serving lab holds
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
        state_dir = workdir / ".drill-lab"
        state_dir.mkdir()
        write_state(state_dir, LabState(stubborn.pid, 20000, "2026-01-01T00:00:00.000+00:00", {}, "", ""))
        result = stop_lab(state_dir, term_timeout_s=0.3)
        assert result.stopped
        assert result.message.startswith(
            f"lab (pid {stubborn.pid}) killed (still running 0.3 s after SIGTERM)"
        )
        assert stubborn.wait(5) == -signal.SIGKILL
        assert not (state_dir / STATE_FILE).exists()
    finally:
        stubborn.kill()
        stubborn.wait()


def test_up_reports_a_lab_that_dies_or_never_answers(tmp_path: Path) -> None:
    dies = [sys.executable, "-c", "import sys; print('drill: cannot do it', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(LabNotReady) as died:
        start_lab(tmp_path / "a", dies, free_port_base())
    assert str(died.value).startswith("the lab did not start: cannot do it")

    hangs = [sys.executable, "-c", "import time; time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(LabNotReady) as silent:
        start_lab(tmp_path / "b", hangs, free_port_base(), ready_timeout_s=0.5)
    assert str(silent.value).startswith("the lab did not answer within 0.5 s; it was stopped")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "b" / STATE_FILE).exists()


def test_init_lab_starter_passes_against_a_background_lab(workdir: Path) -> None:
    base = free_port_base()
    assert drill("lab", "up", "--port-base", str(base), cwd=workdir).returncode == 0
    init = drill("init", "--lab", "my-drill.yaml", cwd=workdir)
    assert init.returncode == 0, init.stderr
    assert f"aimed at the lab running here on 127.0.0.1:{base}-{base + SPAN - 1}" in init.stdout
    text = (workdir / "my-drill.yaml").read_text()
    assert f'"http://127.0.0.1:{base}/hooks/pager"' in text and f'"http://127.0.0.1:{base + 5}"' in text
    playbook, diagnostics = check_playbook(workdir / "my-drill.yaml")
    assert playbook is not None and diagnostics == []

    dry = drill("run", "--dry-run", "my-drill.yaml", cwd=workdir)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    run = drill("run", "my-drill.yaml", "--yes", "--format", "json", cwd=workdir)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads((workdir / "runs" / "latest" / "results.json").read_text())
    assert results["verdict"] == "pass"
    kv = next(a for a in results["assets"] if a["id"] == "orders-kv")
    assert kv["rpo"]["lost_writes"] >= 1  # the lab's lagging replica really lost writes, measured
    assert {o["objective"]: o["state"] for o in kv["objectives"]} == {"rto": "met", "rpo": "met"}
    assert all(a["ack"]["met"] for a in results["assets"])  # the lab's pager acknowledged in time
    # the rollback failed the lab back: a second drill finds it as the first did
    assert drill("run", "my-drill.yaml", "--yes", cwd=workdir).returncode == 0
    assert drill("lab", "down", cwd=workdir).returncode == 0


def test_up_names_a_lab_started_from_another_folder(workdir: Path) -> None:
    base = free_port_base()
    (workdir / "one").mkdir()
    (workdir / "two").mkdir()
    first = drill(
        "lab", "up", "--port-base", str(base), "--dir", str(workdir / ".drill-lab"), cwd=workdir / "one"
    )
    assert first.returncode == 0, first.stderr
    pid = read_state(workdir / ".drill-lab")
    assert pid is not None
    second = drill("lab", "up", "--port-base", str(base), cwd=workdir / "two")
    assert second.returncode == 3
    assert second.stderr.splitlines()[0] == (
        f"drill: a drill lab (pid {pid.pid}) started from another folder already listens on 127.0.0.1:{base}"
    )
    assert not (workdir / "two" / ".drill-lab" / STATE_FILE).exists()
