"""Concurrency: calls are never serialized; half-open admits exactly permitted_calls probes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pybreaker
import pytest

from resilient.breaker import STATE_CLOSED, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import Maker
from tests.support.clock import FakeClock

pytestmark = pytest.mark.usefixtures("paused_gc")

THREADS, CALLS, WORK = 8, 10, 0.01


def _threads_take(call: Callable[[], object]) -> float:
    """Seconds for THREADS threads, released together, to make CALLS calls each."""
    barrier = threading.Barrier(THREADS + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(CALLS):
            call()

    workers = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started


def test_calls_are_not_serialized() -> None:
    """8 threads x 10 calls of 10 ms: <= 1.3 x the bare time (pybreaker's call(): ~8 x)."""
    breaker = CircuitBreaker("parallel")

    def work() -> None:
        time.sleep(WORK)

    guarded = breaker(work)
    # Best of three of each, interleaved, so a noisy neighbour hits both sides alike.
    bare = min(_threads_take(work) for _ in range(3))
    ours = min(_threads_take(guarded) for _ in range(3))
    assert ours <= 1.3 * bare, f"bare {bare:.3f}s, through the breaker {ours:.3f}s"
    # The anchor this guards against: pybreaker holds its lock around the call.
    anchor = pybreaker.CircuitBreaker()
    serialized = _threads_take(lambda: anchor.call(work))
    assert serialized >= 3 * bare


async def test_coroutines_are_not_serialized() -> None:
    """100 tasks awaiting 10 ms each through one breaker finish together."""
    breaker = CircuitBreaker("parallel")

    @breaker
    async def work() -> None:
        await asyncio.sleep(WORK)

    started = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(100)))
    assert time.perf_counter() - started < 10 * WORK  # serialized would be 100 x


def _probe_storm(
    breakers: list[CircuitBreaker], callers: int, permitted: int
) -> tuple[int, list[CircuitOpenError]]:
    """``callers`` threads call at once; probes wait until every other caller is turned away."""
    barrier = threading.Barrier(callers)
    rejected: list[CircuitOpenError] = []
    probes = 0
    lock = threading.Lock()
    everyone_else_answered = threading.Event()

    def probe() -> None:
        nonlocal probes
        with lock:
            probes += 1
        everyone_else_answered.wait(10)

    def caller(index: int) -> None:
        breaker = breakers[index % len(breakers)]
        barrier.wait()
        try:
            breaker.call(probe)
        except CircuitOpenError as error:
            with lock:
                rejected.append(error)
                if len(rejected) == callers - permitted:
                    everyone_else_answered.set()

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return probes, rejected


@pytest.mark.parametrize("permitted", [1, 3])
def test_half_open_admits_exactly_the_permitted_probes(
    make: Maker, clock: FakeClock, permitted: int
) -> None:
    """100 threads after the timeout: exactly `permitted` probes run, 100 - n are rejected."""
    breaker = make(fail_max=1, reset_timeout=10, permitted_calls=permitted, probe_timeout=30)
    breaker.open()
    clock.advance(10)
    probes, rejected = _probe_storm([breaker], 100, permitted)
    assert probes == permitted
    assert len(rejected) == 100 - permitted
    assert all(0 < error.retry_after <= 10 for error in rejected)
    assert breaker.current_state == STATE_CLOSED


def test_half_open_is_exact_across_breaker_instances(make_shared: Maker, clock: FakeClock) -> None:
    """Four breakers sharing one state (four "processes"), 25 threads each: one probe."""
    breakers = [make_shared(fail_max=1, reset_timeout=10, probe_timeout=30) for _ in range(4)]
    breakers[0].open()
    for breaker in breakers:
        breaker.resync()  # pub/sub would tell them within milliseconds; do not wait for it
    clock.advance(10)
    probes, rejected = _probe_storm(breakers, 100, 1)
    assert probes == 1
    assert len(rejected) == 99


async def test_half_open_is_exact_for_tasks(make: Maker, clock: FakeClock) -> None:
    """100 concurrent tasks after the timeout: one probe, 99 rejections."""
    breaker = make(fail_max=1, reset_timeout=10, probe_timeout=30)
    breaker.open()
    clock.advance(10)
    all_rejected = asyncio.Event()
    probes = rejections = 0

    @breaker
    async def probe() -> None:
        nonlocal probes
        probes += 1
        await all_rejected.wait()  # hold the probe until everyone else was turned away

    async def caller() -> str:
        nonlocal rejections
        try:
            await probe()
        except CircuitOpenError:
            rejections += 1
            if rejections == 99:
                all_rejected.set()
            return "rejected"
        return "probed"

    outcomes = await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(100))), 10)
    assert probes == 1
    assert outcomes.count("rejected") == 99
    assert breaker.current_state == STATE_CLOSED
