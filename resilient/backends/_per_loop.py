"""One asyncio backend per event loop. Strictly private.

Why: a ``redis.asyncio`` client belongs to the loop it first ran on, so an object used
from several loops (threads with loops of their own, or ``asyncio.run()`` per call)
needs a backend per loop. Those backends reference their loop (connections, futures),
so a weak-keyed dictionary would keep every loop alive: a process calling
``asyncio.run()`` per request would hold a client, a pool and a loop per request.

How: the entries of loops that are closed are dropped whenever a new loop shows up, so
at most one dead loop's backend is held at a time (until another loop starts). A closed
loop can no longer run ``aclose()``; its sockets are closed when the backend is
collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")

__all__ = ["PerLoop"]


class PerLoop(Generic[_T]):
    """A value per running event loop, built by ``build()`` on first use in that loop."""

    __slots__ = ("_build", "_values")

    def __init__(self, build: Callable[[], _T]) -> None:
        self._build = build
        self._values: dict[asyncio.AbstractEventLoop, _T] = {}

    def __len__(self) -> int:
        return len(self._values)

    def get(self) -> _T:
        """The running loop's value; a new loop first drops the entries of closed ones."""
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            for dead in [known for known in self._values if known.is_closed()]:
                del self._values[dead]
            value = self._values[loop] = self._build()
        return value

    def pop(self) -> _T | None:
        """Forget the running loop's value and hand it back (for its owner to close)."""
        return self._values.pop(asyncio.get_running_loop(), None)
