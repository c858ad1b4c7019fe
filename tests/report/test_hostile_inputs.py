"""Hostile evidence inputs end quickly with one clear line (issue 12, part 5): FIFOs, symlinks to
/dev/zero, oversized files, JSON nested thousands of levels deep, an endless ack answer.

Every test has a timeout (pytest-timeout), so a regression that hangs fails instead of hanging
the suite; one runs a real `python -m drill` process.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drill.evidence import inputs
from drill.evidence.inputs import InputRejected, json_depth_exceeds, read_bounded
from drill.report.sign import sign_bytes

from .signing_helpers import make_key, make_report_dir, pub_line, write_allowed_signers

TIMEOUT_S = 20  # generous for a slow CI machine; each case takes well under a second
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and /dev/zero"),
    pytest.mark.timeout(TIMEOUT_S),
]


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


def drill(*args: str | Path) -> Done:
    """`drill ARGS` in process (pytest-timeout turns a hang into a failure)."""
    from click.testing import CliRunner

    from drill.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    return Done(result.exit_code, result.stdout, result.stderr)


def refused(done: Done, *needles: str, code: int = 2) -> None:
    """Exit `code`, no traceback, and one error line holding every needle."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_journal_verify_of_dev_zero_ends_at_once_in_a_real_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "drill", "journal", "verify", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "drill: journal /dev/zero is a character device, not a regular file; refusing to read it"
    )


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    key = make_key(tmp_path, "op")
    run = make_report_dir(tmp_path, signer=("operator", key))
    allowed = write_allowed_signers(tmp_path / "allowed_signers", f"operator {pub_line(key)}")
    return run, allowed, key


def _replace(path: Path, kind: str, size: int = 0) -> None:
    """Put a FIFO, a symlink to /dev/zero or a sparse file of `size` bytes at path."""
    if path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        with path.open("wb") as out:
            out.truncate(size)


# ---------------------------------------------------------------- drill verify


@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize("name", ["report.json", "report.json.operator.sig", "journal.jsonl", "results.json"])
def test_verify_refuses_what_is_not_a_regular_file(
    signed: tuple[Path, Path, Path], name: str, kind: str
) -> None:
    run, allowed, _ = signed
    _replace(run / name, kind)
    what = "a FIFO" if kind == "fifo" else "a character device (through a symlink)"
    refused(drill("verify", run, "--allowed-signers", allowed), "NOT VERIFIED", name, what)


@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize("kind", ["fifo", "zero", "large"])
def test_verify_refuses_a_hostile_view(signed: tuple[Path, Path, Path], kind: str) -> None:
    """In process (the tool version is pinned, so views are compared); O_NONBLOCK keeps it from hanging."""
    from click.testing import CliRunner

    from drill.cli import cli

    run, allowed, _ = signed
    _replace(run / "report.md", kind, inputs.VIEW_LIMIT + 1)
    done = CliRunner().invoke(cli, ["verify", str(run), "--allowed-signers", str(allowed)])
    assert done.exit_code == 2, done.output
    expected = "over the 64 MiB limit" if kind == "large" else "not a regular file"
    assert done.output.startswith("drill: NOT VERIFIED: view ") and expected in done.output
    assert len(done.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["fifo", "zero", "large"])
def test_verify_refuses_a_hostile_allowed_signers_file(
    signed: tuple[Path, Path, Path], tmp_path: Path, kind: str
) -> None:
    run, _, _ = signed
    hostile = tmp_path / "hostile_signers"
    _replace(hostile, kind, inputs.ALLOWED_SIGNERS_LIMIT + 1)
    done = drill("verify", run, "--allowed-signers", hostile)
    refused(done, "allowed signers file", "limit" if kind == "large" else "not a regular file")


def test_verify_refuses_oversized_report_and_signature(signed: tuple[Path, Path, Path]) -> None:
    run, allowed, _ = signed
    sig = run / "report.json.operator.sig"
    _replace(sig, "large", inputs.SIGNATURE_LIMIT + 1)
    refused(drill("verify", run, "--allowed-signers", allowed), "signature", "over the 64 KiB limit")
    _replace(run / "report.json", "large", inputs.REPORT_LIMIT + 1)  # sparse: no disk used
    refused(drill("verify", run, "--allowed-signers", allowed), "report", "over the 64 MiB limit")


def test_verify_refuses_a_signed_report_nested_too_deeply(signed: tuple[Path, Path, Path]) -> None:
    run, allowed, key = signed
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    (run / "report.json").write_bytes(deep)
    (run / "report.json.operator.sig").write_text(sign_bytes(deep, load_key(key)), encoding="ascii")
    refused(drill("verify", run, "--allowed-signers", allowed), "nests JSON deeper than 64 levels")


def load_key(path: Path):  # type: ignore[no-untyped-def]
    from drill.report.sign import load_private_key

    return load_private_key(path)


# ---------------------------------------------------------------- drill report render / rebuild


