"""The journal: append-only JSONL, one RFC 8785 canonical object per line, chained by SHA-256.

Each line is `{seq, prev, mono_ns, utc, type, asset?, data}` where `prev` is the hex SHA-256 of
the previous line's bytes without its newline (64 zeros for the first line); the head is the
hash of the last line. Every line reaches the OS in one write() of the full line plus "\\n", so
a SIGKILL loses nothing already appended; `sync()` (or `append(..., sync=True)`) makes the lines
written so far survive a power loss too.

Reading. `read_events` and `verify_journal` check every line in full: valid JSON, the known
fields with their types, the data matching its event type's dataclass (drill.evidence.events), integers only (within +-(2**53-1)), RFC 8785 canonical bytes, seq and
prev linked. Lines are parsed with orjson and checked against its sorted compact form, which
for ASCII lines is the canonical form; any line that fast path does not accept gets the exact,
slower check, so the first broken line is named the same way either way. A report is built
from a journal only through that full check.

`verify_journal(..., chain_only=True)` skips the per-line form and follows only the links (seq
and prev found by position, SHA-256 of each line) plus the file's SHA-256. It is what `drill
verify` runs on a journal whose SHA-256 matches a signed report: the signature pins the bytes,
the chain proves them consistent with the signed head and count, and the form was checked when
the report was built. `drill journal verify` always runs the full check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

import orjson
import rfc8785

from drill.clock import Clock, FakeClock, SystemClock, utc_iso
from drill.errors import DrillError, JournalInvalid, Location
from drill.evidence.events import (
    FREE_FORM,
    Event,
    EventDraft,
    PayloadMismatch,
    checked_json,
    decode_payload,
    payload_builtins,
    payload_data,
)
from drill.evidence.inputs import JOURNAL_LINE_LIMIT, JSON_DEPTH_LIMIT, json_depth_exceeds, open_regular

__all__ = [
    "GENESIS",
    "JournalSummary",
    "JournalWriter",
    "canonical_line",
    "file_sha256",
    "read_events",
    "verify_journal",
]

GENESIS = "0" * 64
_INT_MAX = 2**53 - 1  # RFC 8785 / I-JSON: integers must be exact as IEEE doubles
_FIELDS = frozenset({"seq", "prev", "mono_ns", "utc", "type", "data", "asset"})
_REQUIRED = frozenset({"seq", "prev", "mono_ns", "utc", "type", "data"})
_HEX = frozenset("0123456789abcdef")
_CHUNK = 1 << 20
_LINE_LIMIT = JOURNAL_LINE_LIMIT  # >= _CHUNK: _batches relies on it
_DEPTH = JSON_DEPTH_LIMIT
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

Redactor = Callable[[dict[str, object]], dict[str, object]]  # the same dict back when nothing changed


# Canonical JSON without the cost of a pure-Python serialiser: for the values _check admits
# (no floats, integers within +-(2**53-1), exact JSON types) the C encoder with sorted keys and
# compact separators writes the RFC 8785 bytes, as long as the text is ASCII (code-point key
# order then equals RFC 8785's UTF-16 order). Anything else goes through rfc8785.dumps itself.
# A property test pins the equality.
def _make_encoder() -> Callable[[Any, int], Any]:
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        return c_make_encoder(None, None, encode_basestring, None, ":", ",", True, False, False)  # type: ignore[no-any-return]
    slow = json.JSONEncoder(  # pragma: no cover - interpreters without the C accelerator
        ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True, separators=(",", ":")
    )
    return lambda value, _level: (slow.encode(value),)  # pragma: no cover


_chunks = _make_encoder()
_join = "".join
_quote = encode_basestring
_sha256 = hashlib.sha256
# Readers parse with orjson (3-5x json.loads on journal lines, and its sorted compact
# output is the canonical-form check at 1/6 of the C encoder's cost); json and _line keep the
# exact verdict for the rare line the fast path does not accept.
_loads = orjson.loads
_canonical_ascii = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS
_JSONDecodeError = orjson.JSONDecodeError


def _encode(value: object) -> str:
    return _join(_chunks(value, 0))


class _BadValue(Exception):
    """Internal: a value the journal cannot hold, with the path to it built while unwinding."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path


