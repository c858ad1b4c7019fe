"""The command probe: run a program from an argv list (never a shell); check exit code and stdout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drill.errors import UsageError
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok
from drill.secrets import ELLIPSIS, cut_start

OUTPUT_LIMIT = 1024 * 1024  # bytes of stdout/stderr kept


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """The program and what its run must show. env adds to (overrides) the inherited environment."""

    argv: tuple[str, ...]
    expect_exit: int = 0
    stdout_contains: str | None = None
    stdout_regex: re.Pattern[str] | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None


def parse(params: Mapping[str, Any]) -> CommandSpec:
    """Build the spec from resolved, schema-valid params; an empty argv or bad regex is a usage error."""
    argv = tuple(str(a) for a in params["argv"])
    if not argv:
        raise UsageError("command probe: argv is empty", hint="give the program and its arguments as a list")
    regex = params.get("stdout_regex")
    try:
        pattern = re.compile(str(regex)) if regex is not None else None
    except re.error as exc:
        raise UsageError(
            f"command probe: stdout_regex {regex!r} is not a valid regular expression: {exc}"
        ) from exc
    return CommandSpec(
        argv=argv,
        expect_exit=int(params.get("expect_exit", 0)),
        stdout_contains=None if params.get("stdout_contains") is None else str(params["stdout_contains"]),
        stdout_regex=pattern,
        env=tuple((str(k), str(v)) for k, v in (params.get("env") or {}).items()),
        cwd=None if params.get("cwd") is None else str(params["cwd"]),
    )


async def probe_command(spec: CommandSpec, ctx: ProbeContext) -> Observation:
    """Run the program; on timeout or cancellation its whole process group is killed and reaped."""
    env = {**os.environ, **dict(spec.env)} if spec.env else None
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,  # its own process group, so a kill reaches its children too
        )
    except FileNotFoundError as exc:
        if spec.cwd and exc.filename == spec.cwd:
            return fail(f"working directory {spec.cwd!r} does not exist")
        return fail(f"command not found: {spec.argv[0]!r} ({exc.strerror})")
    except PermissionError:
        return fail(f"permission denied running {spec.argv[0]!r}")
    except OSError as exc:
        return fail(f"cannot start {spec.argv[0]!r}: {exc.strerror or exc}")
    try:
        stdout, stderr = await proc.communicate()
    except BaseException:
        await _kill(proc)
        raise
    return _judge(spec, proc.returncode, _decoded(stdout), _decoded(stderr), ctx.redact)


def _keep(text: str) -> str:
    return text


def _decoded(data: bytes) -> str:
    """At most OUTPUT_LIMIT bytes as text; a cut is marked with `…` (no half character before it)."""
    if len(data) <= OUTPUT_LIMIT:
        return data.decode("utf-8", errors="replace")
    return data[:OUTPUT_LIMIT].decode("utf-8", errors="ignore") + ELLIPSIS


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """Kill the process group and reap it, even while the calling task is being cancelled."""
    # The group too: children that inherited its pipes would otherwise outlive the probe.
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    # Shielded so a second cancellation cannot leave a zombie behind.
    await asyncio.shield(proc.wait())


def _judge(
    spec: CommandSpec, code: int | None, stdout: str, stderr: str, redact: Callable[[str], str] = _keep
) -> Observation:
    name = os.path.basename(spec.argv[0])
    if code is not None and code < 0:
        return fail(f"{name} killed by signal {-code}", exit=code)
    if code != spec.expect_exit:
        tail = _tail(stderr, redact) or _tail(stdout, redact)
        suffix = f": {tail}" if tail else ""
        return fail(f"{name}: expected exit {spec.expect_exit}, got {code}{suffix}", exit=code or 0)
    text = stdout  # matched as the program wrote it; only what a reason quotes is redacted
    if spec.stdout_contains is not None and spec.stdout_contains not in text:
        return fail(
            f"{name}: stdout does not contain {spec.stdout_contains!r} (got {_tail(stdout, redact)!r})"
        )
    if spec.stdout_regex is not None and not spec.stdout_regex.search(text):
        return fail(
            f"{name}: stdout does not match /{spec.stdout_regex.pattern}/ (got {_tail(stdout, redact)!r})"
        )
    return ok(exit=code or 0)


def _tail(text: str, redact: Callable[[str], str] = _keep, limit: int = 200) -> str:
    """The last non-empty line, redacted, then shortened (the cut marked with `…`): usually the error."""
    lines = [line for line in text.splitlines() if line.strip()]
    return cut_start(redact(lines[-1]).strip(), limit) if lines else ""


KIND: ProbeKind[CommandSpec] = ProbeKind(
    name="command",
    parse=parse,
    run=probe_command,
    summary="run a program from an argv list (no shell); checks exit code and stdout",
)