@pytest.mark.parametrize("kind", ["fifo", "zero", "large"])
def test_render_refuses_hostile_report_files(signed: tuple[Path, Path, Path], kind: str) -> None:
    run, _, _ = signed
    _replace(run / "report.json", kind, inputs.REPORT_LIMIT + 1)
    done = drill("report", "render", run / "report.json", "--to", "md", "-o", "-")
    refused(done, "report.json", "limit" if kind == "large" else "not a regular file")


def test_render_refuses_a_deeply_nested_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    refused(drill("report", "render", path, "-o", "-"), "nests JSON deeper than 64 levels")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_rebuild_refuses_a_journal_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    journal = tmp_path / "journal.jsonl"
    _replace(journal, kind)
    refused(drill("report", journal, "-o", tmp_path / "out"), "journal", "not a regular file")


def test_rebuild_refuses_a_hostile_existing_report(signed: tuple[Path, Path, Path]) -> None:
    run, _, _ = signed
    _replace(run / "report.json", "fifo")
    refused(drill("report", run / "journal.jsonl"), "report.json", "a FIFO")


# ---------------------------------------------------------------- drill journal verify


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_journal_verify_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    journal = tmp_path / "journal.jsonl"
    _replace(journal, kind)
    refused(drill("journal", "verify", journal), "journal", "not a regular file")
    if kind == "zero":
        refused(drill("journal", "verify", "/dev/zero"), "/dev/zero is a character device")


def _deep_line(journal: Path, depth: int) -> Path:
    """The journal with one more line, correctly chained, whose data nests `depth` levels."""
    lines = journal.read_bytes().splitlines()
    head = hashlib.sha256(lines[-1]).hexdigest()
    data = b'{"deep":' + b"[" * depth + b"]" * depth + b"}"
    line = (
        b'{"data":%s,"mono_ns":1,"prev":"%s","seq":%d,"type":"note","utc":"2026-11-20T09:03:47.000+00:00"}'
        % (data, head.encode(), len(lines) + 1)
    )
    journal.write_bytes(b"\n".join([*lines, line]) + b"\n")
    return journal


@pytest.mark.parametrize("depth", [2000, 600, 65])
def test_a_deeply_nested_journal_line_is_named(signed: tuple[Path, Path, Path], depth: int) -> None:
    run, allowed, _ = signed
    journal = _deep_line(run / "journal.jsonl", depth)
    message = "line 1450: nested deeper than 64 levels"
    refused(drill("journal", "verify", journal), message, code=1)
    refused(drill("report", journal, "-o", run.parent / "out"), message, code=1)
    refused(drill("verify", run, "--allowed-signers", allowed), "NOT VERIFIED", message, code=1)


def test_a_journal_line_over_the_line_limit_is_named(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    with journal.open("wb") as out:
        out.write(b"x" * (inputs.JOURNAL_LINE_LIMIT + 1))
    refused(drill("journal", "verify", journal), "line 1: longer than 16 MiB", code=1)


def test_64_levels_are_accepted_and_65_are_not() -> None:
    assert not json_depth_exceeds(b"[" * 64 + b"]" * 64)
    assert json_depth_exceeds(b"[" * 65 + b"]" * 65)
    assert not json_depth_exceeds(b'["' + b"[{" * 200 + b'"]')  # brackets in a string do not nest
    assert not json_depth_exceeds(b'["\\"' + b"[" * 200 + b'"]')  # nor after an escaped quote


def test_read_bounded_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputRejected, match=r"is a FIFO, not a regular file"):
        read_bounded(fifo, 10, "test file")
    (tmp_path / "small").write_bytes(b"12345")
    assert read_bounded(tmp_path / "small", 5, "test file") == b"12345"
    with pytest.raises(InputRejected, match=r"is 5 bytes, over the 4 bytes limit"):
        read_bounded(tmp_path / "small", 4, "test file")


# ---------------------------------------------------------------- drill ack


class _Endless(http.server.BaseHTTPRequestHandler):
    """Answers every POST with 200 and a body that never ends (until the client hangs up)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        chunk = b"acknowledged " * 5000
        try:
            while True:
                self.wfile.write(chunk)
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Chatty(_Endless):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"acknowledged page-1 \x1b[2J\nsecond line\n" + b"more\n" * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endless() -> Iterator[str]:
    yield from _serve(_Endless)


@pytest.fixture
def chatty() -> Iterator[str]:
    yield from _serve(_Chatty)


def test_ack_stops_reading_an_endless_answer(endless: str) -> None:
    done = drill("ack", f"{endless}/ack/token")
    refused(done, "answer (HTTP 200) is longer than 64 KiB; stopped reading")
    assert done.stdout == ""


def test_ack_prints_one_sanitised_line_of_the_answer(chatty: str) -> None:
    done = drill("ack", f"{chatty}/ack/token")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "acknowledged page-1 ?[2J\n"


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_ack_refuses_a_hostile_ack_url_file(tmp_path: Path, kind: str) -> None:
    _replace(tmp_path / "ack.url", kind)
    refused(drill("ack", "token", "--run-dir", tmp_path), "ack.url", "not a regular file")
