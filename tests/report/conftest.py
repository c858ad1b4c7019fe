"""Shared fixtures: the fixed journal and the report built from it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from drill.report import build
from drill.report.model import Report, Signer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"
JOURNAL = FIXTURES / "journal.jsonl"
SIGNER = Signer("ana", "SHA256:" + "q" * 43)
TEST_TOOL_VERSION = "0.0.0-test"  # pinned so golden files do not change with each release


def load_generator() -> ModuleType:
    """tests/report/fixtures/make_journal.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("make_journal", FIXTURES / "make_journal.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _pinned_tool_version(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(build, "tool_version", lambda: TEST_TOOL_VERSION)
    yield


@pytest.fixture
def journal_path() -> Path:
    return JOURNAL


@pytest.fixture(scope="session")
def report() -> Report:
    """The report of the fixed journal, as the operator 'ana' would sign it (frozen: safe to share)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "tool_version", lambda: TEST_TOOL_VERSION)
        return build.build_report_from_journal(JOURNAL, signer=SIGNER)
