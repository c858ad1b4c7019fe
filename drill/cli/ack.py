"""`drill ack TOKEN`: acknowledge a page from a shell, through the running drill's ack endpoint."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import click

from drill.errors import EXIT_FAILED, DrillError, UsageError
from drill.notify.ack import ack_target, latest_ack_url, post_ack, read_ack_url


class AckRefused(DrillError):
    """Raised when the endpoint refuses an acknowledgement (unknown, reused or late token)."""

    exit_code = EXIT_FAILED


def _default_by() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


@click.command("ack")
@click.argument("token")
@click.option("--url", "base_url", help="Base URL of the ack endpoint (http://HOST:PORT).")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A running drill's folder; its ack.url names the endpoint.",
)
@click.option("--by", help="Who acknowledges (default: USER@HOST).")
def ack(token: str, base_url: str | None, run_dir: Path | None, by: str | None) -> None:
    """Acknowledge the page whose TOKEN (or ack link) you received.

    Without --url or --run-dir, the newest run under ./runs that serves acks is used.
    """
    if not token.startswith(("http://", "https://")):
        base_url = base_url or (read_ack_url(run_dir) if run_dir else latest_ack_url(Path("runs")))
        if not base_url:
            where = f"{run_dir}/ack.url" if run_dir else "runs/*/ack.url"
            raise UsageError(
                f"no ack endpoint found ({where} is missing)",
                hint="pass --url http://HOST:PORT or --run-dir runs/RUN_ID of a drill that is running",
            )
    reply = post_ack(ack_target(token, base_url or ""), by or _default_by())
    if reply.status == 0:
        raise DrillError(reply.text, hint="is the drill still running? check --url / --run-dir")
    if not reply.accepted:
        raise AckRefused(
            f"acknowledgement refused (HTTP {reply.status}): {reply.text.removeprefix('refused: ')}"
        )
    click.echo(reply.text)
