"""Fail modes against real failing servers: open, closed, local; a dead Redis costs no
timeout per call once the backend's guard is open; recovery goes back to Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from resilient.config import Settings
from resilient.errors import BackendError, RateLimitExceeded
from resilient.ratelimit import RateLimiter, rate_limited
from tests.support.clock import FakeClock
from tests.support.probes import wait_for_probes
from tests.support.redis_servers import RedisServer
from tests.support.sockets import HungServer, refused_url

SETTINGS = Settings.from_env({})


def test_fail_open_admits_uncounted() -> None:
    """open: the call goes ahead, with no figures to report."""
    limiter = RateLimiter("1/hour", url=refused_url(), fail_mode="open", settings=SETTINGS)
    decisions = [limiter.hit("a") for _ in range(5)]
    assert all(d.allowed and not d.limited and d.source == "open" for d in decisions)
    assert all(d.states == () for d in decisions)
    assert limiter.stats.backend_errors == 5
    assert limiter.headers_for(decisions[0]) == []
    limiter.close()


def test_fail_closed_rejects_with_the_guard_cooldown_as_retry_after() -> None:
    """closed: rejected, naming the limit; the middleware answers 503 + Retry-After."""
    settings = Settings.from_env({"RESILIENT_GUARD_COOLDOWN": "2s"})
    limiter = RateLimiter("5/minute", url=refused_url(), fail_mode="closed", settings=settings)
    decision = limiter.hit("a")
    assert not decision.allowed
    assert decision.source == "closed"
    assert decision.retry_after == 2.0
    assert decision.limit == "5/minute"
    assert limiter.headers_for(decision, status=503) == [("Retry-After", "2")]
    with pytest.raises(RateLimitExceeded):
        decision.raise_for_limit()
    shadow = RateLimiter(
        "5/minute", url=refused_url(), fail_mode="closed", mode="shadow", settings=settings
    )
    assert shadow.hit("a").allowed
    assert shadow.hit("a").limited
    limiter.close()
    shadow.close()


def test_fail_local_counts_exactly_in_memory(clock: FakeClock) -> None:
    """local: while Redis is down, the limits hold in this process's memory."""
    limiter = RateLimiter(
        "3/hour;10/day", url=refused_url(), fail_mode="local", clock=clock, settings=SETTINGS
    )
    decisions = [limiter.hit("a") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert {d.source for d in decisions} == {"local"}
    assert decisions[-1].states[1].remaining == 7
    assert limiter.window("a")[0].remaining == 0
    with pytest.raises(BackendError):  # the shared counts could not be reset...
        limiter.reset("a")
    assert limiter.hit("a").allowed  # ...but this process's fallback counts were
    limiter.close()


async def test_fail_local_on_the_async_path(clock: FakeClock) -> None:
    """The asyncio twins fall back the same way."""
    limiter = RateLimiter(
        "2/hour", url=refused_url(), fail_mode="local", clock=clock, settings=SETTINGS
    )
    assert [(await limiter.ahit("a")).allowed for _ in range(3)] == [True, True, False]
    await limiter.aclose()


def test_a_hung_redis_costs_one_timeout_per_guard_probe_not_per_call(
    hung_server: HungServer,
) -> None:
    """After the guard opens (3 timeouts), calls skip Redis at once."""
    limiter = RateLimiter("100/hour", url=hung_server.url, fail_mode="local", settings=SETTINGS)
    started = time.perf_counter()
    for _ in range(3):  # each waits for the 100 ms operation timeout
        assert limiter.hit("a").source == "local"
    opening = time.perf_counter() - started
    started = time.perf_counter()
    decisions = [limiter.hit("a") for _ in range(50)]
    skipping = time.perf_counter() - started
    assert all(d.source == "local" for d in decisions)
    assert opening >= 0.25  # three real timeouts
    assert skipping < 0.5  # fifty calls: no timeout among them (each would cost 100 ms)
    assert sum(d.allowed for d in decisions) == 50
    limiter.close()


def test_backend_failures_log_once_per_state_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing backend is one warning, not one per call."""
    limiter = RateLimiter("1/hour", url=refused_url(), settings=SETTINGS)
    with caplog.at_level(logging.WARNING, logger="resilient.ratelimit"):
        for _ in range(20):
            limiter.hit("a")
    records = [r for r in caplog.records if r.name == "resilient.ratelimit"]
    assert len(records) == 1
    assert "fail mode open" in records[0].getMessage()
    limiter.close()


@pytest.mark.redis
def test_local_fallback_while_redis_is_killed_then_back_to_redis(
    redis_factory: Callable[[], RedisServer], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Kill Redis: counting moves to memory; restart it: decisions come from Redis again."""
    server = redis_factory()
    limiter = RateLimiter(
        "2/hour", url=server.url, fail_mode="local", clock=clock, settings=SETTINGS
    )
    assert limiter.hit("a").source == "redis"
    server.kill()
    during = [limiter.hit("a") for _ in range(4)]
    assert {d.source for d in during} == {"local"}
    assert [d.allowed for d in during] == [True, True, False, False]
    server.start()
    clock.advance(1.0)  # the guard's cooldown: a probe checks Redis beside the callers
    with caplog.at_level(logging.INFO, logger="resilient.ratelimit"):
        assert limiter.hit("a").source == "local"  # starts the probe, never waits for it
        wait_for_probes()
        after = limiter.hit("a")
    assert after.source == "redis"
    assert after.allowed  # the restarted server starts empty
    assert any("answering again" in r.getMessage() for r in caplog.records)
    limiter.close()


def test_decorator_fail_modes(clock: FakeClock) -> None:
    """Through @rate_limited: open calls through, closed raises, local counts."""
    calls: list[str] = []

    @rate_limited("1/hour", url=refused_url(), fail_mode="open", settings=SETTINGS)
    def opened() -> None:
        calls.append("open")

    @rate_limited("1/hour", url=refused_url(), fail_mode="closed", settings=SETTINGS)
    def closed() -> None:
        calls.append("closed")

    opened()
    opened()
    with pytest.raises(RateLimitExceeded):
        closed()
    assert calls == ["open", "open"]
