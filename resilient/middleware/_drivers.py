"""Flows and their two drivers: the only code the sync and async shells do not share.

A flow is a generator that yields :class:`Call` objects (a backend operation, a limiter
hit, anything that may do I/O) and receives each result, as httpx's ``auth_flow`` and
tenacity's ``iter`` do. The logic lives in the flow, once; :func:`run_sync` executes the
calls by calling them, :func:`run_async` by awaiting what they return. An exception from
a call is thrown into the flow at its ``yield``, so failure policy (fail open, serve stale)
is written once, in the flow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, TypeAlias, TypeVar

__all__ = ["Call", "Flow", "run_async", "run_sync"]

_T = TypeVar("_T")


class Call:
    """One operation a flow asks its driver to run: ``fn(*args, **kwargs)``.

    ``fn`` is bound at construction to the shell's flavour of a resource (a sync or an
    asyncio backend), so one flow serves both shells.
    """

    __slots__ = ("args", "fn", "kwargs")

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"Call({name}, {self.args!r}, {self.kwargs!r})"


#: A flow: yields calls, receives their results, returns a ``_T``.
Flow: TypeAlias = Generator[Call, Any, _T]


def run_sync(flow: Flow[_T]) -> _T:
    """Run ``flow`` to its end, calling each :class:`Call` in this thread."""
    try:
        call = next(flow)
        while True:
            try:
                result = call.fn(*call.args, **call.kwargs)
            except Exception as exc:
                call = flow.throw(exc)
            else:
                call = flow.send(result)
    except StopIteration as done:
        value: _T = done.value
        return value


async def run_async(flow: Flow[_T]) -> _T:
    """Run ``flow`` to its end, awaiting each :class:`Call` that returns an awaitable.

    A call that returns a plain value (the in-memory backend's operations, for one) is
    used as it is, so memory-only flows never suspend.
    """
    try:
        call = next(flow)
        while True:
            try:
                result = call.fn(*call.args, **call.kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                call = flow.throw(exc)
            else:
                call = flow.send(result)
    except StopIteration as done:
        value: _T = done.value
        return value
