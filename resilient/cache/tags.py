"""Group invalidation by tag, across every cached function of this process and Redis.

In memory a tag indexes entries directly. In Redis each tag is a set of entry keys
(``<namespace>:<version>:resilient-tag:<tag>``), added to when an entry is stored and
popped atomically when the tag is invalidated: no ``KEYS`` or ``SCAN``, and every
command touches one key, so it works on Redis Cluster. The deleted keys are announced
on the namespace's channel, so L1 tiers in other processes drop their copies too.
"""

from __future__ import annotations

import asyncio
from typing import cast

from resilient.backends.base import SyncBackend
from resilient.cache.async_cache import AsyncCache
from resilient.cache.core import REGISTRY, CacheCore
from resilient.cache.flows import forget_tags, run_sync
from resilient.cache.keys import key_prefix
from resilient.cache.sync_cache import SyncCache
from resilient.cache.twotier import channel_for

__all__ = ["ainvalidate_tags", "invalidate_remote_tags", "invalidate_tags"]


def _tagged() -> list[CacheCore]:
    return [core for core in list(REGISTRY) if core.options.tags]


def invalidate_tags(*tags: str) -> int:
    """Remove every cached entry stored with one of ``tags``, in memory and in Redis.

    Covers all cached functions of this process; for caches of coroutine functions over
    an asyncio backend object (rather than a URL), use :func:`ainvalidate_tags`.

    Returns:
        How many entries were removed (memory and Redis together).

    Raises:
        BackendError: Redis could not be reached; the entries may still be there.

    .. versionadded:: 0.1
    """
    total = 0
    for core in _tagged():
        if isinstance(core, SyncCache):
            total += core.invalidate_tags(tags)
        elif isinstance(core, AsyncCache):
            total += core.invalidate_tags_blocking(tags)
    return total


async def ainvalidate_tags(*tags: str) -> int:
    """The asyncio twin of :func:`invalidate_tags`; never blocks the event loop.

    .. versionadded:: 0.1
    """
    total = 0
    for core in _tagged():
        if isinstance(core, AsyncCache):
            total += await core.invalidate_tags(tags)
        elif isinstance(core, SyncCache):
            if core.remote is None:
                total += core.invalidate_tags(tags)
            else:
                total += await asyncio.to_thread(core.invalidate_tags, tags)
    return total


class _Scope:
    """What :func:`forget_tags` reads of a cache: its tag keys and its channel."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.channel = channel_for(scope)

    def tag_key(self, tag: str) -> str:
        return f"{self.scope}resilient-tag:{tag}"


def invalidate_remote_tags(
    backend: SyncBackend, tags: tuple[str, ...], namespace: str = "", version: str = ""
) -> tuple[list[str], int]:
    """Remove the Redis entries stored with ``tags`` by caches of one namespace and
    version, from outside any cache (``resilient cache purge --tag``).

    The very steps a cache takes (pop each tag set, delete its keys, announce them so
    L1 tiers drop their copies); returns the keys listed and how many were deleted.

    Raises:
        BackendError: Redis could not be reached.
    """
    scope = _Scope(key_prefix(namespace, version, ""))
    return run_sync(forget_tags(cast(CacheCore, scope), tags), backend)
