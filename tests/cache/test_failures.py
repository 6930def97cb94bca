"""Redis refused, killed or hung: callers still get the function's result within the
operation timeout, and once the backend's guard is open Redis is skipped at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from resilient.cache import cached
from resilient.cache.decorator import engine_of
from resilient.config import Settings
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer
from tests.support.sockets import HungServer, refused_url

pytestmark = pytest.mark.usefixtures("paused_gc")

TIMEOUT = 0.1  # RESILIENT_OP_TIMEOUT's default, used by SETTINGS
SLACK = 0.1  # two shared cores: scheduling noise
SETTINGS = Settings.from_env({})


def _timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def test_refused_connection_costs_nothing() -> None:
    """Nothing listens: each call computes at once and the failure is counted."""

    @cached(name="failures.refused", ttl=60, backend=refused_url(), settings=SETTINGS)
    def value(x: int) -> int:
        return x * 2

    for _ in range(3):
        result, elapsed = _timed(lambda: value(4))
        assert result == 8
        assert elapsed < SLACK
    assert value.stats().errors == 3
    assert value.stats().misses == 3
    value.close()


async def test_refused_connection_costs_nothing_async() -> None:
    """The same with the asyncio backend."""

    @cached(name="failures.arefused", ttl=60, backend=refused_url(), settings=SETTINGS)
    async def value(x: int) -> int:
        return x * 2

    started = time.perf_counter()
    assert await value(4) == 8
    assert time.perf_counter() - started < SLACK
    assert value.stats().errors == 1
    await value.aclose()


def test_hung_server_costs_one_timeout_then_nothing(hung_server: HungServer) -> None:
    """A server that never answers: one timeout per call (no write after a failed read)
    until the guard opens after 3 failures; from then on Redis is not even tried."""
    calls: list[int] = []

    @cached(name="failures.hung", ttl=60, backend=hung_server.url, lock=True, settings=SETTINGS)
    def value(x: int) -> int:
        calls.append(x)
        return x * 2

    for _ in range(3):
        result, elapsed = _timed(lambda: value(4))
        assert result == 8
        assert TIMEOUT * 0.9 < elapsed < TIMEOUT + SLACK
    for _ in range(5):
        result, elapsed = _timed(lambda: value(4))
        assert result == 8
        assert elapsed < 0.01
    assert len(calls) == 8
    assert value.stats().errors == 8
    value.close()


async def test_hung_server_costs_one_timeout_then_nothing_async(hung_server: HungServer) -> None:
    """The asyncio driver obeys the same bound and the same guard."""

    @cached(name="failures.ahung", ttl=60, backend=hung_server.url, settings=SETTINGS)
    async def value(x: int) -> int:
        return x * 2

    for expected_max in (TIMEOUT + SLACK,) * 3 + (0.01,) * 3:
        started = time.perf_counter()
        assert await value(4) == 8
        assert time.perf_counter() - started < expected_max
    await value.aclose()


@pytest.mark.redis
def test_killed_server(redis_factory: Callable[[], RedisServer]) -> None:
    """A server that dies: the next calls compute, fast, instead of failing."""
    server = redis_factory()

    @cached(name="failures.killed", ttl=60, backend=server.url, settings=SETTINGS)
    def value(x: int) -> str:
        return f"computed {x}"

    assert value(1) == "computed 1"
    assert value(1) == "computed 1"
    assert value.stats().remote_hits == 1
    server.kill()
    result, elapsed = _timed(lambda: value(1))
    assert result == "computed 1"
    assert elapsed < TIMEOUT + SLACK
    assert value.stats().misses == 2
    value.close()


@pytest.mark.redis
def test_paused_server_within_the_operation_timeout(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """SIGSTOP: the socket stays open and silent; the call still answers in time."""
    server = redis_factory()

    @cached(name="failures.paused", ttl=60, backend=server.url, settings=SETTINGS)
    def value(x: int) -> str:
        return f"computed {x}"

    value(1)
    server.pause()
    try:
        result, elapsed = _timed(lambda: value(1))
        assert result == "computed 1"
        assert elapsed < TIMEOUT + SLACK
    finally:
        server.resume()
    value.close()


@pytest.mark.redis
async def test_paused_server_within_the_operation_timeout_async(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """The asyncio flavour against a paused server."""
    server = redis_factory()

    @cached(name="failures.apaused", ttl=60, backend=server.url, settings=SETTINGS)
    async def value(x: int) -> str:
        return f"computed {x}"

    await value(1)
    server.pause()
    try:
        started = time.perf_counter()
        assert await value(1) == "computed 1"
        assert time.perf_counter() - started < TIMEOUT + SLACK
    finally:
        server.resume()
    await value.aclose()


@pytest.mark.redis
def test_l1_serves_while_redis_is_down(
    redis_factory: Callable[[], RedisServer], clock: FakeClock
) -> None:
    """With two tiers, a dead Redis leaves what L1 held answering: fresh values, then
    stale-if-error values."""
    server = redis_factory()
    healthy = [True]

    @cached(ttl=10, two_tier=True, l1_ttl=5, stale_if_error=60, xfetch_beta=0,
            backend=server.url, name="failures.l1down", clock=clock, settings=SETTINGS)  # fmt: skip
    def value(x: int) -> str:
        if not healthy[0]:
            raise ConnectionError("upstream down too")
        return "good"

    deadline = time.monotonic() + 5
    assert value(1) == "good"  # computed and stored in Redis; the subscription starts
    coherence = engine_of(value).coherence
    assert coherence is not None
    while not coherence.live:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # No invalidation from here on: one still in flight could empty L1 after it filled.
    while value.stats().size == 0:  # the L1 fills from Redis now that it is subscribed
        assert time.monotonic() < deadline
        assert value(1) == "good"
    server.kill()
    healthy[0] = False
    while coherence.live:  # the invalidation stream notices the drop...
        assert time.monotonic() < deadline + 5
        time.sleep(0.01)
    assert value.stats().size == 0  # ...and L1 stops answering on the hit path
    result, elapsed = _timed(lambda: value(1))
    assert result == "good"  # Redis fails; what L1 held is still fresh: served
    assert elapsed < TIMEOUT + SLACK
    clock.advance(6)  # past l1_ttl, still fresh by the entry itself
    assert value(1) == "good"
    clock.advance(10)  # expired; the function raises; the stale value is served
    result, elapsed = _timed(lambda: value(1))
    assert result == "good"
    assert elapsed < TIMEOUT + SLACK
    assert value.stats().stale >= 1
    value.close()
