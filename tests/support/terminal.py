"""A command run on a real pseudo-terminal (stdin and stderr), answered at its prompt.

Every read has a deadline, and the terminal is drained until the child closes it, so a chatty
child never blocks on a full pty and a missing prompt fails with what the terminal showed.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path


def read_some(master: int, timeout_s: float) -> bytes | None:
    """What the pty has within timeout_s: b"" if nothing yet, None once the child side closed."""
    ready, _, _ = select.select([master], [], [], timeout_s)
    if not ready:
        return b""
    try:
        return os.read(master, 65536) or None
    except OSError:  # EIO: every slave fd is closed (the child exited)
        return None


def answer_on_terminal(
    argv: list[str], prompt: bytes, answer: bytes, stdout: Path, timeout_s: float
) -> tuple[int, str]:
    """Run argv with a pty as stdin and stderr (so it is interactive), wait for `prompt`, type
    `answer`; returns the exit code and everything shown on the terminal (stdout goes to a file)."""
    master, slave = pty.openpty()
    with stdout.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=slave, stderr=slave, stdout=out, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + timeout_s
        while prompt not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no prompt within {timeout_s} s; the terminal showed:\n{seen.decode()}"
            chunk = read_some(master, min(left, 0.5))
            assert chunk is not None, f"exited ({proc.poll()}) without asking:\n{seen.decode()}"
            seen += chunk
        os.write(master, answer)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"still running after {timeout_s} s:\n{seen.decode()}"
            chunk = read_some(master, min(left, 0.5))
            if chunk is None:
                break
            seen += chunk
        code = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return code, seen.decode("utf-8", errors="replace").replace("\r\n", "\n")
