"""@cached over Redis (fakeredis, a real server, a real cluster): entries, tags, leases."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from resilient.backends import backend_from_url
from resilient.backends.redis import RedisBackend
from resilient.cache import ainvalidate_tags, cached, invalidate_tags
from resilient.cache.decorator import engine_of
from resilient.config import Settings
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})


def raw_client(remote: Any) -> Any:
    """A redis-py client on the same data, for looking behind the cache's back."""
    if isinstance(remote, RedisBackend):
        return remote.client
    backend: Any = backend_from_url(remote, timeout=2.0, connect_timeout=2.0)
    return backend.client


def test_entries_live_in_redis_under_stable_keys(remote: Any, clock: FakeClock) -> None:
    """Values are stored under namespace:version:name:args, with ttl + stale as expiry."""
    calls: list[int] = []

    @cached(ttl=60, stale_if_error=30, backend=remote, namespace="shop", version="v1",
            name="users", clock=clock, settings=SETTINGS)  # fmt: skip
    def user(user_id: int) -> dict[str, Any]:
        calls.append(user_id)
        return {"id": user_id, "tags": ("a", "b")}

    assert user(7) == {"id": 7, "tags": ("a", "b")}
    assert user(7) == {"id": 7, "tags": ("a", "b")}
    assert calls == [7]
    client = raw_client(remote)
    assert client.exists("shop:v1:users:i7") == 1
    assert 89_000 < client.pttl("shop:v1:users:i7") <= 90_000
    stats = user.stats()
    assert (stats.hits, stats.remote_hits, stats.misses, stats.size) == (1, 1, 1, 0)
    clock.advance(61)  # stale by the entry's own clock: recomputed
    user(7)
    assert calls == [7, 7]


def test_invalidate_and_refresh_reach_redis(remote: Any) -> None:
    """invalidate deletes the Redis entry; refresh overwrites it."""
    versions: list[int] = []

    @cached(ttl=60, backend=remote, name="inv", settings=SETTINGS)
    def value(x: str) -> int:
        versions.append(1)
        return len(versions)

    assert value("a") == 1
    assert value.refresh("a") == 2
    assert value("a") == 2
    assert value.invalidate("a") is True
    assert raw_client(remote).exists("inv:s1:a") == 0
    assert value.invalidate("a") is False
    assert value("a") == 3
    value.close()  # closing is not the end: the next call builds what it needs again
    assert value("a") == 3
    assert value.stats().remote_hits == 2


async def test_async_functions_over_redis(aremote: Any) -> None:
    """The coroutine flavour stores and reads the same entries without blocking."""
    calls: list[int] = []

    @cached(ttl=60, backend=aremote, name="async-users", settings=SETTINGS)
    async def user(user_id: int) -> list[int]:
        calls.append(user_id)
        await asyncio.sleep(0)
        return [user_id]

    assert await user(1) == [1]
    assert await user(1) == [1]
    assert calls == [1]
    assert user.stats().remote_hits == 1
    assert await user.refresh(1) == [1]
    assert await user.ainvalidate(1) is True
    assert await user(1) == [1]
    assert calls == [1, 1, 1]
    await user.aclose()


def test_tags_invalidate_across_functions(remote: Any) -> None:
    """A tag set per tag in Redis: invalidating it removes entries of every function."""
    calls: list[str] = []
    run = uuid.uuid4().hex  # tags are process-wide: keep other tests' caches out of it

    @cached(ttl=60, backend=remote, name="profile", tags=[run + ":user:{uid}"],
            settings=SETTINGS)  # fmt: skip
    def profile(uid: int) -> str:
        calls.append(f"profile {uid}")
        return "p"

    @cached(ttl=60, backend=remote, name="orders", tags=[run + ":user:{uid}", run],
            settings=SETTINGS)  # fmt: skip
    def orders(uid: int, page: int) -> str:
        calls.append(f"orders {uid} {page}")
        return "o"

    for uid in (1, 2):
        profile(uid)
        orders(uid, 1)
        orders(uid, 2)
    assert invalidate_tags(run + ":user:1") == 3
    client = raw_client(remote)
    assert client.exists("profile:i1", "orders:i1,i1", "orders:i1,i2") == 0
    assert client.exists("profile:i2", "orders:i2,i1", "orders:i2,i2") == 3
    assert client.exists(f"resilient-tag:{run}:user:1") == 0
    # The set of `run` still lists the deleted user-1 entries: only live ones count.
    assert asyncio.run(ainvalidate_tags(run)) == 2
    calls.clear()
    profile(2)
    orders(2, 1)
    assert calls == ["orders 2 1"]


async def test_tags_from_coroutine_functions(aremote: Any) -> None:
    """ainvalidate_tags runs over the asyncio backend."""

    group = uuid.uuid4().hex

    @cached(ttl=60, backend=aremote, name="atag", tags=[group], settings=SETTINGS)
    async def item(x: int) -> int:
        return x

    await item(1)
    await item(2)
    assert await ainvalidate_tags(group) == 2
    assert await ainvalidate_tags(group) == 0
    await item.aclose()


def test_lease_in_one_process_is_taken_and_released(remote: Any) -> None:
    """With lock=True a miss holds a lease while computing and frees it afterwards."""
    client = raw_client(remote)
    seen: list[int] = []

    @cached(ttl=60, backend=remote, name="leased", lock=True, settings=SETTINGS)
    def value(x: int) -> int:
        seen.append(client.exists("leased:i1:lease"))
        return x

    assert value(1) == 1
    assert value(1) == 1
    assert seen == [1]
    assert client.exists("leased:i1:lease") == 0


