"""Shared state across real OS processes (spawned, and forked from a parent that built the
breaker first), each with its own connections."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.context import ForkContext, SpawnContext
from typing import Any

import pytest

from resilient.breaker import STATE_OPEN, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker import children
from tests.breaker.conftest import eventually
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis
PROCESSES, THREADS = 4, 25
Context = ForkContext | SpawnContext


def context_of(method: str) -> Iterator[Any]:
    """The ``method`` context; every process started is ended after the test."""
    yield multiprocessing.get_context(method)
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)


@pytest.fixture
def spawn() -> Iterator[SpawnContext]:
    """A spawn context."""
    yield from context_of("spawn")


def probe_storm(
    context: Context, tripped: float, url: str, total: int, *extra: object
) -> list[tuple[int, int]]:
    """Each process's (probes, rejected) of ``children.probe_storm`` in PROCESSES
    processes x THREADS threads, let go once the open period (0.2 s from ``tripped``,
    measured by Redis, hence real time) is over."""
    go = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=children.probe_storm, args=(url, THREADS, total, go, results, *extra)
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    time.sleep(max(0.0, 0.25 - (time.monotonic() - tripped)))
    go.wait(timeout=60)
    outcomes: list[tuple[int, int]] = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(10)
    return outcomes


def test_one_probe_across_processes(redis_server: RedisServer, spawn: SpawnContext) -> None:
    """4 processes x 25 threads call once the open period is over: exactly 1 probe runs."""
    url = redis_server.url
    breaker = children.shared_breaker(url, fail_max=1, reset_timeout=0.2)
    breaker.record_failure(breaker.admit(), RuntimeError("down"))
    outcomes = probe_storm(spawn, time.monotonic(), url, PROCESSES * THREADS)
    assert sum(probes for probes, _ in outcomes) == 1
    assert sum(rejected for _, rejected in outcomes) == PROCESSES * THREADS - 1
    with redis_server.client() as client:
        assert client.get("probes") == b"1"
    breaker.shutdown()


@pytest.fixture(params=["fork", "spawn"])
def start_method(request: pytest.FixtureRequest) -> Iterator[Context]:
    """Processes forked from this one (a preloading server) or spawned afresh."""
    yield from context_of(request.param)


def test_exactly_permitted_probes_across_forked_or_spawned_processes(
    redis_server: RedisServer, start_method: Context
) -> None:
    """permitted_calls=3, 4 processes x 25 threads: exactly 3 probes run, whether the
    workers were forked from a parent that built the breaker (gunicorn --preload: they
    inherit its lease counter) or spawned with breakers of their own."""
    url = redis_server.url
    permitted = 3
    breaker = children.shared_breaker(
        url, fail_max=1, reset_timeout=0.2, probe_timeout=30, permitted_calls=permitted
    )
    breaker.record_failure(breaker.admit(), RuntimeError("down"))
    forked = start_method.get_start_method() == "fork"
    total = PROCESSES * THREADS
    outcomes = probe_storm(
        start_method, time.monotonic(), url, total, permitted, breaker if forked else None
    )
    assert sum(probes for probes, _ in outcomes) == permitted
    assert sum(rejected for _, rejected in outcomes) == total - permitted
    with redis_server.client() as client:
        assert client.get("probes") == str(permitted).encode()
    breaker.shutdown()


def test_probe_leases_of_forked_processes_never_collide(
    redis_server: RedisServer, start_method: Context
) -> None:
    """4 processes take turns, each trying 2 probes and holding them: exactly 3 of the 8
    are admitted (permitted_calls=3). Forked workers share the parent's lease counter, so
    without per-process lease ids each one re-took the slots of the one before."""
    url = redis_server.url
    breaker = children.shared_breaker(
        url, fail_max=1, reset_timeout=0.2, probe_timeout=30, permitted_calls=3
    )
    breaker.record_failure(breaker.admit(), RuntimeError("down"))
    forked = start_method.get_start_method() == "fork"
    results = start_method.Queue()
    turns = [start_method.Event() for _ in range(PROCESSES)]
    processes = [
        start_method.Process(
            target=children.admit_in_turn,
            args=(url, 2, turn, results, breaker if forked else None),
        )
        for turn in turns
    ]
    for process in processes:
        process.start()
    time.sleep(0.25)  # real time: the open period (0.2 s) is measured by Redis
    admitted = []
    for turn in turns:
        turn.set()
        admitted.append(results.get(timeout=60))
    for process in processes:
        process.join(10)
    assert admitted == [2, 1, 0, 0]
    breaker.shutdown()


def test_a_dead_probe_does_not_leave_the_circuit_stuck(
    redis_server: RedisServer, spawn: SpawnContext
) -> None:
    """A process dies holding the probe: others are rejected until its lease expires."""
    url = redis_server.url
    breaker = children.shared_breaker(url, fail_max=1, reset_timeout=0.05, probe_timeout=0.4)
    breaker.record_failure(breaker.admit(), RuntimeError("down"))
    process = spawn.Process(target=children.die_holding_a_probe, args=(url,))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    with pytest.raises(CircuitOpenError) as caught:
        breaker.admit()
    assert 0 < caught.value.retry_after <= 0.4
    # Real time: the lease (0.4 s) expires on the server's clock.
    assert eventually(lambda: _admits(breaker), within=0.8)
    breaker.shutdown()


def _admits(breaker: CircuitBreaker) -> bool:
    try:
        breaker.record_success(breaker.admit())
    except CircuitOpenError:
        return False
    return True


def test_a_trip_in_another_process_arrives_within_100_ms(
    redis_server: RedisServer, spawn: SpawnContext
) -> None:
    """Pub/sub across processes: seen here less than 100 ms after the other side tripped."""
    breaker = children.shared_breaker(redis_server.url, fail_max=1, reset_timeout=30)
    go = spawn.Barrier(2)
    results = spawn.Queue()
    process = spawn.Process(target=children.trip_and_report, args=(redis_server.url, go, results))
    process.start()
    go.wait(timeout=60)
    assert eventually(lambda: breaker.current_state == STATE_OPEN, within=2.0)
    seen = time.monotonic()
    tripped = results.get(timeout=60)
    process.join(10)
    assert seen - tripped < 0.1
    breaker.shutdown()


def test_a_forked_worker_hears_transitions_published_after_the_fork(
    redis_server: RedisServer,
) -> None:
    """A worker forked after the breaker was built (gunicorn --preload) hears a trip made
    elsewhere: its subscription and resync threads are started again in the child."""
    fork = multiprocessing.get_context("fork")
    breaker = children.shared_breaker(redis_server.url, fail_max=1, reset_timeout=30)
    other = children.shared_breaker(redis_server.url, fail_max=1, reset_timeout=30)
    ready, results = fork.Event(), fork.Queue()
    child = fork.Process(target=children.watch_for_a_trip, args=(breaker, ready, results))
    child.start()
    try:
        assert ready.wait(60)
        # Before the child subscribed again, its resync reads the trip; after, pub/sub.
        other.record_failure(other.admit(), RuntimeError("down"))
        assert results.get(timeout=60) == STATE_OPEN
    finally:
        child.join(10)
        if child.is_alive():
            child.terminate()
        breaker.shutdown()
        other.shutdown()