def _check(value: object) -> bool:
    """Raise _BadValue for anything but JSON made of integers; True when rfc8785 must serialise it."""
    if type(value) is dict:
        return _check_dict(value)
    if type(value) is list or type(value) is tuple:
        return _check_list(value)
    return _check_scalar(value)


def _check_dict(value: dict[Any, Any]) -> bool:
    unusual = False
    for key, item in value.items():
        if type(key) is not str:
            raise _BadValue(f"key {key!r} is not a string")
        kind = type(item)
        # The common scalars are tested inline: this loop is the hot path of every append.
        if kind is str or kind is bool or item is None or (kind is int and -_INT_MAX <= item <= _INT_MAX):
            continue
        try:
            unusual = _check(item) or unusual
        except _BadValue as bad:
            bad.path = f".{key}{bad.path}"
            raise
    return unusual


def _check_list(value: list[Any] | tuple[Any, ...]) -> bool:
    unusual = False
    for index, item in enumerate(value):
        kind = type(item)
        if kind is str or kind is bool or item is None or (kind is int and -_INT_MAX <= item <= _INT_MAX):
            continue
        try:
            unusual = _check(item) or unusual
        except _BadValue as bad:
            bad.path = f"[{index}]{bad.path}"
            raise
    return unusual


def _check_scalar(value: object) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return False
    if isinstance(value, float):
        raise _BadValue(f"float {value!r}: the journal holds integers only (use ms, us or basis points)")
    if isinstance(value, int):
        if -_INT_MAX <= value <= _INT_MAX:
            return kind is not int
        raise _BadValue(f"integer {value} is outside +-(2**53-1), not exact in JSON")
    # Subclasses (StrEnum, OrderedDict ...) are legal JSON but left to rfc8785 to serialise.
    if isinstance(value, str):
        return True
    if isinstance(value, dict):
        return _check_dict(value) or True
    if isinstance(value, list | tuple):
        return _check_list(value) or True
    raise _BadValue(f"{type(value).__name__} is not a JSON value")


def _dumps(value: object, what: str) -> str:
    """Canonical JSON text of value, or TypeError naming where the offending value sits."""
    try:
        unusual = _check(value)
    except _BadValue as bad:
        raise TypeError(f"journal {what}{bad.path}: {bad.reason}") from None
    text = _encode(value)
    if unusual or not text.isascii():
        try:
            text = str(rfc8785.dumps(value).decode("utf-8"))  # type: ignore[arg-type]  # _check walked it
        except rfc8785.CanonicalizationError as exc:
            raise TypeError(f"journal {what}: {exc}") from None
    return text


def _string(value: object, what: str) -> str:
    if isinstance(value, str):
        return encode_basestring(str.__str__(value))  # the same escapes as RFC 8785
    return _not_a(what, "string", value)


def _not_a(what: str, expected: str, value: object) -> str:
    raise TypeError(f"journal {what}: expected a {expected}, got {type(value).__name__}")


def canonical_line(event: Event) -> bytes:
    """The RFC 8785 bytes of one event, without the newline (the bytes its successor hashes)."""
    data = payload_data(event.payload)
    return _line(event.seq, event.prev, event.mono_ns, event.utc, event.type, event.asset, data)


def _line(seq: int, prev: str, mono_ns: int, utc: str, kind: str, asset: str | None, data: object) -> bytes:
    """The canonical line of an event whose data is plain JSON (what a reader parsed)."""
    if type(data) is dict:
        try:
            unusual = _check_dict(data)
        except _BadValue as bad:
            raise TypeError(f"journal data{bad.path}: {bad.reason}") from None
        body = _join(_chunks(data, 0))
        if unusual or not body.isascii():
            body = _dumps(data, "data")
    else:
        body = _dumps(data, "data") if isinstance(data, dict) else _not_a("data", "dict", data)
    return _assemble(seq, prev, mono_ns, utc, kind, asset, body)


