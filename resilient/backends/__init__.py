"""Backends: where caches, breakers and limiters keep their state.

Pick one with a URL, as ``limits`` does with storage URIs:

=====================================  ================================================
URL                                    backend
=====================================  ================================================
``memory://``                          this process only (the default)
``redis://[:pw@]host:6379/0``          one Redis server
``rediss://…``                         one Redis server over TLS
``unix:///run/redis.sock?db=0``        one Redis server over a Unix socket
``redis+cluster://h1:7000,h2:7001``    Redis Cluster (startup nodes)
``redis+sentinel://h1:26379/mymaster`` the master of a Sentinel-managed service
=====================================  ================================================

Query options: ``timeout`` and ``connect_timeout`` (``100ms`` by default),
``guard_failures``, ``guard_cooldown``, ``max_connections``, ``max_entries`` (memory);
anything else goes to the redis-py client. Keyword arguments override the query, and
``client=`` or ``connection_pool=`` inject what you already have.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

from resilient.backends import _urls
from resilient.backends.base import (
    AsyncBackend,
    Clock,
    LuaScript,
    Subscription,
    SyncBackend,
    hash_tag,
)
from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.errors import ConfigurationError

if TYPE_CHECKING:
    from resilient.backends._lane import LaneAddress
    from resilient.config import Settings

__all__ = [
    "AsyncBackend",
    "AsyncMemoryBackend",
    "BackendOptions",
    "Clock",
    "LuaScript",
    "MemoryBackend",
    "Subscription",
    "SyncBackend",
    "async_backend_from_url",
    "backend_from_settings",
    "backend_from_url",
    "hash_tag",
    "register_backend",
]

BackendOptions = _urls.BackendOptions
SyncFactory = Callable[[SplitResult, BackendOptions], SyncBackend]
AsyncFactory = Callable[[SplitResult, BackendOptions], AsyncBackend]


@dataclass(frozen=True, slots=True)
class _Entry:
    sync: SyncFactory
    asyncio: AsyncFactory


_REGISTRY: dict[str, _Entry] = {}


def register_backend(scheme: str, sync: SyncFactory, asyncio: AsyncFactory) -> None:
    """Make ``scheme://`` URLs build backends with these factories.

    Each factory receives the split URL and the parsed :class:`BackendOptions`.

    .. versionadded:: 0.1
    """
    _REGISTRY[scheme] = _Entry(sync, asyncio)


def _lookup(url: str, keywords: dict[str, Any]) -> tuple[_Entry, SplitResult, BackendOptions]:
    parts = urlsplit(url)
    entry = _REGISTRY.get(parts.scheme)
    if entry is None or "://" not in url:
        expected = "a URL with a scheme among " + ", ".join(sorted(_REGISTRY))
        raise ConfigurationError("backend URL", _urls.safe_name(parts), expected)
    return entry, parts, _urls.parse_options(url, parts, keywords)


def backend_from_url(url: str, **options: Any) -> SyncBackend:
    """A sync backend for ``url`` (see the module docs for schemes and options).

    Raises:
        ConfigurationError: unknown scheme or a bad option value.

    .. versionadded:: 0.1
    """
    entry, parts, parsed = _lookup(url, options)
    return entry.sync(parts, parsed)


def async_backend_from_url(url: str, **options: Any) -> AsyncBackend:
    """An asyncio backend for ``url``; same URLs and options as :func:`backend_from_url`.

    .. versionadded:: 0.1
    """
    entry, parts, parsed = _lookup(url, options)
    return entry.asyncio(parts, parsed)


def backend_from_settings(
    settings: Settings, section: str, *, asyncio: bool = False, **options: Any
) -> SyncBackend | AsyncBackend:
    """The backend a feature's settings name, with their timeouts and guard.

    .. versionadded:: 0.1
    """
    defaults: dict[str, Any] = {
        "timeout": settings.op_timeout,
        "connect_timeout": settings.connect_timeout,
        "guard_failures": settings.guard_failures,
        "guard_cooldown": settings.guard_cooldown,
        "max_entries": settings.memory_max_entries,
    }
    url = settings.url_for(section)
    build = async_backend_from_url if asyncio else backend_from_url
    return build(url, **{**defaults, **options})


def _memory(parts: SplitResult, options: BackendOptions) -> SyncBackend:
    return MemoryBackend(max_entries=options.max_entries, clock=options.clock)


def _async_memory(parts: SplitResult, options: BackendOptions) -> AsyncBackend:
    return AsyncMemoryBackend(max_entries=options.max_entries, clock=options.clock)


def _redis_factories(
    build: Callable[..., Any],
) -> tuple[SyncFactory, AsyncFactory]:
    def guard(options: BackendOptions) -> dict[str, Any]:
        return {
            "guard_failures": options.guard_failures,
            "guard_cooldown": options.guard_cooldown,
            "clock": options.clock,
            "share_guard": True,
        }

    def lane(parts: SplitResult, options: BackendOptions) -> LaneAddress | None:
        # Evals take the lean lane only on connections that we set up from the URL.
        if build is not _urls.redis_client or options.client or options.connection_pool:
            return None
        from resilient.backends._lane import lane_address

        return lane_address(parts, options.passthrough, options.timeout, options.connect_timeout,
                            options.max_connections)  # fmt: skip

    def sync(parts: SplitResult, options: BackendOptions) -> SyncBackend:
        from resilient.backends.redis import RedisBackend

        client = options.client or build(parts, options, asyncio=False)
        return RedisBackend(client, name=_urls.safe_name(parts), lane=lane(parts, options),
                            **guard(options))  # fmt: skip

    def asyncio(parts: SplitResult, options: BackendOptions) -> AsyncBackend:
        from resilient.backends.redis import AsyncRedisBackend

        client = options.client or build(parts, options, asyncio=True)
        factory = None
        if not (options.client or options.connection_pool):  # ours: one client per loop

            def factory() -> Any:
                return build(parts, options, asyncio=True)

        return AsyncRedisBackend(client, name=_urls.safe_name(parts), lane=lane(parts, options),
                                 client_factory=factory, **guard(options))  # fmt: skip

    return sync, asyncio


def _register_builtins() -> None:
    register_backend("memory", _memory, _async_memory)
    if importlib.util.find_spec("redis") is None:  # pragma: no cover - no redis extra
        return
    for scheme in ("redis", "rediss", "unix"):
        register_backend(scheme, *_redis_factories(_urls.redis_client))
    register_backend("redis+cluster", *_redis_factories(_urls.cluster_client))
    register_backend("redis+sentinel", *_redis_factories(_urls.sentinel_client))


_register_builtins()
