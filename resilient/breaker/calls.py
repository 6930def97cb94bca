"""Guarding calls: wrappers for the four kinds of function, the fallback, the guard object.

Strictly private; reached through :class:`~resilient.breaker.CircuitBreaker` and
:func:`~resilient.breaker.circuit_breaker`. The kind of function is decided once, when
it is decorated: sync, ``async def``, generator or async generator. A generator is
admitted when iteration starts and its outcome is recorded when it finishes, so a
generator that is created and never iterated holds no probe.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from types import CoroutineType, GeneratorType, TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from resilient._descriptors import through_descriptor
from resilient.breaker.state import Permit
from resilient.errors import CircuitOpenError

if TYPE_CHECKING:
    from resilient.breaker.breaker import CircuitBreaker

__all__ = ["MISSING", "Guard", "Source", "acall_through", "call_through", "wrap"]

_F = TypeVar("_F", bound=Callable[..., Any])


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: No fallback: rejections raise :class:`CircuitOpenError`.
MISSING: Final = _Missing()


class Source:
    """Where a wrapper finds its breaker: given, or built on the first call (so that
    decorating at import time reads no settings)."""

    __slots__ = ("_build", "breaker")

    def __init__(
        self,
        breaker: CircuitBreaker | None = None,
        build: Callable[[], CircuitBreaker] | None = None,
    ) -> None:
        self.breaker = breaker
        self._build = build

    def get(self) -> CircuitBreaker:
        if self.breaker is None:
            assert self._build is not None
            self.breaker = self._build()
        return self.breaker


def fall_back(fallback: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A callable fallback is called with the call's arguments; anything else is the value."""
    return fallback(*args, **kwargs) if callable(fallback) else fallback


def wrap(func: _F, source: Source, fallback: object = MISSING) -> _F:
    """``func`` guarded by the breaker of ``source``, whatever kind of function it is."""
    if isinstance(func, (classmethod, staticmethod)):
        return cast(_F, through_descriptor(lambda inner: wrap(inner, source, fallback), func))
    if inspect.isasyncgenfunction(func):
        wrapper: Callable[..., Any] = _async_generator(func, source, fallback)
    elif inspect.iscoroutinefunction(func):
        wrapper = _coroutine(func, source, fallback)
    elif inspect.isgeneratorfunction(func):
        wrapper = _generator(func, source, fallback)
    else:
        wrapper = _function(func, source, fallback)
    return functools.wraps(func)(wrapper)  # type: ignore[return-value]


