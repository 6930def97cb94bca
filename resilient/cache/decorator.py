"""``@cached``: TTL caching for sync and async functions, methods, classmethods and
staticmethods, in memory or over Redis.

The decorated function is a plain function with the original's signature (so
``inspect.signature``, ``inspect.iscoroutinefunction`` and pickling by name behave as
before) carrying handles: ``invalidate``, ``ainvalidate``, ``refresh``, ``stats``,
``clear``, ``drain``, ``adrain``, ``close`` and ``aclose``. Handles take the function's
own parameters, ``self`` or ``cls`` included: ``Repo.find.invalidate(repo, 42)``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

from resilient._descriptors import through_descriptor
from resilient.backends.base import AsyncBackend, Clock, SyncBackend
from resilient.cache import checks
from resilient.cache.async_cache import AsyncCache
from resilient.cache.entries import CacheStats
from resilient.cache.fastpath import build_wrapper, plan_call
from resilient.cache.options import TagSpec, resolve_options
from resilient.cache.serializers import Serializer
from resilient.cache.sync_cache import SyncCache
from resilient.config import Settings, check_option_names

__all__ = ["Cached", "cached"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")
Duration = float | int | timedelta
#: The keyword options of :func:`cached`, as its typed overload lists them.
_OPTIONS = frozenset({
    "ttl", "name", "backend", "namespace", "version", "key", "ignore", "tags", "serializer",
    "hmac_key", "hmac_algorithm", "cache_none", "max_entries", "two_tier", "l1_ttl", "lock",
    "lock_ttl", "xfetch_beta", "stale_while_revalidate", "stale_if_error", "enabled",
    "settings", "clock",
})  # fmt: skip


class Cached(Protocol[P, R_co]):
    """A cached function: call it as the original, plus handles.

    .. versionadded:: 0.1
    """

    __wrapped__: Callable[..., Any]
    __name__: str
    __qualname__: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call through the cache."""
        ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Forget the entry of these arguments (memory and Redis); True if one existed."""
        ...

    async def ainvalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """:meth:`invalidate` without blocking the event loop."""
        ...

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Compute now, store and return (a coroutine for a coroutine function)."""
        ...

    def stats(self) -> CacheStats:
        """Hits, misses, stale values served, errors and refreshes so far."""
        ...

    def clear(self) -> None:
        """Forget every entry held in this process's memory (not in Redis)."""
        ...

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for background refreshes of a sync function; False on timeout."""
        ...

    async def adrain(self) -> None:
        """Wait for background refreshes (tasks, or threads off the event loop)."""
        ...

    def close(self) -> None:
        """Stop the invalidation listener and close a backend built from a URL."""
        ...

    async def aclose(self) -> None:
        """:meth:`close` for coroutine functions."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> Cached[P, R_co]: ...

    @overload
    def __get__(
        self: Cached[Concatenate[T, P2], R_co], instance: T, owner: type[Any], /
    ) -> Callable[P2, R_co]: ...

    def __get__(self, instance: Any, owner: type[Any], /) -> Any:
        """Bind like a function: ``obj.method(...)`` passes ``obj`` as ``self``."""
        ...


class CacheDecorator(Protocol):
    """What ``cached(...)`` returns: applies to functions, classmethods, staticmethods."""

    @overload
    def __call__(self, func: classmethod[T, P, R], /) -> classmethod[T, P, R]: ...

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a staticmethod is also callable
        self, func: staticmethod[P, R], /
    ) -> staticmethod[P, R]: ...

    @overload
    def __call__(self, func: Callable[P, R], /) -> Cached[P, R]: ...

    def __call__(self, func: Any, /) -> Any:
        """Decorate ``func``."""
        ...


@overload
def cached(ttl: Callable[P, R], /) -> Cached[P, R]: ...


@overload
def cached(
    ttl: Duration | None = None,
    *,
    name: str | None = None,
    backend: str | SyncBackend | AsyncBackend | None = None,
    namespace: str | None = None,
    version: str | None = None,
    key: Callable[..., str] | None = None,
    ignore: Iterable[str] = (),
    tags: Iterable[TagSpec] = (),
    serializer: str | Serializer | None = None,
    hmac_key: str | bytes | None = None,
    hmac_algorithm: str | None = None,
    cache_none: bool | None = None,
    max_entries: int | None = None,
    two_tier: bool | None = None,
    l1_ttl: Duration | None = None,
    lock: bool | None = None,
    lock_ttl: Duration | None = None,
    xfetch_beta: float | None = None,
    stale_while_revalidate: Duration | None = None,
    stale_if_error: Duration | None = None,
    enabled: bool | None = None,
    settings: Settings | None = None,
    clock: Clock | None = None,
) -> CacheDecorator: ...


