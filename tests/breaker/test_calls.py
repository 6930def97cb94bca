"""The ways in: decorator, call()/acall(), context managers, fallbacks, the admission API."""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pybreaker
import pytest

from resilient.breaker import (
    STATE_CLOSED,
    STATE_HALF_OPEN,
    STATE_OPEN,
    CircuitBreaker,
    ResultFailure,
)
from resilient.errors import CircuitOpenError
from tests.support.clock import FakeClock


class Boom(Exception):
    """The dependency failed."""


def tripped(clock: FakeClock, **options: object) -> CircuitBreaker:
    breaker = CircuitBreaker("calls", fail_max=1, reset_timeout=10, clock=clock, **options)  # type: ignore[arg-type]
    breaker.open()
    return breaker


def test_decorator_keeps_the_function_identity(clock: FakeClock) -> None:
    """Name, docstring, signature and kind survive decoration, bare or with ()."""
    breaker = CircuitBreaker("calls", clock=clock)

    @breaker
    def add(left: int, right: int = 1) -> int:
        """Add."""
        return left + right

    @breaker()
    async def fetch(key: str) -> str:
        return key

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1

    @breaker
    def numbers() -> Iterator[int]:
        yield 1

    assert (add.__name__, add.__doc__, add(2)) == ("add", "Add.", 3)
    assert str(inspect.signature(add)) == str(inspect.signature(add.__wrapped__))  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(fetch)
    assert inspect.isasyncgenfunction(stream)
    assert inspect.isgeneratorfunction(numbers)
    with pytest.raises(TypeError):
        breaker(add, add)  # type: ignore[call-overload]


def test_methods_bind_normally(clock: FakeClock) -> None:
    """A decorated method receives self."""
    breaker = CircuitBreaker("calls", clock=clock)

    class Client:
        factor = 3

        @breaker
        def scale(self, value: int) -> int:
            return self.factor * value

    assert Client().scale(2) == 6


