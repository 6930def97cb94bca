"""Collapsed misses: one request per cache key goes to the app, the others wait for it.

Ten clients asking at once for a URL that is not cached yet would otherwise call the app
ten times (the thundering herd nginx answers with ``proxy_cache_lock``). Here the first
request to miss, the *leader*, goes to the app; *followers* that miss the same primary
key meanwhile wait until the leader's response is stored, then read it through the
ordinary lookup, so ``Vary`` and every other check still apply to them: a follower never
gets a response the store would not give it. When the leader's response is not stored
(uncacheable, personal, an error, a failed leader), followers go to the app themselves.

A key whose response was deliberately not stored is remembered a few seconds, so that the
next burst is not serialized behind a leader whose answer will not be stored anyway
(nginx's lesson: a lock on an uncacheable URL only adds latency).

This is the one piece of request state shared between requests, by necessity: followers
must find their leader. It is bounded (at most ``max_keys`` flights and as many
remembered keys), every flight leaves the table when its leader lands, and a flight
whose leader never lands (its exchange was abandoned) expires after ``timeout``: the next
request then leads. Collapsing is per process; other processes have their own table.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from resilient.backends.base import Clock

__all__ = ["PASS_MEMORY", "Flight", "InFlight"]

#: Seconds a key whose response was not stored goes uncollapsed.
PASS_MEMORY = 5.0


class Flight:
    """One leader's request for one key, and the followers waiting for it."""

    __slots__ = ("deadline", "done", "event", "futures", "stored")

    def __init__(self, deadline: float, threaded: bool) -> None:
        self.deadline = deadline
        self.done = False
        self.stored = False
        # A thread waits on an event, a task on a future of its own loop.
        self.event = threading.Event() if threaded else None
        self.futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


class InFlight:
    """The flights of one middleware, keyed by primary cache key.

    Args:
        asynchronous: followers are asyncio tasks (ASGI), not threads (WSGI).
        timeout: longest a follower waits, in seconds, counted from its leader's start.
        clock: wall-clock seconds, to forget remembered keys (the middleware's clock).
        max_keys: most flights, and most remembered keys, held at once.

    Attributes:
        wait: a :class:`~._drivers.Call` target: ``True`` once the flight landed, ``False``
            when the wait timed out. Blocks a thread, or returns an awaitable for a task.
        waits: followers that waited so far (for tests and metrics).
        waiting: followers waiting right now.
    """

    __slots__ = ("_flights", "_lock", "_passes", "asynchronous", "clock", "max_keys",
                 "timeout", "wait", "waiting", "waits")  # fmt: skip

    def __init__(
        self, asynchronous: bool, timeout: float, clock: Clock, max_keys: int = 10_000
    ) -> None:
        self.asynchronous = asynchronous
        self.timeout = timeout
        self.clock = clock
        self.max_keys = max_keys
        self._flights: dict[str, Flight] = {}
        self._passes: dict[str, float] = {}
        self._lock = threading.Lock()
        self.waits = 0
        self.waiting = 0
        self.wait: Callable[[Flight], bool | Awaitable[bool]] = (
            self._wait_task if asynchronous else self._wait_thread
        )

    def passing(self, key: str) -> bool:
        """Whether ``key``'s response was found unstorable lately (see :data:`PASS_MEMORY`)."""
        passed = self._passes.get(key)
        return passed is not None and passed > self.clock()

    def enter(self, key: str) -> tuple[Flight, bool] | None:
        """The flight for ``key`` and whether the caller leads it; ``None``: go alone."""
        now = time.monotonic()
        with self._lock:
            if self.passing(key):
                return None  # its response is not stored: nothing to wait for
            self._passes.pop(key, None)  # expired, if there at all
            flight = self._flights.get(key)
            if flight is not None and flight.deadline > now:
                return flight, False
            if flight is None and len(self._flights) >= self.max_keys:
                return None  # full: this request is simply not collapsed
            # New, or taking over from a leader that never landed.
            flight = Flight(now + self.timeout, not self.asynchronous)
            self._flights[key] = flight
            return flight, True

    def land(self, key: str, flight: Flight, *, stored: bool, remember: bool = False) -> None:
        """The leader is done: wake its followers; ``remember`` the key as not stored."""
        with self._lock:
            if flight.done:
                return
            flight.done = True
            flight.stored = stored
            if self._flights.get(key) is flight:
                del self._flights[key]
            if remember and not stored:
                while len(self._passes) >= self.max_keys:
                    del self._passes[next(iter(self._passes))]  # the oldest
                self._passes[key] = self.clock() + PASS_MEMORY
            futures, flight.futures = flight.futures, []
        if flight.event is not None:
            flight.event.set()
        for loop, future in futures:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                _wake(future)
            else:  # a leader on another thread or loop
                loop.call_soon_threadsafe(_wake, future)

    def _wait_thread(self, flight: Flight) -> bool:
        assert flight.event is not None
        with self._lock:
            self.waits += 1
            self.waiting += 1
        try:
            return flight.event.wait(max(0.0, flight.deadline - time.monotonic()))
        finally:
            with self._lock:
                self.waiting -= 1

    async def _wait_task(self, flight: Flight) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.done:
                return True
            flight.futures.append((loop, future))
            self.waits += 1
            self.waiting += 1
        try:
            remaining = max(0.0, flight.deadline - time.monotonic())
            await asyncio.wait_for(future, remaining)
            return True
        except asyncio.TimeoutError:  # TimeoutError itself only from Python 3.11
            return False
        finally:
            with self._lock:
                self.waiting -= 1
                if (loop, future) in flight.futures:
                    flight.futures.remove((loop, future))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
