"""@cached in memory: functions, methods, descriptors, options, settings and handles."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import uuid
from datetime import timedelta

import pytest

from resilient.cache import CacheStats, ainvalidate_tags, cached, invalidate_tags
from resilient.cache.decorator import engine_of
from resilient.config import Settings
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})
CALLS: list[int] = []


@cached(ttl=60, settings=SETTINGS)
def module_level(x: int) -> int:
    """Doubles x."""
    CALLS.append(x)
    return 2 * x


def test_sync_function_hits_misses_and_metadata() -> None:
    """The wrapper looks like the function and caches per argument."""
    CALLS.clear()
    module_level.clear()
    assert module_level(2) == 4
    assert module_level(2) == 4
    assert module_level(3) == 6
    assert CALLS == [2, 3]
    stats = module_level.stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 2, 2)
    assert stats.hit_ratio == pytest.approx(1 / 3)
    assert module_level.__name__ == "module_level"
    assert module_level.__doc__ == "Doubles x."
    assert str(inspect.signature(module_level)) == "(x: 'int') -> 'int'"
    assert inspect.isfunction(module_level)
    assert not inspect.iscoroutinefunction(module_level)
    assert module_level.__wrapped__.__name__ == "module_level"
    assert pickle.loads(pickle.dumps(module_level)) is module_level


async def test_async_function() -> None:
    """Coroutine functions stay coroutine functions; hits need no event-loop machinery."""
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return x + 1

    assert inspect.iscoroutinefunction(fetch)
    assert str(inspect.signature(fetch)) == "(x: 'int') -> 'int'"
    assert await fetch(1) == 2
    assert await fetch(1) == 2
    assert calls == [1]
    assert await fetch.refresh(1) == 2
    assert calls == [1, 1]
    assert fetch.stats().refreshes == 1
    assert fetch.invalidate(1) is True
    assert await fetch.ainvalidate(1) is False
    assert await fetch(1) == 2
    assert calls == [1, 1, 1]
    await fetch.adrain()
    await fetch.aclose()
    with pytest.raises(TypeError, match="adrain"):
        fetch.drain()
    with pytest.raises(TypeError, match="aclose"):
        fetch.close()


def test_expiry_follows_the_injected_clock(clock: FakeClock) -> None:
    """An entry is fresh for ttl seconds of the cache's clock, then recomputed."""
    calls: list[int] = []

    @cached(ttl=timedelta(seconds=10), clock=clock, settings=SETTINGS)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    clock.advance(9.999)
    f(1)
    assert calls == [1]
    clock.advance(0.001)
    f(1)
    assert calls == [1, 1]


def test_methods_classmethods_and_staticmethods() -> None:
    """Every kind of method keeps binding as before; handles take the full parameters."""
    calls: list[str] = []

    class Catalog:
        def __init__(self, shop: str) -> None:
            self.shop = shop

        def __cache_key__(self) -> str:
            return self.shop

        @cached(ttl=60, settings=SETTINGS)
        def price(self, item: str) -> str:
            calls.append(f"price {self.shop} {item}")
            return f"{self.shop}:{item}"

        @cached(ttl=60, settings=SETTINGS)
        @classmethod
        def kind(cls, item: str) -> str:
            calls.append(f"kind {item}")
            return f"{cls.__name__}:{item}"

        @classmethod
        @cached(ttl=60, settings=SETTINGS)
        def kind2(cls, item: str) -> str:
            calls.append(f"kind2 {item}")
            return item

        @cached(ttl=60, settings=SETTINGS)
        @staticmethod
        def tax(rate: int) -> int:
            calls.append(f"tax {rate}")
            return rate * 2

    shop = Catalog("a")
    assert shop.price("x") == shop.price("x") == "a:x"
    assert Catalog("b").price("x") == "b:x"
    # mypy sees through classmethod/staticmethod to the Cached protocol and binds its first
    # parameter like a method's; the calls below are right at runtime (see docs/caching.md).
    assert Catalog.kind("x") == Catalog.kind("x") == shop.kind("x") == "Catalog:x"  # type: ignore[call-arg, arg-type]
    assert Catalog.kind2("y") == shop.kind2("y") == "y"  # type: ignore[call-arg, arg-type]
    assert Catalog.tax(3) == shop.tax(3) == 6  # type: ignore[call-arg]
    assert calls == ["price a x", "price b x", "kind x", "kind2 y", "tax 3"]
    assert isinstance(Catalog.__dict__["kind"], classmethod)
    assert isinstance(Catalog.__dict__["tax"], staticmethod)
    assert str(inspect.signature(Catalog.kind)) == "(item: 'str') -> 'str'"
    assert str(inspect.signature(shop.price)) == "(item: 'str') -> 'str'"
    assert Catalog.price.invalidate(shop, "x") is True
    assert Catalog.kind2.invalidate(Catalog, "y") is True
    assert Catalog.tax.invalidate(3) is True
    shop.price("x")
    assert calls[-1] == "price a x"


