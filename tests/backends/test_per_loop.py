"""One policy for event loops: an asyncio backend serves every loop it is used from, with
connections per loop that close when their loop shuts down, and one guard.

``asyncio.run()`` per call (a sync view calling async code) starts and closes a loop each
time; threads may run loops side by side. Neither may open a connection per operation,
hold the connections of dead loops, or split the guard's count of failures by loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from resilient import CircuitBreaker, RateLimiter
from resilient.backends import LuaScript, async_backend_from_url
from resilient.backends._per_loop import PerLoop
from resilient.backends.redis import AsyncRedisBackend
from resilient.breaker import reset_breakers
from resilient.cache import cached
from resilient.config import Settings
from tests.support.redis_servers import RedisServer
from tests.support.sockets import HungServer

SETTINGS = Settings.from_env({})
COUNT = LuaScript("return redis.call('INCR', KEYS[1])")


def _closed_loops_held() -> int:
    """Closed event loops still reachable (held by something) after a full collection."""
    gc.collect()
    return sum(isinstance(o, asyncio.AbstractEventLoop) and o.is_closed() for o in gc.get_objects())


async def _get(per_loop: PerLoop[object]) -> object:
    return per_loop.get()


def _connections_received(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.info("stats")["total_connections_received"])


class Closed:
    """Values that record their closing, and the loop it ran in."""

    def __init__(self) -> None:
        self.closed: list[tuple[object, asyncio.AbstractEventLoop]] = []

    def close(self, value: object) -> None:
        self.closed.append((value, asyncio.get_running_loop()))

    async def aclose(self, value: object) -> None:
        await asyncio.sleep(0)  # really awaits: the loop still runs
        self.close(value)


@pytest.mark.parametrize("awaited", [False, True])
def test_a_value_is_closed_in_its_loop_when_asyncio_run_ends(awaited: bool) -> None:
    record = Closed()
    per_loop: PerLoop[object] = PerLoop(object, record.aclose if awaited else record.close)

    async def twice() -> tuple[object, object, asyncio.AbstractEventLoop]:
        return per_loop.get(), per_loop.get(), asyncio.get_running_loop()

    for n in range(1, 4):
        first, again, loop = asyncio.run(twice())
        assert first is again  # one per loop
        assert record.closed[-1] == (first, loop)  # closed inside its loop, at shutdown
        assert len(record.closed) == n
        assert len(per_loop) == 0  # and forgotten


def test_loops_closed_without_shutdown_are_swept_when_a_new_one_comes() -> None:
    record = Closed()
    per_loop: PerLoop[object] = PerLoop(object, record.close)
    for _ in range(3):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(_get(per_loop))
        loop.close()  # no shutdown_asyncgens(): nothing can close its value any more
    assert len(per_loop) == 1  # the last one, until another loop comes or we go
    assert record.closed == []
    del per_loop  # finishes the keeper of the closed loop; nothing is handed to it
    gc.collect()


def test_loops_running_side_by_side_keep_their_own_values() -> None:
    record = Closed()
    per_loop: PerLoop[object] = PerLoop(object, record.close)
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
    assert sorted(map(id, (value for value, _ in record.closed))) == sorted(
        id(before) for before, _ in seen
    )


def test_past_the_limit_the_oldest_loops_value_is_closed_in_its_loop() -> None:
    record = Closed()
    per_loop: PerLoop[object] = PerLoop(object, record.close, limit=2)
    loops = [asyncio.new_event_loop() for _ in range(3)]
    values = [loop.run_until_complete(_get(per_loop)) for loop in loops]
    assert len(per_loop) == 2
    loops[0].run_until_complete(asyncio.sleep(0))  # its loop runs the closing
    assert record.closed == [(values[0], loops[0])]
    for loop in loops:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert [value for value, _ in record.closed] == values
    assert len(per_loop) == 0


async def test_pop_hands_back_the_running_loops_value_unclosed() -> None:
    record = Closed()
    per_loop: PerLoop[object] = PerLoop(object, record.close)
    value = per_loop.get()
    assert per_loop.pop() is value
    assert per_loop.pop() is None
    assert len(per_loop) == 0
    assert record.closed == []


# -- backends, limiters, breakers and caches over real servers ---------------------------


@pytest.mark.redis
def test_operations_alternating_between_loops_open_one_connection_per_loop(
    redis_server: RedisServer,
) -> None:
    """1,200 evals, GETs and DELs switching loops every time: two lane connections and two
    redis-py ones (DEL), all closed when the loops shut down."""
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    assert isinstance(backend, AsyncRedisBackend)
    loops = [asyncio.new_event_loop(), asyncio.new_event_loop()]
    before = _connections_received(redis_server)
    for n in range(1, 401):
        loop = loops[n % 2]
        assert loop.run_until_complete(backend.eval(COUNT, ["n"], [])) == n
        loop.run_until_complete(backend.get("k"))
        loop.run_until_complete(backend.delete("gone"))
    assert _connections_received(redis_server) - before == 4 + 1  # +1: the INFO client
    for loop in loops:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert backend._lanes is not None
    assert backend._clients is not None
    assert (len(backend._lanes), len(backend._clients)) == (0, 0)
    with redis_server.client() as client:
        assert len(client.client_list()) == 1  # only the one asking


@pytest.mark.redis
def test_aclose_closes_the_running_loops_connections_only(redis_server: RedisServer) -> None:
    """Another loop keeps using its own (here: no reconnect); the closing loop's go."""
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    first.run_until_complete(backend.delete("k"))  # the client built with the backend
    first.run_until_complete(backend.eval(COUNT, ["n"], []))
    second.run_until_complete(backend.eval(COUNT, ["n"], []))  # a lane, and no client
    before = _connections_received(redis_server)
    second.run_until_complete(backend.aclose())
    first.run_until_complete(backend.delete("k"))
    first.run_until_complete(backend.eval(COUNT, ["n"], []))
    assert _connections_received(redis_server) - before == 1  # the INFO client only
    for loop in (first, second):
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.mark.redis
def test_asyncio_run_per_call_leaves_no_connection_and_no_loop_behind(
    redis_server: RedisServer,
) -> None:
    """No warning filters: every connection is closed, none left to the collector."""
    before = _closed_loops_held()
    limiter = RateLimiter("1000/second", url=redis_server.url, settings=SETTINGS)
    for _ in range(20):
        assert asyncio.run(limiter.ahit("client")).allowed
    with redis_server.client() as client:
        assert len(client.client_list()) == 1
    assert _closed_loops_held() == before
    limiter.close()


