"""Logs: state changes only, and a recovery at the level of the failure it ends."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from resilient.config import Settings
from resilient.instrumentation import Event, add_listener, remove_listener
from resilient.ratelimit import RateLimiter
from tests.support.clock import FakeClock
from tests.support.probes import wait_for_probes
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})


@pytest.mark.redis
def test_limiter_backend_recovery_is_logged_at_the_failures_level(
    redis_factory: Callable[[], RedisServer], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_factory()
    seen: list[Event] = []
    add_listener(seen.append)
    limiter = RateLimiter("2/hour", name="partner", url=server.url, fail_mode="local",
                          clock=clock, settings=SETTINGS)  # fmt: skip
    try:
        with caplog.at_level(logging.INFO, logger="resilient"):
            assert limiter.hit("a").source == "redis"
            server.kill()
            for _ in range(6):  # one failure line, however many calls
                limiter.hit("a")
            server.start()
            clock.advance(1.0)  # the guard's cooldown: a probe checks Redis beside callers
            limiter.hit("a")
            wait_for_probes()
            assert limiter.hit("a").source == "redis"
    finally:
        remove_listener(seen.append)
        limiter.close()
    mine = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "resilient.ratelimit"]
    assert [level for level, _ in mine] == [logging.WARNING, logging.WARNING]
    assert "backend failing" in mine[0][1]
    assert "answering again" in mine[1][1]
    guard = [r.levelno for r in caplog.records if r.name == "resilient.backends"]
    assert guard == [logging.WARNING, logging.WARNING]  # skipped, then answering again
    kinds = [e.kind for e in seen if e.feature == "ratelimiter" and e.name == "partner"]
    assert kinds == ["backend_failing", "backend_answering"]
    assert [e.kind for e in seen if e.feature == "backend"] == ["guard_open", "guard_closed"]
