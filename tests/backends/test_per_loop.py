"""Objects used from many event loops keep a backend per live loop, not one per loop ever.

``asyncio.run()`` per call (a sync view calling async code) starts and closes a loop each
time; the limiter and the shared breaker must not hold every dead loop's client.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from resilient import CircuitBreaker, RateLimiter
from resilient.backends._per_loop import PerLoop
from resilient.breaker import reset_breakers
from resilient.breaker.shared import SharedStore
from resilient.config import Settings
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})
# The clients of closed loops are dropped, not closed (a closed loop cannot run their
# aclose()): their sockets are closed by the collector, with a ResourceWarning.
IGNORE_RESOURCE_WARNINGS = "ignore::ResourceWarning"
IGNORE_UNRAISABLE = "ignore::pytest.PytestUnraisableExceptionWarning"


def _closed_loops_held() -> int:
    """Closed event loops still reachable (held by something) after a full collection."""
    gc.collect()
    return sum(isinstance(o, asyncio.AbstractEventLoop) and o.is_closed() for o in gc.get_objects())


def test_closed_loops_are_dropped_when_a_new_one_comes() -> None:
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    per_loop: PerLoop[object] = PerLoop(build)

    async def value() -> object:
        return per_loop.get()

    async def twice() -> tuple[object, object]:
        return per_loop.get(), per_loop.get()

    first, again = asyncio.run(twice())
    assert first is again  # one per loop
    for _ in range(5):
        asyncio.run(value())
    assert len(built) == 6
    assert len(per_loop) == 1  # only the last (closed) loop's value is still held


def test_loops_running_side_by_side_keep_their_own_values() -> None:
    per_loop: PerLoop[object] = PerLoop(object)
    seen: list[tuple[object, object]] = []  # per thread: before and after the other started
    barrier = threading.Barrier(2)

    def run() -> None:
        async def main() -> None:
            before = per_loop.get()
            barrier.wait(timeout=5)  # both loops are alive at once
            seen.append((before, per_loop.get()))

        asyncio.run(main())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 2
    assert all(before is after for before, after in seen)  # each loop kept its own
    assert seen[0][0] is not seen[1][0]


async def test_pop_hands_back_the_running_loops_value() -> None:
    per_loop: PerLoop[object] = PerLoop(object)
    value = per_loop.get()
    assert per_loop.pop() is value
    assert per_loop.pop() is None
    assert len(per_loop) == 0


@pytest.mark.redis
@pytest.mark.filterwarnings(IGNORE_RESOURCE_WARNINGS)
@pytest.mark.filterwarnings(IGNORE_UNRAISABLE)
def test_a_limiter_called_through_asyncio_run_holds_no_dead_loops(
    redis_server: RedisServer,
) -> None:
    before = _closed_loops_held()

    def use() -> None:
        limiter = RateLimiter("1000/second", url=redis_server.url, settings=SETTINGS)
        for _ in range(20):
            assert asyncio.run(limiter.ahit("client")).allowed
        assert len(limiter._source._by_loop) == 1
        assert _closed_loops_held() - before <= 1
        limiter.close()

    use()
    # The last dead loop's client goes with the limiter, now, while its warning is ignored.
    assert _closed_loops_held() == before


@pytest.mark.redis
@pytest.mark.filterwarnings(IGNORE_RESOURCE_WARNINGS)
@pytest.mark.filterwarnings(IGNORE_UNRAISABLE)
def test_a_shared_breaker_called_through_asyncio_run_holds_no_dead_loops(
    redis_server: RedisServer,
) -> None:
    """Failures are reported to Redis from each loop (successes cost no round trip)."""
    before = _closed_loops_held()

    def use() -> None:
        breaker = CircuitBreaker(
            "loops", shared=True, url=redis_server.url, fail_max=1000, settings=SETTINGS
        )

        async def failing() -> None:
            with pytest.raises(Boom):
                await breaker.acall(_boom)

        for _ in range(20):
            asyncio.run(failing())
        assert breaker.fail_counter == 20  # every failure reached the shared state
        store = breaker._store
        assert isinstance(store, SharedStore)
        assert store._loop_backends is not None
        assert len(store._loop_backends) == 1
        assert _closed_loops_held() - before <= 1
        breaker.shutdown()
        reset_breakers()  # the registry lets go of it

    use()
    assert _closed_loops_held() == before


class Boom(Exception):
    """The dependency failed."""


async def _boom() -> None:
    raise Boom