Call = Callable[[], Awaitable[object]]


@pytest.mark.redis
def test_a_shared_breaker_called_through_asyncio_run_keeps_one_backend_and_no_loop(
    redis_server: RedisServer,
) -> None:
    """Failures are reported to Redis from each loop (successes cost no round trip)."""
    before = _closed_loops_held()
    breaker = CircuitBreaker(
        "loops", shared=True, url=redis_server.url, fail_max=1000, settings=SETTINGS
    )

    async def failing() -> None:
        with pytest.raises(ValueError, match="failed"):
            await breaker.acall(_fail)

    for _ in range(20):
        asyncio.run(failing())
    assert breaker.fail_counter == 20  # every failure reached the shared state
    store: Any = breaker._store
    backend = store._async
    assert isinstance(backend, AsyncRedisBackend)
    assert backend._lanes is not None
    assert len(backend._lanes) == 0  # each loop's connection closed as it shut down
    assert _closed_loops_held() == before
    breaker.shutdown()
    reset_breakers()


async def _fail() -> None:
    raise ValueError("the dependency failed")


def _limiter(url: str, settings: Settings) -> tuple[Call, Callable[[], Any]]:
    limiter = RateLimiter("1000/second", url=url, settings=settings)
    return (lambda: limiter.ahit("client")), lambda: limiter._source.asyncio()


def _cache(url: str, settings: Settings) -> tuple[Call, Callable[[], Any]]:
    @cached(ttl=60, backend=url, settings=settings, name="per-loop")
    async def compute() -> int:
        return 1

    return compute, lambda: compute._engine._backend  # type: ignore[attr-defined]


@pytest.fixture
def unresponsive() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


@pytest.mark.parametrize("user", [_limiter, _cache])
def test_asyncio_run_per_call_against_a_hung_server_opens_the_guard(
    unresponsive: HungServer,
    user: Callable[[str, Settings], tuple[Call, Callable[[], Any]]],
) -> None:
    """Every call in a new loop: the failures still add up in one guard, which then skips
    the server (no connection at all) for the calls after ``guard_failures``."""
    settings = Settings.from_env(
        {"RESILIENT_GUARD_FAILURES": "3", "RESILIENT_GUARD_COOLDOWN": "60s",
         "RESILIENT_OP_TIMEOUT": "50ms", "RESILIENT_CONNECT_TIMEOUT": "1s"}
    )  # fmt: skip
    call, backend = user(unresponsive.url, settings)
    for _ in range(8):
        with contextlib.suppress(Exception):
            asyncio.run(_awaited(call))
    guard = backend().guard
    assert guard.is_open
    assert len(unresponsive.accepted) == 3


async def _awaited(call: Callable[[], Awaitable[Any]]) -> Any:
    return await call()
