"""The command probe: real subprocesses from argv lists; a timeout kills the whole process group."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from drill.errors import UsageError
from drill.probes import command
from drill.probes.base import Observation
from drill.testing import FakeContext, run_probe

PY = sys.executable


async def _probe(ctx: FakeContext, **params: object) -> Observation:
    return await run_probe(command.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_exit_code(probe_ctx: FakeContext) -> None:
    assert (await _probe(probe_ctx, argv=[PY, "-c", "pass"])).ok
    obs = await _probe(probe_ctx, argv=[PY, "-c", "import sys; sys.exit('replica is read-only')"])
    assert obs.reason == f"{Path(PY).name}: expected exit 0, got 1: replica is read-only"
    assert (await _probe(probe_ctx, argv=[PY, "-c", "raise SystemExit(3)"], expect_exit=3)).ok


async def test_stdout_checks(probe_ctx: FakeContext) -> None:
    argv = [PY, "-c", "print('role: primary')"]
    assert (await _probe(probe_ctx, argv=argv, stdout_contains="primary", stdout_regex=r"role: \w+")).ok
    obs = await _probe(probe_ctx, argv=argv, stdout_contains="replica")
    assert obs.reason == f"{Path(PY).name}: stdout does not contain 'replica' (got 'role: primary')"
    assert not (await _probe(probe_ctx, argv=argv, stdout_regex=r"^replica")).ok


async def test_argv_is_not_a_shell_string(probe_ctx: FakeContext, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obs = await _probe(probe_ctx, argv=[PY, "-c", "import sys; print(sys.argv[1])", f"x; touch {marker}"])
    assert obs.ok and not marker.exists()


async def test_env_and_cwd(probe_ctx: FakeContext, tmp_path: Path) -> None:
    argv = [PY, "-c", "import os; print(os.environ['DRILL_X'], os.getcwd(), 'PATH' in os.environ)"]
    obs = await _probe(
        probe_ctx, argv=argv, env={"DRILL_X": "42"}, cwd=str(tmp_path), stdout_contains=f"42 {tmp_path} True"
    )
    assert obs.ok, obs.reason


async def test_start_failures_are_reasons(probe_ctx: FakeContext, tmp_path: Path) -> None:
    missing = await _probe(probe_ctx, argv=["drill-no-such-program"])
    assert missing.reason.startswith("command not found: 'drill-no-such-program'")
    nodir = await _probe(probe_ctx, argv=[PY, "-c", "pass"], cwd=str(tmp_path / "nope"))
    assert nodir.reason == f"working directory '{tmp_path / 'nope'}' does not exist"
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    assert (await _probe(probe_ctx, argv=[str(script)])).reason == f"permission denied running '{script}'"


def test_parse_rejects_empty_argv_and_bad_regex() -> None:
    with pytest.raises(UsageError, match="argv is empty"):
        command.parse({"argv": []})
    with pytest.raises(UsageError, match="stdout_regex"):
        command.parse({"argv": ["true"], "stdout_regex": "("})


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_timeout_kills_the_process_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    obs = await run_probe(command.KIND, {"argv": [PY, "-c", code]}, timeout_ms=1500)
    assert (obs.ok, obs.reason) == (False, "timed out after 1.5 s")
    parent, child = (int(p) for p in pidfile.read_text().split())
    assert not _alive(parent)  # reaped by the probe before it returned
    await _exited(child)  # SIGKILL to the group is delivered asynchronously: wait for the exit event


async def _exited(pid: int, within_s: float = 5.0) -> None:
    """Wait until `pid` (not our child) has exited, through a pidfd; fail after within_s."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(fd, gone.set_result, None)
    try:
        await asyncio.wait_for(gone, within_s)
    finally:
        loop.remove_reader(fd)
        os.close(fd)
