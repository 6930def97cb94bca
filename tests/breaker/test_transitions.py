"""The state machine through every kind of function and every storage, on an injected clock.

Each test runs for {sync, async, generator, async generator} x {memory, fakeredis,
redis, cluster}: the same transitions must hold whatever is guarded and wherever the
state lives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from resilient.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import Maker
from tests.support.clock import FakeClock

KINDS = ["function", "coroutine", "generator", "async_generator"]
Behaviour = Callable[[], object]
Runner = Callable[[Behaviour], Awaitable[object]]


class Boom(Exception):
    """The dependency failed."""


def boom() -> object:
    raise Boom


def ok() -> object:
    return "ok"


def guard(breaker: CircuitBreaker, kind: str) -> Runner:
    """``breaker`` applied to a function of ``kind``; the runner drives it to the end."""
    if kind == "function":

        @breaker
        def function(behaviour: Behaviour) -> object:
            return behaviour()

        async def run_function(behaviour: Behaviour) -> object:
            return function(behaviour)

        return run_function
    if kind == "coroutine":

        @breaker
        async def coroutine(behaviour: Behaviour) -> object:
            return behaviour()

        return coroutine
    if kind == "generator":

        @breaker
        def generator(behaviour: Behaviour) -> Iterator[object]:
            yield "first"
            yield behaviour()

        async def run_generator(behaviour: Behaviour) -> object:
            return list(generator(behaviour))[-1]

        return run_generator

    @breaker
    async def async_generator(behaviour: Behaviour) -> AsyncIterator[object]:
        yield "first"
        yield behaviour()

    async def run_async_generator(behaviour: Behaviour) -> object:
        return [item async for item in async_generator(behaviour)][-1]

    return run_async_generator


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


async def fail(run: Runner, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await run(boom)


async def rejected(run: Runner) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as caught:
        await run(ok)
    return caught.value


async def test_consecutive_failures_open_and_a_success_resets(make: Maker, kind: str) -> None:
    """fail_max failures in a row open the circuit; a success in between starts over."""
    breaker = make(fail_max=3, reset_timeout=30)
    run = guard(breaker, kind)
    await fail(run, 2)
    assert await run(ok) == "ok"
    assert breaker.fail_counter == 0
    await fail(run, 2)
    assert breaker.current_state == STATE_CLOSED
    await fail(run)  # the third in a row: the user's error still propagates unchanged
    assert breaker.current_state == STATE_OPEN
    error = await rejected(run)
    assert error.retry_after == pytest.approx(30)
    assert error.name == "breaker"


async def test_open_half_open_closed(make: Maker, kind: str, clock: FakeClock) -> None:
    """After reset_timeout one probe runs; its success closes the circuit."""
    breaker = make(fail_max=1, reset_timeout=10)
    run = guard(breaker, kind)
    await fail(run)
    clock.advance(9.5)
    assert (await rejected(run)).retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert await run(ok) == "ok"
    assert breaker.current_state == STATE_CLOSED
    await fail(run)  # counting starts afresh: one failure opens again
    assert breaker.current_state == STATE_OPEN


async def test_effective_state_shows_an_expired_open_circuit_as_half_open(
    make: Maker, kind: str, clock: FakeClock
) -> None:
    """Until a call comes, current_state stays open; effective_state tells the truth."""
    breaker = make(fail_max=1, reset_timeout=10)
    run = guard(breaker, kind)
    assert breaker.effective_state == STATE_CLOSED
    await fail(run)
    clock.advance(9.5)
    assert breaker.effective_state == STATE_OPEN
    clock.advance(0.5)
    assert breaker.current_state == STATE_OPEN  # nothing called since the trip
    assert breaker.effective_state == STATE_HALF_OPEN
    breaker.force_open()
    assert breaker.effective_state == STATE_OPEN  # forced open never expires


async def test_failed_probe_reopens_for_a_full_timeout(
    make: Maker, kind: str, clock: FakeClock
) -> None:
    """Open -> half-open -> open -> half-open -> closed, with the timeout restarting."""
    breaker = make(fail_max=1, reset_timeout=10)
    run = guard(breaker, kind)
    await fail(run)
    clock.advance(10)
    await fail(run)  # the probe fails
    assert breaker.current_state == STATE_OPEN
    assert (await rejected(run)).retry_after == pytest.approx(10)
    clock.advance(10)
    assert await run(ok) == "ok"
    assert breaker.current_state == STATE_CLOSED


async def test_success_threshold_needs_that_many_probes(
    make: Maker, kind: str, clock: FakeClock
) -> None:
    """With success_threshold=3 the circuit stays half-open until the third success."""
    breaker = make(fail_max=1, reset_timeout=5, success_threshold=3)
    run = guard(breaker, kind)
    await fail(run)
    clock.advance(5)
    for done in (1, 2):
        assert await run(ok) == "ok"
        assert breaker.current_state == STATE_HALF_OPEN
        assert breaker.success_counter == done
    assert await run(ok) == "ok"
    assert breaker.current_state == STATE_CLOSED


async def test_ignored_outcomes_count_as_nothing(make: Maker, kind: str, clock: FakeClock) -> None:
    """Excluded exceptions propagate, neither count nor reset, and free a probe's slot."""
    breaker = make(fail_max=2, reset_timeout=5, exclude=[KeyError])
    run = guard(breaker, kind)

    def missing() -> object:
        raise KeyError("absent")

    await fail(run)
    with pytest.raises(KeyError):
        await run(missing)
    assert breaker.fail_counter == 1  # not reset, as pybreaker's "excluded = success" would
    await fail(run)
    assert breaker.current_state == STATE_OPEN
    clock.advance(5)
    with pytest.raises(KeyError):
        await run(missing)  # the probe ended with an ignored outcome: its slot is free again
    assert breaker.current_state == STATE_HALF_OPEN
    assert await run(ok) == "ok"
    assert breaker.current_state == STATE_CLOSED


