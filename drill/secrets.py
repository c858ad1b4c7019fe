"""References in playbooks, resolved only when a drill runs: secrets and plain variables.

`${env:NAME}` and `${file:path}` are secrets: a Secrets object remembers every value it resolved
so that every sink (journal, logs, results, errors, notifications) can scrub them with `redact`.
`${var:NAME}` is a plain variable (a port, a host, a region): taken from `--var NAME=VALUE`, then a
vars file, then the environment, and never redacted, so a value like `2026` or `5432` does not
blank out every timestamp and address that happens to contain it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from drill.errors import SecretUnresolved

REFERENCE = re.compile(r"\$\{(env|file|var):([^}]+)\}")
REDACTED = "«redacted»"


def has_reference(value: str) -> bool:
    return REFERENCE.search(value) is not None


@dataclass
class Secrets:
    """Resolves references against an environment and a base folder, and redacts what it resolved."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    base_dir: Path = field(default_factory=Path.cwd)
    values: set[str] = field(default_factory=set)
    variables: Mapping[str, str] = field(default_factory=dict)  # --var and the vars file; env after them

    def resolve_text(self, text: str, where: str = "") -> str:
        def one(match: re.Match[str]) -> str:
            source, name = match.group(1), match.group(2).strip()
            value = self._lookup(source, name, where)
            if value and source != "var":  # a plain variable is not a secret: never redacted
                self.values.add(value)
            return value

        return REFERENCE.sub(one, text)

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
        """text with every resolved secret replaced by a marker (the longest first)."""
        if not self.values:
            return text
        redacted = text
        for secret in sorted(self.values, key=len, reverse=True):
            redacted = redacted.replace(secret, REDACTED)
        return text if redacted == text else redacted

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
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretUnresolved(
                f"cannot read secret file {name}{at}: {exc.strerror or exc}",
                hint="the path is relative to the playbook's folder",
            ) from None
