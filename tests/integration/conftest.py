"""Real servers for the integration drills: Redis Sentinel, PostgreSQL primary + standby, HAProxy.

Each fixture starts processes from the distribution's packages on free high ports under a temp
dir and stops them by PID. Missing binaries skip the test with the reason, unless
DRILL_REQUIRE_INTEGRATION=1 (CI), where they fail it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drill.testing.servers import HAProxyPair, PostgresPair, RedisSentinelCluster, start_or_skip


@pytest.fixture
def redis_cluster() -> Iterator[RedisSentinelCluster]:
    cluster = start_or_skip(RedisSentinelCluster.start)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_async() -> Iterator[PostgresPair]:
    pair = start_or_skip(lambda: PostgresPair.start(synchronous=False))
    yield pair
    pair.stop()


@pytest.fixture
def pg_sync() -> Iterator[PostgresPair]:
    pair = start_or_skip(lambda: PostgresPair.start(synchronous=True))
    yield pair
    pair.stop()


@pytest.fixture
def haproxy() -> Iterator[HAProxyPair]:
    pair = start_or_skip(HAProxyPair.start)
    yield pair
    pair.stop()
