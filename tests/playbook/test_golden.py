"""Golden invalid playbooks: each file ends with the exact diagnostics it must produce.

An expectation may say `{probe_kinds}` where the validator lists the registered probe kinds, so
adding a kind touches only its module, schema fragment, registry line and test, never these files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drill.playbook.validate import check_playbook
from drill.probes.registry import PROBE_KINDS

INVALID = Path(__file__).parent / "invalid"
VALID = Path(__file__).parent / "valid"
# a file that is empty cannot carry its own expectation
EXPECTED_ELSEWHERE = {
    "empty.yaml": ["1:1: error: file is empty; a playbook is a YAML mapping (see `drill init`)"]
}


PROBE_KINDS_PLACEHOLDER = "{probe_kinds}"


def probe_kinds_text() -> str:
    """The registered probe kinds as the validator lists them: sorted, comma-separated."""
    return ", ".join(sorted(PROBE_KINDS))


def expected(path: Path) -> list[str]:
    if path.name in EXPECTED_ELSEWHERE:
        return EXPECTED_ELSEWHERE[path.name]
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [
        line.removeprefix("# expect: ").replace(PROBE_KINDS_PLACEHOLDER, probe_kinds_text())
        for line in text.splitlines()
        if line.startswith("# expect: ")
    ]


@pytest.mark.parametrize("path", sorted(INVALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_diagnostics_are_exact(path: Path) -> None:
    want = expected(path)
    assert want, f"{path.name} names no expected diagnostic"
    playbook, diagnostics = check_playbook(path)
    got = [f"{d.location.line}:{d.location.col}: {d.severity}: {d.message}" for d in diagnostics]
    assert got == want
    assert all(d.location.file == str(path) for d in diagnostics)
    assert (playbook is None) == any(d.severity == "error" for d in diagnostics)


def test_the_probe_kinds_placeholder_is_filled_from_the_registry() -> None:
    [line] = expected(INVALID / "probe_no_kind.yaml")
    assert PROBE_KINDS_PLACEHOLDER not in line
    assert line.endswith(f"a probe needs one kind key: one of {probe_kinds_text()}")
    assert set(PROBE_KINDS) <= set(line.rpartition("one of ")[2].split(", "))


@pytest.mark.parametrize("path", sorted(VALID.glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_examples_have_no_diagnostic(path: Path) -> None:
    playbook, diagnostics = check_playbook(path)
    assert diagnostics == []
    assert playbook is not None
