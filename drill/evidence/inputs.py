"""Reading evidence files that may be hostile: regular files only, bounded sizes, bounded nesting.

An evidence folder comes from someone else. `report.json`, a `.sig`, an `allowed_signers` file
or the journal can be a symlink to /dev/zero (endless bytes), a FIFO (a read that never
returns) or a file nested thousands of levels deep (RecursionError in a JSON parser). Every
reader of such a file goes through here:

- `open_regular` stats the path (following symlinks) and refuses anything but a regular file,
  then opens it with O_NONBLOCK (so a FIFO swapped in after the stat cannot block the open)
  and checks again with fstat on the open descriptor;
- `read_bounded` reads at most a per-kind size limit (the limits below);
- `check_json_depth` refuses JSON nested deeper than JSON_DEPTH_LIMIT, without recursion and
  before any parser sees the bytes.

Each refusal is an InputRejected (a UsageError: exit 2) with one line naming the file.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from drill.errors import UsageError

__all__ = [
    "ALLOWED_SIGNERS_LIMIT",
    "JOURNAL_LINE_LIMIT",
    "JSON_DEPTH_LIMIT",
    "REPORT_LIMIT",
    "SIGNATURE_LIMIT",
    "VIEW_LIMIT",
    "InputRejected",
    "check_json_depth",
    "json_depth_exceeds",
    "open_regular",
    "read_bounded",
    "size_text",
]

KiB = 1024
MiB = 1024 * KiB

REPORT_LIMIT = 64 * MiB  # report.json (a report of a large drill is a few hundred KiB)
SIGNATURE_LIMIT = 64 * KiB  # one armored SSHSIG signature (an Ed25519 one is about 300 bytes)
ALLOWED_SIGNERS_LIMIT = 1 * MiB  # allowed_signers and revoked-keys files (about 100 bytes a key)
VIEW_LIMIT = 64 * MiB  # report.html / report.md / report.junit.xml, compared with a re-render
# One journal line. The journal as a whole has no limit (it is streamed), but a line is held in
# memory whole. run.started carries the playbook document and the plan resolved from it, so
# this is far above any real line rather than tight: a 1 MiB cap would refuse the evidence of
# a playbook of a few hundred KiB that the writer accepted.
JOURNAL_LINE_LIMIT = 16 * MiB
JSON_DEPTH_LIMIT = 64  # nested arrays/objects; a report or journal line needs fewer than 16

_O_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


class InputRejected(UsageError):
    """Raised when an input file is not a regular file, is too large, or is nested too deeply."""


def size_text(size: int) -> str:
    """A byte count for messages: 64 MiB, 1.5 GiB, 300 bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{size} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(path: Path, what: str, mode: int) -> InputRejected:
    kind = _kind(mode)
    link = " (through a symlink)" if path.is_symlink() else ""
    return InputRejected(f"{what} {path} is {kind}{link}, not a regular file; refusing to read it")


def open_regular(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """Open path for reading if, after following symlinks, it is a regular file.

    OSError (FileNotFoundError, PermissionError ...) propagates for the caller to word;
    InputRejected when it is a FIFO, a device, a socket or a directory. The open never blocks.
    """
    source = Path(path)
    mode = os.stat(source).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(source, what, mode)
    fd = os.open(source, _O_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped between the stat and the open
            raise _not_regular(source, what, mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (InputRejected otherwise)."""
    source = Path(path)
    with open_regular(source, what) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            raise InputRejected(_too_large(source, what, size, limit))
        data = stream.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise InputRejected(f"{what} {source} grew past the {size_text(limit)} limit while being read")
    return data


def _too_large(path: Path, what: str, size: int, limit: int) -> str:
    return f"{what} {path} is {size_text(size)}, over the {size_text(limit)} limit; refusing to read it"


def json_depth_exceeds(data: bytes, limit: int = JSON_DEPTH_LIMIT) -> bool:
    """Whether JSON text nests arrays/objects deeper than limit (no recursion, no parse).

    Brackets inside strings do not count. For text that is not JSON the answer is only an
    estimate, which is enough: the parser rejects such text afterwards anyway.
    """
    if data.count(b"{") + data.count(b"[") <= limit:  # the common case: cheap and exact enough
        return False
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if match.group() in (b"{", b"["):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_json_depth(data: bytes, what: str, limit: int = JSON_DEPTH_LIMIT) -> None:
    """InputRejected when data nests deeper than limit (call it before json.loads)."""
    if json_depth_exceeds(data, limit):
        raise InputRejected(f"{what} nests JSON deeper than {limit} levels; refusing to parse it")