def cached(ttl: Any = None, /, **options: Any) -> Any:
    """Cache a function's results for ``ttl`` seconds.

    Every option left out (or None) comes from the settings (``RESILIENT_CACHE_*``, and
    ``RESILIENT_CACHE__<NAME>__*`` for this cache's name), read when the decorator is
    built. See ``docs/caching.md`` for the whole guide.

    Args:
        ttl: seconds (or a timedelta) a value stays fresh; ``RESILIENT_CACHE_TTL``.
        name: names the cache in keys, per-name settings and logs; defaults to
            ``module.qualname``.
        backend: ``"memory://"``, a Redis URL, or a backend object; defaults to
            ``RESILIENT_CACHE_URL`` or ``RESILIENT_BACKEND_URL``.
        namespace: prefix of every key (an app, a tenant).
        version: part of every key; bump it to drop everything at once on deploy.
        key: builds the key text from the call's arguments instead of the default.
        ignore: parameters left out of the key (``("self",)`` to share across instances).
        tags: strings, templates of the arguments (``"user:{user_id}"``) or functions of
            the arguments returning tags; see :func:`invalidate_tags`.
        serializer: ``"json"`` (default), ``"pickle"`` (needs ``hmac_key``) or an object.
        hmac_key: signs every stored entry; entries failing verification are misses.
        hmac_algorithm: ``sha256``, ``sha384`` or ``sha512``; the only one accepted.
        cache_none: store ``None`` results (off: ``None`` is returned but not stored).
        max_entries: most entries kept in this process's memory (memory cache or L1).
        two_tier: keep a memory L1 in front of Redis, kept coherent through pub/sub.
        l1_ttl: longest time an entry stays in L1 before Redis is asked again.
        lock: a Redis lease so that one process in the cluster computes a missing key.
        lock_ttl: lease expiry (in case its holder dies); waiters wait this long at most;
            0: nobody waits for another caller (then ``lock`` must be off).
        xfetch_beta: probabilistic early refresh; 0 turns it off, above 1 refreshes earlier.
        stale_while_revalidate: serve an expired value this long while one refresh runs.
        stale_if_error: serve an expired value this long when the function raises.
        enabled: False calls straight through (nothing stored).
        settings: settings to use instead of reading the environment.
        clock: seconds; monotonic for memory caches, wall time with Redis.

    Raises:
        ConfigurationError: a bad option or setting, or an unknown option (with the
            closest known name), at decoration time.

    .. versionadded:: 0.1
    """
    # A misspelt option would otherwise be ignored without a word (the overloads catch it
    # for type-checked code only): refuse it now, at decoration, naming the close one.
    check_option_names(options, _OPTIONS, "cached")
    if "ttl" in options:  # cached(ttl=60): the keyword lands among the options
        ttl = options.pop("ttl")
    if isinstance(ttl, (classmethod, staticmethod)) or (
        callable(ttl) and not isinstance(ttl, (int, float))
    ):
        return _decorate(ttl, None, options)
    return functools.partial(_decorate, ttl=ttl, options=options)


def _decorate(func: Any, ttl: Any, options: dict[str, Any]) -> Any:
    if isinstance(func, (classmethod, staticmethod)):
        return through_descriptor(functools.partial(_decorate, ttl=ttl, options=options), func)
    checks.check_target(func)
    is_async = checks.is_coroutine_callable(func)
    name = checks.cache_name(func, options.get("name"))
    settings = options.get("settings")
    resolved = resolve_options(name, {**options, "ttl": ttl}, settings, is_async=is_async)
    checks.check_shared_name(name, options.get("name"), resolved)
    key = options.get("key")
    plan = plan_call(func, tuple(options.get("ignore") or ()), key)
    engine: SyncCache | AsyncCache = (AsyncCache if is_async else SyncCache)(func, resolved, plan)
    wrapper = build_wrapper(
        func,
        plan,
        store_get=engine.store.get,
        clock=engine.clock,
        counts=engine.counts,
        miss=engine.miss,
        is_async=is_async,
        key=key,
    )
    functools.update_wrapper(wrapper, func)
    _attach_handles(wrapper, engine)
    return wrapper


def _attach_handles(wrapper: Any, engine: SyncCache | AsyncCache) -> None:
    key_of = engine.plan.key_of

    def stats() -> CacheStats:
        return engine.counts.snapshot(len(engine.store))

    if isinstance(engine, SyncCache):
        sync: SyncCache = engine

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return sync.invalidate(key_of(*args, **kwargs)[0])

        async def ainvalidate(*args: Any, **kwargs: Any) -> bool:
            return await asyncio.to_thread(sync.invalidate, key_of(*args, **kwargs)[0])

        def refresh(*args: Any, **kwargs: Any) -> Any:
            return sync.refresh(*key_of(*args, **kwargs))

        async def adrain() -> None:
            await asyncio.to_thread(sync.drain)

        async def aclose() -> None:
            await asyncio.to_thread(sync.close)

        handles: dict[str, Any] = {"drain": sync.drain, "close": sync.close, "aclose": aclose}
    else:
        coro: AsyncCache = engine

        def invalidate(*args: Any, **kwargs: Any) -> bool:
            return coro.invalidate_blocking(key_of(*args, **kwargs)[0])

        async def ainvalidate(*args: Any, **kwargs: Any) -> bool:
            return await coro.invalidate(key_of(*args, **kwargs)[0])

        def refresh(*args: Any, **kwargs: Any) -> Any:
            return coro.refresh(*key_of(*args, **kwargs))

        def drain(timeout: float | None = None) -> bool:
            raise TypeError("the refreshes of a coroutine function are tasks: await adrain()")

        def close() -> None:
            raise TypeError("a coroutine function's cache closes with: await aclose()")

        adrain = coro.drain
        handles = {"drain": drain, "close": close, "aclose": coro.aclose}
    handles.update(
        invalidate=invalidate,
        ainvalidate=ainvalidate,
        refresh=refresh,
        stats=stats,
        clear=engine.clear,
        adrain=adrain,
        _engine=engine,
    )
    for attribute, handle in handles.items():
        setattr(wrapper, attribute, handle)


def engine_of(function: object) -> SyncCache | AsyncCache:
    """The engine behind a cached function (for tests and tooling)."""
    target = getattr(function, "__func__", function)
    engine = getattr(target, "__dict__", {}).get("_engine")
    if engine is None:
        raise TypeError(f"{function!r} is not a cached function")
    return cast("SyncCache | AsyncCache", engine)
