"""A watch folder: journal segments segment-000001.jsonl, ... each chained to the one before, sealed.

Each segment is an ordinary drill journal (drill.evidence.journal: hash-chained, one write() per
line, fsync on state changes). Its first event, watch.segment, names the previous segment's file
and chain head, so the folder is one chain made of files. A closed segment gets a seal,
segment-N.seal: RFC 8785 JSON naming the file, its event count, head, SHA-256 and first/last
UTC, and (format 2) the segment's digest for SLA reports (drill.sla.digest), written atomically
(and fsynced) after the segment was closed; with a key, an SSHSIG
signature of the seal's bytes beside it (segment-N.seal.<principal>.sig, namespace
drill-watch-segment-v1), which `ssh-keygen -Y verify` checks without drill.

A segment left unsealed by a crash is sealed when the watch restarts ("after restart"); an
incomplete last line (a write cut short) is left in the file, as the journal reader leaves it,
and counted in the seal's torn_bytes, so the file's bytes stay exactly what was written and
the seal's SHA-256 covers them. Only the last segment of a folder may be unsealed: the one being
written.

What this cannot show: segments deleted from the end of a folder leave no trace in the ones
before them (a chain proves what follows from what, not that nothing follows).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drill.clock import parse_utc
from drill.errors import JournalInvalid, VerificationFailed
from drill.evidence.canonical import canonical_bytes, is_canonical
from drill.evidence.events import WatchGap, WatchSegment
from drill.evidence.journal import GENESIS, JournalStream, file_sha256
from drill.report.sign import (
    SignatureMalformed,
    check_principal,
    parse_signature,
    sign_bytes,
    signature_matches,
)
from drill.report.verify import AllowedSigner, verify_signature
from drill.sla.digest import DigestBuilder, SegmentDigest

NAMESPACE = "drill-watch-segment-v1"
SEAL_KIND = "drill-watch-segment-seal"
SEAL_FORMAT = 2  # 2: the seal carries the segment's digest (drill.sla.digest); 1 is still read
_FORMATS = (1, 2)
_SEGMENT = re.compile(r"segment-(\d{6,})\.jsonl")
_LINE = re.compile(r"line (\d+): ")

SealedHow = Literal["at rotation", "at stop", "after restart"]


def segment_name(number: int) -> str:
    """segment-000001.jsonl: six digits, enough for a century of hourly segments (876,600)."""
    return f"segment-{number:06d}.jsonl"


def seal_path(segment: Path) -> Path:
    return segment.with_suffix(".seal")


def segments_in(folder: Path) -> list[tuple[int, Path]]:
    """The segment files of a watch folder, by number (other files are ignored)."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _SEGMENT.fullmatch(entry.name)
        if match is not None:
            found.append((int(match.group(1)), entry))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Seal:
    """What a closed segment was when it was closed: the digest an auditor compares it with."""

    file: str
    segment: int
    events: int
    head: str
    sha256: str
    first_utc: str  # "" for a segment with no intact event
    last_utc: str
    sealed: SealedHow
    sealed_utc: str
    previous_file: str
    previous_head: str
    torn_bytes: int = 0  # an incomplete last line left in the file (a write cut short)
    digest: SegmentDigest | None = None  # what the segment says for an SLA report (format 2)
    format: int = SEAL_FORMAT

    def to_bytes(self) -> bytes:
        """The seal's stored bytes: RFC 8785, so a signature covers reproducible bytes."""
        data: dict[str, object] = {
            "kind": SEAL_KIND,
            "format": self.format,
            "file": self.file,
            "segment": self.segment,
            "events": self.events,
            "head": self.head,
            "sha256": self.sha256,
            "first_utc": self.first_utc,
            "last_utc": self.last_utc,
            "sealed": self.sealed,
            "sealed_utc": self.sealed_utc,
            "previous_file": self.previous_file,
            "previous_head": self.previous_head,
            "torn_bytes": self.torn_bytes,
        }
        if self.format >= 2:
            data["digest"] = self.digest.to_data() if self.digest is not None else None
        return canonical_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Seal:
        """A stored seal; ValueError saying why when it is not one (or not in canonical form)."""
        if not is_canonical(data):
            raise ValueError("not RFC 8785 canonical JSON (edited by hand?)")
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("kind") != SEAL_KIND or raw.get("format") not in _FORMATS:
            raise ValueError(f"not a {SEAL_KIND} of format {' or '.join(map(str, _FORMATS))}")
        try:
            seal = cls(**{name: raw[name] for name in _SEAL_FIELDS}, format=raw["format"])
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]}") from None
        digest = raw.get("digest")
        if digest is not None:
            try:
                seal = replace(seal, digest=SegmentDigest.from_data(digest))
            except (KeyError, TypeError, ValueError) as exc:
                what = f"no {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(f"a malformed digest ({what})") from None
        if seal.sealed not in ("at rotation", "at stop", "after restart"):
            raise ValueError(f"sealed {seal.sealed!r} is not one of at rotation, at stop, after restart")
        return seal


