"""Round trips, counted on the wire: one per decision with the header figures, none for a
client already over its limit (negative cache), and still exact for rejections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio.connection
import redis.connection

from resilient.backends import (
    AsyncBackend,
    SyncBackend,
    _lane,
    _lane_async,
    async_backend_from_url,
    backend_from_url,
)
from resilient.config import Settings
from resilient.ratelimit import RateLimiter
from tests.support.clock import FakeClock
from tests.support.redis_servers import remote_url

SETTINGS = Settings.from_env({})
STRATEGIES = ["sliding-window-counter", "fixed-window", "moving-window"]
KINDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.cluster),
]


# A new connection (Cluster: to another node) says hello once; that is no decision's cost.
_CONNECTION_SETUP = frozenset({"HELLO", "CLIENT", "AUTH", "SELECT", "READONLY"})


def _name(packed: Any) -> str:
    chunks = packed if isinstance(packed, list) else [packed]
    data = b"".join(bytes(chunk) for chunk in chunks)
    return data.split(b"\r\n")[2].decode().upper()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every command written, less setup: by a redis-py client (sync or
    asyncio) or by a backend's lane."""
    names: list[str] = []
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def record(self: Any, command: Any, check_health: bool = True) -> None:
        if _name(command) not in _CONNECTION_SETUP:
            names.append(_name(command))
        sync_send(self, command, check_health)  # type: ignore[no-untyped-call]

    async def arecord(self: Any, command: Any, check_health: bool = True) -> None:
        if _name(command) not in _CONNECTION_SETUP:
            names.append(_name(command))
        await async_send(self, command, check_health)

    def lane_recording(send: Any) -> Any:
        def recorded(self: Any, packed: bytes) -> Any:
            if _name(packed) not in _CONNECTION_SETUP:
                names.append(_name(packed))
            return send(self, packed)

        return recorded

    monkeypatch.setattr(_lane._Connection, "roundtrip", lane_recording(_lane._Connection.roundtrip))
    monkeypatch.setattr(_lane_async._Link, "request", lane_recording(_lane_async._Link.request))
    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", record)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", arecord)
    return names


@pytest.fixture(params=KINDS)
def remote(request: pytest.FixtureRequest) -> Iterator[SyncBackend]:
    backend = backend_from_url(remote_url(request, request.param), timeout=2.0, connect_timeout=2.0)
    yield backend
    backend.close()


@pytest.fixture(params=KINDS)
async def aremote(request: pytest.FixtureRequest) -> AsyncIterator[AsyncBackend]:
    backend = async_backend_from_url(remote_url(request, request.param), timeout=2.0)
    yield backend
    await backend.aclose()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_round_trip_per_decision_with_header_figures(
    remote: SyncBackend, sent: list[str], strategy: str
) -> None:
    """Three limits, headers' figures included: one EVALSHA, nothing else, per decision."""
    limiter = RateLimiter(
        "50/second;500/hour;900/day", backend=remote, strategy=strategy, settings=SETTINGS
    )
    limiter.hit("warm-up")  # loads the script once (NOSCRIPT, SCRIPT LOAD, EVALSHA)
    sent.clear()
    for number in range(20):
        decision = limiter.hit(f"client-{number % 4}")
        assert decision.allowed
        assert len(decision.states) == 3
        assert all(state.reset_after > 0 for state in decision.states)
        assert limiter.headers_for(decision)
    assert sent == ["EVALSHA"] * 20


async def test_one_round_trip_per_async_decision(aremote: AsyncBackend, sent: list[str]) -> None:
    """The asyncio path makes the same single call."""
    limiter = RateLimiter("5/second;50/hour", async_backend=aremote, settings=SETTINGS)
    await limiter.ahit("warm-up")
    sent.clear()
    for _ in range(5):
        assert (await limiter.ahit("a")).allowed
    assert sent == ["EVALSHA"] * 5


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_client_over_its_limit_costs_no_round_trip_until_its_reset(
    remote: SyncBackend, sent: list[str], strategy: str, clock: FakeClock
) -> None:
    """After one rejection, the same client is refused locally until retry_after."""
    limiter = RateLimiter(
        "3/hour", backend=remote, strategy=strategy, clock=clock, settings=SETTINGS
    )
    limiter.hit("warm-up")
    sent.clear()
    assert [limiter.hit("abuser").allowed for _ in range(4)] == [True, True, True, False]
    assert len(sent) == 4
    cached = [limiter.hit("abuser") for _ in range(100)]
    assert len(sent) == 4  # a hundred rejections, zero round trips
    assert all(not d.allowed and d.source == "cache" for d in cached)
    assert all(3590 < d.retry_after <= 3600.01 for d in cached)
    assert limiter.stats.cached_rejections == 100
    assert limiter.hit("someone-else").allowed  # others still go to Redis
    assert len(sent) == 5
    clock.advance(3600)  # our clock says the window is over: ask Redis again
    assert not limiter.hit("abuser").allowed  # (real time has not passed for Redis)
    assert len(sent) == 6


def test_the_negative_cache_is_exact_for_rejections(
    remote: SyncBackend, sent: list[str], clock: FakeClock
) -> None:
    """A smaller call that may still fit goes to Redis; reset() forgets the rejection."""
    limiter = RateLimiter("10/hour", backend=remote, clock=clock, settings=SETTINGS)
    assert limiter.hit("a", cost=8).allowed
    assert not limiter.hit("a", cost=3).allowed  # 2 left: rejected by Redis, remembered
    sent.clear()
    assert not limiter.hit("a", cost=5).allowed  # more than 3 cannot fit either: cached
    assert sent == []
    assert limiter.hit("a", cost=2).allowed  # fewer than 3 may fit: Redis says yes
    assert sent == ["EVALSHA"]
    limiter.reset("a")
    assert limiter.hit("a", cost=3).allowed


def test_without_the_negative_cache_every_decision_asks_redis(
    remote: SyncBackend, sent: list[str]
) -> None:
    """negative_cache=False: each rejection is one round trip."""
    limiter = RateLimiter("1/hour", backend=remote, negative_cache=False, settings=SETTINGS)
    limiter.hit("a")
    sent.clear()
    assert not any(limiter.hit("a").allowed for _ in range(5))
    assert sent == ["EVALSHA"] * 5


def test_shadow_mode_rejections_are_cached_too(remote: SyncBackend, sent: list[str]) -> None:
    """Shadow: would-be rejections are reported from the cache without round trips."""
    limiter = RateLimiter("1/hour", backend=remote, mode="shadow", settings=SETTINGS)
    limiter.hit("a")
    limiter.hit("a")
    sent.clear()
    decisions = [limiter.hit("a") for _ in range(3)]
    assert sent == []
    assert all(d.allowed and d.limited for d in decisions)
    assert limiter.stats.shadow_limited == 4