def test_call_and_generators_through_call(clock: FakeClock) -> None:
    """call() returns results; a returned generator stays guarded until it ends."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)
    assert breaker.call(lambda value: value * 2, 21) == 42

    def produce() -> Iterator[int]:
        yield 1
        raise Boom

    iterator = breaker.call(produce)
    assert next(iterator) == 1
    assert breaker.current_state == STATE_CLOSED
    with pytest.raises(Boom):
        next(iterator)
    assert breaker.current_state == STATE_OPEN


def test_call_refuses_a_coroutine(clock: FakeClock) -> None:
    """call() on a coroutine function would protect nothing (pybreaker #7): TypeError."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)

    async def fetch() -> int:
        return 1

    with pytest.raises(TypeError, match="acall"):
        breaker.call(fetch)  # type: ignore[unused-coroutine]
    assert breaker.current_state == STATE_CLOSED
    assert breaker.admit().lease == 0  # the permit was handed back


async def test_call_refuses_a_task_or_future(clock: FakeClock) -> None:
    """A sync function handing back a task would have its failure counted as a success."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)

    async def fail() -> int:
        raise ValueError("upstream down")

    task = asyncio.ensure_future(fail())
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    for awaitable in (task, future):
        with pytest.raises(TypeError, match="acall"):
            breaker.call(lambda: awaitable)  # noqa: B023 - called at once
    assert breaker.current_state == STATE_CLOSED
    assert breaker.admit().lease == 0  # the permits were handed back
    with pytest.raises(ValueError, match="upstream down"):
        await task
    future.cancel()


async def test_acall_and_call_async(clock: FakeClock) -> None:
    """acall() awaits the coroutine; failures count; call_async is the same."""
    breaker = CircuitBreaker("calls", fail_max=2, clock=clock)

    async def fetch(value: int) -> int:
        if value < 0:
            raise Boom
        return value

    assert await breaker.acall(fetch, 5) == 5
    assert await breaker.call_async(fetch, 6) == 6
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.acall(fetch, -1)
    assert breaker.current_state == STATE_OPEN


async def test_cancellation_propagates_and_counts_as_nothing(clock: FakeClock) -> None:
    """CancelledError is not a failure, is not replaced, and frees a probe's slot."""
    breaker = CircuitBreaker("calls", fail_max=1, reset_timeout=5, clock=clock)
    started = asyncio.Event()

    @breaker
    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.fail_counter == 0
    breaker.open()
    clock.advance(5)
    started.clear()
    task = asyncio.ensure_future(hang())  # the probe
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.current_state == STATE_HALF_OPEN
    assert breaker.admit().lease  # the slot is free for the next probe


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_exits_propagate_and_count_as_nothing(clock: FakeClock, error: type[BaseException]) -> None:
    """KeyboardInterrupt, SystemExit and GeneratorExit are never failures."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)

    def leave() -> None:
        raise error

    with pytest.raises(error):
        breaker.call(leave)
    assert breaker.current_state == STATE_CLOSED


def test_closing_a_generator_early_counts_as_nothing(clock: FakeClock) -> None:
    """A consumer that stops iterating early is not a failure of the dependency."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)

    @breaker
    def numbers() -> Generator[int, None, None]:
        yield from range(10)

    iterator = numbers()
    assert next(iterator) == 0
    iterator.close()
    assert breaker.current_state == STATE_CLOSED


async def test_async_generator_forwards_asend_athrow_and_aclose(clock: FakeClock) -> None:
    """The wrapper behaves like the generator: sent values, thrown errors, early close."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)
    closed = []

    @breaker
    async def echo() -> AsyncGenerator[object, object]:
        received: object = "start"
        try:
            while True:
                try:
                    received = yield received
                except KeyError:
                    received = "recovered"
        finally:
            closed.append(True)

    stream = echo()
    assert await stream.__anext__() == "start"
    assert await stream.asend("ping") == "ping"
    assert await stream.athrow(KeyError()) == "recovered"
    await stream.aclose()
    assert closed == [True]
    assert breaker.current_state == STATE_CLOSED
    stream = echo()
    await stream.__anext__()
    with pytest.raises(Boom):
        await stream.athrow(Boom())
    assert breaker.current_state == STATE_OPEN


def test_generators_are_admitted_when_iteration_starts(clock: FakeClock) -> None:
    """Creating a generator takes no probe; iterating an open one raises at once."""
    breaker = tripped(clock)

    @breaker
    def numbers() -> Iterator[int]:
        yield 1

    iterator = numbers()  # no admission yet
    with pytest.raises(CircuitOpenError):
        next(iterator)


def test_fallback_value_and_function(clock: FakeClock) -> None:
    """Rejected calls return the fallback: a value, or a function of the call's arguments."""
    by_value = tripped(clock, fallback="cached")
    assert by_value.call(lambda: "live") == "cached"
    by_function = tripped(clock, fallback=lambda user: f"guest of {user}")
    assert by_function.call(lambda user: "live", "ann") == "guest of ann"


async def test_fallbacks_for_every_kind(clock: FakeClock) -> None:
    """Async fallbacks are awaited; generator fallbacks are iterated."""
    breaker = tripped(clock)

    async def cached(key: str) -> str:
        return f"cached {key}"

    async def fallback_stream() -> AsyncIterator[int]:
        yield 7

    @breaker
    async def fetch(key: str) -> str:
        return key

    with pytest.raises(CircuitOpenError):
        await breaker.acall(fetch, "k")
    guarded = tripped(clock, fallback=cached)
    assert await guarded.acall(fetch, "k") == "cached k"

    @tripped(clock, fallback=lambda: iter([1, 2]))
    def numbers() -> Iterator[int]:
        yield 0

    assert list(numbers()) == [1, 2]

    @tripped(clock, fallback=fallback_stream)
    async def stream() -> AsyncIterator[int]:
        yield 0

    assert [item async for item in stream()] == [7]

    @tripped(clock, fallback=lambda: [3])
    async def plain_stream() -> AsyncIterator[int]:
        yield 0

    assert [item async for item in plain_stream()] == [3]


def test_context_managers(clock: FakeClock) -> None:
    """with breaker: and with breaker.calling(): admit, record and let errors through."""
    breaker = CircuitBreaker("calls", fail_max=2, clock=clock)
    with breaker:
        pass
    with pytest.raises(Boom), breaker:
        raise Boom
    with pytest.raises(Boom), breaker.calling():
        raise Boom
    assert breaker.current_state == STATE_OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("an open circuit must not run the block")
    with pytest.raises(CircuitOpenError), breaker.calling():
        pytest.fail("an open circuit must not run the block")


def test_nested_with_blocks_keep_their_own_permits(clock: FakeClock) -> None:
    """Nesting the same breaker records each block's own outcome."""
    breaker = CircuitBreaker("calls", fail_max=5, clock=clock)
    with breaker:
        with pytest.raises(Boom), breaker:
            raise Boom
        assert breaker.fail_counter == 1
    assert breaker.fail_counter == 0  # the outer block succeeded


async def test_async_context_managers(clock: FakeClock) -> None:
    """async with works for the breaker and for calling()."""
    breaker = CircuitBreaker("calls", fail_max=2, clock=clock)
    async with breaker:
        await asyncio.sleep(0)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom
    guard = breaker.calling()
    with pytest.raises(Boom):
        async with guard:
            raise Boom
    assert guard.permit is not None
    assert breaker.current_state == STATE_OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open circuit must not run the block")


def test_admission_api(clock: FakeClock) -> None:
    """admit / record_success / record_failure / release: the middleware's interface."""
    breaker = CircuitBreaker("calls", fail_max=2, reset_timeout=3, clock=clock)
    breaker.record_failure(breaker.admit())  # a bad response: no exception at all
    breaker.record_failure(breaker.admit(), asyncio.CancelledError())  # ignored
    assert breaker.fail_counter == 1
    breaker.record_failure(breaker.admit(), Boom())
    with pytest.raises(CircuitOpenError) as caught:
        breaker.admit()
    assert caught.value.retry_after == pytest.approx(3)
    clock.advance(3)
    probe = breaker.admit()
    with pytest.raises(CircuitOpenError):
        breaker.admit()  # one probe at a time
    breaker.release(probe)
    breaker.record_success(breaker.admit())
    assert breaker.current_state == STATE_CLOSED


async def test_async_admission_api(clock: FakeClock) -> None:
    """The asyncio twins behave the same."""
    breaker = CircuitBreaker("calls", fail_max=1, reset_timeout=3, clock=clock)
    await breaker.arecord_success(await breaker.aadmit())
    await breaker.arecord_failure(await breaker.aadmit(), Boom())
    with pytest.raises(CircuitOpenError):
        await breaker.aadmit()
    clock.advance(3)
    await breaker.arelease(await breaker.aadmit())
    await breaker.arecord_success(await breaker.aadmit())
    assert breaker.current_state == STATE_CLOSED


def test_throw_new_error_on_trip(clock: FakeClock) -> None:
    """pybreaker's option: the tripping failure surfaces as CircuitOpenError from it."""
    breaker = CircuitBreaker("calls", fail_max=1, throw_new_error_on_trip=True, clock=clock)

    def fail() -> None:
        raise Boom

    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(fail)
    assert isinstance(caught.value.__cause__, Boom)


async def test_throw_new_error_on_trip_async(clock: FakeClock) -> None:
    """The same through acall()."""
    breaker = CircuitBreaker("calls", fail_max=1, throw_new_error_on_trip=True, clock=clock)

    async def fail() -> None:
        raise Boom

    with pytest.raises(CircuitOpenError):
        await breaker.acall(fail)


def test_rejections_are_cheap_and_quiet(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """One log line per state change, none per rejection; no traceback is formatted."""
    breaker = CircuitBreaker("calls", fail_max=1, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="resilient"):
        breaker.record_failure(breaker.admit(), Boom())
        for _ in range(1000):
            with pytest.raises(CircuitOpenError) as caught:
                breaker.admit()
    assert [record.getMessage() for record in caplog.records] == ["breaker 'calls': closed -> open"]
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_result_failure_carries_the_result(clock: FakeClock) -> None:
    """Listeners see a ResultFailure holding the returned value."""
    seen: list[BaseException] = []

    class Listener(pybreaker.CircuitBreakerListener):
        def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
            seen.append(exc)

    breaker = CircuitBreaker(
        "calls",
        listeners=[Listener()],
        failure_predicate=lambda r: r >= 500,
        clock=clock,
    )
    assert breaker.call(lambda: 503) == 503
    assert isinstance(seen[0], ResultFailure)
    assert seen[0].result == 503


def test_rejection_error_pickles_and_reads_well() -> None:
    """CircuitOpenError crosses process boundaries intact and says what happened."""
    error = CircuitOpenError("payments", 2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.name, copy.retry_after) == ("payments", 2.5)
    assert str(copy) == "circuit 'payments' is open; retry after 2.500s"


async def test_listeners_hear_every_kind_of_call(clock: FakeClock) -> None:
    """before_call and success reach listeners for coroutines and (async) generators."""
    heard: list[str] = []

    class Ear(pybreaker.CircuitBreakerListener):
        def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            heard.append(f"before {func.__name__}")

        def success(self, cb: Any) -> None:
            heard.append("success")

    breaker = CircuitBreaker("calls", clock=clock, listeners=[Ear()])

    async def fetch() -> int:
        return 1

    @breaker
    def numbers() -> Iterator[int]:
        yield 1

    @breaker
    async def stream() -> AsyncIterator[int]:
        yield 1

    assert await breaker.acall(fetch) == 1
    assert list(numbers()) == [1]
    assert [item async for item in stream()] == [1]
    assert heard == [
        *("before fetch", "success"),
        *("before numbers", "success"),
        *("before stream", "success"),
    ]


async def test_calling_records_successes(clock: FakeClock) -> None:
    """A block that completes is a success: it clears the failure count, sync and async."""
    breaker = CircuitBreaker("calls", fail_max=3, clock=clock)
    breaker.record_failure(breaker.admit(), Boom())
    with breaker.calling():
        pass
    assert breaker.fail_counter == 0
    breaker.record_failure(breaker.admit(), Boom())
    async with breaker.calling():
        pass
    assert breaker.fail_counter == 0


def test_a_generator_from_call_records_its_success(clock: FakeClock) -> None:
    """A generator returned by call() counts as a success when exhausted."""
    breaker = CircuitBreaker("calls", fail_max=3, clock=clock)
    breaker.record_failure(breaker.admit(), Boom())

    def produce() -> Iterator[int]:
        yield from (1, 2)

    assert list(breaker.call(produce)) == [1, 2]
    assert breaker.fail_counter == 0


def test_exclude_predicates_only_see_raised_exceptions(clock: FakeClock) -> None:
    """A predicate written for an exception type is never handed a judged result."""

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            self.status = status

    def not_found(exc: BaseException) -> bool:
        assert isinstance(exc, HTTPError), f"exclude asked about {exc!r}"
        return exc.status == 404

    breaker = CircuitBreaker(
        "calls", fail_max=2, exclude=[not_found], failure_predicate=lambda r: r == 503,
        clock=clock,
    )  # fmt: skip

    def fetch(status: int) -> int:
        if status < 500:
            raise HTTPError(status)
        return status

    with pytest.raises(HTTPError):
        breaker.call(fetch, 404)
    assert breaker.call(fetch, 503) == 503
    assert breaker.call(fetch, 503) == 503
    assert breaker.current_state == STATE_OPEN