_SEAL_FIELDS = (
    "file",
    "segment",
    "events",
    "head",
    "sha256",
    "first_utc",
    "last_utc",
    "sealed",
    "sealed_utc",
    "previous_file",
    "previous_head",
    "torn_bytes",
)


@dataclass(frozen=True, slots=True)
class SegmentSigner:
    """The key that signs every seal of this watch (loaded once, at start)."""

    key: Ed25519PrivateKey
    principal: str

    def __post_init__(self) -> None:
        check_principal(self.principal)

    def signature_path(self, seal: Path) -> Path:
        return seal.with_name(f"{seal.name}.{self.principal}.sig")


def write_seal(segment: Path, seal: Seal, signer: SegmentSigner | None) -> Path:
    """Write segment-N.seal (and its signature) atomically and durably; returns the seal's path."""
    target = seal_path(segment)
    data = seal.to_bytes()
    _write_durably(target, data)
    if signer is not None:
        _write_durably(signer.signature_path(target), sign_bytes(data, signer.key, NAMESPACE).encode("ascii"))
    return target


def _write_durably(target: Path, data: bytes) -> None:
    """tmp file, fsync, rename over, fsync the folder: a crash leaves the old file or the new one."""
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_seal(segment: Path) -> Seal | None:
    """The segment's seal, None when it has none; ValueError when the seal file is not a seal."""
    found = read_seal_bytes(segment)
    return found[0] if found is not None else None


def read_seal_bytes(segment: Path) -> tuple[Seal, bytes] | None:
    """As read_seal, with the bytes stored (what a signature covers)."""
    try:
        data = seal_path(segment).read_bytes()
    except FileNotFoundError:
        return None
    return Seal.from_bytes(data), data


# ---------------------------------------------------------------- reading a segment


@dataclass(frozen=True, slots=True)
class SegmentScan:
    """One checked pass over a segment: its totals, its first event, the gaps it records."""

    events: int
    head: str
    sha256: str
    torn_bytes: int
    first_utc: str
    last_utc: str
    opened: WatchSegment | None  # its first event, when that is a watch.segment
    gaps: tuple[WatchGap, ...] = ()
    digest: SegmentDigest | None = None


def scan_segment(path: Path, *, allow_torn_tail: bool, tracked: Sequence[str] | None = None) -> SegmentScan:
    """Check every line (JournalInvalid at the first broken one); with `tracked` (the probes whose
    round trips to keep), digest the segment too, for a seal. State bounded as DigestBuilder's,
    plus one gap per restart."""
    stream = JournalStream(path, allow_torn_tail=allow_torn_tail)
    first_utc = last_utc = ""
    opened: WatchSegment | None = None
    gaps: list[WatchGap] = []
    builder = DigestBuilder(tracked=tracked) if tracked is not None else None
    for event in stream:
        if builder is not None:
            builder.take(event)
        if not first_utc:
            first_utc = event.utc
            if isinstance(event.payload, WatchSegment):
                opened = event.payload
        last_utc = event.utc
        if isinstance(event.payload, WatchGap):
            gaps.append(event.payload)
    summary = stream.summary
    return SegmentScan(
        summary.count,
        summary.head,
        summary.sha256,
        summary.torn_bytes,
        first_utc,
        last_utc,
        opened,
        tuple(gaps),
        builder.finish() if builder is not None and summary.count else None,
    )


