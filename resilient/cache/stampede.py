"""Stampede control: one computation per key in this process, and background refreshes.

* :class:`ThreadFlights` and :class:`AsyncFlights` are single-flight maps: the first caller
  of a missing key leads, later callers of that key wait for its outcome instead of
  calling the function again. They are only touched on the miss path. Followers wait a
  bounded time (the cache's ``lock_ttl``): past it, one of them leads a new flight, so
  a hung computation holds up its own caller only.
* The background refreshes (XFetch and stale-while-revalidate) run in
  :mod:`resilient.cache.runners`, at most one per key.
* The Redis lease that extends single-flight across processes is a ``SET NX PX`` key
  (see :mod:`resilient.cache.flows`); :data:`RELEASE` frees it only for its holder.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, NamedTuple

from resilient.backends.base import LuaScript

__all__ = [
    "HIT",
    "MISS",
    "RELEASE",
    "SKIP",
    "STALE",
    "AsyncFlights",
    "Outcome",
    "ThreadFlights",
]

logger = logging.getLogger("resilient.cache")

HIT, MISS, STALE, SKIP = 0, 1, 2, 3

#: Delete the lease only if it still holds our token: an expired lease may belong to
#: another caller by now.
RELEASE = LuaScript(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n"
)


class Outcome(NamedTuple):
    """What a lookup produced.

    ``kind`` is HIT, MISS, STALE or SKIP (a refresh left to another process); ``refresh``
    asks the caller to refresh ``entry`` in the background (XFetch or SWR).
    """

    value: Any
    kind: int
    refresh: bool = False
    entry: Any = None


class _Flight:
    """One computation in progress.

    Followers wait on ``latch``, a lock created (held) by the first follower and
    released by the leader: an uncontended miss, and so every Redis hit, allocates
    nothing but this object. The first follower also sets ``deadline`` (monotonic), the
    end of every follower's wait; the leader never reads the clock for it.
    """

    __slots__ = ("deadline", "error", "latch", "outcome")

    def __init__(self) -> None:
        self.latch: threading.Lock | None = None
        self.deadline = math.inf
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class ThreadFlights:
    """Single-flight for threads.

    Args:
        wait: seconds followers wait for a leader (from the first follower's arrival)
            before one of them leads a new flight; None waits as long as it takes.
    """

    def __init__(self, wait: float | None = None) -> None:
        self.wait = wait
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def run(self, key: Hashable, load: Callable[[], Outcome]) -> tuple[Outcome, bool]:
        """``load()`` once for all concurrent callers of ``key``; returns (outcome, led).

        Followers get the leader's outcome, or its exception. When the leader overruns
        :attr:`wait`, its flight is dropped and the followers elect a new leader among
        themselves: one more computation, not one per follower.
        """
        while True:
            with self._lock:
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight()
                    break
                latch = flight.latch
                if latch is None:
                    latch = flight.latch = threading.Lock()
                    latch.acquire()
                    if self.wait is not None:
                        flight.deadline = time.monotonic() + self.wait
            if self._follow(latch, flight.deadline):
                if flight.error is not None:
                    raise flight.error
                assert flight.outcome is not None
                return flight.outcome, False
            with self._lock:  # the leader overran: the next caller in leads afresh
                if self._flights.get(key) is flight:
                    del self._flights[key]
        try:
            flight.outcome = load()
            return flight.outcome, True
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                # Unless followers gave up on this flight and another one replaced it.
                if self._flights.get(key) is flight:
                    del self._flights[key]
                latch = flight.latch
            if latch is not None:
                latch.release()

    @staticmethod
    def _follow(latch: threading.Lock, deadline: float) -> bool:
        """Wait for the leader to release ``latch``; False past ``deadline``."""
        if deadline == math.inf:
            latch.acquire()
        elif not latch.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return False
        latch.release()  # pass it on to the next follower
        return True


class _LeaderCancelled(Exception):
    """The leading task was cancelled: its followers elect a new leader."""


class _LeaderOverran(Exception):
    """The leader ran past the followers' wait: they elect a new leader."""


class _AsyncFlight:
    """The asyncio flavour: the future (and deadline) are set by the first follower."""

    __slots__ = ("deadline", "future")

    def __init__(self) -> None:
        self.future: asyncio.Future[Outcome] | None = None
        self.deadline = math.inf  # loop.time()


class AsyncFlights:
    """Single-flight for asyncio tasks, per event loop.

    Args:
        wait: as for :class:`ThreadFlights`.
    """

    def __init__(self, wait: float | None = None) -> None:
        self.wait = wait
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, _AsyncFlight]
        ] = weakref.WeakKeyDictionary()
        # The loop seen last and its flights: skips the weak-dictionary lookup.
        self._last: tuple[asyncio.AbstractEventLoop, dict[Hashable, _AsyncFlight]] | None = None

    def _flights(self, loop: asyncio.AbstractEventLoop) -> dict[Hashable, _AsyncFlight]:
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        flights = self._loops.get(loop)
        if flights is None:
            flights = self._loops[loop] = {}
        self._last = (loop, flights)
        return flights

    async def run(
        self, key: Hashable, load: Callable[[], Awaitable[Outcome]]
    ) -> tuple[Outcome, bool]:
        """``await load()`` once for all concurrent tasks asking for ``key``."""
        loop = asyncio.get_running_loop()
        flights = self._flights(loop)
        while (pending := flights.get(key)) is not None:
            if pending.future is None:
                pending.future = loop.create_future()
                if self.wait is not None:
                    pending.deadline = loop.time() + self.wait
            try:
                return await _follow(pending.future, pending.deadline, loop), False
            except _LeaderCancelled:
                continue
            except _LeaderOverran:
                if flights.get(key) is pending:
                    del flights[key]
        flight = flights[key] = _AsyncFlight()
        try:
            outcome = await load()
        except asyncio.CancelledError:
            _fail(flight.future, _LeaderCancelled())
            raise
        except BaseException as exc:
            _fail(flight.future, exc)
            raise
        else:
            if flight.future is not None:
                flight.future.set_result(outcome)
            return outcome, True
        finally:
            if flights.get(key) is flight:  # else followers gave up on it, see _follow
                del flights[key]


async def _follow(
    future: asyncio.Future[Outcome], deadline: float, loop: asyncio.AbstractEventLoop
) -> Outcome:
    """The leader's outcome; raises :class:`_LeaderOverran` past ``deadline``."""
    # shield: a follower being cancelled (or timing out) must not cancel the leader's future.
    if deadline == math.inf:
        return await asyncio.shield(future)
    try:
        return await asyncio.wait_for(asyncio.shield(future), deadline - loop.time())
    except asyncio.TimeoutError:
        if not future.done():
            raise _LeaderOverran from None
        # The leader finished as the wait ended, or itself raised TimeoutError: its
        # outcome (or exception) stands.
        return future.result()


def _fail(future: asyncio.Future[Outcome] | None, exc: BaseException) -> None:
    if future is not None:
        future.set_exception(exc)
        future.exception()  # mark it retrieved: followers may all be gone
