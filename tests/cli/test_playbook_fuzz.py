"""No input, however broken, makes `drill validate` crash: mutated playbooks get a clean error and exit 2."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Hashable
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drill.cli import cli
from drill.playbook.starter import STARTER_PLAYBOOK

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [STARTER_PLAYBOOK.encode(), (ROOT / "tests/playbook/valid/minimal.yaml").read_bytes()]
DIAGNOSTIC = re.compile(r"^.+:\d+:\d+: (error|warning): .+$|^.+: error: .+$")
JUNK = [
    None,
    True,
    0,
    -1,
    3.5,
    "",
    "x" * 300,
    [],
    {},
    [1, [2]],
    {"k": {"v": None}},
    "${env:",
    "1h30x",
    "\x00",
]


def paths(data: object, prefix: tuple[Hashable, ...] = ()) -> list[tuple[Hashable, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            found += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += paths(v, (*prefix, i))
    return found


def mutate_tree(raw: bytes, choice: int, action: str, junk: object) -> bytes:
    data = yaml.safe_load(raw)
    targets = paths(data)[1:]
    path = targets[choice % len(targets)]
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    return yaml.safe_dump(data, allow_unicode=True).encode()


def mutate_bytes(raw: bytes, at: int, junk: bytes, action: str) -> bytes:
    at %= len(raw) + 1
    if action == "truncate":
        return raw[:at]
    if action == "insert":
        return raw[:at] + junk + raw[at:]
    return raw[:at] + junk + raw[at + len(junk) :]  # overwrite


tree_mutation = st.builds(
    mutate_tree,
    st.sampled_from(SOURCES),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(["delete", "swap"]),
    st.sampled_from(JUNK),
)
byte_mutation = st.builds(
    mutate_bytes,
    st.sampled_from(SOURCES),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=12)
    | st.sampled_from([b"\xff\xfe", b": :", b"- ", b"\t", b"&a *a", b"!!python/none", b"{[", b"\n  "]),
    st.sampled_from(["truncate", "insert", "overwrite"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(tree_mutation, byte_mutation))
def test_mutated_playbooks_fail_cleanly(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.yaml"
        path.write_bytes(content)
        result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output  # else a crash
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"{path}: {'valid' if result.exit_code == 0 else 'invalid'}")
    if result.exit_code == 2:
        problems = lines[:-1]
        assert problems and all(DIAGNOSTIC.match(line) for line in problems), result.stdout
        assert any(": error: " in line for line in problems)
        assert all("\n" not in line for line in problems)