def seal_of(path: Path, number: int, scan: SegmentScan, how: SealedHow, sealed_utc: str) -> Seal:
    """The seal of a scanned (or just written) segment."""
    opened = scan.opened
    return Seal(
        file=path.name,
        segment=number,
        events=scan.events,
        head=scan.head,
        sha256=scan.sha256,
        first_utc=scan.first_utc,
        last_utc=scan.last_utc,
        sealed=how,
        sealed_utc=sealed_utc,
        previous_file=opened.previous_file if opened is not None else "",
        previous_head=opened.previous_head if opened is not None else "",
        torn_bytes=scan.torn_bytes,
        digest=scan.digest,
    )


# ---------------------------------------------------------------- verifying a folder


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a watch folder: the file, the line (0: the file as a whole), what."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass(frozen=True, slots=True)
class SegmentCheck:
    file: str
    segment: int
    events: int
    head: str
    sha256: str
    first_utc: str
    last_utc: str
    sealed: str  # at rotation | at stop | after restart | "" (open: the segment being written)
    torn_bytes: int
    signed_by: tuple[str, ...] = ()  # principals whose signature matches the seal


@dataclass(frozen=True, slots=True)
class GapRecord:
    """A span the watch recorded as no data (from a watch.gap event)."""

    file: str  # the segment that recorded it
    from_utc: str
    to_utc: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class WatchVerification:
    folder: str
    segments: tuple[SegmentCheck, ...]
    gaps: tuple[GapRecord, ...]
    problems: tuple[Problem, ...]
    signatures_trusted: bool = False  # checked against an allowed_signers file

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.segments)


