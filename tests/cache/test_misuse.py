"""Mistakes in how @cached is applied: refused with a clear error, never silently wrong."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import warnings
from collections.abc import Callable

import fakeredis
import pytest

from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.cache import cached
from resilient.config import Settings
from resilient.errors import ConfigurationError
from tests.support.sockets import refused_url

SETTINGS = Settings.from_env({})


async def _fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x * 10


def test_sync_function_returning_a_coroutine_is_refused_not_cached() -> None:
    """The coroutine is not stored (its second await would fail) but closed, and the
    error says to make the function ``async def``; the same on every call."""

    @cached(ttl=60, settings=SETTINGS)
    def wrapper(x: int) -> object:
        return _fetch(x)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with pytest.raises(TypeError, match="async def"):
                wrapper(1)
        with pytest.raises(TypeError, match="async def"):
            wrapper.refresh(1)
        gc.collect()  # a coroutine left unclosed warns when it is collected
    assert [str(w.message) for w in caught] == []
    assert wrapper.stats().size == 0


async def test_async_function_returning_a_coroutine_is_refused_not_cached() -> None:
    """``async def f(): return other()`` would cache the inner coroutine the same way."""

    @cached(ttl=60, settings=SETTINGS)
    async def wrapper(x: int) -> object:
        return _fetch(x)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with pytest.raises(TypeError, match="await it inside"):
                await wrapper(1)
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert wrapper.stats().size == 0


# backend flavour ------------------------------------------------------------------------


async def test_backend_object_of_the_other_flavour_is_refused_at_decoration() -> None:
    """isinstance() cannot tell the two protocols apart; the decorator checks ``get``."""
    async_backend = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="async")
    sync_backend = RedisBackend(fakeredis.FakeRedis(), name="sync")
    try:
        with pytest.raises(ConfigurationError, match="SyncBackend for a sync function") as bad:
            cached(ttl=60, backend=async_backend, name="flavour.sync", settings=SETTINGS)(_double)
        assert (bad.value.name, bad.value.value) == ("backend", async_backend)
        with pytest.raises(ConfigurationError, match="AsyncBackend for an async def") as bad:
            cached(ttl=60, backend=sync_backend, name="flavour.async", settings=SETTINGS)(_fetch)
        assert (bad.value.name, bad.value.value) == ("backend", sync_backend)
        # Each flavour with its own kind of function still works.
        double = cached(ttl=60, backend=sync_backend, name="flavour.ok", settings=SETTINGS)(_double)
        fetch = cached(ttl=60, backend=async_backend, name="flavour.aok", settings=SETTINGS)(_fetch)
        assert (double(2), double(2), await fetch(2), await fetch(2)) == (4, 4, 20, 20)
        assert (double.stats().remote_hits, fetch.stats().remote_hits) == (1, 1)
    finally:
        sync_backend.close()
        await async_backend.aclose()


def test_a_url_serves_both_flavours() -> None:
    """A URL builds the backend of the right flavour (nothing connects at decoration)."""
    url = refused_url()
    cached(ttl=60, backend=url, name="url.sync", settings=SETTINGS)(_double).close()
    assert inspect.iscoroutinefunction(
        cached(ttl=60, backend=url, name="url.async", settings=SETTINGS)(_fetch)
    )


# names ----------------------------------------------------------------------------------


def _double(x: int) -> int:
    return 2 * x


def _make_fetcher(
    base: str, backend: RedisBackend | None = None, two_tier: bool = False, name: str | None = None
) -> Callable[[str], str]:
    @cached(ttl=60, backend=backend, two_tier=two_tier, name=name, settings=SETTINGS)
    def fetch(path: str) -> str:
        return base + path

    return fetch


def test_closures_sharing_a_default_name_are_refused_on_a_shared_backend() -> None:
    """Every closure of one factory is ``<locals>.fetch``: in Redis, B would read A's."""
    backend = RedisBackend(fakeredis.FakeRedis(), name="shared")
    try:
        for two_tier in (False, True):
            with pytest.raises(ConfigurationError, match="name=") as bad:
                _make_fetcher("a", backend, two_tier)
            assert bad.value.name == "name"
            assert "_make_fetcher.<locals>.fetch" in str(bad.value)
        with pytest.raises(ConfigurationError, match="lambda"):
            cached(ttl=60, backend=backend, settings=SETTINGS)(lambda x: x)
        # The backend may also come from the settings.
        from_settings = Settings.from_env({"RESILIENT_CACHE_URL": refused_url()})
        with pytest.raises(ConfigurationError, match="name="):
            cached(ttl=60, settings=from_settings)(lambda x: x)
        # One name per closure: each keeps its own entries.
        first = _make_fetcher("a:", backend=backend, name="fetch:a")
        second = _make_fetcher("b:", backend=backend, name="fetch:b")
        assert (first("/x"), second("/x"), second("/x")) == ("a:/x", "b:/x", "b:/x")
    finally:
        backend.close()


def test_closures_in_memory_keep_their_own_stores() -> None:
    """Memory entries live in a store per decorated function: the default name is fine."""
    first, second = _make_fetcher("a:"), _make_fetcher("b:")
    assert (first("/x"), second("/x"), first("/x"), second("/x")) == (
        "a:/x",
        "b:/x",
        "a:/x",
        "b:/x",
    )


class _Scaler:
    """A callable object: instances have no ``__qualname__``."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.calls = 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        return self.factor * x


class _AsyncScaler(_Scaler):
    async def __call__(self, x: int) -> int:  # type: ignore[override]
        self.calls += 1
        await asyncio.sleep(0)
        return self.factor * x


async def test_partials_and_callable_objects_need_a_name() -> None:
    """No ``__qualname__`` to default to: ask for ``name=``; given one, they are cached."""
    for target in (functools.partial(_fetch), _Scaler(3)):
        with pytest.raises(ConfigurationError, match="name=") as bad:
            cached(ttl=60, settings=SETTINGS)(target)
        assert bad.value.name == "name"
    triple = _Scaler(3)
    cached_triple = cached(ttl=60, name="triple", settings=SETTINGS)(triple)
    assert (cached_triple(2), cached_triple(2), triple.calls) == (6, 6, 1)
    power = cached(ttl=60, name="square", settings=SETTINGS)(functools.partial(pow, exp=2))
    assert (power(7), power(7), power.stats().hits) == (49, 49, 1)
    scaler = _AsyncScaler(5)
    ascaled = cached(ttl=60, name="ascaled", settings=SETTINGS)(scaler)
    fetch = cached(ttl=60, name="afetch", settings=SETTINGS)(functools.partial(_fetch))
    assert inspect.iscoroutinefunction(ascaled)
    assert inspect.iscoroutinefunction(fetch)
    assert (await ascaled(2), await ascaled(2), scaler.calls) == (10, 10, 1)
    assert (await fetch(2), await fetch(2), fetch.stats().hits) == (20, 20, 1)
