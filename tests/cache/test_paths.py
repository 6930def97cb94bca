"""Less travelled paths: leases within one process, failing writes, custom keys over
Redis, bounded memos, sync handles of coroutine functions, odd subscriptions."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import fakeredis
import pytest

from resilient.backends.redis import AsyncRedisBackend
from resilient.cache import cached, invalidate_tags
from resilient.cache.decorator import engine_of
from resilient.cache.sync_cache import SyncCache
from resilient.config import Settings
from tests.cache._backends import FlakyBackend
from tests.cache.test_redis import raw_client

SETTINGS = Settings.from_env({})


async def test_async_disabled_calls_through() -> None:
    """enabled=False for a coroutine function too."""
    calls: list[int] = []

    @cached(ttl=10, enabled=False, settings=SETTINGS)
    async def value(x: int) -> int:
        calls.append(x)
        return x

    assert await value(1) == await value(1) == 1
    assert calls == [1, 1]


def test_a_lease_waiter_in_this_process_gets_the_holders_value(remote: Any) -> None:
    """Two caches of one name with the lease: the second waits for the first's value."""
    name = f"wait-{uuid.uuid4().hex}"
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def make(role: str) -> Any:
        @cached(ttl=60, backend=remote, name=name, lock=True, lock_ttl=5, settings=SETTINGS)
        def compute(x: int) -> str:
            calls.append(role)
            started.set()
            release.wait(5)
            return f"from {role}"

        return compute

    holder, waiter = make("holder"), make("waiter")
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(holder(1)))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=lambda: results.append(waiter(1)))
    second.start()
    time.sleep(0.1)  # the waiter polls the lease meanwhile
    release.set()
    first.join()
    second.join()
    assert calls == ["holder"]
    assert results == ["from holder", "from holder"]
    assert (waiter.stats().hits, waiter.stats().misses) == (1, 0)


async def test_an_async_lease_waiter_gets_the_holders_value(aremote: Any) -> None:
    """The asyncio driver sleeps between polls without blocking the loop."""
    name = f"await-{uuid.uuid4().hex}"
    calls: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    def make(role: str) -> Any:
        @cached(ttl=60, backend=aremote, name=name, lock=True, lock_ttl=5, settings=SETTINGS)
        async def compute(x: int) -> str:
            calls.append(role)
            started.set()
            await release.wait()
            return f"from {role}"

        return compute

    holder, waiter = make("holder"), make("waiter")
    first = asyncio.create_task(holder(1))
    await started.wait()
    second = asyncio.create_task(waiter(1))
    await asyncio.sleep(0.05)  # the waiter polls the lease meanwhile
    release.set()
    assert list(await asyncio.gather(first, second)) == ["from holder", "from holder"]
    assert calls == ["holder"]
    await holder.aclose()
    await waiter.aclose()


def test_a_failing_lease_falls_back_to_computing() -> None:
    """When the lease cannot be taken (Redis failing), the caller computes anyway."""
    backend = FlakyBackend(fail_lease=True)
    calls: list[int] = []

    @cached(ttl=60, backend=backend, name=f"nolease-{uuid.uuid4().hex}", lock=True,
            settings=SETTINGS)  # fmt: skip
    def value(x: int) -> int:
        calls.append(x)
        return x

    assert value(1) == 1
    assert calls == [1]
    assert value.stats().errors == 1


def test_failing_or_impossible_writes_still_answer() -> None:
    """A value that cannot be stored (Redis failing, or not serializable) is returned."""
    backend = FlakyBackend(fail_store=True)
    calls: list[int] = []

    @cached(ttl=60, backend=backend, name=f"nostore-{uuid.uuid4().hex}", settings=SETTINGS)
    def value(x: int) -> int:
        calls.append(x)
        return x

    @cached(ttl=60, backend=FlakyBackend(), name=f"opaque-{uuid.uuid4().hex}",
            settings=SETTINGS)  # fmt: skip
    def opaque(x: int) -> object:
        calls.append(-x)
        return object

    assert value(1) == value(1) == 1
    assert calls == [1, 1]
    assert value.stats().errors == 2
    assert opaque(1) is opaque(1) is object
    assert opaque.stats().errors == 2


