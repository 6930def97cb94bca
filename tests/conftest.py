"""Shared fixtures: env isolation, real Redis servers, backend parametrization."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator
from importlib.metadata import version

import fakeredis
import pytest

from resilient.backends import (
    AsyncBackend,
    SyncBackend,
    async_backend_from_url,
    backend_from_url,
)
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.breaker import reset_breakers
from tests.support.clock import FakeClock
from tests.support.redis_servers import (
    MISSING_REASON,
    REDIS_CLI,
    REDIS_SERVER,
    REQUIRE,
    RedisCluster,
    RedisServer,
    remote_url,
)
from tests.support.sockets import HungServer

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("fakeredis", id="fakeredis"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]


def pytest_report_header() -> list[str]:
    names = ("redis", "limits", "pybreaker", "fakeredis")
    found = "found" if REDIS_SERVER else "missing"
    required = " (required)" if REQUIRE else ""
    return [
        ", ".join(f"{name} {version(name)}" for name in names),
        f"redis-server: {found}{required}",
    ]


def _need_redis() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        if REQUIRE:
            pytest.fail(MISSING_REASON + " and RESILIENT_TEST_REQUIRE_REDIS=1")
        pytest.skip(MISSING_REASON)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without RESILIENT_* variables, whatever the shell had."""
    for name in list(os.environ):
        if name.startswith("RESILIENT_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _fresh_breaker_registry() -> Iterator[None]:
    """Named breakers do not carry state from one test into the next."""
    yield
    reset_breakers()


@pytest.fixture
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a test times an operation against its timeout.

    A full collection of the test process's heap can take a good part of 100 ms on a
    loaded two-core machine; it is the test runner's cost, not the operation's.
    """
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.fixture(scope="session")
def _session_redis() -> Iterator[RedisServer]:
    _need_redis()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(_session_redis: RedisServer) -> RedisServer:
    """The session's shared redis-server, flushed for this test."""
    with _session_redis.client() as client:
        client.flushall()
        client.script_flush()
    return _session_redis


@pytest.fixture(scope="session")
def _session_cluster() -> Iterator[RedisCluster]:
    _need_redis()
    cluster = RedisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster(_session_cluster: RedisCluster) -> RedisCluster:
    """The session's 3-master cluster, flushed for this test."""
    _session_cluster.flushall()
    return _session_cluster


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    """Starts dedicated servers this test may kill, pause and restart; stops them after."""
    _need_redis()
    started: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer().start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    """A loopback listener that accepts connections and never answers."""
    server = HungServer()
    yield server
    server.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "redis":
        request.getfixturevalue("redis_server")
    elif kind == "cluster":
        request.getfixturevalue("redis_cluster")
    return kind


@pytest.fixture
def sync_backend(
    request: pytest.FixtureRequest, backend_kind: str, clock: FakeClock
) -> Iterator[SyncBackend]:
    """Each backend kind in turn, sync flavour, with generous timeouts for loaded CI."""
    backend: SyncBackend
    if backend_kind == "memory":
        backend = backend_from_url("memory://", clock=clock)
    elif backend_kind == "fakeredis":
        backend = RedisBackend(fakeredis.FakeRedis(), name="fakeredis")
    else:
        backend = backend_from_url(
            remote_url(request, backend_kind), timeout=2.0, connect_timeout=2.0
        )
    yield backend
    backend.close()


@pytest.fixture
async def async_backend(
    request: pytest.FixtureRequest, backend_kind: str, clock: FakeClock
) -> AsyncIterator[AsyncBackend]:
    """Each backend kind in turn, asyncio flavour."""
    backend: AsyncBackend
    if backend_kind == "memory":
        backend = async_backend_from_url("memory://", clock=clock)
    elif backend_kind == "fakeredis":
        backend = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="fakeredis")
    else:
        url = remote_url(request, backend_kind)
        backend = async_backend_from_url(url, timeout=2.0, connect_timeout=2.0)
    yield backend
    await backend.aclose()