def _assemble(seq: int, prev: str, mono_ns: int, utc: str, kind: str, asset: str | None, body: str) -> bytes:
    # The hot path of every append, so written flat: one call per C helper, no layers.
    if type(mono_ns) is not int or not -_INT_MAX <= mono_ns <= _INT_MAX:
        raise TypeError(f"journal mono_ns: expected an integer within +-(2**53-1), got {mono_ns!r}")
    kind_text = _quote(kind) if type(kind) is str else _string(kind, "type")
    utc_text = _quote(utc) if type(utc) is str else _string(utc, "utc")
    # Top-level keys are fixed, so they are laid out in canonical (sorted) order by hand:
    # asset, data, mono_ns, prev, seq, type, utc. seq and prev come from the writer or are checked.
    if asset is None:
        text = (
            f'{{"data":{body},"mono_ns":{mono_ns},"prev":"{prev}","seq":{seq},'
            f'"type":{kind_text},"utc":{utc_text}}}'
        )
    else:
        asset_text = _quote(asset) if type(asset) is str else _string(asset, "asset")
        text = (
            f'{{"asset":{asset_text},"data":{body},"mono_ns":{mono_ns},"prev":"{prev}","seq":{seq},'
            f'"type":{kind_text},"utc":{utc_text}}}'
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TypeError(f"journal event {kind!r}: not valid UTF-8 ({exc.reason})") from None


class _UtcStamps:
    """utc_iso(clock.utc_at(mono_ns)), formatting each second once: events come many per second."""

    __slots__ = ("_micros", "_ms", "_offset_ns", "_prefix", "_second", "_text")

    def __init__(self, clock: Clock) -> None:
        # SystemClock maps mono to wall by one constant offset taken at start-up (see clock.py).
        self._offset_ns = clock.anchor_wall_ns - clock.anchor_mono_ns if type(clock) is SystemClock else None
        self._micros = _micros_of(clock)
        self._second: int | None = None
        self._ms: int | None = None
        self._prefix = ""
        self._text = ""

    def __call__(self, mono_ns: int) -> str:
        offset = self._offset_ns
        ms = (mono_ns + offset) // 1_000_000 if offset is not None else self._micros(mono_ns) // 1000
        if ms == self._ms:  # probes on the same tick report within the same millisecond
            return self._text
        second, rest = divmod(ms, 1000)
        if second == self._second:
            text = f"{self._prefix}.{rest:03d}+00:00"
        else:
            text = utc_iso(_EPOCH + timedelta(milliseconds=ms))
            self._second, self._prefix = second, text[:-10]  # strip ".mmm+00:00"
        self._ms, self._text = ms, text
        return text


def _micros_of(clock: Clock) -> Callable[[int], int]:
    """mono_ns -> microseconds since the epoch, exactly as clock.utc_at maps it.

    FakeClock is computed in integers, like SystemClock in _UtcStamps (a datetime per event
    costs more than the rest of an append); any other clock goes through its utc_at. A test
    pins all three against utc_iso(clock.utc_at(mono_ns)).
    """
    if type(clock) is FakeClock:
        fake = clock
        return lambda mono_ns: (fake.epoch - _EPOCH) // _ONE_US + mono_ns // 1000
    utc_at = clock.utc_at
    return lambda mono_ns: (utc_at(mono_ns) - _EPOCH) // _ONE_US


# A frozen dataclass __init__ goes through object.__setattr__ per field, which doubles its cost;
# JournalWriter.append fills the slots of a new Event directly (the same immutable object).
_new_object = object.__new__


def _slot_setter(name: str) -> Callable[[Event, Any], None]:
    setter: Callable[[Event, Any], None] = getattr(Event, name).__set__
    return setter


_set_seq = _slot_setter("seq")
_set_prev = _slot_setter("prev")
_set_mono_ns = _slot_setter("mono_ns")
_set_utc = _slot_setter("utc")
_set_payload = _slot_setter("payload")
_set_asset = _slot_setter("asset")


class JournalWriter:
    """Appends events to a new journal file; one writer per file, used from one thread."""

    __slots__ = ("_count", "_failure", "_fd", "_head", "_path", "_redact", "_stamp", "_synced")

    def __init__(self, fd: int, path: Path, clock: Clock, redact: Redactor | None) -> None:
        self._fd: int | None = fd
        self._path = path
        self._stamp = _UtcStamps(clock)
        self._redact = redact
        self._head = GENESIS
        self._count = 0
        self._synced = 0
        self._failure = ""  # why the journal was closed by a failed write or sync

    @classmethod
    def create(cls, path: str | os.PathLike[str], clock: Clock, redact: Redactor | None = None) -> Self:
        """Create a new journal at path; refuses (DrillError) when the file already exists."""
        target = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(target, flags, 0o644)
        except FileExistsError:
            raise DrillError(
                f"journal {target} already exists; refusing to overwrite evidence",
                hint="every run writes a fresh journal: use a new run directory or move the old one away",
            ) from None
        except OSError as exc:
            raise DrillError(f"cannot create journal {target}: {exc.strerror}") from None
        _fsync_dir(target.parent)  # the new directory entry must survive a power loss too
        return cls(fd, target, clock, redact)

    @property
    def path(self) -> Path:
        """Where this journal is written."""
        return self._path

    @property
    def head(self) -> str:
        """Hex SHA-256 of the last line written (64 zeros before the first)."""
        return self._head

    @property
    def count(self) -> int:
        """Number of events written (also the seq of the last one)."""
        return self._count

    def append(self, draft: EventDraft, *, sync: bool = False) -> Event:
        """Stamp seq, prev and utc on draft, redact, write one line and hand it to the OS; fsync if sync.

        Raises TypeError (nothing written) for a payload that does not match its event type or
        holds what JSON cannot hold exactly (floats, integers beyond +-(2**53-1)). The returned
        Event carries the payload as written (redacted when a secret was scrubbed from it).
        """
        fd = self._fd
        if fd is None:
            raise ValueError(f"journal {self._path} is closed")  # a bug in the caller
        payload, asset, mono_ns = draft.payload, draft.asset, draft.mono_ns
        try:
            data = payload_builtins(payload)
            kind = payload.TYPE
            if self._redact is not None:
                redacted = self._redact(data)
                if redacted is not data:  # rare: only events that quote a secret are rebuilt
                    data, payload = redacted, decode_payload(kind, redacted)
                if asset is not None:
                    asset = str(self._redact({"asset": asset})["asset"])
            free_form = type(payload) in FREE_FORM
            # free-form values (the raw playbook document) checked one by one, naming the bad one
            body = _dumps(data, "data") if free_form else ""
            raw = checked_json(type(payload), data)  # what is written reads back as its type
        except PayloadMismatch as exc:
            raise TypeError(f"journal data: {exc}") from None
        if not free_form:  # already the RFC 8785 bytes when ASCII; otherwise keys sorted by UTF-16
            body = raw.decode("ascii") if raw.isascii() else _dumps(data, "data")
        seq = self._count + 1
        prev = self._head
        utc = self._stamp(mono_ns) if type(mono_ns) is int else ""  # _assemble rejects a non-int
        line = _assemble(seq, prev, mono_ns, utc, kind, asset, body)
        payload_bytes = line + b"\n"
        try:
            written = os.write(fd, payload_bytes)
            if written != len(payload_bytes):
                _write_rest(fd, payload_bytes[written:])
        except OSError as exc:
            self._drop_torn_line(fd, len(payload_bytes))
            raise self._fail("write", exc) from None
        self._head = _sha256(line).hexdigest()
        self._count = seq
        if sync:
            self.sync()
        event: Event = _new_object(Event)
        _set_seq(event, seq)
        _set_prev(event, prev)
        _set_mono_ns(event, mono_ns)
        _set_utc(event, utc)
        _set_payload(event, payload)
        _set_asset(event, asset)
        return event

    @property
    def synced(self) -> int:
        """Number of events known to be on stable storage (fsynced)."""
        return self._synced

    def sync(self) -> None:
        """Make every line written so far durable (fdatasync); cheap when nothing is new.

        Safe to call from a worker thread (asyncio.to_thread) while the loop keeps appending:
        only the events written before the call are counted as synced.
        """
        fd, target = self._fd, self._count
        if fd is None or self._synced >= target:
            return
        try:
            _fdatasync(fd)
        except OSError as exc:
            raise self._fail("sync", exc) from None
        self._synced = max(self._synced, target)

    def _fail(self, what: str, exc: OSError) -> DrillError:
        # After a failed write or fsync the file's tail is unknown (a partial line, or pages the
        # kernel dropped), so appending more could bury a broken line mid-file: stop writing.
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._failure = f"cannot {what} journal {self._path}: {exc.strerror or exc}"
        return DrillError(
            f"{self._failure}; the journal is closed",
            hint="free disk space or fix the file system; `drill journal verify --allow-torn-tail` "
            "checks what was written",
        )

    @property
    def failure(self) -> str:
        """Why a failed write or sync closed the journal ('' while it is healthy)."""
        return self._failure

    def _drop_torn_line(self, fd: int, line_size: int) -> None:
        """After a failed write, cut off the part of the line that reached the file (best effort):
        every complete line stays as written, and the journal ends at a line boundary, so what
        was written still verifies and folds. A line never holds a newline but its last byte."""
        with contextlib.suppress(OSError):
            end = os.fstat(fd).st_size
            start = max(0, end - line_size)
            with open(self._path, "rb") as reader:
                reader.seek(start)
                tail = reader.read(end - start)
            keep = start + tail.rfind(b"\n") + 1  # start itself when no newline is in the tail
            if keep < end:
                os.ftruncate(fd, keep)

    def close(self) -> None:
        """Sync and close; closing twice is harmless."""
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _write_rest(fd: int, rest: bytes) -> None:
    # One write() normally takes the whole line; after a short write (disk nearly full, signal)
    # the remainder follows at once, so the line's bytes stay contiguous in the file.
    while rest:
        rest = rest[os.write(fd, rest) :]


def _fdatasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. some platforms); the file itself is still synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class JournalSummary:
    """What a verified journal is: file SHA-256, number of intact events, chain head.

    sha256 is of the whole file as it is on disk (what `sha256sum journal.jsonl` prints);
    torn_bytes counts an incomplete last line ignored under allow_torn_tail (0 when none).
    """

    sha256: str
    count: int
    head: str
    torn_bytes: int = 0


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a regular file's bytes, read in chunks (InputRejected for a FIFO, a device ...)."""
    digest = hashlib.sha256()
    with open_regular(path, "evidence file") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_journal(
    path: str | os.PathLike[str], *, allow_torn_tail: bool = False, chain_only: bool = False
) -> JournalSummary:
    """Check every line of a journal; raise JournalInvalid naming the first broken line.

    With allow_torn_tail, an incomplete last line (no newline: a write cut short by a crash)
    is left out and the summary covers the intact prefix. chain_only checks the links (seq,
    prev) and the file's SHA-256 but not each line's form: for a file whose SHA-256 a verified
    signature already covers (see the module docstring); a break is still named exactly.
    """
    if not chain_only:  # the full check reads every event into its type, as a report build does
        stream = JournalStream(path, allow_torn_tail=allow_torn_tail)
        for _ in stream:
            pass
        return stream.summary
    scan = _Scan(path, allow_torn_tail)
    scan.walk_chain()
    return JournalSummary(scan.file_sha256, scan.count, scan.head, scan.torn_bytes)