def call_through(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    fallback: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """One sync call: admit, run, record. A returned generator is guarded until it ends."""
    if fallback is MISSING:
        permit = breaker.admit()  # a rejection propagates without being caught and re-raised
    else:
        try:
            permit = breaker.admit()
        except CircuitOpenError:
            return fall_back(fallback, args, kwargs)
    if breaker._listeners:
        breaker._before_call(func, args, kwargs)
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:
        breaker._failed(permit, exc)
        raise
    kind = type(result)
    if kind is GeneratorType:
        return _follow(breaker, permit, result)
    awaitable = _AWAITABLE_TYPES.get(kind)
    if awaitable is None:
        awaitable = _remember_type(kind)
    if awaitable:
        # The outcome is decided later, out of the breaker's sight (pybreaker #7): a
        # failing task would count as a success. Refuse rather than guard nothing.
        breaker.release(permit)
        if kind is CoroutineType:
            result.close()
        raise TypeError(f"{func!r} returned an awaitable: use acall() or decorate it")
    breaker._succeeded(permit, result)
    return result


# Whether instances of a result type are awaitable, by type: hasattr() on a type that
# lacks the attribute raises inside, which would double the cost of a successful call.
_AWAITABLE_TYPES: dict[type, bool] = {CoroutineType: True}


def _remember_type(kind: type) -> bool:
    if len(_AWAITABLE_TYPES) > 1024:  # classes made on the fly: keep the table bounded
        _AWAITABLE_TYPES.clear()
        _AWAITABLE_TYPES[CoroutineType] = True
    awaitable = _AWAITABLE_TYPES[kind] = hasattr(kind, "__await__")
    return awaitable


def _follow(
    breaker: CircuitBreaker, permit: Permit, generator: Generator[Any, Any, Any]
) -> Generator[Any, Any, Any]:
    try:
        result = yield from generator
    except BaseException as exc:
        breaker._failed(permit, exc)
        raise
    breaker._succeeded(permit, result)
    return result


async def acall_through(
    breaker: CircuitBreaker,
    func: Callable[..., Any],
    fallback: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """One awaited call: admit, await, record."""
    try:
        permit = breaker.admit() if breaker._store is None else await breaker.aadmit()
    except CircuitOpenError:
        if fallback is MISSING:
            raise
        value = fall_back(fallback, args, kwargs)
        return (await value) if inspect.isawaitable(value) else value
    if breaker._listeners:
        breaker._before_call(func, args, kwargs)
    try:
        result = await func(*args, **kwargs)
    except BaseException as exc:
        await breaker._afailed(permit, exc)
        raise
    await breaker._asucceeded(permit, result)
    return result


def _function(func: Callable[..., Any], source: Source, fallback: object) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        return call_through(source.breaker or source.get(), func, fallback, args, kwargs)

    return guarded


def _coroutine(func: Callable[..., Any], source: Source, fallback: object) -> Callable[..., Any]:
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        breaker = source.breaker or source.get()
        return await acall_through(breaker, func, fallback, args, kwargs)

    return guarded


def _generator(func: Callable[..., Any], source: Source, fallback: object) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        breaker = source.breaker or source.get()
        try:
            permit = breaker.admit()
        except CircuitOpenError:
            if fallback is MISSING:
                raise
            return (yield from fall_back(fallback, args, kwargs))
        if breaker._listeners:
            breaker._before_call(func, args, kwargs)
        try:
            # yield from forwards send(), throw() and close(), so the generator keeps
            # its own semantics and tracebacks point into it.
            result = yield from func(*args, **kwargs)
        except BaseException as exc:
            breaker._failed(permit, exc)
            raise
        breaker._succeeded(permit, result)
        return result

    return guarded


def _async_generator(
    func: Callable[..., Any], source: Source, fallback: object
) -> Callable[..., Any]:
    async def guarded(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        breaker = source.breaker or source.get()
        try:
            permit = await breaker.aadmit()
        except CircuitOpenError:
            if fallback is MISSING:
                raise
            items = fall_back(fallback, args, kwargs)
            if hasattr(items, "__aiter__"):
                async for item in items:
                    yield item
            else:
                for item in items:
                    yield item
            return
        if breaker._listeners:
            breaker._before_call(func, args, kwargs)
        inner: AsyncGenerator[Any, Any] = func(*args, **kwargs)
        try:
            try:
                item = await inner.__anext__()
                while True:
                    # Forward asend() and athrow() the way yield from would.
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as thrown:
                        item = await inner.athrow(thrown)
                    else:
                        item = await inner.asend(sent)
            except StopAsyncIteration:
                pass
        except BaseException as exc:
            await inner.aclose()
            await breaker._afailed(permit, exc)
            raise
        await breaker._asucceeded(permit, None)

    return guarded


class Guard:
    """One guarded block: ``with breaker.calling():`` or ``async with breaker.calling():``.

    Entering admits (or raises :class:`CircuitOpenError`); leaving records the outcome.
    An exception leaving the block is recorded and propagates unchanged.

    .. versionadded:: 0.1
    """

    __slots__ = ("_breaker", "permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self.permit: Permit | None = None

    def __enter__(self) -> Guard:
        self.permit = self._breaker.admit()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        permit = self.permit
        assert permit is not None, "the guard was not entered"
        if exc is None:
            self._breaker.record_success(permit)
        else:
            self._breaker._failed(permit, exc)

    async def __aenter__(self) -> Guard:
        self.permit = await self._breaker.aadmit()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        permit = self.permit
        assert permit is not None, "the guard was not entered"
        if exc is None:
            await self._breaker.arecord_success(permit)
        else:
            await self._breaker._afailed(permit, exc)
