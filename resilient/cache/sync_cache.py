"""The cache of a plain (blocking) function: miss path, background threads, handles.

:meth:`SyncCache.miss` is what the compiled hit path calls when memory has nothing it
can return at once. The decisions live in :class:`~resilient.cache.core.CacheCore` and
the operation sequences in :mod:`resilient.cache.flows`; this module does the I/O.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable
from typing import Any

from resilient.backends import backend_from_url
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
    run_sync,
)
from resilient.cache.options import CacheOptions
from resilient.cache.runners import ThreadRunner
from resilient.cache.stampede import STALE, Outcome, ThreadFlights
from resilient.errors import BackendError

__all__ = ["SyncCache"]

logger = logging.getLogger("resilient.cache")


class SyncCache(CacheCore):
    """The cache of a plain (blocking) function."""

    def __init__(self, func: Callable[..., Any], options: CacheOptions, plan: CallPlan) -> None:
        super().__init__(func, options, plan)
        self.flights = ThreadFlights(options.lock_ttl)
        self.runner = ThreadRunner()
        self._backend: Any = None
        self._subscription: Any = None
        self._build_lock = threading.Lock()

    def backend(self) -> Any:
        """The remote backend, built (and subscribed to, for an L1) on first use."""
        backend = self._backend
        coherence = self.coherence
        if backend is not None and (coherence is None or coherence.pid == os.getpid()):
            return backend
        with self._build_lock:
            if self._backend is None:
                assert self.remote is not None
                spec = self.remote
                if spec.backend is not None:
                    self._backend = spec.backend
                else:
                    assert spec.url is not None
                    self._backend = backend_from_url(spec.url, **spec.options)
            if coherence is not None and coherence.pid != os.getpid():
                # First use, or a forked child whose parent's listener thread is gone.
                self.store.clear()
                self._subscription = self._backend.subscribe(
                    self.channel, coherence.on_message, coherence.on_reset
                )
                coherence.attach(self._subscription)
            return self._backend

    def miss(self, key: Hashable, values: tuple[Any, ...]) -> Any:
        """Everything the hit path could not answer at once."""
        counts = self.counts
        if not self.options.enabled:
            counts.misses += 1
            return self.plan.apply(self.func, values)
        entry = self.store.get(key)
        if entry is not None:
            now = self.clock()
            if now < entry.expires:  # in the XFetch window
                counts.hits += 1
                if should_refresh_early(entry, now, self.beta):
                    self._refresh_later(key, values, entry)
                return entry.value
            if entry.fresh_until <= now < entry.fresh_until + self.swr:
                counts.stale += 1
                self._refresh_later(key, values, entry)
                return entry.value
        known = self.decoded.get(key)
        backend = self._backend
        if known is not None and backend is not None:
            # A key read before: one GET; the same bytes as then need no more work.
            try:
                raw = backend.get(known[0])
            except BackendError:
                return self._flight(key, values, entry, reachable=False)
            if raw == known[1] and self.clock() < known[3]:
                counts.hits += 1
                counts.remote_hits += 1
                return known[2]
        return self._flight(key, values, entry, reachable=True)

    def _flight(
        self, key: Hashable, values: tuple[Any, ...], entry: Entry | None, *, reachable: bool
    ) -> Any:
        # Only the leader of a flight touches Redis: a cold key read by many threads at
        # once costs one GET and one connection, not one per thread.
        outcome, led = self.flights.run(key, lambda: self._read(key, values, entry, reachable))
        if not led:
            if outcome.kind == STALE:
                self.counts.stale += 1
            else:
                self.counts.hits += 1
        elif outcome.refresh:
            self._refresh_later(key, values, outcome.entry)
        return outcome.value

    def _peek(
        self, key: Hashable, local: Entry | None, now: float
    ) -> tuple[Outcome | None, Entry | None, bool]:
        # One GET: (an outcome to return, a stale-if-error candidate, Redis reachable).
        l2key = self.l2key(key)
        stamp = self.stamp(l2key) if self.coherence is not None else (0, 0)
        backend = self._backend if self.coherence is None else None
        try:
            raw = (backend or self.backend()).get(l2key)
        except BackendError:
            outcome, stale = self.judge_failure(key, local, now)
            return outcome, stale, False
        stale = self.stale_candidate(local, now) if local is not None else None
        outcome, stale = self.judge_read(key, l2key, raw, stamp, stale, now)
        return outcome, stale, True

    def _read(
        self, key: Hashable, values: tuple[Any, ...], local: Entry | None, reachable: bool
    ) -> Outcome:
        # The leader of a flight: memory again, one GET (unless one just failed), compute.
        now = self.clock()
        if self.keeps_local:
            outcome = self.recheck(key, local, now)
            if outcome is not None:
                return outcome
        if self.remote is None:
            return self._compute(key, values, local, READ, None, self.stale_candidate(local, now))
        if reachable:
            outcome, stale, reachable = self._peek(key, local, now)
        else:
            outcome, stale = self.judge_failure(key, local, now)
        if outcome is not None:
            return outcome
        return self._compute(key, values, local, READ, self.backend() if reachable else None, stale)

    def _compute(
        self, key: Hashable, values: tuple[Any, ...], local: Entry | None, mode: int,
        backend: Any, stale: Entry | None,
    ) -> Outcome:  # fmt: skip
        flow = compute(self, key, values, local, mode, remote=backend is not None, stale=stale)
        return run_sync(flow, backend, lambda: self.plan.apply(self.func, values))

    def _remote_backend(self) -> Any:
        return self.backend() if self.remote is not None else None

    def _refresh_later(self, key: Hashable, values: tuple[Any, ...], entry: Entry | None) -> None:
        def work() -> None:
            try:
                self._compute(key, values, entry, REFRESH, self._remote_backend(), None)
            except Exception:
                self.counts.errors += 1
                logger.debug("%s: background refresh failed", self.options.name, exc_info=True)

        self.runner.start(key, work)

    # handles ------------------------------------------------------------------------------

    def refresh(self, key: Hashable, values: tuple[Any, ...]) -> Any:
        """Compute now and store, whatever is cached."""
        return self._compute(key, values, None, FORCE, self._remote_backend(), None).value

    def invalidate(self, key: Hashable) -> bool:
        """Remove one key from memory and Redis; raises BackendError if Redis failed."""
        self.forget_decoded(key)
        removed = self.store.discard(key)
        if self.remote is None:
            return removed
        deleted = run_sync(forget(self, [self.l2key(key)]), self.backend())
        return removed or deleted > 0

    def invalidate_tags(self, tags: tuple[str, ...]) -> int:
        """Remove the entries carrying ``tags``; returns how many were removed."""
        self.forget_decoded()
        removed = len(self.store.discard_tags(tags))
        if self.remote is None:
            return removed
        keys, deleted = run_sync(forget_tags(self, tags), self.backend())
        for l2key in keys:
            self.store.discard_l2(l2key)
        return removed + deleted

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for background refreshes; False if some still run after ``timeout``."""
        return self.runner.drain(timeout)

    def close(self) -> None:
        """Stop listening for invalidations; close the backend if this cache built it."""
        with self._build_lock:
            if self._subscription is not None:
                self._subscription.close()
                self._subscription = None
            if self.coherence is not None:
                self.coherence.attach(None)
                self.coherence.pid = 0
                self.store.clear()
            if self._backend is not None and self.remote is not None and self.remote.url:
                self._backend.close()
            self._backend = None
            self.forget_decoded()
