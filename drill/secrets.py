"""References in playbooks, resolved only when a drill runs: secrets and plain variables.

`${env:NAME}` and `${file:path}` are secrets: a Secrets object remembers every value it resolved
so that every sink (journal, logs, results, errors, notifications) can scrub them with `redact`.
`${var:NAME}` is a plain variable (a port, a host, a region): taken from `--var NAME=VALUE`, then a
vars file, then the environment, and never redacted, so a value like `2026` or `5432` does not
blank out every timestamp and address that happens to contain it.

Redaction catches more than the raw value, because what a target echoes back or an error quotes
is often encoded: for every secret it also scrubs the URL-encoded forms (quote, quote_plus, either
case of hex), the JSON-escaped, repr- and ascii-escaped, bytes-repr and HTML-escaped forms, the
base64 forms (standard and urlsafe, with and without padding) of the value and of the `user:password`
pair of every URL holding a secret in its userinfo (the `Authorization: Basic` header an HTTP client
builds from it), and a secret that was cut: a prefix of any form at the end of a text or right
before an ellipsis (`…` or `...`), a suffix right after one. Whatever cuts a text should mark the
cut with `cut_end`/`cut_start` below, and better still redact before it cuts.

Secrets shorter than MIN_SECRET_LENGTH (4) characters are never redacted, and no cut fragment
shorter than that is: scrubbing every `a` or every `1` would destroy the evidence ("exit 1",
timestamps, addresses) while protecting nothing, since a 1-3 character secret has at most a few
thousand values and is guessed faster than it is read. A real secret is longer; the validator's
literal-credential check and the operator's judgement cover the rest. A cut fragment at the very
end of a text is not redacted when it is the whole text (a field that is exactly `http` is a probe
kind, not a cut webhook URL), and for a URL-shaped secret the scheme (`https://`) does not count
toward a fragment's length.

`${file:PATH}` reads only regular files of at most MAX_SECRET_FILE_BYTES, inside the playbook's
folder or a folder of `file_roots` or of the DRILL_SECRET_DIRS environment variable (os.pathsep
separated; relative entries are relative to the playbook's folder), after resolving symlinks.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

from drill.errors import SecretUnresolved

REFERENCE = re.compile(r"\$\{(env|file|var):([^}]+)\}")
REDACTED = "«redacted»"
MIN_SECRET_LENGTH = 4  # shorter secrets and cut fragments are not redacted (see the module text)
MAX_SECRET_FILE_BYTES = 64 * 1024
SECRET_DIRS_ENV = "DRILL_SECRET_DIRS"
ELLIPSIS = "…"

_CUT_MARK = re.compile(r"…|\.\.\.")
# bounded and anchored at a word start, so a long secret (a 64 KiB key file) is scanned in linear time
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://([^/?#@\s]{1,1024})@")
# a leading URL scheme, in the raw, URL-encoded and JSON-escaped forms: not secret by itself
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,31}(?::|%3[Aa])(?:/|%2[Ff]|\\/){2}")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def has_reference(value: str) -> bool:
    return REFERENCE.search(value) is not None


def cut_end(text: str, limit: int) -> str:
    """text kept to its first `limit` characters, the cut marked with `…` (so redaction sees it)."""
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def cut_start(text: str, limit: int) -> str:
    """text kept to its last `limit` characters, the cut marked with `…` (so redaction sees it)."""
    return text if len(text) <= limit else ELLIPSIS + text[len(text) - limit :]


def _base64_forms(raw: bytes) -> set[str]:
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
    return forms


_UNSENDABLE = frozenset(" %")  # with anything outside printable ASCII (controls, non-ASCII)
_WHATWG_PATH = frozenset('"#<>?`{}')  # the URL standard's path percent-encode set, beyond those


def _encode_only(value: str, special: frozenset[str]) -> str:
    """value with only the characters a URL cannot carry percent-encoded (UTF-8), the rest kept."""
    return "".join(quote(c, safe="") if c in special or not 0x21 <= ord(c) <= 0x7E else c for c in value)


def secret_forms(value: str) -> set[str]:
    """Every form of `value` that redaction scrubs (those of at least MIN_SECRET_LENGTH characters)."""
    quoted = {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")}
    # What an HTTP client sends when it encodes only what a URL cannot hold (httpx leaves ' \ :)
    quoted |= {_encode_only(value, _UNSENDABLE), _encode_only(value, _UNSENDABLE | _WHATWG_PATH)}
    quoted |= {_PERCENT.sub(lambda m: m.group().lower(), q) for q in quoted}
    forms = {
        value,
        *quoted,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        ascii(value)[1:-1],
        repr(value.encode())[2:-1],
        html.escape(value),
        *_base64_forms(value.encode()),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _userinfo_pairs(text: str) -> set[str]:
    """The `user:password` pairs of the URLs in text, as written and percent-decoded."""
    pairs = set()
    for match in _USERINFO.finditer(text):
        userinfo = match.group(1)
        if ":" in userinfo:
            user, _, password = userinfo.partition(":")
            pairs |= {userinfo, f"{unquote(user)}:{unquote(password)}"}
    return pairs


@dataclass(frozen=True, slots=True)
class _Matcher:
    """The precomputed forms of a set of secrets: one regex for whole forms, indexes for cut ones."""

    whole: re.Pattern[str]
    heads: re.Pattern[str]  # overlapping: the first MIN_SECRET_LENGTH characters of every form
    tails: re.Pattern[str]  # overlapping: the last MIN_SECRET_LENGTH characters of every form
    by_head: Mapping[str, tuple[tuple[str, int], ...]]  # head -> (form, shortest fragment that counts)
    by_tail: Mapping[str, tuple[str, ...]]
    longest: int

    @classmethod
    def build(cls, forms: Iterable[str]) -> _Matcher:
        ordered = sorted(set(forms), key=lambda f: (-len(f), f))
        by_head: dict[str, list[tuple[str, int]]] = {}
        by_tail: dict[str, list[str]] = {}
        for form in ordered:
            scheme = _SCHEME.match(form)
            shortest = MIN_SECRET_LENGTH + (scheme.end() if scheme else 0)
            by_head.setdefault(form[:MIN_SECRET_LENGTH], []).append((form, shortest))
            by_tail.setdefault(form[-MIN_SECRET_LENGTH:], []).append(form)

        def overlapping(keys: Iterable[str]) -> re.Pattern[str]:
            return re.compile("(?=(" + "|".join(re.escape(k) for k in keys) + "))")

        return cls(
            whole=re.compile("|".join(re.escape(f) for f in ordered)),
            heads=overlapping(by_head),
            tails=overlapping(by_tail),
            by_head={k: tuple(v) for k, v in by_head.items()},
            by_tail={k: tuple(v) for k, v in by_tail.items()},
            longest=len(ordered[0]),
        )

    def redact(self, text: str) -> str:
        text = self.whole.sub(REDACTED, text)
        spans = [*self._cut_prefixes(text), *self._cut_suffixes(text)]
        if not spans:
            return text
        parts, at = [], 0
        for start, end in sorted(spans):
            if end <= at:
                continue  # inside the span just redacted
            if start >= at:
                parts += [text[at:start], REDACTED]
            at = end
        parts.append(text[at:])
        return "".join(parts)

    def _cut_prefixes(self, text: str) -> Iterable[tuple[int, int]]:
        """A prefix of a form right before a cut mark, or at the end of the text (not all of it)."""
        ends = [m.start() for m in _CUT_MARK.finditer(text)] + [len(text)]
        for end in ends:
            for head in self.heads.finditer(text, max(0, end - self.longest), end):
                start = head.start()
                if start == 0 and end == len(text):
                    continue  # the whole text: a name or a kind, not a cut secret
                fragment = text[start:end]
                forms = self.by_head[head.group(1)]
                if any(
                    shortest <= len(fragment) < len(f) and f.startswith(fragment) for f, shortest in forms
                ):
                    yield start, end
                    break

    def _cut_suffixes(self, text: str) -> Iterable[tuple[int, int]]:
        """A suffix of a form right after a cut mark (a text cut at its start)."""
        for mark in _CUT_MARK.finditer(text):
            start = mark.end()
            best = 0
            for tail in self.tails.finditer(text, start, min(len(text), start + self.longest)):
                end = tail.start() + MIN_SECRET_LENGTH
                fragment = text[start:end]
                if any(len(fragment) < len(f) and f.endswith(fragment) for f in self.by_tail[tail.group(1)]):
                    best = end
            if best:
                yield start, best


@dataclass
class Secrets:
    """Resolves references against an environment and a base folder, and redacts what it resolved.

    `file_roots` (and the DRILL_SECRET_DIRS entry of `env`) are the folders besides `base_dir`
    that `${file:...}` may read from.
    """

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    base_dir: Path = field(default_factory=Path.cwd)
    values: set[str] = field(default_factory=set)
    variables: Mapping[str, str] = field(default_factory=dict)  # --var and the vars file; env after them
    file_roots: tuple[Path, ...] = ()
    pairs: set[str] = field(default_factory=set)  # `user:password` of URLs holding a secret
    _matcher: _Matcher | None = field(default=None, init=False, repr=False, compare=False)
    _matched: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def resolve_text(self, text: str, where: str = "") -> str:
        found: list[str] = []

        def one(match: re.Match[str]) -> str:
            source, name = match.group(1), match.group(2).strip()
            value = self._lookup(source, name, where)
            if value and source != "var":  # a plain variable is not a secret: never redacted
                self._remember(value)
                found.append(value)
            return value

        resolved = REFERENCE.sub(one, text)
        if found:
            self._remember_pairs(resolved, found)
        return resolved

    def _remember(self, value: str) -> None:
        self.values.add(value)
        # a secret that is itself a URL with a password (a DSN): its password and Basic pair too
        for pair in _userinfo_pairs(value):
            self.pairs.add(pair)
            password = pair.partition(":")[2]
            if len(password) >= MIN_SECRET_LENGTH:
                self.values.add(password)

    def _remember_pairs(self, text: str, secrets: list[str]) -> None:
        for pair in _userinfo_pairs(text):
            if any(form in pair for s in secrets for form in secret_forms(s) | {s}):
                self.pairs.add(pair)

    def resolve(self, value: object, where: str = "") -> object:
        """A copy of a JSON-like value with every reference in every string resolved."""
        if isinstance(value, str):
            return self.resolve_text(value, where)
        if isinstance(value, Mapping):
            return self.resolve_params(value, where)
        if isinstance(value, list | tuple):
            return [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def resolve_params(self, params: Mapping[str, object], where: str = "") -> dict[str, object]:
        """A kind's parameters with every reference resolved (what its `parse` receives)."""
        return {str(k): self.resolve(v, f"{where}.{k}" if where else str(k)) for k, v in params.items()}

    def redact(self, value: object) -> object:
        """value with every resolved secret replaced by a marker; the same object when none occurs."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return self.redact_data(value)
        if isinstance(value, list | tuple):
            items = [self.redact(v) for v in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    def redact_data(self, data: Mapping[str, object]) -> dict[str, object]:
        """A JSON object with secrets replaced; the same dict when none occurs (cheap to test with `is`)."""
        changed = {k: r for k, v in data.items() if (r := self.redact(v)) is not v}
        if not changed and isinstance(data, dict):
            return data
        return {k: changed.get(k, v) for k, v in data.items()}

    def redact_text(self, text: str) -> str:
        """text with every form of every resolved secret, whole or cut, replaced by a marker."""
        matcher = self._forms()
        if matcher is None:
            return text
        redacted = matcher.redact(text)
        return text if redacted == text else redacted

    def _forms(self) -> _Matcher | None:
        """The matcher for the current secrets, rebuilt only when a secret was added."""
        key = frozenset(self.values) | {f"\0pair\0{p}" for p in self.pairs}
        if key != self._matched:
            forms: set[str] = set()
            for value in self.values:
                if len(value) >= MIN_SECRET_LENGTH:
                    forms |= secret_forms(value)
            for pair in self.pairs:
                forms |= {f for f in _base64_forms(pair.encode()) if len(f) >= MIN_SECRET_LENGTH}
            self._matcher = _Matcher.build(forms) if forms else None
            self._matched = key
        return self._matcher

    def allowed_dirs(self) -> tuple[Path, ...]:
        """The folders `${file:...}` may read from, symlinks resolved: base_dir, file_roots, DRILL_SECRET_DIRS."""
        extra = [Path(p).expanduser() for p in self.env.get(SECRET_DIRS_ENV, "").split(os.pathsep) if p]
        roots = [self.base_dir, *self.file_roots, *extra]
        resolved = [(self.base_dir / root).resolve() for root in roots]
        return tuple(dict.fromkeys(resolved))

    def _lookup(self, source: str, name: str, where: str) -> str:
        at = f" (at {where})" if where else ""
        if source == "var":
            value = self.variables.get(name, self.env.get(name))
            if value is None:
                raise SecretUnresolved(
                    f"variable {name} is not set{at}",
                    hint=f"pass --var {name}=VALUE, put it in a --vars-file, or export {name}=...",
                )
            return value
        if source == "env":
            if name not in self.env:
                raise SecretUnresolved(
                    f"environment variable {name} is not set{at}", hint=f"export {name}=... before the run"
                )
            return self.env[name]
        return self._read_file(name, at)

    def _read_file(self, name: str, at: str) -> str:
        """The stripped UTF-8 text of a confined, regular, small secret file (never quoted in errors)."""
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        allowed = self.allowed_dirs()
        folders = ", ".join(str(d) for d in allowed)
        hint = f"put it in the playbook's folder or in a folder listed in {SECRET_DIRS_ENV} (separated by {os.pathsep!r})"
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "cannot resolve the path"
            raise SecretUnresolved(
                f"cannot read secret file {name}{at}: {why}",
                hint="the path is relative to the playbook's folder",
            ) from None
        if not any(real.is_relative_to(d) for d in allowed):
            via = f" (it resolves to {real})" if real != path else ""
            raise SecretUnresolved(
                f"secret file {name}{at} is outside the folders secrets may be read from{via}: {folders}",
                hint=hint,
            )
        try:
            kind = real.stat().st_mode
            if not stat.S_ISREG(kind):
                raise SecretUnresolved(
                    f"secret file {name}{at} is not a regular file (a FIFO, device or folder)"
                )
            # O_NONBLOCK: a FIFO swapped in after the check cannot hang the run; fstat catches it
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise SecretUnresolved(
                        f"secret file {name}{at} is not a regular file (a FIFO, device or folder)"
                    )
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise SecretUnresolved(
                f"cannot read secret file {name}{at}: {exc.strerror or exc}",
                hint="the path is relative to the playbook's folder",
            ) from None
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise SecretUnresolved(
                f"secret file {name}{at} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB",
                hint="a secret file holds one secret (a token, a password, a key)",
            )
        try:
            return data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretUnresolved(f"secret file {name}{at} is not UTF-8 text") from None
