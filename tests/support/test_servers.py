"""Missing server binaries skip integration tests, unless DRILL_REQUIRE_INTEGRATION=1 makes them fail."""

from __future__ import annotations

import pytest

from tests.support.servers import Unavailable, find_binary, start_or_skip


def _missing() -> None:
    raise Unavailable("redis-server is not installed (apt-get install redis-server)")


def test_missing_binary_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILL_REQUIRE_INTEGRATION", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        start_or_skip(_missing)


def test_missing_binary_fails_when_integration_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILL_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="forbids skipping"):
        start_or_skip(_missing)


def test_find_binary_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Unavailable, match="apt-get install"):
        find_binary("redis-server")
