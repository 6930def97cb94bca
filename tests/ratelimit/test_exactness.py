"""Exactness: a limit of 50 admits exactly 50 of many concurrent callers, for every
strategy: 8 processes x 100 threads against real Redis and a real Redis Cluster; threads
and asyncio tasks in memory (and asyncio against Redis)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import uuid
from collections import Counter

import pytest

from resilient.backends import MemoryBackend, async_backend_from_url
from resilient.config import Settings
from resilient.ratelimit import RateLimiter
from tests.ratelimit._workers import LIMIT, admit_concurrently, process_main
from tests.support.redis_servers import RedisCluster, RedisServer

STRATEGIES = ["sliding-window-counter", "fixed-window", "moving-window"]
SETTINGS = Settings.from_env({})
PROCESSES = 8
CALLERS = 100


def _across_processes(url: str) -> dict[str, list[int]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    scope = f"exact-{uuid.uuid4().hex}"
    processes = [
        context.Process(
            target=process_main, args=(url, STRATEGIES, scope, CALLERS, barrier, results)
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    counts: dict[str, list[int]] = {strategy: [] for strategy in STRATEGIES}
    for _ in range(PROCESSES * len(STRATEGIES)):
        strategy, admitted = results.get(timeout=120)
        counts[strategy].append(admitted)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return counts


@pytest.mark.redis
@pytest.mark.slow
def test_exactly_50_of_800_across_8_processes_on_redis(redis_server: RedisServer) -> None:
    """8 processes x 100 concurrent threads, one window: exactly 50 admitted, per strategy."""
    counts = _across_processes(redis_server.url)
    assert {strategy: sum(found) for strategy, found in counts.items()} == dict.fromkeys(
        STRATEGIES, 50
    )
    assert all(len(found) == PROCESSES for found in counts.values())


@pytest.mark.cluster
@pytest.mark.slow
def test_exactly_50_of_800_across_8_processes_on_a_cluster(
    redis_cluster: RedisCluster,
) -> None:
    """The same against a 3-master Redis Cluster."""
    counts = _across_processes(redis_cluster.url)
    assert {strategy: sum(found) for strategy, found in counts.items()} == dict.fromkeys(
        STRATEGIES, 50
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exactly_50_of_400_threads_in_memory(strategy: str) -> None:
    """Threads released together by a barrier, five trials: exactly 50 every time."""
    for _ in range(5):
        limiter = RateLimiter(LIMIT, backend=MemoryBackend(), strategy=strategy, settings=SETTINGS)
        barrier = threading.Barrier(1)  # the callers wait on the gate the helper opens
        assert admit_concurrently(limiter, "everyone", 400, barrier.wait) == 50


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_exactly_50_of_800_tasks_in_memory(strategy: str) -> None:
    """asyncio tasks released together: exactly 50 admitted."""
    limiter = RateLimiter(LIMIT, backend=MemoryBackend(), strategy=strategy, settings=SETTINGS)
    assert await _gather(limiter, 800) == 50


@pytest.mark.redis
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_exactly_50_of_300_tasks_on_redis(strategy: str, redis_server: RedisServer) -> None:
    """asyncio tasks over one async client, interleaving on real I/O: exactly 50."""
    backend = async_backend_from_url(
        redis_server.url, timeout=10.0, connect_timeout=10.0, max_connections=400
    )
    limiter = RateLimiter(LIMIT, async_backend=backend, strategy=strategy, settings=SETTINGS)
    try:
        assert await _gather(limiter, 300) == 50
    finally:
        await backend.aclose()


async def _gather(limiter: RateLimiter, callers: int) -> int:
    gate = asyncio.Event()

    async def call() -> bool:
        await gate.wait()
        return (await limiter.ahit("everyone")).allowed

    tasks = [asyncio.create_task(call()) for _ in range(callers)]
    await asyncio.sleep(0)  # every task is now waiting at the gate
    gate.set()
    outcomes = Counter(await asyncio.gather(*tasks))
    assert outcomes[True] + outcomes[False] == callers
    return outcomes[True]