def test_stale_while_revalidate_from_redis(remote: Any, clock: FakeClock) -> None:
    """A stale Redis entry is served while a background refresh replaces it."""
    versions: list[int] = []

    @cached(ttl=10, stale_while_revalidate=30, xfetch_beta=0, backend=remote, name="swr",
            clock=clock, settings=SETTINGS)  # fmt: skip
    def value(x: int) -> int:
        versions.append(x)
        return len(versions)

    assert value(1) == 1
    clock.advance(11)
    assert value(1) == 1
    assert value.drain(5)
    assert value(1) == 2
    assert value.stats().stale == 1


@pytest.mark.redis
def test_a_redis_hit_is_exactly_one_round_trip(redis_server: RedisServer) -> None:
    """The server sees a single GET for a hit, and nothing at all for an L1 hit."""

    @cached(ttl=60, backend=redis_server.url, name="rt", settings=SETTINGS)
    def plain(x: int) -> str:
        return "v" * 100

    @cached(ttl=60, backend=redis_server.url, name="rt2", two_tier=True, settings=SETTINGS)
    def layered(x: int) -> str:
        return "w" * 100

    plain(1)
    layered(1)
    with redis_server.client() as client:
        _wait_for_l1(layered)
        client.config_resetstat()
        plain(1)
        assert _commands(client) == {"get": 1}
        client.config_resetstat()
        layered(1)
        assert _commands(client) == {}
    plain.close()
    layered.close()


@pytest.mark.redis
async def test_an_async_redis_hit_is_exactly_one_round_trip(redis_server: RedisServer) -> None:
    """Same for the asyncio driver."""

    @cached(ttl=60, backend=redis_server.url, name="art", settings=SETTINGS)
    async def plain(x: int) -> str:
        return "v"

    await plain(1)
    with redis_server.client() as client:
        client.config_resetstat()
        await plain(1)
        assert _commands(client) == {"get": 1}
    await plain.aclose()


def _commands(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}
    return {name: calls for name, calls in counts.items() if not name.startswith("config")}


def _wait_for_l1(function: Any) -> None:
    """Call until the L1 holds the entry (its subscription must be up first)."""
    engine = engine_of(function)
    for _ in range(200):
        function(1)
        if engine.store.keys():
            return
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError("the L1 tier never filled")


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


@pytest.mark.redis
def test_a_forged_pickle_entry_in_redis_is_never_executed(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Entries written behind the cache's back are misses and counted errors, never run."""
    marker = tmp_path / "executed"
    calls: list[int] = []

    @cached(ttl=60, backend=redis_server.url, name="forge", serializer="pickle",
            hmac_key="s3cret", settings=SETTINGS)  # fmt: skip
    def value(x: int) -> str:
        calls.append(x)
        return "genuine"

    payload = pickle.dumps(_Marker(marker))
    with redis_server.client() as client:
        for forged in (payload, b"\x00" * 32 + payload, b"RC1" + payload):
            client.set("forge:i1", forged)
            assert value(1) == "genuine"
        assert calls == [1, 1, 1]
        assert value.stats().errors == 3
        assert value(1) == "genuine"  # the genuine entry written by the last miss is used
        assert calls == [1, 1, 1]
        client.set("forge:i2", client.get("forge:i1"))  # a signed entry under another key
        assert value(2) == "genuine"
        assert calls == [1, 1, 1, 2]
    assert not marker.exists()
    value.close()


def test_a_remote_hit_never_returns_what_redis_no_longer_holds(remote: Any) -> None:
    """Hits reuse the value decoded from identical bytes, and only identical bytes."""
    source = {"k": "v1"}
    name = f"decoded-{uuid.uuid4().hex}"

    def make() -> Any:
        @cached(ttl=60, backend=remote, name=name, settings=SETTINGS)
        def read(key: str) -> dict[str, str]:
            return {"value": source[key]}

        return read

    here, elsewhere = make(), make()
    first = here("k")
    assert here("k") is first  # same bytes in Redis: the decoded value is reused
    source["k"] = "v2"
    elsewhere.refresh("k")  # another writer replaces the entry
    assert here("k") == {"value": "v2"}
    raw_client(remote).delete(f"{name}:s1:k")
    source["k"] = "v3"
    assert here("k") == {"value": "v3"}  # gone from Redis: computed again
    assert here.stats().misses == 2
    here.clear()
    assert here("k") == {"value": "v3"}
    assert here.stats().remote_hits == 3


async def test_an_async_remote_hit_follows_redis_too(aremote: Any) -> None:
    """The same rule for coroutine functions."""
    source = {"k": "v1"}
    name = f"adecoded-{uuid.uuid4().hex}"

    def make() -> Any:
        @cached(ttl=60, backend=aremote, name=name, settings=SETTINGS)
        async def read(key: str) -> str:
            return source[key]

        return read

    here, elsewhere = make(), make()
    assert await here("k") == "v1"
    assert await here("k") == "v1"
    source["k"] = "v2"
    assert await elsewhere.refresh("k") == "v2"
    assert await here("k") == "v2"
    await here.aclose()
    await elsewhere.aclose()