def test_none_is_not_cached_unless_asked() -> None:
    """cache_none is off by default: a None result is returned but computed again."""
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def maybe(x: int) -> int | None:
        calls.append(x)
        return None

    @cached(ttl=60, cache_none=True, settings=SETTINGS)
    def maybe_cached(x: int) -> int | None:
        calls.append(-x)
        return None

    assert maybe(1) is None
    assert maybe(1) is None
    assert maybe_cached(1) is None
    assert maybe_cached(1) is None
    assert calls == [1, 1, -1]


def test_disabled_cache_calls_through() -> None:
    """enabled=False stores nothing; every call runs the function."""
    calls: list[int] = []

    @cached(ttl=60, enabled=False, settings=SETTINGS)
    def f(x: int) -> int:
        calls.append(x)
        return x

    f(1)
    f(1)
    assert calls == [1, 1]
    assert f.stats() == CacheStats(0, 2, 0, 0, 0, 0, 0)


def test_max_entries_keeps_recently_hit_entries() -> None:
    """The bound holds, and an entry hit since the last eviction round survives it."""
    calls: list[int] = []

    @cached(ttl=60, max_entries=3, settings=SETTINGS)
    def f(x: int) -> int:
        calls.append(x)
        return x

    for x in (1, 2, 3):
        f(x)
    f(1)  # hit: 1 gets a second chance
    f(4)  # evicts 2, the oldest entry not hit since
    assert f.stats().size == 3
    assert sorted(engine_of(f).store.keys()) == [1, 3, 4]
    calls.clear()
    f(1)
    f(2)
    assert calls == [2]


def test_exceptions_are_not_cached() -> None:
    """A raising call caches nothing; the next call runs again."""
    attempts: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise RuntimeError("first call fails")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1
    assert attempts == [1, 1]


def test_handles_on_a_sync_function() -> None:
    """invalidate, refresh, clear, drain, close and their async twins."""
    calls: list[int] = []

    @cached(ttl=60, settings=SETTINGS)
    def f(x: int) -> int:
        calls.append(x)
        return x * len(calls)

    assert f(2) == 2
    assert f.refresh(2) == 4
    assert f(2) == 4
    assert f.invalidate(2) is True
    assert f.invalidate(2) is False
    assert f(2) == 6
    f.clear()
    assert f.stats().size == 0
    assert f.drain(1.0) is True
    f.close()

    async def twins() -> None:
        assert await f.ainvalidate(2) is False
        await f.adrain()
        await f.aclose()

    asyncio.run(twins())


def test_tags_in_memory(clock: FakeClock) -> None:
    """Templates and functions of the arguments tag entries; invalidation is by tag."""
    calls: list[str] = []
    run = uuid.uuid4().hex  # tags are process-wide: keep other tests' caches out of it

    @cached(ttl=60, tags=[run, run + ":user:{user_id}"], settings=SETTINGS)
    def profile(user_id: int) -> str:
        calls.append(f"profile {user_id}")
        return "p"

    @cached(ttl=60, tags=[lambda user_id, page: [f"{run}:user:{user_id}"]], settings=SETTINGS)
    def posts(user_id: int, page: int) -> str:
        calls.append(f"posts {user_id} {page}")
        return "q"

    for user in (1, 2):
        profile(user)
        posts(user, 1)
    assert invalidate_tags(run + ":user:1") == 2
    assert invalidate_tags(run + ":user:1") == 0
    profile(1)
    profile(2)
    posts(1, 1)
    posts(2, 1)
    assert calls[4:] == ["profile 1", "posts 1 1"]
    assert asyncio.run(ainvalidate_tags(run)) == 2
    assert profile.stats().size == 0
