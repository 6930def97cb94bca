"""Small parts: limits' texts, decisions' accessors, the negative cache's bound, replies,
and where a limiter's backends come from."""

from __future__ import annotations

import fakeredis
import pytest
from limits import RateLimitItemPerMinute, RateLimitItemPerSecond, parse

from resilient.backends import AsyncMemoryBackend, MemoryBackend
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit import Decision, LimitState, RateLimiter, parse_limits
from resilient.ratelimit.keys import parse_networks
from resilient.ratelimit.negative import NegativeCache
from resilient.ratelimit.redis import parse_reply
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})


def test_limit_texts_round_trip_through_limits() -> None:
    """Each limit's text parses back to the same limits item; items are accepted as is."""
    parsed = parse_limits(["5/2 minutes", RateLimitItemPerSecond(3), "1 per day"])
    assert [limit.text for limit in parsed] == ["5/2 minutes", "3/second", "1/day"]
    assert [str(limit) for limit in parsed] == ["5/2 minutes", "3/second", "1/day"]
    assert all(parse(limit.text) == limit.item for limit in parsed)
    assert [limit.window for limit in parsed] == [120, 1, 86400]
    assert [limit.name for limit in parsed] == ["5-in-120s", "3-in-1s", "1-in-86400s"]


def test_limits_of_zero_are_refused() -> None:
    """An amount of 0 would reject everything: a configuration error."""
    with pytest.raises(ConfigurationError, match="at least 1"):
        parse_limits([RateLimitItemPerMinute(0)])
    with pytest.raises(ConfigurationError, match="at least one"):
        parse_limits([" ", ""])


def test_decision_accessors() -> None:
    """breached, tightest and limit pick the right state; bool and repr are helpful."""
    minute, hour = parse_limits("5/minute;100/hour")
    states = (LimitState(minute, 4, 30.0, 0.0), LimitState(hour, 2, 900.0, 0.0))
    allowed = Decision(True, False, "a", states, "memory")
    assert allowed
    assert allowed.breached is None
    assert allowed.tightest is states[1]  # fewest units left
    assert allowed.limit == "100/hour"
    assert not states[0].breached
    rejected = Decision(False, True, "a", (LimitState(minute, 0, 30.0, 30.0),), "memory", 30.0)
    assert not rejected
    assert rejected.tightest is rejected.states[0]
    assert "allowed=False" in repr(rejected)
    assert "key='a'" in repr(rejected)
    empty = Decision(True, False, "a", (), "off")
    assert empty.tightest is None
    assert empty.limit == ""


def test_negative_cache_is_bounded_oldest_first() -> None:
    """At most max_keys remembered rejections; the oldest is dropped first."""
    cache = NegativeCache(max_keys=2)
    rejected = Decision(False, True, "x", (), "redis", 10.0)
    for identity in ("a", "b", "c"):
        cache.remember(identity, 1, 0.0, rejected)
    assert len(cache) == 2
    assert cache.recall("a", 1, 1.0) is None
    recalled = cache.recall("c", 1, 4.0)
    assert recalled is not None
    assert recalled.retry_after == 6.0
    assert recalled.source == "cache"
    cache.forget("c")
    assert cache.recall("c", 1, 4.0) is None


def test_an_unexpected_script_reply_is_an_error() -> None:
    """A reply of the wrong shape is a bug, not a decision."""
    with pytest.raises(ValueError, match="unexpected"):
        parse_reply([1, 2], 1)
    assert parse_reply([0, 3, 1500, 2000], 1) == (False, [(3, 1.5, 2.0)])


def test_networks_may_be_given_as_objects() -> None:
    """parse_networks accepts strings and network objects alike."""
    (network,) = parse_networks(["10.0.0.0/8"])
    assert parse_networks([network, "::1"])[0] is network


async def test_backend_sources_must_match_the_methods_used() -> None:
    """A limiter given only a sync Redis backend cannot serve the asyncio methods."""
    sync_only = RateLimiter(
        "1/hour", backend=RedisBackend(fakeredis.FakeRedis()), settings=SETTINGS
    )
    with pytest.raises(ConfigurationError, match="async_backend"):
        await sync_only.ahit("a")
    async_only = RateLimiter(
        "1/hour", async_backend=AsyncRedisBackend(fakeredis.FakeAsyncRedis()), settings=SETTINGS
    )
    with pytest.raises(ConfigurationError, match="backend"):
        async_only.hit("a")
    assert (await async_only.ahit("a")).allowed


async def test_memory_backends_count_in_one_store_for_both_flavours(clock: FakeClock) -> None:
    """An AsyncMemoryBackend shares the store of the MemoryBackend it wraps."""
    sync = MemoryBackend(clock=clock)
    first = RateLimiter("2/hour", backend=sync, settings=SETTINGS)
    second = RateLimiter("2/hour", async_backend=AsyncMemoryBackend(sync=sync), settings=SETTINGS)
    assert first.hit("a").allowed
    assert (await second.ahit("a")).allowed
    assert not first.hit("a").allowed


async def test_mode_off_on_the_async_path() -> None:
    """off answers at once on both paths."""
    limiter = RateLimiter("1/hour", mode="off", backend=MemoryBackend(), settings=SETTINGS)
    assert [(await limiter.ahit("a")).source for _ in range(2)] == ["off", "off"]


@pytest.mark.redis
async def test_backends_built_from_a_url_are_closed_by_the_limiter(
    redis_server: RedisServer,
) -> None:
    """A limiter owns the clients it builds from its URL, and closes them."""
    limiter = RateLimiter("2/hour", url=redis_server.url, settings=SETTINGS)
    assert limiter.hit("a").source == "redis"
    assert (await limiter.ahit("a")).source == "redis"
    assert not limiter.hit("a").allowed
    limiter.close()
    await limiter.aclose()
    limiter.close()  # closing twice is harmless
    await limiter.aclose()
