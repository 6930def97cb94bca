"""Backends that misbehave on purpose, for cache tests: fakeredis with injected failures
and delays."""

from __future__ import annotations

import asyncio
import time

import fakeredis

from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.errors import BackendError


class FlakyBackend(RedisBackend):
    """fakeredis with injected failures and delays."""

    def __init__(self, *, fail_lease: bool = False, fail_store: bool = False,
                 slow_get: float = 0.0) -> None:  # fmt: skip
        super().__init__(fakeredis.FakeRedis(), name="flaky")
        self.fail_lease, self.fail_store, self.slow_get = fail_lease, fail_store, slow_get

    def get(self, key: str) -> bytes | None:
        time.sleep(self.slow_get)
        return super().get(key)

    def set(
        self, key: str, value: bytes, ttl: float | None = None, *, only_if_new: bool = False
    ) -> bool:
        if (only_if_new and self.fail_lease) or (not only_if_new and self.fail_store):
            raise BackendError("injected failure")
        return super().set(key, value, ttl, only_if_new=only_if_new)


class SlowAsyncBackend(AsyncRedisBackend):
    """Async fakeredis whose reads take a while."""

    def __init__(self) -> None:
        super().__init__(fakeredis.FakeAsyncRedis(), name="slow")

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(0.05)
        return await super().get(key)