class JournalStream:
    """The events of a journal, each line checked as verify_journal does; once the stream is
    exhausted, `summary` holds what verify_journal would return, without a second pass."""

    def __init__(self, path: str | os.PathLike[str], *, allow_torn_tail: bool = False) -> None:
        self._scan = _Scan(path, allow_torn_tail)
        self._done = False

    def __iter__(self) -> Iterator[Event]:
        scan = self._scan
        for raw in scan.records(typed=True):
            try:
                payload = decode_payload(raw["type"], raw["data"])
            except PayloadMismatch as exc:
                raise scan.exact_verdict(raw, str(exc)) from None
            # Filled slot by slot as in JournalWriter.append: a frozen dataclass __init__ costs 3x more.
            event: Event = _new_object(Event)
            _set_seq(event, raw["seq"])
            _set_prev(event, raw["prev"])
            _set_mono_ns(event, raw["mono_ns"])
            _set_utc(event, raw["utc"])
            _set_payload(event, payload)
            _set_asset(event, raw.get("asset"))
            yield event
        self._done = True

    @property
    def summary(self) -> JournalSummary:
        if not self._done:
            raise RuntimeError("the journal stream has not been read to its end")
        scan = self._scan
        return JournalSummary(scan.file_sha256, scan.count, scan.head, scan.torn_bytes)


