"""Remote tiers for cache tests: fakeredis, a real redis-server, a real Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import pytest

from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from tests.support.redis_servers import remote_url

REMOTES = [
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]


@pytest.fixture(params=REMOTES)
def remote_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def remote(request: pytest.FixtureRequest, remote_kind: str) -> Iterator[Any]:
    """What to pass as backend= for a sync function: a fakeredis backend or a real URL."""
    if remote_kind == "fakeredis":
        backend = RedisBackend(fakeredis.FakeRedis(), name="fakeredis")
        yield backend
        backend.close()
    else:
        yield remote_url(request, remote_kind)


@pytest.fixture
async def aremote(request: pytest.FixtureRequest, remote_kind: str) -> AsyncIterator[Any]:
    """The same for coroutine functions."""
    if remote_kind == "fakeredis":
        backend = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="fakeredis")
        yield backend
        await backend.aclose()
    else:
        yield remote_url(request, remote_kind)