@pytest.mark.parametrize("kind", ["function", "coroutine"])
async def test_failure_predicate_counts_results(make: Maker, kind: str) -> None:
    """A returned value the predicate rejects (an HTTP 5xx) counts as a failure."""
    breaker = make(fail_max=2, failure_predicate=lambda result: result == 503)
    run = guard(breaker, kind)
    assert await run(lambda: 503) == 503  # returned to the caller unchanged
    assert breaker.fail_counter == 1
    assert await run(lambda: 503) == 503
    assert breaker.current_state == STATE_OPEN


async def test_manual_open_and_close(make: Maker, kind: str) -> None:
    """open() rejects at once; close() admits again and forgets failures."""
    breaker = make(fail_max=3, reset_timeout=60)
    run = guard(breaker, kind)
    await fail(run, 2)
    breaker.open()
    assert (await rejected(run)).retry_after == pytest.approx(60)
    breaker.close()
    assert breaker.fail_counter == 0
    assert await run(ok) == "ok"
    await fail(run, 2)
    assert breaker.current_state == STATE_CLOSED


async def test_forced_open_and_disabled(make: Maker, kind: str) -> None:
    """force_open rejects everything; disabled admits everything and records nothing."""
    breaker = make(fail_max=1, reset_timeout=7)
    run = guard(breaker, kind)
    breaker.force_open()
    assert breaker.current_state == STATE_OPEN
    assert (await rejected(run)).retry_after == pytest.approx(7)
    breaker.disable()
    await fail(run, 3)
    assert breaker.current_state == STATE_CLOSED
    assert breaker.forced == "disabled"
    breaker.close()
    assert breaker.forced is None
    await fail(run)
    assert breaker.current_state == STATE_OPEN


async def test_stale_outcomes_do_not_count(make: Maker, clock: FakeClock) -> None:
    """A call admitted before a trip cannot close (or count against) the next state."""
    breaker = make(fail_max=1, reset_timeout=5)
    slow_call = breaker.admit()  # admitted while closed
    breaker.record_failure(breaker.admit(), Boom())
    assert breaker.current_state == STATE_OPEN
    clock.advance(5)
    probe = breaker.admit()
    breaker.record_success(slow_call)  # late news from the closed era: ignored
    assert breaker.current_state == STATE_HALF_OPEN
    breaker.record_failure(slow_call, Boom())
    assert breaker.current_state == STATE_HALF_OPEN
    breaker.record_success(probe)
    assert breaker.current_state == STATE_CLOSED


async def test_a_probe_that_never_reports_loses_its_lease(make: Maker, clock: FakeClock) -> None:
    """A dead probe holds its slot for probe_timeout only; then another caller probes."""
    breaker = make(fail_max=1, reset_timeout=5, probe_timeout=2)
    breaker.record_failure(breaker.admit(), Boom())
    clock.advance(5)
    lost = breaker.admit()  # this probe dies without reporting
    assert lost.lease
    with pytest.raises(CircuitOpenError) as caught:
        breaker.admit()
    assert caught.value.retry_after == pytest.approx(2)
    clock.advance(2)
    probe = breaker.admit()
    breaker.record_success(probe)
    assert breaker.current_state == STATE_CLOSED
