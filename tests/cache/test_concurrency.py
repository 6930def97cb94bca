"""Many callers at once on one cold key, in memory and over Redis; concurrent writes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from resilient.cache import cached, invalidate_tags
from resilient.cache.decorator import engine_of
from resilient.config import Settings
from tests.cache._workers import PATIENT
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})


def test_a_thousand_threads_on_a_cold_key_run_the_function_once() -> None:
    """1,000 threads released together: one computes, 999 wait and share its value."""
    callers = 1000
    runs: list[int] = []
    barrier = threading.Barrier(callers)
    results: list[int] = []
    lock = threading.Lock()

    @cached(ttl=60, settings=SETTINGS)
    def slow(x: int) -> int:
        runs.append(x)
        time.sleep(0.3)  # long enough for every thread to arrive while it runs
        return x * 10

    def call() -> None:
        barrier.wait()
        value = slow(7)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runs == [7]
    assert results == [70] * callers
    stats = slow.stats()
    assert (stats.misses, stats.hits) == (1, callers - 1)


async def test_a_thousand_tasks_on_a_cold_key_run_the_function_once() -> None:
    """1,000 tasks started together: one computes, the others await its result."""
    runs: list[int] = []
    gate = asyncio.Event()

    @cached(ttl=60, settings=SETTINGS)
    async def slow(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.05)
        return x * 10

    async def call() -> int:
        await gate.wait()
        return await slow(7)

    tasks = [asyncio.create_task(call()) for _ in range(1000)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [70] * 1000
    assert runs == [7]
    assert (slow.stats().misses, slow.stats().hits) == (1, 999)


@pytest.mark.redis
def test_a_thousand_threads_on_a_cold_redis_key_cost_one_read(redis_server: RedisServer) -> None:
    """Over Redis only the flight's leader talks to the server: one GET, one SET."""
    runs: list[int] = []
    barrier = threading.Barrier(1000)

    @cached(ttl=60, backend=redis_server.url, name=f"herd-{uuid.uuid4().hex}",
            settings=PATIENT)  # fmt: skip
    def slow(x: int) -> int:
        runs.append(x)
        time.sleep(0.3)
        return x

    def call() -> None:
        barrier.wait()
        slow(1)

    with redis_server.client() as client:
        client.config_resetstat()
        threads = [threading.Thread(target=call) for _ in range(1000)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = client.info("commandstats")
    assert runs == [1]
    assert (stats["cmdstat_get"]["calls"], stats["cmdstat_set"]["calls"]) == (1, 1)
    slow.close()


@pytest.mark.redis
async def test_a_thousand_tasks_on_a_cold_redis_key_cost_one_read(
    redis_server: RedisServer,
) -> None:
    """The same for tasks over the asyncio backend."""
    runs: list[int] = []
    gate = asyncio.Event()

    @cached(ttl=60, backend=redis_server.url, name=f"aherd-{uuid.uuid4().hex}",
            settings=PATIENT)  # fmt: skip
    async def slow(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.05)
        return x

    async def call() -> int:
        await gate.wait()
        return await slow(1)

    with redis_server.client() as client:
        client.config_resetstat()
        tasks = [asyncio.create_task(call()) for _ in range(1000)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*tasks) == [1] * 1000
        stats = client.info("commandstats")
    assert runs == [1]
    assert (stats["cmdstat_get"]["calls"], stats["cmdstat_set"]["calls"]) == (1, 1)
    await slow.aclose()


def test_concurrent_writes_keep_the_bound_and_the_indexes() -> None:
    """Eight threads filling distinct keys past max_entries: bounded, tags still exact."""
    tag = uuid.uuid4().hex

    @cached(ttl=60, max_entries=100, tags=[tag + ":{x}"], settings=SETTINGS)
    def value(x: int) -> int:
        return x

    def fill(offset: int) -> None:
        for x in range(offset, offset + 2000):
            value(x)
            value(x % 50)  # hits on a few keys, so CLOCK has something to keep

    threads = [threading.Thread(target=fill, args=(n * 2000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value.stats().size <= 100
    kept = engine_of(value).store.keys()
    assert invalidate_tags(*(f"{tag}:{x}" for x in kept)) == len(kept)
    assert value.stats().size == 0