def test_custom_and_encoded_keys_over_redis(remote: Any) -> None:
    """key= text and arguments of non-fast types name Redis entries too."""
    name = f"keys-{uuid.uuid4().hex}"

    @cached(ttl=60, backend=remote, name=name, key=lambda user: user.lower(), settings=SETTINGS)
    def greet(user: str) -> str:
        return f"hi {user}"

    @cached(ttl=60, backend=remote, name=name + "-f", settings=SETTINGS)
    def scale(factor: float, items: tuple[int, ...]) -> list[float]:
        return [factor * item for item in items]

    assert greet("Ada") == greet("ADA") == "hi Ada"
    assert scale(0.5, (2, 4)) == scale(0.5, (2, 4)) == [1.0, 2.0]
    client = raw_client(remote)
    assert client.exists(f"{name}:s3:ada") == 1
    assert client.exists(f"{name}-f:f0.5,t(i2,i4)") == 1


def test_bounded_key_and_value_memos(remote: Any) -> None:
    """The remembered Redis keys and decoded values never outgrow max_entries."""

    @cached(ttl=60, backend=remote, name=f"bound-{uuid.uuid4().hex}", max_entries=2,
            settings=SETTINGS)  # fmt: skip
    def value(x: int) -> int:
        return x

    for x in range(5):
        value(x)
        value(x)
    engine = engine_of(value)
    assert len(engine.decoded) <= 2
    assert len(engine._l2keys) <= 2


async def test_sync_handles_of_a_coroutine_function(aremote: Any) -> None:
    """invalidate() and invalidate_tags() reach Redis from sync code for URL backends."""
    tag = uuid.uuid4().hex

    @cached(ttl=60, backend=aremote, name=f"handles-{tag}", tags=[tag], settings=SETTINGS)
    async def value(x: int) -> int:
        return x

    await value(1)
    if isinstance(aremote, str):
        assert value.invalidate(1) is True
        await value(1)
        assert invalidate_tags(tag) == 1
    else:
        with pytest.raises(TypeError, match="ainvalidate"):
            value.invalidate(1)
    await value.aclose()


class _CloseOnly:
    """A subscription offering only close(), as the protocol requires."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.connected = True

    def close(self) -> None:
        self.inner.close()


class _PlainSubscriptions(AsyncRedisBackend):
    async def subscribe(self, channel: str, on_message: Any, on_reset: Any = None) -> Any:
        return _CloseOnly(await super().subscribe(channel, on_message, on_reset))


async def test_aclose_with_a_subscription_that_only_closes() -> None:
    """Third-party backends may return subscriptions without aclose()."""
    backend = _PlainSubscriptions(fakeredis.FakeAsyncRedis(), name="plain")

    @cached(ttl=60, two_tier=True, backend=backend, name=f"plain-{uuid.uuid4().hex}",
            settings=SETTINGS)  # fmt: skip
    async def value(x: int) -> int:
        return x

    await value(1)
    coherence = engine_of(value).coherence
    assert coherence is not None
    assert coherence.live
    await value.aclose()
    assert not coherence.live
    await asyncio.sleep(0.01)  # let the cancelled listener finish
    await backend.aclose()


def test_a_leader_finds_what_an_earlier_flight_stored() -> None:
    """A caller that missed just before another flight filled memory takes its value."""
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def value(x: int) -> int:
        calls.append(x)
        return x

    engine = engine_of(value)
    assert isinstance(engine, SyncCache)
    value(1)  # the earlier flight
    outcome = engine._read(1, (1,), None, True)  # a leader that had looked before it ended
    assert outcome.value == 1
    assert calls == [1]


def test_unresolvable_return_annotations_do_not_break_caching() -> None:
    """Forward references that never resolve only mean: no extra types to rebuild."""

    @cached(ttl=60, backend=FlakyBackend(), name=f"fwd-{uuid.uuid4().hex}", settings=SETTINGS)
    def value(x: int) -> Undefined:  # type: ignore[name-defined]  # noqa: F821
        return x

    assert value(1) == value(1) == 1
    assert value.stats().remote_hits == 1


def test_sync_tag_invalidation_of_coroutine_functions_in_memory() -> None:
    """invalidate_tags() also clears memory caches of coroutine functions."""
    tag = uuid.uuid4().hex

    @cached(ttl=60, tags=[tag], settings=SETTINGS)
    async def value(x: int) -> int:
        return x

    asyncio.run(value(1))
    assert invalidate_tags(tag) == 1
    assert value.stats().size == 0


def test_generated_names_never_shadow_internals() -> None:
    """A function whose own name looks internal gets a neutral code name."""

    def __rc_secret(x: int) -> int:
        return x

    wrapped = cached(ttl=60, settings=SETTINGS)(__rc_secret)
    assert wrapped(1) == 1
    assert wrapped.__name__ == "__rc_secret"  # metadata still says who it is
