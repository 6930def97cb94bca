"""Where a limiter counts: in-memory stores per scope, and backends built from URLs.

Strictly private. In memory, a limiter counts in the store of its scope: one per scope
in the process (or per scope and :class:`~resilient.backends.MemoryBackend` object), so
limits shared by scope across several functions really are shared, while ``max_keys``
bounds each scope on its own. One global store would let a flood of distinct clients on
one limit evict the counters of another (a strict login limit forgetting its failures
because a search endpoint was crawled).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from resilient import _parsers
from resilient.backends import AsyncBackend, SyncBackend, async_backend_from_url, backend_from_url
from resilient.backends.base import Clock, monotonic
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit.memory import MemoryStore

__all__ = ["BackendSource", "choose_storage", "memory_store_for", "shared_memory_store"]

_LOCK = threading.Lock()
_SHARED: dict[str, MemoryStore] = {}
_BY_BACKEND: weakref.WeakKeyDictionary[Any, dict[str, MemoryStore]] = weakref.WeakKeyDictionary()


def _store_in(
    stores: dict[str, MemoryStore], scope: str, max_keys: int, clock: Clock
) -> MemoryStore:
    """The store of ``scope`` in ``stores``, made or widened to ``max_keys``. Holds _LOCK."""
    store = stores.get(scope)
    if store is None:
        store = stores[scope] = MemoryStore(max_keys, clock)
    elif store.max_keys < max_keys:
        # Limiters sharing a scope share its counters: the largest bound asked for wins,
        # so no limiter of the scope keeps fewer counters than it was configured for.
        store.max_keys = max_keys
    return store


def shared_memory_store(scope: str, max_keys: int) -> MemoryStore:
    """This process's store for ``scope``, created at first use."""
    store = _SHARED.get(scope)
    if store is None or store.max_keys < max_keys:
        with _LOCK:
            store = _store_in(_SHARED, scope, max_keys, monotonic)
    return store


def memory_store_for(backend: object, max_keys: int, scope: str) -> MemoryStore:
    """The store of ``scope`` tied to an in-memory backend object (its clock included)."""
    owner: Any = getattr(backend, "sync", backend)  # AsyncMemoryBackend wraps a MemoryBackend
    with _LOCK:
        stores = _BY_BACKEND.get(owner)
        if stores is None:
            stores = _BY_BACKEND[owner] = {}
        return _store_in(stores, scope, max_keys, owner.clock)


class BackendSource:
    """Redis backends of one limiter: given ones, or built from a URL when first needed.

    Built lazily because a Cluster client connects as it is created; the URL is checked
    at once. One asyncio backend serves every event loop (it keeps connections per loop),
    so that its guard counts the failures of all of them.
    """

    def __init__(
        self,
        url: str | None,
        options: dict[str, Any],
        sync: SyncBackend | None = None,
        asyncio_backend: AsyncBackend | None = None,
    ) -> None:
        if url is not None:
            try:
                _parsers.BACKEND_URL.parse(url)
            except ValueError:
                raise ConfigurationError("url", url, _parsers.BACKEND_URL.expected) from None
        self.url = url
        self.options = options
        self._sync = sync
        self._owns_sync = False
        self._async = asyncio_backend
        self._owns_async = False
        self._lock = threading.Lock()

    def sync(self) -> SyncBackend:
        """The sync backend, built from the URL on first use."""
        backend = self._sync
        if backend is not None:
            return backend
        if self.url is None:
            raise ConfigurationError("backend", None, "a SyncBackend for the sync methods")
        with self._lock:
            if self._sync is None:
                self._sync = backend_from_url(self.url, **self.options)
                self._owns_sync = True
            return self._sync

    def asyncio(self) -> AsyncBackend:
        """The asyncio backend, built from the URL on first use."""
        backend = self._async
        if backend is not None:
            return backend
        if self.url is None:
            raise ConfigurationError(
                "async_backend", None, "an AsyncBackend for the asyncio methods"
            )
        with self._lock:
            if self._async is None:
                self._async = async_backend_from_url(self.url, **self.options)
                self._owns_async = True
            return self._async

    def close(self) -> None:
        """Close the sync backend if this source built it."""
        if self._owns_sync and self._sync is not None:
            self._sync.close()
            self._sync, self._owns_sync = None, False

    async def aclose(self) -> None:
        """Close the running loop's connections of the asyncio backend this source built."""
        if self._owns_async and self._async is not None:
            await self._async.aclose()


def choose_storage(
    settings: Settings,
    url: str,
    *,
    scope: str,
    backend: SyncBackend | None,
    async_backend: AsyncBackend | None,
    max_keys: int,
    clock: Clock | None,
    local_fallback: bool,
) -> tuple[MemoryStore | None, BackendSource, MemoryStore | None]:
    """Where a limiter counts: a memory store, or backends (and a store to fall back on).

    Given backends win over ``url``; an in-memory one means counting in its store for
    ``scope``. A private store is built when a ``clock`` is injected, else the process's
    store for ``scope`` is shared.
    """
    options: dict[str, Any] = {
        "timeout": settings.op_timeout,
        "connect_timeout": settings.connect_timeout,
        "guard_failures": settings.guard_failures,
        "guard_cooldown": settings.guard_cooldown,
    }
    if clock is not None:
        options["clock"] = clock
    given = backend if backend is not None else async_backend
    store: MemoryStore | None = None
    if given is not None:
        if not given.scripting:
            store = memory_store_for(given, max_keys, scope)
        return (
            store,
            BackendSource(None, options, backend, async_backend),
            _local(store, local_fallback, scope, max_keys, clock),
        )
    if url.startswith("memory:"):
        store = MemoryStore(max_keys, clock) if clock else shared_memory_store(scope, max_keys)
        return store, BackendSource(None, options), None
    source = BackendSource(url, options)
    return None, source, _local(None, local_fallback, scope, max_keys, clock)


def _local(
    store: MemoryStore | None, wanted: bool, scope: str, max_keys: int, clock: Clock | None
) -> MemoryStore | None:
    if store is not None or not wanted:
        return None
    return MemoryStore(max_keys, clock) if clock else shared_memory_store(scope, max_keys)
