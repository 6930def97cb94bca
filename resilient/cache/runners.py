"""Background refreshes (XFetch and stale-while-revalidate), at most one per key at a time.

:class:`ThreadRunner` runs them in daemon threads for plain functions; :class:`TaskRunner`
as asyncio tasks for coroutine functions. Callers never wait for them; ``drain`` lets tests
and shutdown code do so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable

__all__ = ["TaskRunner", "ThreadRunner"]


class ThreadRunner:
    """Runs background refreshes in daemon threads, one at a time per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, threading.Thread] = {}

    def start(self, key: Hashable, work: Callable[[], None]) -> bool:
        """Run ``work`` in a new thread unless ``key`` is already being refreshed."""
        with self._lock:
            if key in self._running:
                return False
            thread = threading.Thread(
                target=self._run, args=(key, work), name="resilient-cache-refresh", daemon=True
            )
            self._running[key] = thread
        thread.start()
        return True

    def _run(self, key: Hashable, work: Callable[[], None]) -> None:
        try:
            work()
        finally:
            with self._lock:
                del self._running[key]

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for running refreshes; False if some are still running after ``timeout``."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)


class TaskRunner:
    """Runs background refreshes as asyncio tasks, one at a time per key."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[None]] = {}

    def start(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> bool:
        """Schedule ``work()`` on the running loop unless ``key`` is being refreshed."""
        if key in self._running:
            return False

        async def run() -> None:
            try:
                await work()
            finally:
                self._running.pop(key, None)

        # The dict holds a strong reference, so the task cannot be collected mid-flight.
        self._running[key] = asyncio.get_running_loop().create_task(run())
        return True

    async def drain(self) -> None:
        """Wait until the refreshes running now have finished."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
