"""TTL caching for sync and async functions, in memory or over Redis.

.. code-block:: python

    from resilient.cache import cached

    @cached(ttl=60)
    def find_user(user_id: int) -> User: ...

The guide is ``docs/caching.md``: options, keys, serializers and their safety rules,
two tiers, stampede control and what happens when Redis fails.
"""

from __future__ import annotations

from resilient.cache.decorator import Cached, CacheDecorator, cached
from resilient.cache.entries import CacheStats
from resilient.cache.serializers import (
    JsonSerializer,
    PickleSerializer,
    SerializationError,
    Serializer,
)
from resilient.cache.tags import ainvalidate_tags, invalidate_tags

__all__ = [
    "CacheDecorator",
    "CacheStats",
    "Cached",
    "JsonSerializer",
    "PickleSerializer",
    "SerializationError",
    "Serializer",
    "ainvalidate_tags",
    "cached",
    "invalidate_tags",
]
