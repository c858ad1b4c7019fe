"""`drill lab up | down | status`: the embedded lab as a background process, for trying drill out."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from drill.cli.output import echo_json, format_option
from drill.clock import utc_iso, wall_utc_now
from drill.errors import EXIT_ABORTED, EXIT_OK
from drill.lab.daemon import (
    DEFAULT_DIR,
    LabState,
    health_pid,
    read_state,
    running_lab,
    serve,
    start_lab,
    state_path,
    stop_lab,
)
from drill.lab.lab import DEFAULT_PORT_BASE, PORTS

# What each server is, for people (the names are the lab's: see drill/lab/lab.py).
ROLES = {
    "control": "POST /control/... injects failures and fails over; POST /hooks/pager acknowledges pages",
    "front": "the web front: serves the primary, or the secondary after /control/failover",
    "primary": "web service, primary site",
    "secondary": "web service, secondary site",
    "reports": "internal reports service",
    "kv": "replicated key-value store (the replica lags 400 ms: a failover loses writes)",
}

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Folder of the lab's state.json and lab.log.",
)


@click.group("lab")
def lab() -> None:
    """Run drill's embedded lab in the background: simulated services to drill against."""


@lab.command("up")
@click.option(
    "--port-base",
    type=int,
    default=DEFAULT_PORT_BASE,
    show_default=True,
    help=f"First port of the lab's {len(PORTS)} ports on 127.0.0.1 (control, front, primary,"
    " secondary, reports, kv, in that order).",
)
@dir_option
def up(port_base: int, directory: Path) -> None:
    """Start the lab in the background and return once it answers; exit 3 if it cannot start
    (a port in use, say)."""
    state, started = start_lab(directory, [sys.executable, "-m", "drill", "lab", "serve"], port_base)
    if started:
        click.echo(f"lab up (pid {state.pid}); log: {_shown(Path(state.log))}")
    else:
        click.echo(f"a lab already runs here (pid {state.pid}, since {state.started_utc})")
    _echo_urls(state)
    click.echo("next: drill init --lab my-drill.yaml; stop it with: drill lab down")


@lab.command("down")
@dir_option
def down(directory: Path) -> None:
    """Stop the lab by its PID (SIGTERM, then SIGKILL after 5 s); fine when none runs."""
    click.echo(stop_lab(directory).message)


@lab.command("status")
@dir_option
@format_option
def status(directory: Path, fmt: str) -> None:
    """Show the lab this folder started; exit 0 when it runs and answers, 3 when not."""
    state = read_state(directory)
    running = running_lab(directory)
    answering = running is not None and health_pid(running.health) == running.pid
    if fmt == "json":
        data: dict[str, Any] = {"running": running is not None, "answering": answering}
        data["state"] = None if running is None else asdict(running)
        echo_json(data)
    elif running is None:
        stale = f" (stale state file: pid {state.pid} is gone)" if state is not None else ""
        click.echo(f"no lab running here{stale}; start one with: drill lab up")
    else:
        health = "answers" if answering else "does NOT answer its health URL"
        click.echo(f"lab running (pid {running.pid}, since {running.started_utc}) and {health}")
        click.echo(f"state: {_shown(state_path(directory))}; log: {_shown(Path(running.log))}")
        _echo_urls(running)
    sys.exit(EXIT_OK if answering else EXIT_ABORTED)


@lab.command("serve", hidden=True)
@click.option("--port-base", type=int, required=True)
@dir_option
def serve_cmd(port_base: int, directory: Path) -> None:
    """Serve the lab in the foreground until SIGTERM (what `drill lab up` runs in the background)."""

    def log(event: str, fields: dict[str, Any]) -> None:
        line = {"utc": utc_iso(wall_utc_now()), "event": event, **fields}
        click.echo(json.dumps(line, default=str), err=True)

    asyncio.run(serve(directory.resolve(), port_base, log))


def _echo_urls(state: LabState) -> None:
    wide = max(len(name) for name in state.urls)
    for name, url in sorted(state.urls.items(), key=lambda item: PORTS.get(item[0], len(PORTS))):
        click.echo(f"  {name:<{wide}}  {url}  {ROLES.get(name, '')}".rstrip())


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is inside it (shorter to read and to paste)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