@dataclass(slots=True)
class _Verifier:
    folder: Path
    allowed: tuple[AllowedSigner, ...] | None
    problems: list[Problem] = field(default_factory=list)
    checks: list[SegmentCheck] = field(default_factory=list)
    gaps: list[GapRecord] = field(default_factory=list)
    previous_file: str = ""
    previous_head: str = GENESIS
    previous_events: int = 0
    last_utc: str = ""  # of the last event of the segments before (for the gap's start)
    last_utc_file: str = ""

    def problem(self, file: str, message: str, line: int = 0) -> None:
        self.problems.append(Problem(file, line, message))

    def run(self) -> WatchVerification:
        found = segments_in(self.folder)
        if not found:
            self.problem(str(self.folder), "no watch segments (segment-000001.jsonl ...) here")
        for index, (number, path) in enumerate(found):
            if number != index + 1:
                self.problem(segment_name(index + 1), "missing: the segments are not numbered 1, 2, 3 ...")
                break
            self.segment(number, path, last=index == len(found) - 1)
        return WatchVerification(
            str(self.folder),
            tuple(self.checks),
            tuple(self.gaps),
            tuple(self.problems),
            signatures_trusted=self.allowed is not None,
        )

    def segment(self, number: int, path: Path, *, last: bool) -> None:
        name = path.name
        seal: Seal | None = None
        try:
            seal = read_seal(path)
        except (ValueError, OSError) as exc:
            self.problem(seal_path(path).name, f"not a readable seal: {exc}")
        if seal is None and not last:
            self.problem(name, "not sealed, and a later segment exists")
        allow_torn = (seal is not None and seal.torn_bytes > 0) or (seal is None and last)
        tracked = None  # no digest to check: a format-1 seal, or the open segment
        if seal is not None and seal.format >= 2:
            tracked = seal.digest.tracked if seal.digest is not None else ()
        try:
            scan = scan_segment(path, allow_torn_tail=allow_torn, tracked=tracked)
        except JournalInvalid as exc:
            match = _LINE.match(exc.message)
            self.problem(
                name,
                exc.message[match.end() :] if match else exc.message,
                int(match.group(1)) if match else 0,
            )
            self._follow_broken(path, seal)
            return
        self._link(number, name, scan, seal)
        signed_by: tuple[str, ...] = ()
        if seal is not None:
            self._match_seal(path, number, scan, seal)
            signed_by = self._signatures(path, seal)
        self._gaps(name, scan)
        self.checks.append(
            SegmentCheck(
                name,
                number,
                scan.events,
                scan.head,
                scan.sha256,
                scan.first_utc,
                scan.last_utc,
                seal.sealed if seal is not None else "",
                scan.torn_bytes,
                signed_by,
            )
        )
        self.previous_file, self.previous_head, self.previous_events = name, scan.head, scan.events
        if scan.last_utc:
            self.last_utc, self.last_utc_file = scan.last_utc, name

    def _follow_broken(self, path: Path, seal: Seal | None) -> None:
        """After a broken segment: does the file still match its seal? The next segment's link is
        checked against what the seal claimed."""
        if seal is not None and file_sha256(path) != seal.sha256:
            self.problem(
                seal_path(path).name, f"does not match {path.name} (sha256 differs): changed after sealing"
            )
        self.previous_file = path.name
        self.previous_head = seal.head if seal is not None else ""
        self.previous_events = seal.events if seal is not None else 0
        if seal is not None and seal.last_utc:
            self.last_utc, self.last_utc_file = seal.last_utc, path.name

    def _link(self, number: int, name: str, scan: SegmentScan, seal: Seal | None) -> None:
        opened = scan.opened
        if opened is None:
            if scan.events == 0 and (seal is None or seal.sealed == "after restart"):
                return  # cut short while it was being opened: nothing was recorded in it
            self.problem(name, "the first event is not watch.segment", 1)
            return
        if opened.segment != number:
            self.problem(name, f"watch.segment says segment {opened.segment}, the file is {number}", 1)
        if opened.previous_file != self.previous_file:
            self.problem(
                name,
                f"names {opened.previous_file or 'no segment'!s} as previous, not {self.previous_file}",
                1,
            )
        elif self.previous_head and opened.previous_head != self.previous_head:
            self.problem(
                name, f"previous head does not match the chain head of {self.previous_file or 'genesis'}", 1
            )
        elif opened.previous_events != self.previous_events:
            self.problem(
                name,
                f"says {self.previous_file} held {opened.previous_events} events; it holds {self.previous_events}",
                1,
            )
        if opened.reason == "restart" and not scan.gaps:
            self.problem(name, "opened after a restart but records no gap")

    def _match_seal(self, path: Path, number: int, scan: SegmentScan, seal: Seal) -> None:
        expected = seal_of(path, number, scan, seal.sealed, seal.sealed_utc)
        different = [name for name in _SEAL_FIELDS if getattr(expected, name) != getattr(seal, name)]
        if seal.format >= 2 and expected.digest != seal.digest:
            different.append("digest")
        if different:
            self.problem(
                seal_path(path).name,
                f"does not match {path.name} ({', '.join(different)} differ): changed after sealing",
            )

    def _signatures(self, path: Path, seal: Seal) -> tuple[str, ...]:
        good = []
        for sig, principal, problem in seal_signatures(path, seal, self.allowed):
            if problem:
                self.problem(sig.name, problem)
            else:
                good.append(principal)
        return tuple(good)

    def _gaps(self, name: str, scan: SegmentScan) -> None:
        for gap in scan.gaps:
            self.gaps.append(GapRecord(name, gap.from_utc, gap.to_utc, gap.duration_ms))
            if gap.from_utc != self.last_utc or gap.previous_file != self.last_utc_file:
                self.problem(
                    name,
                    f"the gap starts at {gap.from_utc} ({gap.previous_file}), but the evidence before it"
                    f" ends at {self.last_utc or 'nothing'} ({self.last_utc_file or 'no segment'})",
                )


def seal_signatures(
    path: Path, seal: Seal, allowed: tuple[AllowedSigner, ...] | None, data: bytes | None = None
) -> list[tuple[Path, str, str]]:
    """(signature file, principal, problem or '') for every signature of the segment's seal
    (`data`: its stored bytes, when the caller has them); with `allowed`, a signature is good only
    when that allowed_signers file trusts its key."""
    target = seal_path(path)
    data = seal.to_bytes() if data is None else data
    out = []
    for sig in sorted(path.parent.glob(f"{target.name}.*.sig")):
        principal = sig.name.removeprefix(f"{target.name}.").removesuffix(".sig")
        out.append((sig, principal, _signature_problem(sig, data, principal, seal, allowed)))
    return out


