"""`command` action: run a program from an argv list (never a shell string) and check its exit code."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drill.actions.base import OUTPUT_LIMIT, ActionContext, ActionKind, ActionResult
from drill.secrets import ELLIPSIS, cut_start

_OUTPUT_LIMIT = 400


@dataclass(frozen=True, slots=True)
class CommandActionSpec:
    argv: tuple[str, ...]
    expect_exit: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


def parse(params: Mapping[str, Any]) -> CommandActionSpec:
    return CommandActionSpec(
        argv=tuple(str(a) for a in params["argv"]),
        expect_exit=int(params.get("expect_exit", 0)),
        env={str(k): str(v) for k, v in (params.get("env") or {}).items()},
        cwd=params.get("cwd"),
    )


async def act_command(spec: CommandActionSpec, ctx: ActionContext) -> ActionResult:
    """Run to completion; the runner's deadline cancels us, and then the process is killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=spec.cwd or ctx.cwd,
            env={**os.environ, **spec.env},
        )
    except OSError as exc:
        return ActionResult(ok=False, reason=f"cannot start {spec.argv[0]}: {exc.strerror or exc}")
    try:
        output, errors = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    code = proc.returncode
    stdout, stderr = _text(output), _text(errors)
    if code != spec.expect_exit:
        redact = ctx.redact  # before the cut, so no part of a secret is left for the cut to split
        tail = cut_start(redact(stderr).strip() or redact(stdout).strip(), _OUTPUT_LIMIT)
        return ActionResult(
            ok=False,
            reason=f"{spec.argv[0]} exited {code}, expected {spec.expect_exit}"
            + (f": {tail}" if tail else ""),
            detail=str(code),
            stdout=stdout,
            stderr=stderr,
        )
    return ActionResult(ok=True, detail=str(code), stdout=stdout, stderr=stderr)


def _keep(text: str) -> str:
    return text


def _text(raw: bytes) -> str:
    """At most OUTPUT_LIMIT bytes as text; a cut is marked with `…` (no half character before it)."""
    if len(raw) <= OUTPUT_LIMIT:
        return raw.decode("utf-8", "replace")
    return raw[:OUTPUT_LIMIT].decode("utf-8", "ignore") + ELLIPSIS


KIND = ActionKind(
    name="command", parse=parse, run=act_command, summary="run a program (argv list); checks its exit code"
)
