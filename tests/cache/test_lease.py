"""The Redis lease: one computation per key across processes, even if its holder dies."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import redis

from resilient.cache import cached
from tests.cache._workers import PATIENT, lease_caller, lease_holder, raw_client
from tests.support.redis_servers import RedisCluster, RedisServer

PROCESSES, CALLERS = 4, 250


Outcome = tuple[list[str], int, int, int, int]  # values, calls, misses, hits, errors


def _run_callers(url: str, name: str) -> list[Outcome]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=lease_caller, args=(url, name, CALLERS, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    return outcomes


@pytest.mark.redis
def test_four_processes_of_250_callers_compute_once(redis_server: RedisServer) -> None:
    """1,000 concurrent callers in 4 processes on a cold key: the function runs once."""
    name = f"lease-{uuid.uuid4().hex}"
    outcomes = _run_callers(redis_server.url, name)
    with redis_server.client() as client:
        assert client.get(f"{name}:runs") == b"1"
        assert client.exists(f"{name}:i1:lease") == 0  # released by its holder
    assert [values for values, *_ in outcomes] == [["value 1"]] * PROCESSES
    assert sum(count for _, count, *_ in outcomes) == PROCESSES * CALLERS
    assert sum(misses for _, _, misses, *_ in outcomes) == 1
    assert sum(hits for _, _, _, hits, *_ in outcomes) == PROCESSES * CALLERS - 1
    assert [errors for *_, errors in outcomes] == [0] * PROCESSES


@pytest.mark.cluster
def test_the_lease_works_on_redis_cluster(redis_cluster: RedisCluster) -> None:
    """Same exactness with the entry, its lease and the counter spread over a cluster."""
    name = f"cluster-lease-{uuid.uuid4().hex}"
    outcomes = _run_callers(redis_cluster.url, name)
    client = raw_client(redis_cluster.url)
    try:
        assert client.get(f"{name}:runs") == b"1"
    finally:
        client.close()
    assert sum(misses for _, _, misses, *_ in outcomes) == 1
    assert [errors for *_, errors in outcomes] == [0] * PROCESSES


@pytest.mark.redis
def test_a_dead_holders_lease_expires_and_another_caller_computes(
    redis_server: RedisServer,
) -> None:
    """The holder is killed mid-computation; a caller elsewhere waits out the lease,
    then computes instead of waiting forever."""
    name = f"holder-{uuid.uuid4().hex}"
    lock_ttl = 0.5  # a real lease expiry must pass: kept short
    context = multiprocessing.get_context("spawn")
    holder = context.Process(target=lease_holder, args=(redis_server.url, name, lock_ttl))
    holder.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        deadline = time.monotonic() + 30
        while not client.exists(f"{name}:computing"):
            assert time.monotonic() < deadline, "the holder never started computing"
            time.sleep(0.01)
        holder.kill()
        holder.join(10)
        remaining = client.pttl(f"{name}:i1:lease") / 1000
        assert 0 < remaining <= lock_ttl
        runs: list[int] = []

        @cached(ttl=60, backend=redis_server.url, lock=True, lock_ttl=lock_ttl, name=name,
                settings=PATIENT)  # fmt: skip
        def compute(x: int) -> str:
            runs.append(x)
            return "successor"

        started = time.monotonic()
        assert compute(1) == "successor"
        waited = time.monotonic() - started
        assert runs == [1]
        assert remaining - 0.05 <= waited < lock_ttl + 0.5
        assert client.exists(f"{name}:i1:lease") == 0
        compute.close()
    finally:
        client.close()


@pytest.mark.redis
def test_a_waiter_gives_up_after_lock_ttl_when_the_lease_is_renewed_elsewhere(
    redis_server: RedisServer,
) -> None:
    """A lease that never frees (another process keeps it) costs lock_ttl, not forever."""
    name = f"stuck-{uuid.uuid4().hex}"
    with redis_server.client() as client:
        client.set(f"{name}:i1:lease", b"someone else", px=60_000)

    @cached(ttl=60, backend=redis_server.url, lock=True, lock_ttl=0.3, name=name,
            settings=PATIENT)  # fmt: skip
    def compute(x: int) -> str:
        return "computed anyway"

    started = time.monotonic()
    assert compute(1) == "computed anyway"  # waited 0.3 s of polling, then computed
    assert 0.3 <= time.monotonic() - started < 1.0
    with redis_server.client() as client:
        assert client.get(f"{name}:i1:lease") == b"someone else"  # not ours to delete
    compute.close()
