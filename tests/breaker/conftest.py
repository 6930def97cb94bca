"""Fixtures for breaker tests: breakers over every storage, with an injected clock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import pytest

from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.breaker import CircuitBreaker
from resilient.config import Settings
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisCluster, RedisServer

STORAGES = [
    pytest.param("memory", id="memory"),
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]

#: Generous timeouts: the two-core CI box is shared, and these tests are not about timeouts.
PATIENT = Settings.from_env({}, overrides={"op_timeout": 2.0, "connect_timeout": 2.0})


def eventually(predicate: Callable[[], bool], within: float = 1.0) -> bool:
    """Poll ``predicate`` until it holds or ``within`` real seconds pass.

    Only for what travels through a real socket (pub/sub delivery): everything else in
    these tests runs on the injected clock.
    """
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class Maker:
    """Builds breakers sharing one storage; each call is another "process"."""

    def __init__(self, kind: str, clock: FakeClock, url: str | None) -> None:
        self.kind = kind
        self.clock = clock
        self.url = url
        self.server = fakeredis.FakeServer()
        self.made: list[CircuitBreaker] = []

    @property
    def shared(self) -> bool:
        return self.kind != "memory"

    def __call__(self, name: str = "breaker", **options: Any) -> CircuitBreaker:
        options.setdefault("clock", self.clock)
        options.setdefault("resync_interval", 0)
        options.setdefault("settings", PATIENT)
        if self.kind == "fakeredis":
            options.setdefault("backend", RedisBackend(fakeredis.FakeRedis(server=self.server)))
            options.setdefault(
                "async_backend", AsyncRedisBackend(fakeredis.FakeAsyncRedis(server=self.server))
            )
        elif self.kind in ("redis", "cluster"):
            options.setdefault("url", self.url)
            options.setdefault("shared", True)
        breaker = CircuitBreaker(name, **options)
        self.made.append(breaker)
        return breaker


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(params=STORAGES[1:])
def shared_storage(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def make(
    request: pytest.FixtureRequest, storage: str, clock: FakeClock
) -> AsyncIterator[Maker]:
    """A breaker factory over ``storage``; everything it built is shut down afterwards."""
    async for maker in _maker(request, storage, clock):
        yield maker


@pytest.fixture
async def make_shared(
    request: pytest.FixtureRequest, shared_storage: str, clock: FakeClock
) -> AsyncIterator[Maker]:
    """The same, over the storages whose breakers share state (fakeredis, Redis, Cluster)."""
    async for maker in _maker(request, shared_storage, clock):
        yield maker


async def _maker(
    request: pytest.FixtureRequest, storage: str, clock: FakeClock
) -> AsyncIterator[Maker]:
    url = None
    if storage == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    elif storage == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        url = cluster.url
    maker = Maker(storage, clock, url)
    try:
        yield maker
    finally:
        for breaker in maker.made:
            await breaker.ashutdown()
