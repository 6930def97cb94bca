"""Stampede control in one process: single-flight, SWR, stale-if-error, XFetch."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import pytest

from resilient.cache import cached
from resilient.cache.entries import EARLY_WINDOW, Entry, should_refresh_early
from resilient.config import Settings
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})


def test_followers_share_the_leaders_exception() -> None:
    """When the single computation raises, every waiting caller gets that error."""
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def fails(x: int) -> int:
        runs.append(x)
        started.set()
        release.wait(5)
        raise ValueError("upstream down")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            fails(1)
        except ValueError as exc:
            errors.append(exc)

    leader = threading.Thread(target=call)
    leader.start()
    assert started.wait(5)
    followers = [threading.Thread(target=call) for _ in range(5)]
    for thread in followers:
        thread.start()
    time.sleep(0.05)  # let the followers join the flight before the leader fails
    release.set()
    for thread in [leader, *followers]:
        thread.join()
    assert runs == [1]
    assert len(errors) == 6
    assert fails.stats().size == 0


async def test_a_cancelled_leader_hands_over_to_a_follower() -> None:
    """Cancelling the computing task does not cancel the tasks waiting for it."""
    runs: list[int] = []
    entered = asyncio.Event()

    @cached(ttl=60, settings=SETTINGS)
    async def slow(x: int) -> int:
        runs.append(x)
        entered.set()
        await asyncio.sleep(0.05)
        return x

    leader = asyncio.create_task(slow(1))
    await entered.wait()
    follower = asyncio.create_task(slow(1))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == 1
    assert runs == [1, 1]


def test_followers_stop_waiting_for_a_hung_leader() -> None:
    """Past ``lock_ttl`` the waiting threads elect a new leader: one more computation for
    all of them, and the hung call holds up nobody but its own caller."""
    hung, release = threading.Event(), threading.Event()
    calls: list[int] = []

    @cached(ttl=60, lock_ttl=0.05, settings=SETTINGS)
    def value(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            hung.set()
            release.wait(5)
            return -1
        return 2 * x

    results: list[int] = []
    leader = threading.Thread(target=lambda: results.append(value(1)))
    followers = [threading.Thread(target=lambda: results.append(value(1))) for _ in range(4)]
    try:
        leader.start()
        assert hung.wait(5)
        for thread in followers:
            thread.start()
        deadline = time.monotonic() + 2  # generous: they should be done within ~50 ms
        for thread in followers:
            thread.join(max(deadline - time.monotonic(), 0))
        assert not any(thread.is_alive() for thread in followers)
        # Latecomers found the new flight, or the value it stored: never a third call.
        assert (results, calls) == ([2, 2, 2, 2], [1, 1])
    finally:
        release.set()
        leader.join(5)
    assert results[-1] == -1


async def test_async_followers_stop_waiting_for_a_hung_leader() -> None:
    """The asyncio flavour: waiting tasks give up on the leader after ``lock_ttl``."""
    release = asyncio.Event()
    calls: list[int] = []

    @cached(ttl=60, lock_ttl=0.05, settings=SETTINGS)
    async def value(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            await release.wait()
            return -1
        return 2 * x

    leader = asyncio.create_task(value(1))
    try:
        await asyncio.sleep(0)  # the leader starts and hangs
        followers = asyncio.gather(*(value(1) for _ in range(4)))
        assert await asyncio.wait_for(followers, 2) == [2, 2, 2, 2]
        assert calls == [1, 1]
    finally:
        release.set()
    assert await leader == -1


async def test_a_leaders_own_timeout_error_reaches_its_followers() -> None:
    """A TimeoutError raised by the function is its outcome, not the end of the wait."""
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    @cached(ttl=60, lock_ttl=5, settings=SETTINGS)
    async def value(x: int) -> int:
        calls.append(x)
        entered.set()
        await release.wait()
        raise TimeoutError("upstream timed out")

    leader = asyncio.create_task(value(1))
    await entered.wait()
    followers = [asyncio.create_task(value(1)) for _ in range(3)]
    await asyncio.sleep(0)  # the followers join the flight
    release.set()
    for task in [leader, *followers]:
        with pytest.raises(TimeoutError, match="upstream"):
            await task
    assert calls == [1]


def test_stale_while_revalidate_serves_stale_and_refreshes_once(clock: FakeClock) -> None:
    """After expiry, callers get the old value at once while one thread refreshes."""
    release = threading.Event()
    versions: list[int] = []

    @cached(ttl=10, stale_while_revalidate=5, xfetch_beta=0, clock=clock, settings=SETTINGS)
    def value(x: int) -> int:
        versions.append(x)
        if len(versions) > 1:
            release.wait(5)
        return len(versions)

    assert value(1) == 1
    clock.advance(11)
    assert [value(1) for _ in range(5)] == [1] * 5  # refresh blocked: still stale
    release.set()
    assert value.drain(5)
    assert value(1) == 2
    assert versions == [1, 1]
    stats = value.stats()
    assert (stats.stale, stats.refreshes, stats.misses) == (5, 1, 1)
    clock.advance(16)  # past fresh + swr: a plain miss
    assert value(1) == 3
    assert value.stats().misses == 2


async def test_stale_while_revalidate_async_refreshes_in_a_task(clock: FakeClock) -> None:
    """The coroutine flavour refreshes in one background task."""
    versions: list[int] = []

    @cached(ttl=10, stale_while_revalidate=5, xfetch_beta=0, clock=clock, settings=SETTINGS)
    async def value(x: int) -> int:
        versions.append(x)
        await asyncio.sleep(0)
        return len(versions)

    assert await value(1) == 1
    clock.advance(11)
    assert [await value(1) for _ in range(3)] == [1, 1, 1]
    await value.adrain()
    assert await value(1) == 2
    assert versions == [1, 1]


def test_background_refresh_errors_are_counted_and_keep_the_stale_value(
    clock: FakeClock,
) -> None:
    """A refresh that raises changes nothing for callers; it shows up in errors."""
    outcomes: Iterator[int | Exception] = iter([1, RuntimeError("boom")])

    @cached(ttl=10, stale_while_revalidate=5, xfetch_beta=0, clock=clock, settings=SETTINGS)
    def value(x: int) -> int:
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    value(1)
    clock.advance(11)
    assert value(1) == 1
    assert value.drain(5)
    assert value.stats().errors == 1
    assert value(1) == 1


def test_stale_if_error_serves_stale_within_its_window(clock: FakeClock) -> None:
    """When the function raises after expiry, the stale value is served for a while."""
    healthy = [True]

    @cached(ttl=10, stale_if_error=30, xfetch_beta=0, clock=clock, settings=SETTINGS)
    def value(x: int) -> str:
        if not healthy[0]:
            raise ConnectionError("upstream down")
        return "fresh"

    assert value(1) == "fresh"
    healthy[0] = False
    clock.advance(20)
    assert value(1) == "fresh"
    assert value.stats().stale == 1
    clock.advance(20.001)  # 40.001 s old: beyond ttl + stale_if_error
    with pytest.raises(ConnectionError):
        value(1)
    healthy[0] = True
    assert value(1) == "fresh"


async def test_stale_if_error_async(clock: FakeClock) -> None:
    """Same rule for coroutine functions; refresh() never hides an error."""
    healthy = [True]

    @cached(ttl=10, stale_if_error=30, xfetch_beta=0, clock=clock, settings=SETTINGS)
    async def value(x: int) -> str:
        if not healthy[0]:
            raise ConnectionError("upstream down")
        return "fresh"

    await value(1)
    healthy[0] = False
    clock.advance(15)
    assert await value(1) == "fresh"
    with pytest.raises(ConnectionError):
        await value.refresh(1)


def test_xfetch_skips_the_draw_far_from_expiry() -> None:
    """Outside the last EARLY_WINDOW * delta * beta seconds the hit path never refreshes."""
    entry = Entry("v", fresh_until=100.0, delta=1.0, beta=2.0, stale_for=0.0)
    assert entry.check_at == 100.0 - EARLY_WINDOW * 2.0
    random.seed(1)
    draws = [should_refresh_early(entry, 99.0, 2.0) for _ in range(2000)]
    # P(refresh 1 s before expiry) = exp(-1 / (delta * beta)) = 0.61
    assert 0.55 < sum(draws) / len(draws) < 0.67
    assert not should_refresh_early(entry, 99.0, 0.0)


async def _steady_load(clock: FakeClock, beta: float) -> tuple[int, int, list[float]]:
    """One call every 50 ms of fake time for 100 s; computing takes 1 s of fake time."""

    @cached(ttl=10, xfetch_beta=beta, clock=clock, settings=SETTINGS)
    async def report(x: int) -> float:
        for _ in range(10):  # other callers run while it computes
            clock.advance(0.1)
            await asyncio.sleep(0)
        return clock()

    ages: list[float] = []
    for _ in range(2000):
        computed_at = await report(1)
        ages.append(clock() - computed_at)
        clock.advance(0.05)
        await asyncio.sleep(0)
    await report.adrain()
    stats = report.stats()
    return stats.misses, stats.refreshes, ages


async def test_xfetch_refreshes_before_expiry_so_nobody_misses(clock: FakeClock) -> None:
    """Under steady load, after the first fill every caller gets a fresh hit."""
    random.seed(2015)
    misses, refreshes, ages = await _steady_load(clock, beta=1.0)
    assert misses == 1
    assert refreshes >= 9  # about one per ttl over 100 s
    assert max(ages) < 10  # nobody ever got an expired value


async def test_without_xfetch_the_same_load_misses_at_every_expiry() -> None:
    """The control: beta=0 leaves every expiry to a caller, who waits for the compute."""
    misses, refreshes, _ = await _steady_load(FakeClock(), beta=0.0)
    assert misses >= 9
    assert refreshes == 0


def test_expiry_needs_no_event_loop(clock: FakeClock) -> None:
    """A coroutine function run by asyncio.run() each time keeps its cache and its TTL."""
    calls: list[int] = []

    @cached(ttl=10, clock=clock, settings=SETTINGS)
    async def value(x: int) -> int:
        calls.append(x)
        return x

    assert asyncio.run(value(1)) == asyncio.run(value(1)) == 1
    assert calls == [1]
    clock.advance(10)
    asyncio.run(value(1))
    assert calls == [1, 1]
