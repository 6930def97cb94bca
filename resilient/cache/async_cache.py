"""The cache of a coroutine function: the asyncio twin of :mod:`resilient.cache.sync_cache`.

Every Redis operation goes through :class:`~resilient.backends.AsyncBackend`
(``redis.asyncio``): nothing here blocks the event loop, except the ``*_blocking``
handles, meant for sync code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Hashable
from typing import Any

from resilient.backends import async_backend_from_url, backend_from_url
from resilient.cache.core import CacheCore
from resilient.cache.entries import Entry, should_refresh_early
from resilient.cache.fastpath import CallPlan
from resilient.cache.flows import (
    FORCE,
    READ,
    REFRESH,
    compute,
    forget,
    forget_tags,
    run_async,
    run_sync,
)
from resilient.cache.options import CacheOptions
from resilient.cache.runners import TaskRunner
from resilient.cache.stampede import STALE, AsyncFlights, Outcome
from resilient.errors import BackendError

__all__ = ["AsyncCache"]

logger = logging.getLogger("resilient.cache")


class AsyncCache(CacheCore):
    """The cache of a coroutine function; never blocks the event loop."""

    is_async = True

    def __init__(self, func: Callable[..., Any], options: CacheOptions, plan: CallPlan) -> None:
        super().__init__(func, options, plan)
        self.flights = AsyncFlights(options.lock_ttl)
        self.runner = TaskRunner()
        self._backend: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Any = None
        self._sync_backend: Any = None

    async def backend(self) -> Any:
        """The remote backend of the running loop, built (and subscribed) on first use."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and (self.coherence is None or self.coherence.pid == os.getpid()):
            return self._backend
        assert self.remote is not None
        spec = self.remote
        self._loop = loop
        if spec.backend is not None:
            self._backend = spec.backend
        elif self._backend is None:
            # One for every event loop: it keeps connections per loop, and one guard.
            assert spec.url is not None
            self._backend = async_backend_from_url(spec.url, **spec.options)
        if self.coherence is not None:
            self.store.clear()
            self.coherence.attach(None)
            self._subscription = await self._backend.subscribe(
                self.channel, self.coherence.on_message, self.coherence.on_reset
            )
            self.coherence.attach(self._subscription)
        return self._backend

    async def miss(self, key: Hashable, values: tuple[Any, ...]) -> Any:
        """Everything the hit path could not answer at once."""
        counts = self.counts
        if not self.options.enabled:
            counts.misses += 1
            return await self.plan.apply(self.func, values)
        entry = self.store.get(key)
        if entry is not None:
            now = self.clock()
            if now < entry.expires:
                counts.hits += 1
                if should_refresh_early(entry, now, self.beta):
                    self._refresh_later(key, values, entry)
                return entry.value
            if entry.fresh_until <= now < entry.fresh_until + self.swr:
                counts.stale += 1
                self._refresh_later(key, values, entry)
                return entry.value
        known = self.decoded.get(key)
        if known is not None and self._loop is asyncio.get_running_loop():
            try:
                raw = await self._backend.get(known[0])
            except BackendError:
                return await self._flight(key, values, entry, reachable=False)
            if raw == known[1] and self.clock() < known[3]:
                counts.hits += 1
                counts.remote_hits += 1
                return known[2]
        return await self._flight(key, values, entry, reachable=True)

    async def _flight(
        self, key: Hashable, values: tuple[Any, ...], entry: Entry | None, *, reachable: bool
    ) -> Any:
        outcome, led = await self.flights.run(
            key, lambda: self._read(key, values, entry, reachable)
        )
        if not led:
            if outcome.kind == STALE:
                self.counts.stale += 1
            else:
                self.counts.hits += 1
        elif outcome.refresh:
            self._refresh_later(key, values, outcome.entry)
        return outcome.value

    async def _peek(
        self, key: Hashable, local: Entry | None, now: float
    ) -> tuple[Outcome | None, Entry | None, bool]:
        # The twin of SyncCache._peek; the decisions live in CacheCore.
        l2key = self.l2key(key)
        stamp = self.stamp(l2key) if self.coherence is not None else (0, 0)
        backend = await self.backend()
        try:
            raw = await backend.get(l2key)
        except BackendError:
            outcome, stale = self.judge_failure(key, local, now)
            return outcome, stale, False
        stale = self.stale_candidate(local, now) if local is not None else None
        outcome, stale = self.judge_read(key, l2key, raw, stamp, stale, now)
        return outcome, stale, True

    async def _read(
        self, key: Hashable, values: tuple[Any, ...], local: Entry | None, reachable: bool
    ) -> Outcome:
        now = self.clock()
        if self.keeps_local:
            outcome = self.recheck(key, local, now)
            if outcome is not None:
                return outcome
        if self.remote is None:
            stale = self.stale_candidate(local, now)
            return await self._compute(key, values, local, READ, None, stale)
        if reachable:
            outcome, stale, reachable = await self._peek(key, local, now)
        else:
            outcome, stale = self.judge_failure(key, local, now)
        if outcome is not None:
            return outcome
        backend = await self.backend() if reachable else None
        return await self._compute(key, values, local, READ, backend, stale)

    async def _compute(
        self, key: Hashable, values: tuple[Any, ...], local: Entry | None, mode: int,
        backend: Any, stale: Entry | None,
    ) -> Outcome:  # fmt: skip
        flow = compute(self, key, values, local, mode, remote=backend is not None, stale=stale)
        return await run_async(flow, backend, lambda: self.plan.apply(self.func, values))

    async def _remote_backend(self) -> Any:
        return await self.backend() if self.remote is not None else None

    def _refresh_later(self, key: Hashable, values: tuple[Any, ...], entry: Entry | None) -> None:
        async def work() -> None:
            try:
                backend = await self._remote_backend()
                await self._compute(key, values, entry, REFRESH, backend, None)
            except Exception:
                self.counts.errors += 1
                logger.debug("%s: background refresh failed", self.options.name, exc_info=True)

        self.runner.start(key, work)

    # handles ------------------------------------------------------------------------------

    async def refresh(self, key: Hashable, values: tuple[Any, ...]) -> Any:
        """Compute now and store, whatever is cached."""
        backend = await self._remote_backend()
        return (await self._compute(key, values, None, FORCE, backend, None)).value

    async def invalidate(self, key: Hashable) -> bool:
        """Remove one key from memory and Redis; raises BackendError if Redis failed."""
        self.forget_decoded(key)
        removed = self.store.discard(key)
        if self.remote is None:
            return removed
        deleted = await run_async(forget(self, [self.l2key(key)]), await self.backend())
        return removed or deleted > 0

    def sync_backend(self) -> Any:
        """A blocking backend to the same Redis, for handles called from sync code."""
        assert self.remote is not None
        if self.remote.url is None:
            raise TypeError(
                f"{self.options.name} uses an asyncio backend object: call the async handle "
                "(await ainvalidate(...), await ainvalidate_tags(...)) instead"
            )
        if self._sync_backend is None:
            self._sync_backend = backend_from_url(self.remote.url, **self.remote.options)
        return self._sync_backend

    def invalidate_blocking(self, key: Hashable) -> bool:
        """:meth:`invalidate` for sync code, over :meth:`sync_backend`."""
        self.forget_decoded(key)
        removed = self.store.discard(key)
        if self.remote is None:
            return removed
        deleted = run_sync(forget(self, [self.l2key(key)]), self.sync_backend())
        return removed or deleted > 0

    def invalidate_tags_blocking(self, tags: tuple[str, ...]) -> int:
        """:meth:`invalidate_tags` for sync code, over :meth:`sync_backend`."""
        self.forget_decoded()
        removed = len(self.store.discard_tags(tags))
        if self.remote is None:
            return removed
        keys, deleted = run_sync(forget_tags(self, tags), self.sync_backend())
        for l2key in keys:
            self.store.discard_l2(l2key)
        return removed + deleted

    async def invalidate_tags(self, tags: tuple[str, ...]) -> int:
        """Remove the entries carrying ``tags``; returns how many were removed."""
        self.forget_decoded()
        removed = len(self.store.discard_tags(tags))
        if self.remote is None:
            return removed
        keys, deleted = await run_async(forget_tags(self, tags), await self.backend())
        for l2key in keys:
            self.store.discard_l2(l2key)
        return removed + deleted

    async def drain(self) -> None:
        """Wait until the background refreshes running now have finished."""
        await self.runner.drain()

    async def aclose(self) -> None:
        """Stop listening for invalidations; close the backend if this cache built it."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            closer = getattr(subscription, "aclose", None)
            if closer is not None:
                await closer()
            else:
                subscription.close()
        if self.coherence is not None:
            self.coherence.attach(None)
            self.coherence.pid = 0
            self.store.clear()
        if self.remote is not None and self.remote.url:
            if self._backend is not None:
                with contextlib.suppress(Exception):
                    await self._backend.aclose()
            if self._sync_backend is not None:
                self._sync_backend.close()
        self._backend = self._sync_backend = None
        self._loop = None
        self.forget_decoded()
