"""Redis refused, killed, paused or hung: the breaker keeps deciding, fast, then resyncs.

Never pybreaker's "closed with a count of 0" while Redis is away (its #26 family): the
local state machine keeps counting, opens, rejects and probes on its own, and a circuit
it opened meanwhile is pushed to the others when Redis answers again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient.breaker import STATE_CLOSED, STATE_OPEN, CircuitBreaker
from resilient.config import Settings
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import eventually
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer
from tests.support.sockets import HungServer, refused_url

pytestmark = pytest.mark.usefixtures("paused_gc")

OP_TIMEOUT = 0.1
SLACK = 0.1  # a loaded two-core box
# Real timeouts (the subject here) and a short guard cooldown, so recovery is quick.
FAILING = Settings.from_env(
    {},
    overrides={"op_timeout": OP_TIMEOUT, "connect_timeout": OP_TIMEOUT, "guard_cooldown": 0.2},
)


class Boom(Exception):
    """The dependency failed."""


def _boom() -> None:
    raise Boom


@pytest.fixture
def built() -> Iterator[list[CircuitBreaker]]:
    breakers: list[CircuitBreaker] = []
    yield breakers
    for breaker in breakers:
        breaker.shutdown()


def _shared(built: list[CircuitBreaker], url: str, **options: Any) -> CircuitBreaker:
    options.setdefault("resync_interval", 0)
    breaker = CircuitBreaker("down", shared=True, url=url, settings=FAILING, **options)
    built.append(breaker)
    return breaker


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    with pytest.raises((Boom, CircuitOpenError)):
        call()
    return time.perf_counter() - started


def _fails_locally(breaker: CircuitBreaker, clock: FakeClock, fail_max: int) -> None:
    """The full local cycle: count, open, reject, probe after the timeout, close."""
    for index in range(fail_max):
        assert breaker.current_state == STATE_CLOSED
        assert breaker.fail_counter == index  # counting goes on: never "closed with 0"
        assert _timed(lambda: breaker.call(_boom)) < OP_TIMEOUT + SLACK
    assert breaker.current_state == STATE_OPEN
    assert _timed(lambda: breaker.call(lambda: None)) < SLACK
    clock.advance(breaker.reset_timeout)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.current_state == STATE_CLOSED


def test_refused_at_construction(built: list[CircuitBreaker], clock: FakeClock) -> None:
    """Nothing listens: the breaker is built within the timeouts and works on local state."""
    started = time.perf_counter()
    breaker = _shared(built, refused_url(), fail_max=3, reset_timeout=5, clock=clock)
    assert time.perf_counter() - started < 2 * OP_TIMEOUT + SLACK
    _fails_locally(breaker, clock, 3)


def test_hung_at_construction(
    built: list[CircuitBreaker], clock: FakeClock, hung_server: HungServer
) -> None:
    """A server that never answers costs the timeouts once, then nothing."""
    started = time.perf_counter()
    breaker = _shared(built, hung_server.url, fail_max=2, reset_timeout=5, clock=clock)
    assert time.perf_counter() - started < 2 * OP_TIMEOUT + SLACK
    _fails_locally(breaker, clock, 2)


def test_killed_then_restarted(
    built: list[CircuitBreaker],
    clock: FakeClock,
    redis_factory: Callable[[], RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis dies: one failure pays the timeout at most, the circuit opens locally, the
    others learn of it when Redis is back; one log line each way."""
    server = redis_factory()
    first = _shared(built, server.url, fail_max=3, reset_timeout=30, clock=clock)
    with pytest.raises(Boom):
        first.call(_boom)  # counted in Redis
    server.kill()
    with caplog.at_level(logging.WARNING, logger="resilient.breaker"):
        for _ in range(2):
            assert _timed(lambda: first.call(_boom)) < OP_TIMEOUT + SLACK
        assert first.current_state == STATE_OPEN  # 1 shared + 2 local failures
        for _ in range(50):
            with pytest.raises(CircuitOpenError):
                first.call(lambda: None)
        server.start()  # same port, empty: the shared state is gone
        # Real time: the guard skips the server for its cooldown (0.2 s) after failures.
        assert eventually(lambda: _resynced(first), within=0.8)
        logged = [record.getMessage() for record in caplog.records]
    newcomer = _shared(built, server.url, fail_max=3, reset_timeout=30, clock=clock)
    assert newcomer.current_state == STATE_OPEN  # the outage trip was pushed to Redis
    assert logged == [
        "breaker 'down': shared state unreachable; deciding on local state",
        "breaker 'down': closed -> open",
        "breaker 'down': shared state reachable again",
    ]


def _resynced(breaker: CircuitBreaker) -> bool:
    breaker.resync()
    return not breaker._machine.authoritative


def test_paused_server_costs_one_timeout(
    built: list[CircuitBreaker], clock: FakeClock, redis_factory: Callable[[], RedisServer]
) -> None:
    """SIGSTOP: the first failure waits out the op timeout, later ones do not wait at all."""
    server = redis_factory()
    breaker = _shared(built, server.url, fail_max=3, reset_timeout=30, clock=clock)
    server.pause()
    try:
        durations = [_timed(lambda: breaker.call(_boom)) for _ in range(3)]
        assert durations[0] < OP_TIMEOUT + SLACK
        assert max(durations[1:]) < SLACK / 2
        assert breaker.current_state == STATE_OPEN
    finally:
        server.resume()
    assert eventually(lambda: _resynced(breaker), within=0.8)
    other = _shared(built, server.url, fail_max=3, reset_timeout=30, clock=clock)
    assert other.current_state == STATE_OPEN


async def test_async_calls_while_redis_is_down(
    built: list[CircuitBreaker], clock: FakeClock, redis_factory: Callable[[], RedisServer]
) -> None:
    """The asyncio path degrades the same way, without blocking the loop for long."""
    server = redis_factory()
    breaker = _shared(built, server.url, fail_max=2, reset_timeout=5, clock=clock)

    @breaker
    async def call() -> None:
        raise Boom

    server.kill()
    for _ in range(2):
        started = time.perf_counter()
        with pytest.raises(Boom):
            await call()
        assert time.perf_counter() - started < OP_TIMEOUT + SLACK
    assert breaker.current_state == STATE_OPEN
    clock.advance(5)
    permit = await breaker.aadmit()  # a local probe
    assert permit.lease
    await breaker.arecord_success(permit)
    assert breaker.current_state == STATE_CLOSED
    await breaker.ashutdown()


def test_probe_lease_lost_to_an_outage(
    built: list[CircuitBreaker], clock: FakeClock, redis_factory: Callable[[], RedisServer]
) -> None:
    """Redis dies while a probe's lease is being taken: the probe goes ahead locally."""
    server = redis_factory()
    breaker = _shared(built, server.url, fail_max=1, reset_timeout=5, clock=clock)
    with pytest.raises(Boom):
        breaker.call(_boom)
    server.kill()
    clock.advance(5)
    assert _timed(lambda: breaker.call(_boom)) < OP_TIMEOUT + SLACK  # a local probe, failing
    assert breaker.current_state == STATE_OPEN
