"""How a cancelled call counts: a timeout around it is a failure, a slow call under a
slow-call policy is slow, and a caller that went away is nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import anyio
import pybreaker
import pytest

from resilient.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker, mirror
from tests.breaker.conftest import Maker
from tests.support.clock import FakeClock

needs_cancelling = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Task.cancelling() tells a timeout apart (3.11+)"
)


def hanging(breaker: CircuitBreaker) -> Callable[[], Coroutine[Any, Any, None]]:
    """A guarded coroutine that never returns (an upstream that hangs)."""

    @breaker
    async def fetch() -> None:
        await asyncio.Event().wait()

    return fetch


async def _wait_for(call: Callable[[], Awaitable[None]]) -> None:
    await asyncio.wait_for(call(), 0.01)


async def _timeout(call: Callable[[], Awaitable[None]]) -> None:
    async with asyncio.timeout(0.01):  # type: ignore[attr-defined,unused-ignore]
        await call()


async def _settled() -> None:
    """A cancellation is judged one loop turn after the call saw it; with shared state it
    is then recorded in the background (one round trip): wait for that too."""
    for _ in range(2):
        await asyncio.sleep(0)
    for _ in range(200):
        if not mirror._background:
            break
        await asyncio.sleep(0.005)


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` as its caller would, and wait until the breaker has judged it."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _settled()


@needs_cancelling
@pytest.mark.parametrize("around", [_wait_for, _timeout], ids=["wait_for", "timeout"])
async def test_calls_given_up_by_a_timeout_count_as_failures(
    make: Maker, around: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]
) -> None:
    """20 callers time out on an upstream that hangs: fail_max=5 opens the circuit, and
    the others are rejected without calling."""
    breaker = make(fail_max=5, reset_timeout=30)
    fetch = hanging(breaker)
    outcomes: dict[str, int] = {}
    for _ in range(20):
        try:
            await around(fetch)
        except TimeoutError:
            kind = "timed out"
        except pybreaker.CircuitBreakerError:
            kind = "rejected"
        outcomes[kind] = outcomes.get(kind, 0) + 1
        await _settled()
    assert outcomes == {"timed out": 5, "rejected": 15}
    assert breaker.current_state == STATE_OPEN


async def test_callers_that_went_away_count_as_nothing(make: Maker) -> None:
    """20 calls cancelled by their callers (no timeout): the circuit stays closed."""
    breaker = make(fail_max=5)
    fetch = hanging(breaker)
    for _ in range(20):
        task = asyncio.ensure_future(fetch())
        await asyncio.sleep(0)
        await _cancel(task)
    assert breaker.current_state == STATE_CLOSED
    assert breaker.fail_counter == 0


@needs_cancelling
async def test_a_caller_cancelled_while_waiting_in_wait_for_counts_as_nothing(
    make: Maker,
) -> None:
    """The task awaiting wait_for() is cancelled before the timeout: not a timeout."""
    breaker = make(fail_max=1)
    fetch = hanging(breaker)
    task = asyncio.ensure_future(asyncio.wait_for(fetch(), 60))
    await asyncio.sleep(0.01)
    await _cancel(task)
    assert breaker.current_state == STATE_CLOSED


@needs_cancelling
async def test_a_probe_that_times_out_reopens_the_circuit(make: Maker, clock: FakeClock) -> None:
    """In half-open, a probe given up by its timeout is a failed probe: open again."""
    breaker = make(fail_max=1, reset_timeout=10)
    breaker.open()
    clock.advance(10)
    with pytest.raises(TimeoutError):
        # Longer than the lease's round trip: a timeout during admission is no probe.
        await asyncio.wait_for(hanging(breaker)(), 0.5)
    await _settled()
    assert breaker.current_state == STATE_OPEN


@pytest.mark.parametrize(("ran", "state"), [(2.0, STATE_OPEN), (0.5, STATE_CLOSED)])
async def test_under_the_rate_policy_a_cancelled_call_past_slow_call_duration_is_slow(
    clock: FakeClock, ran: float, state: str
) -> None:
    """Cancelled by its caller (no timeout) after 2 s with slow_call_duration=1: a slow
    call, so two of them open the circuit; after 0.5 s: nothing."""
    breaker = CircuitBreaker("rate", policy="rate", slow_call_duration=1, slow_call_rate=100,
                             window_type="count", window_size=2, minimum_calls=2,
                             clock=clock)  # fmt: skip
    fetch = hanging(breaker)
    for _ in range(2):
        task = asyncio.ensure_future(fetch())
        await asyncio.sleep(0)
        clock.advance(ran)
        await _cancel(task)
    assert breaker.current_state == state


@needs_cancelling
async def test_a_timeout_that_trips_still_raises_itself(clock: FakeClock) -> None:
    """throw_new_error_on_trip does not replace a cancellation by CircuitOpenError."""
    breaker = CircuitBreaker("trip", fail_max=1, throw_new_error_on_trip=True, clock=clock)
    with pytest.raises(TimeoutError):
        await _wait_for(hanging(breaker))
    await _settled()
    assert breaker.current_state == STATE_OPEN


@needs_cancelling
async def test_listeners_hear_a_timeout_as_a_failure(clock: FakeClock) -> None:
    heard: list[Any] = []

    class Listener(pybreaker.CircuitBreakerListener):
        def failure(self, cb: Any, exc: BaseException) -> None:
            heard.append(type(exc))

    breaker = CircuitBreaker("heard", fail_max=5, listeners=[Listener()], clock=clock)
    with pytest.raises(TimeoutError):
        await _wait_for(hanging(breaker))
    await _settled()
    assert heard == [asyncio.CancelledError]
    assert breaker.fail_counter == 1
    assert breaker.current_state != STATE_HALF_OPEN


async def test_an_anyio_deadline_counts_as_a_failure(clock: FakeClock) -> None:
    """anyio.fail_after (what Starlette and httpx build on) around the call: a failure."""
    breaker = CircuitBreaker("anyio-deadline", fail_max=2, clock=clock)
    fetch = hanging(breaker)
    for _ in range(2):
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.01):
                await fetch()
        await _settled()
    assert breaker.current_state == STATE_OPEN


async def test_an_anyio_scope_cancelled_by_hand_counts_as_nothing(clock: FakeClock) -> None:
    """A task group torn down (a client disconnected, under Starlette) takes its
    cancellation back like a timeout does, but is none: the circuit stays closed."""
    breaker = CircuitBreaker("anyio-cancel", fail_max=1, clock=clock)
    fetch = hanging(breaker)
    for _ in range(3):
        async with anyio.create_task_group() as group:
            group.start_soon(fetch)
            await asyncio.sleep(0.01)
            group.cancel_scope.cancel()
        await _settled()
        with anyio.CancelScope() as scope:
            asyncio.get_running_loop().call_later(0.01, scope.cancel)
            await fetch()
        await _settled()
    assert breaker.current_state == STATE_CLOSED
    assert breaker.fail_counter == 0
