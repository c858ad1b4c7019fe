"""Read a playbook file into plain JSON-like data plus the line:col of every node.

The YAML is parsed as an event stream (libyaml through PyYAML when available: the pure-Python
parsers need ~30 s for a 10,000-asset file) and the data is built here, so that this module
alone decides what a playbook may contain: one document, a mapping at the top, string keys
without duplicates, YAML 1.2 core scalars (no `yes`/`no` booleans, dates stay strings), only
the standard tags, bounded alias expansion, bounded depth. Every problem is a Diagnostic with
FILE:LINE:COL; nothing here raises anything but PlaybookInvalid.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from drill.errors import Diagnostic, Location, PlaybookInvalid
from drill.playbook.model import Pos

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 200_000  # nodes aliases may add: a "billion laughs" file stops here, at once

try:  # libyaml: about 50x faster than the pure-Python parser
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

JsonPath = tuple[str | int, ...]
Scalar = str | int | float | bool | None
Mark = yaml.error.Mark | yaml._yaml.Mark  # PyYAML's pure and libyaml marks: line and column 0-based

_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")} | {"!"}
# YAML 1.2 printable characters; anything else means the file is not text.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
_NULL = {"", "~", "null", "Null", "NULL"}
_RESOLVE_FIRST = frozenset("+-.0123456789~nNtTfF")  # a plain scalar starting otherwise is a string
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


@dataclass(frozen=True, slots=True)
class Document:
    """A playbook file's top-level mapping as plain data, with the position of every node.

    Positions are kept per container (one list per mapping or sequence, not one entry per
    node): that halves the cost of loading a large file. An aliased container shares the
    positions of its anchor.
    """

    file: str
    data: dict[str, Any]
    sha256: str
    marks: dict[int, list[Mark | None]] = field(
        repr=False
    )  # id(container) -> [key, value, ...] or [item, ...]
    root_mark: Mark | None = field(default=None, repr=False)

    def pos(self, path: JsonPath) -> Pos:
        """Position of the value at path, or of its nearest ancestor that exists."""
        return _pos(self._mark(path, key=False))

    def key_pos(self, path: JsonPath) -> Pos:
        """Position of the key that names the value at path (the value's own for list items)."""
        return _pos(self._mark(path, key=True))

    def location(self, path: JsonPath, *, key: bool = False) -> Location:
        p = self.key_pos(path) if key else self.pos(path)
        return Location(self.file, p.line, p.col)

    def item_pos(self, items: list[Any], index: int) -> Pos:
        """Position of items[index] for a list of this document: the fast path for building."""
        entries = self.marks.get(id(items))
        return _pos(entries[index]) if entries is not None and index < len(entries) else Pos(1, 1)

    def _mark(self, path: JsonPath, *, key: bool) -> Mark | None:
        node: Any = self.data
        mark = self.root_mark
        last = len(path) - 1
        for i, part in enumerate(path):
            entries = self.marks.get(id(node))
            if entries is None:
                break
            if isinstance(node, dict) and isinstance(part, str) and part in node:
                index = 2 * list(node).index(part)
                mark = entries[index if key and i == last else index + 1]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                mark = entries[part]
            else:
                break
            node = node[part]
        return mark


def format_path(path: JsonPath) -> str:
    """assets[3].probes[0].http, the way messages name a place in the document."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic data.

    Loading a 10,000-asset playbook creates ~10^6 long-lived objects; the collector would walk
    them again and again (a third of the load time) and find nothing: plain data has no cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Stop(Exception):
    """Internal: a problem after which parsing cannot go on."""


def load_document(path: str | Path) -> Document:
    """Read and parse a playbook file; raises PlaybookInvalid with one diagnostic per problem."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PlaybookInvalid([Diagnostic(Location(name), "error", f"cannot read file: {reason}")]) from None
    return parse_document(raw, name)


def parse_document(raw: bytes, name: str = "<playbook>") -> Document:
    """Parse a playbook from bytes (see load_document)."""
    if len(raw) > MAX_BYTES:
        mib, rest = divmod(MAX_BYTES, 1024 * 1024)
        limit = f"{MAX_BYTES}-byte" if rest else f"{mib} MiB"
        raise _invalid(name, 1, 1, f"file is larger than the {limit} limit")
    text = _decode(raw, name)
    if not text.strip():
        raise _invalid(name, 1, 1, "file is empty; a playbook is a YAML mapping (see `drill init`)")
    bad = _NOT_PRINTABLE.search(text)
    if bad:
        line, col = _line_col(text, bad.start())
        char = bad.group()
        what = "binary data (NUL byte)" if char == "\0" else f"control character U+{ord(char):04X}"
        raise _invalid(name, line, col, f"{what} in the file; a playbook is UTF-8 YAML text")
    builder = _Builder(name)
    with gc_paused():
        data = builder.build(text)
    return Document(name, data, hashlib.sha256(raw).hexdigest(), builder.marks, builder.root_mark)


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _invalid(name, 1, 1, "file is UTF-16; save the playbook as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = raw[: exc.start].decode("utf-8-sig", errors="replace")
        line, col = _line_col(prefix + "?", len(prefix))
        byte = raw[exc.start]
        raise _invalid(
            name, line, col, f"not valid UTF-8 (byte 0x{byte:02x}); save the playbook as UTF-8"
        ) from None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _invalid(name: str, line: int, col: int, message: str) -> PlaybookInvalid:
    return PlaybookInvalid([Diagnostic(Location(name, line, col), "error", message, code="load")])


def _pos(mark: Mark | None) -> Pos:
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else Pos(1, 1)


class _Frame:
    __slots__ = ("anchor", "container", "is_map", "key", "key_mark", "marks", "nodes_at_start")

    def __init__(
        self,
        container: dict[str, object] | list[object],
        marks: list[Mark | None],
        anchor: str | None,
        nodes: int,
    ) -> None:
        self.container: Any = container  # the hot loop switches on is_map instead of narrowing
        self.is_map = isinstance(container, dict)
        self.marks = marks
        self.anchor = anchor
        self.nodes_at_start = nodes
        self.key: str | None = None
        self.key_mark: Mark | None = None


_SCALAR, _ALIAS = yaml.ScalarEvent, yaml.AliasEvent
_MAP_START, _SEQ_START = yaml.MappingStartEvent, yaml.SequenceStartEvent
_MAP_END, _SEQ_END = yaml.MappingEndEvent, yaml.SequenceEndEvent
_DOC_START = yaml.DocumentStartEvent


class _Builder:
    """Turns the YAML event stream into plain data, recording marks and problems.

    One tight loop: this is the hot path of loading a 10,000-asset playbook.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.marks: dict[int, list[Mark | None]] = {}  # see Document.marks; yaml Marks become Pos lazily
        self.problems: list[Diagnostic] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.alias_nodes = 0
        self.documents = 0
        self.root: Any = None
        self.root_mark: Mark | None = None

    def build(self, text: str) -> dict[str, Any]:
        try:
            self._run(text)
        except yaml.MarkedYAMLError as exc:
            self._yaml_error(exc)
        except yaml.YAMLError as exc:
            self.problems.append(self._diag(Pos(1, 1), f"not valid YAML: {exc}"))
        except _Stop:
            pass
        if self.problems:
            raise PlaybookInvalid(self.problems)
        if self.documents == 0:
            raise _invalid(self.name, 1, 1, "file holds no YAML document (only comments?)")
        if not isinstance(self.root, dict):
            p = _pos(self.root_mark)
            what = _kind_name(self.root)
            msg = f"a playbook must be a YAML mapping (apiVersion: ..., kind: Playbook, ...), not {what}"
            raise _invalid(self.name, p.line, p.col, msg)
        return self.root

    def _run(self, text: str) -> None:
        marks, stack = self.marks, self.stack
        scalar, resolve = self._scalar, _resolve_plain
        parser = _Loader(text)
        frame: _Frame | None = None
        nodes = 0  # nodes so far, aliases expanded: sizes the anchors for the alias limit
        try:
            get_event = parser.get_event
            while True:
                event = get_event()
                kind = type(event)
                if kind is _SCALAR:
                    if frame is not None and frame.key is None and frame.is_map:
                        name = event.value
                        if event.tag is None and name not in frame.container and name != "<<":
                            frame.key, frame.key_mark = name, event.start_mark  # the common case, inline
                        else:
                            self._key(frame, event, kind)
                        continue
                    if event.tag is not None:
                        value: Any = scalar(event)
                    elif event.implicit[0]:
                        value = event.value
                        if not value or value[0] in _RESOLVE_FIRST:
                            value = resolve(value)
                    else:
                        value = event.value
                elif kind is _MAP_START or kind is _SEQ_START:
                    if event.tag is not None:
                        self._check_tag(event)
                    value = {} if kind is _MAP_START else []
                    if frame is not None and frame.is_map and frame.key is None:
                        self._key(frame, event, kind)
                elif kind is _MAP_END or kind is _SEQ_END:
                    done = stack.pop()
                    if done.anchor is not None:
                        self.anchors[done.anchor] = (done.container, nodes - done.nodes_at_start + 1)
                    frame = stack[-1] if stack else None
                    continue
                elif kind is _ALIAS:
                    value, size = self._alias(event)
                    nodes += size - 1
                elif kind is _DOC_START:
                    self.documents += 1
                    if self.documents > 1:
                        msg = "a playbook file holds one YAML document; remove the second '---'"
                        self._stop(_pos(event.start_mark), msg)
                    continue
                elif kind is yaml.StreamEndEvent:
                    return
                else:
                    continue
                nodes += 1
                mark = event.start_mark
                if frame is None:
                    self.root, self.root_mark = value, mark
                elif frame.is_map:
                    key: Any = frame.key
                    frame.key = None
                    container = frame.container
                    if key not in container:  # a duplicate keeps its first value (already reported)
                        container[key] = value
                        frame.marks.append(frame.key_mark)
                        frame.marks.append(mark)
                else:
                    frame.container.append(value)
                    frame.marks.append(mark)
                if kind is _MAP_START or kind is _SEQ_START:
                    if len(stack) >= MAX_DEPTH:
                        self._stop(_pos(mark), f"nesting deeper than {MAX_DEPTH} levels")
                    frame = _Frame(value, [], event.anchor, nodes)
                    marks[id(value)] = frame.marks
                    stack.append(frame)
                elif kind is _SCALAR and event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
        finally:
            parser.dispose()

    def _key(self, frame: _Frame, event: yaml.ScalarEvent | yaml.CollectionStartEvent, kind: type) -> None:
        """A mapping key out of the common case: not a string, a merge key, tagged, or a duplicate."""
        if not isinstance(event, yaml.ScalarEvent):
            self._stop(_pos(event.start_mark), "mapping keys must be plain strings")
        if event.tag is not None:
            self._check_tag(event)
        key = event.value
        if key == "<<" and event.implicit[0]:
            msg = "merge keys (<<) are not supported; use an anchor for the whole value"
            self._stop(_pos(event.start_mark), msg)
        if key in frame.container:
            first = frame.marks[2 * list(frame.container).index(key)]
            msg = f"duplicate key {key!r} (first defined at line {_pos(first).line})"
            self.problems.append(self._diag(_pos(event.start_mark), msg))
        frame.key, frame.key_mark = key, event.start_mark

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "not valid YAML"
        text = f"not valid YAML: {problem}"
        if exc.context and exc.problem and exc.context_mark is not None:
            text += f" ({exc.context} at line {exc.context_mark.line + 1})"
        self.problems.append(self._diag(_pos(mark) if mark else Pos(1, 1), text))

    def _diag(self, pos: Pos, message: str) -> Diagnostic:
        return Diagnostic(Location(self.name, pos.line, pos.col), "error", message, code="load")

    def _stop(self, pos: Pos, message: str) -> NoReturn:
        self.problems.append(self._diag(pos, message))
        raise _Stop

    def _alias(self, event: yaml.AliasEvent) -> tuple[Any, int]:
        pos = _pos(event.start_mark)
        if event.anchor not in self.anchors:
            self._stop(pos, f"alias *{event.anchor} refers to no anchor defined before it")
        value, size = self.anchors[event.anchor]
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            msg = f"aliases expand to more than {MAX_ALIAS_NODES} nodes (a 'billion laughs' file?)"
            self._stop(pos, msg)
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_map and frame.key is None:
            self._stop(pos, "an alias cannot be a mapping key")
        return value, size

    def _check_tag(self, event: yaml.ScalarEvent | yaml.CollectionStartEvent) -> None:
        tag = event.tag or "!"
        if tag in _ALLOWED_TAGS:
            return
        shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
        msg = f"YAML tag {shown} is not allowed: a playbook holds plain data (strings, numbers, lists, maps)"
        self.problems.append(self._diag(_pos(event.start_mark), msg))

    def _scalar(self, event: yaml.ScalarEvent) -> Scalar:
        """A tagged scalar: only the standard tags, and the value must fit its tag."""
        self._check_tag(event)
        value: str = event.value
        tag = event.tag or "!"
        if tag == "!" or tag == f"{_TAG}str":
            return value
        converted = _resolve_plain(value)
        wanted = {f"{_TAG}int": int, f"{_TAG}float": float, f"{_TAG}bool": bool, f"{_TAG}null": type(None)}
        want = wanted.get(tag)
        if want is float and type(converted) is int:
            return float(converted)
        if want is not None and type(converted) is not want:
            kind = tag[len(_TAG) :]
            self.problems.append(self._diag(_pos(event.start_mark), f"{value!r} is not a valid {kind}"))
        return converted


def _resolve_plain(value: str) -> Scalar:
    """YAML 1.2 core schema for an untagged plain scalar."""
    if value in _NULL:
        return None
    if value in _BOOL:
        return _BOOL[value]
    first = value[0]
    if first in "+-.0123456789":
        if _INT.fullmatch(value):
            try:
                if value.startswith(("0o", "0x")):
                    return int(value[2:], 8 if value[1] == "o" else 16)
                return int(value)
            except ValueError:  # more digits than Python converts: keep the text
                return value
        if _FLOAT.fullmatch(value):
            low = value.lower()
            if low.endswith(".nan"):
                return float("nan")
            if low.endswith(".inf"):
                return float("-inf") if low.startswith("-") else float("inf")
            return float(value)
    return value


def _kind_name(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty document"
    return f"a single value ({type(value).__name__})"