def _signature_problem(
    sig: Path, data: bytes, principal: str, seal: Seal, allowed: tuple[AllowedSigner, ...] | None
) -> str:
    try:
        armored = sig.read_bytes()
        parsed = parse_signature(armored)
        if parsed.namespace != NAMESPACE:
            return f"signed for namespace {parsed.namespace!r}, expected {NAMESPACE!r}"
        if not signature_matches(data, parsed):
            return f"does not match {seal_path(Path(seal.file)).name} (altered after signing)"
    except (OSError, SignatureMalformed) as exc:
        return str(exc)
    if allowed is not None:
        at: datetime = parse_utc(seal.sealed_utc)
        try:
            verify_signature(data, armored, allowed, principal, NAMESPACE, at, source=sig.name)
        except VerificationFailed as exc:
            return exc.message.removeprefix(f"{sig.name}: ")
    return ""


def verify_watch(
    folder: Path | str, *, allowed_signers: tuple[AllowedSigner, ...] | None = None
) -> WatchVerification:
    """Check a watch folder: every segment's chain, each linked to the previous head, every seal
    matching its segment (and its signatures, trusted by allowed_signers when given), the gaps."""
    return _Verifier(Path(folder), allowed_signers).run()


# ---------------------------------------------------------- an SLA report from the seals


@dataclass(slots=True)
class SealReader:
    """The seals beside the journals an SLA report reads.

    A seal always tells whether its segment ends in a torn line (left by a crash, not used). With
    `trusted` (an allowed_signers file's entries), a segment whose seal is signed by a trusted key
    and carries a digest is not re-read line by line: the file's SHA-256 is checked against the
    seal (a file changed after sealing is refused), the seal's link to the segment before it is
    checked against that one's seal, and the digest stands for the lines, as the signer sealed
    them. Without it, every line is read and verified."""

    trusted: tuple[AllowedSigner, ...] | None = None
    signed_by: dict[str, str] = field(default_factory=dict)  # file -> the trusted principal used
    _seals: dict[Path, tuple[Seal, bytes] | None] = field(default_factory=dict)  # each read once

    def _seal(self, path: Path) -> tuple[Seal, bytes] | None:
        """The segment's seal and its stored bytes (None: none, or not a usable seal)."""
        if path not in self._seals:
            try:
                self._seals[path] = read_seal_bytes(path)
            except (ValueError, OSError):
                self._seals[path] = None
        return self._seals[path]

    def torn_bytes(self, path: Path) -> int:
        """The torn tail the segment's seal records (0: no seal, or none recorded)."""
        found = self._seal(path)
        return found[0].torn_bytes if found is not None and found[0].file == path.name else 0

    def digest(self, path: Path, tracked: Sequence[str]) -> SegmentDigest | None:
        """The trusted seal's digest (None: read the lines). JournalInvalid when the signed seal
        and the file (or the seal before it) disagree."""
        if self.trusted is None:
            return None
        found = self._seal(path)
        if found is None:
            return None  # no seal, or not a usable one: the lines are read, and verified on their own
        seal, data = found
        if seal.digest is None or seal.file != path.name:
            return None
        if not set(tracked) <= set(seal.digest.tracked):
            return None  # the report watches round trips this watch did not keep
        good = [p for _, p, problem in seal_signatures(path, seal, self.trusted, data) if not problem]
        if not good:
            return None
        if file_sha256(path) != seal.sha256:
            raise JournalInvalid(
                f"journal {path} refused: it does not match its signed seal (sha256 differs): changed after sealing"
            )
        self._check_link(path, seal)
        self.signed_by[path.name] = good[0]
        return seal.digest

    def _check_link(self, path: Path, seal: Seal) -> None:
        if not seal.previous_file:
            return
        before = self._seal(path.with_name(seal.previous_file))
        if before is not None and before[0].head != seal.previous_head:
            raise JournalInvalid(
                f"journal {path} refused: its seal names {seal.previous_file} with head "
                f"{seal.previous_head[:12]}..., whose own seal says {before[0].head[:12]}..."
            )