def read_events(path: str | os.PathLike[str], *, allow_torn_tail: bool = False) -> Iterator[Event]:
    """Stream the events of a journal, checking each line as verify_journal does (JournalInvalid at a broken line)."""
    return iter(JournalStream(path, allow_torn_tail=allow_torn_tail))


_UNTYPED = frozenset(cls.TYPE for cls in FREE_FORM)


def _fast_record(line: bytes, number: int, head: str, typed: bool = False) -> dict[str, Any] | None:
    """The parsed line when it certainly passes _Scan.check_line; None sends it there for the verdict.

    Accepting here implies check_line accepts: the same fields and types, seq and prev linked,
    only integers within +-(2**53-1) (orjson reads a float, or an integer beyond 64 bits, as a
    float, which _check_dict rejects), and the line equal to orjson's sorted compact form, which
    for ASCII text is byte for byte the C encoder's, i.e. _line's (a test pins every ASCII
    character). Non-ASCII lines take the exact path: there RFC 8785 sorts keys by UTF-16 units.
    """
    try:
        raw = _loads(line)
    except _JSONDecodeError:
        return None
    if type(raw) is not dict:
        return None
    try:
        seq, prev, mono_ns, utc, kind, data = (
            raw["seq"],
            raw["prev"],
            raw["mono_ns"],
            raw["utc"],
            raw["type"],
            raw["data"],
        )
    except KeyError:
        return None
    if len(raw) != 6 and (len(raw) != 7 or "asset" not in raw):  # exactly _REQUIRED or _FIELDS
        return None
    if type(seq) is not int or seq != number or prev != head:
        return None
    if type(mono_ns) is not int or not -_INT_MAX <= mono_ns <= _INT_MAX:
        return None
    if type(utc) is not str or type(kind) is not str or type(data) is not dict:
        return None
    if "asset" in raw and type(raw["asset"]) is not str:
        return None
    if not typed or kind in _UNTYPED:
        try:
            if _check_dict(data):
                return None
        except _BadValue:
            return None
    if not line.isascii() or _canonical_ascii(raw, option=_SORT_KEYS) != line:
        return None
    return raw


