"""Values per event loop, closed when their loop shuts down. Strictly private.

Why: a connection (a lane's, a ``redis.asyncio`` client's) belongs to the loop that
opened it, so an object used from several loops (threads with loops of their own, or
``asyncio.run()`` per call) needs one per loop. Swapping a single connection at every
switch opens a new one each time; keeping one per loop ever holds every dead loop's.

How: values are kept per loop, each paired with a *keeper*, an async generator started
in its loop. ``loop.shutdown_asyncgens()``, which ``asyncio.run()``, ``asyncio.Runner``
and the servers built on them call before closing a loop, finalizes the keeper while the
loop can still run the value's closing; so the value is closed there and forgotten.
(A weak-keyed dictionary cannot do this: the values reference their loop, so their keys
never die.) Forgetting a value of a live loop drops its keeper, and the loop's own
finalizer hook then runs the closing inside that loop, thread-safe. Loops closed without
that shutdown are swept when a new loop shows up; nothing can run in them any more, so
their values are dropped unclosed (their sockets close with a ResourceWarning).

At most ``limit`` live loops keep a value: a new loop past it makes the oldest one's
value be closed in its loop and forgotten, so connections stay bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")

__all__ = ["PerLoop"]

#: What closes a value: a plain function or a coroutine function.
Closer = Callable[[_T], "Awaitable[object] | object"]


class _Entry(Generic[_T]):
    __slots__ = ("keeper", "owned", "value")

    def __init__(self, value: _T, keeper: AsyncGenerator[None, None], owned: list[bool]) -> None:
        self.value = value
        self.keeper = keeper
        # Shared with the keeper (a list, so that neither references the other): whether
        # the keeper closes the value when it finishes; pop() hands it back instead.
        self.owned = owned


async def _keeper(
    owner: weakref.ref[PerLoop[_T]],
    loop: asyncio.AbstractEventLoop,
    value: _T,
    close: Closer[_T] | None,
    owned: list[bool],
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        per_loop = owner()
        if per_loop is not None:
            with per_loop._lock:
                entry = per_loop._entries.get(loop)
                if entry is not None and entry.value is value:
                    del per_loop._entries[loop]
        if owned[0] and close is not None and not loop.is_closed():
            result = close(value)
            if inspect.isawaitable(result):
                await result


def _finish(entry: _Entry[_T]) -> None:
    """Run a keeper's ``finally`` now, synchronously: for a closed loop (nothing runs
    there any more) or a value handed back. Finished, it is never finalized later."""
    step = entry.keeper.aclose()
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()  # pragma: no cover - it awaited


class PerLoop(Generic[_T]):
    """A value per running event loop, built by ``build()`` at first use in that loop and
    closed by ``close(value)`` (awaited if it returns an awaitable) when the loop shuts
    down or the value is evicted."""

    __slots__ = ("__weakref__", "_build", "_close", "_entries", "_limit", "_lock")

    def __init__(
        self, build: Callable[[], _T], close: Closer[_T] | None = None, limit: int = 64
    ) -> None:
        self._build = build
        self._close = close
        self._limit = limit
        self._entries: dict[asyncio.AbstractEventLoop, _Entry[_T]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self) -> _T:
        """The running loop's value, built on first use in this loop."""
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is not None:
            return entry.value
        return self._add(loop)

    def _add(self, loop: asyncio.AbstractEventLoop) -> _T:
        value = self._build()
        owned = [True]
        keeper = _keeper(weakref.ref(self), loop, value, self._close, owned)
        # The first step, taken here inside the loop, has the loop's first-iteration
        # hook record the keeper, so that its shutdown finalizes it.
        with contextlib.suppress(StopIteration):  # raised as it suspends at its yield
            keeper.asend(None).send(None)
        with self._lock:  # loops of other threads may add or sweep at the same time
            closed = [known for known in self._entries if known.is_closed()]
            dropped = [self._entries.pop(known) for known in closed]
            while len(self._entries) >= self._limit:
                oldest = next(iter(self._entries))
                # Dropped with its keeper: its loop's finalizer hook closes it there.
                self._entries.pop(oldest)
            self._entries[loop] = _Entry(value, keeper, owned)
        for entry in dropped:
            _finish(entry)
        return value

    def pop(self) -> _T | None:
        """Forget the running loop's value and hand it back (for its owner to close)."""
        with self._lock:
            entry = self._entries.pop(asyncio.get_running_loop(), None)
        if entry is None:
            return None
        entry.owned[0] = False
        _finish(entry)
        return entry.value

    def __del__(self) -> None:
        # The keepers of live loops are finalized by their loops (closing the values
        # there); those of closed loops must finish now, or their finalizers would be
        # handed to a closed loop.
        for loop, entry in list(self._entries.items()):
            if loop.is_closed():
                _finish(entry)
