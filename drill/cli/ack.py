"""`drill ack TOKEN`: acknowledge a page from a shell, through the running drill's ack endpoint.

The answer comes from whatever the link points at, so it is read as hostile input: at most
ANSWER_LIMIT bytes within ANSWER_DEADLINE_S seconds, and only its first line is printed, cut
to LINE_LIMIT characters with control characters replaced. ack.url files are read bounded too.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import click
import httpx

from drill.clock import monotonic_ns
from drill.errors import EXIT_FAILED, DrillError, UsageError
from drill.evidence.inputs import InputRejected, read_bounded, size_text
from drill.notify.ack import ACK_URL_FILE, AckReply, ack_target
from drill.notify.base import verify_for

ANSWER_LIMIT = 64 * 1024  # an ack endpoint answers one short line
ANSWER_DEADLINE_S = 30.0  # for the whole answer (each read also has its own timeout)
LINE_LIMIT = 300  # characters of the answer printed
_URL_FILE_LIMIT = 4096


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
    reply = post_ack_bounded(ack_target(token, base_url or ""), by or _default_by())
    if reply.status == 0:
        raise DrillError(reply.text, hint="is the drill still running? check --url / --run-dir")
    if not reply.accepted:
        raise AckRefused(
            f"acknowledgement refused (HTTP {reply.status}): {reply.text.removeprefix('refused: ')}"
        )
    click.echo(reply.text)


def _read_url_file(path: Path) -> str:
    """The base URL in an ack.url file ('' when absent); a FIFO or a huge file is refused."""
    try:
        data = read_bounded(path, _URL_FILE_LIMIT, "ack endpoint file")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return data.decode("utf-8", errors="replace").strip()


def read_ack_url(run_dir: Path) -> str:
    """The endpoint's base URL from run_dir/ack.url ('' when the file is absent), read bounded."""
    return _read_url_file(run_dir / ACK_URL_FILE)


def latest_ack_url(runs_dir: Path) -> str:
    """The base URL of the most recently started run under runs_dir that serves acks ('' if none)."""
    found = []
    for path in runs_dir.glob(f"*/{ACK_URL_FILE}"):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:
            continue
    return _read_url_file(max(found)[1]) if found else ""


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """The first line of text, at most limit characters, control characters shown as '?'."""
    lines = text.strip().splitlines()
    line = "".join(c if c.isprintable() else "?" for c in (lines[0] if lines else ""))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def post_ack_bounded(
    url: str,
    by: str,
    *,
    timeout_s: float = 10.0,
    limit: int = ANSWER_LIMIT,
    deadline_s: float = ANSWER_DEADLINE_S,
) -> AckReply:
    """POST one acknowledgement and read at most `limit` bytes of the answer within deadline_s.

    An answer longer than that (or slower) is not a drill ack endpoint's: InputRejected (exit 2),
    without reading on. The reply's text is the answer's first line (see one_line).
    """
    body = bytearray()
    deadline_ns = monotonic_ns() + int(deadline_s * 1e9)
    try:
        with (
            httpx.Client(trust_env=False, timeout=timeout_s, verify=verify_for(url)) as client,
            client.stream("POST", url, data={"by": by}, headers={"Accept-Encoding": "identity"}) as response,
        ):
            for chunk in response.iter_raw(16384):
                body += chunk
                if len(body) > limit:
                    raise InputRejected(
                        f"the ack endpoint's answer (HTTP {response.status_code}) is longer than "
                        f"{size_text(limit)}; stopped reading (is {url.split('?')[0]} a drill ack link?)"
                    )
                if monotonic_ns() > deadline_ns:
                    raise InputRejected(
                        f"the ack endpoint's answer (HTTP {response.status_code}) took longer than "
                        f"{deadline_s:.0f} s; stopped reading"
                    )
            status = response.status_code
    except httpx.HTTPError as exc:
        return AckReply(0, f"cannot reach the ack endpoint ({type(exc).__name__})")
    return AckReply(status, one_line(body.decode("utf-8", errors="replace")))