class _Scan:
    """One streaming pass over a journal, read in 1 MiB chunks; keeps the file digest and totals."""

    def __init__(self, path: str | os.PathLike[str], allow_torn_tail: bool) -> None:
        self.path = Path(path)
        self.allow_torn_tail = allow_torn_tail
        self.count = 0
        self.head = GENESIS
        self.torn_bytes = 0
        self.last_line = b""
        self._digest = hashlib.sha256()

    @property
    def file_sha256(self) -> str:
        return self._digest.hexdigest()

    def records(self, *, typed: bool = False) -> Iterator[dict[str, Any]]:
        """Each line parsed and fully checked (fast path, else check_line for the exact verdict).

        typed: the caller checks each line's data against its event type (integers exact, no
        floats), so the fast path leaves that walk to it; `last_line` is then the line yielded,
        for `exact_verdict`.
        """
        for batch in self._batches():
            number, head = self.count, self.head
            for line in batch:
                number += 1
                self.last_line = line
                # Nesting is bounded before any parser or checker recurses into the line; the
                # bracket count is the cheap bound, exact only for the rare line with many.
                if line.count(b"{") + line.count(b"[") > _DEPTH and json_depth_exceeds(line, _DEPTH):
                    self.count, self.head = number - 1, head
                    raise self.error(number, f"nested deeper than {_DEPTH} levels")
                raw = _fast_record(line, number, head, typed)
                if raw is None:
                    self.count, self.head = number - 1, head
                    raw = self.check_line(number, line)
                head = _sha256(line).hexdigest()
                yield raw
            self.count, self.head = number, head

    def exact_verdict(self, raw: dict[str, Any], problem: str) -> JournalInvalid:
        """The error for the last line yielded whose data does not fit its type: the exact check's
        own words when the line breaks a rule of the format (a float, say), else `problem`."""
        number = int(raw["seq"])
        self.count, self.head = number - 1, str(raw["prev"])  # linked: the fast path checked both
        self.check_line(number, self.last_line)
        return self.error(number, problem)

    def walk_chain(self) -> None:
        """Follow seq and prev from line to line without parsing (lines are RFC 8785, keys sorted).

        The top-level `"prev":"` is the last one in a canonical line: data, the only field
        that can nest, sorts before prev, and seq, type and utc after it cannot hold a bare
        quote. A line whose link is not found there goes through check_line, which names
        what is wrong with it. Lines that link are not parsed, so their form is not checked.
        """
        number, head = self.count, self.head.encode()
        for batch in self._batches():
            for line in batch:
                number += 1
                at = line.rfind(b'"prev":"') + 8
                if (
                    at == 7
                    or not line.startswith(head, at)
                    or not line.startswith(b'","seq":%d,"type":' % number, at + 64)
                ):
                    self.count, self.head = number - 1, head.decode()
                    self.check_line(number, line)
                head = _sha256(line).hexdigest().encode()
            self.count, self.head = number, head.decode()  # per batch: a torn tail is named after it

    def _batches(self) -> Iterator[list[bytes]]:
        """The complete lines (without "\\n") chunk by chunk; hashes the file as it goes.

        Only a regular file is read (a FIFO or /dev/zero is refused, InputRejected), and no line
        may be longer than JOURNAL_LINE_LIMIT: the file is streamed, but a line is held whole.
        """
        try:
            stream: BinaryIO = open_regular(self.path, "journal")
        except OSError as exc:
            raise JournalInvalid(
                f"cannot read journal: {exc.strerror}", location=Location(str(self.path))
            ) from None
        update = self._digest.update
        rest = b""
        try:
            while chunk := stream.read(_CHUNK):
                update(chunk)
                lines = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
                rest = lines.pop()
                # Only the first line of a batch can span chunks (a chunk is at most the limit).
                if lines and len(lines[0]) > _LINE_LIMIT:
                    raise self._too_long(self.count + 1)
                if lines:
                    yield lines
                if len(rest) > _LINE_LIMIT:
                    raise self._too_long(self.count + 1)  # the lines before it were taken above
        finally:
            stream.close()
        if rest:
            self._torn(self.count + 1, rest)

    def _too_long(self, number: int) -> JournalInvalid:
        limit = f"{_LINE_LIMIT // (1 << 20)} MiB"
        return self.error(
            number, f"longer than {limit} (the limit for one journal line); refusing to read on"
        )

    def _torn(self, number: int, raw_line: bytes) -> None:
        if not self.allow_torn_tail:
            raise self.error(
                number,
                f"incomplete last line ({len(raw_line)} bytes, no newline): a write cut short",
                hint="a crash can leave this; `drill journal verify --allow-torn-tail` checks the rest",
            )
        self.torn_bytes = len(raw_line)

    def check_line(self, number: int, line: bytes) -> dict[str, Any]:
        """The exact check of one line against self.head, naming the first thing wrong with it."""
        if json_depth_exceeds(line, _DEPTH):  # json.loads recurses: RecursionError past ~1000
            raise self.error(number, f"nested deeper than {_DEPTH} levels")
        try:
            raw = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            raise self.error(number, "not valid JSON") from None
        if type(raw) is not dict:
            raise self.error(number, "not a JSON object")
        self._check_fields(number, raw)
        if raw["seq"] != number:
            raise self.error(number, f"seq {raw['seq']} expected {number}")
        if raw["prev"] != self.head:
            what = "the genesis hash (64 zeros)" if number == 1 else f"line {number - 1}"
            raise self.error(number, f"prev hash does not match {what}")
        try:
            canonical = _line(
                raw["seq"],
                raw["prev"],
                raw["mono_ns"],
                raw["utc"],
                raw["type"],
                raw.get("asset"),
                raw["data"],
            )
        except TypeError as exc:
            raise self.error(number, str(exc).removeprefix("journal ")) from None
        if canonical != line:
            raise self.error(number, "not in RFC 8785 canonical form (edited by hand?)")
        return raw

    def _check_fields(self, number: int, raw: dict[str, Any]) -> None:
        missing = _REQUIRED - raw.keys()
        if missing:
            raise self.error(number, f"missing field(s) {', '.join(sorted(missing))}")
        extra = raw.keys() - _FIELDS
        if extra:
            raise self.error(number, f"unknown field(s) {', '.join(sorted(extra))}")
        for name in ("seq", "mono_ns"):
            if type(raw[name]) is not int:
                raise self.error(number, f"{name} is not an integer")
        for name in ("utc", "type"):
            if type(raw[name]) is not str:
                raise self.error(number, f"{name} is not a string")
        if "asset" in raw and type(raw["asset"]) is not str:
            raise self.error(number, "asset is not a string")
        if type(raw["data"]) is not dict:
            raise self.error(number, "data is not an object")
        prev = raw["prev"]
        if type(prev) is not str or len(prev) != 64 or not _HEX.issuperset(prev):
            raise self.error(number, "prev is not a lowercase hex SHA-256")

    def error(self, number: int, message: str, hint: str = "") -> JournalInvalid:
        return JournalInvalid(f"line {number}: {message}", hint=hint, location=Location(str(self.path)))
