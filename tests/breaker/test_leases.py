"""Probe leases in shared state: one id per acquisition, and none left behind by a
caller cancelled while taking one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from resilient.breaker import STATE_CLOSED, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import PATIENT, Maker
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer, faulted


class Boom(Exception):
    """The dependency failed."""


def _probes(breaker: CircuitBreaker, attempts: int) -> int:
    """Admissions of ``attempts`` tried that got a probe lease (held, never reported)."""
    admitted = 0
    for _ in range(attempts):
        with contextlib.suppress(CircuitOpenError):
            admitted += 1 if breaker.admit().lease else 0
    return admitted


def test_two_breakers_of_one_name_in_one_process_never_share_a_lease(
    make_shared: Maker, clock: FakeClock
) -> None:
    """Two apps of one process build the breaker "payments" each; permitted_calls=2 admits
    2 probes between them, not one per breaker whose lease numbers coincide."""
    first = make_shared("payments", fail_max=1, reset_timeout=10, permitted_calls=2)
    second = make_shared("payments", fail_max=1, reset_timeout=10, permitted_calls=2)
    first.record_failure(first.admit(), Boom())
    second.resync()
    clock.advance(10)
    assert _probes(first, 1) == 1
    assert _probes(second, 2) == 1
    assert _probes(first, 1) == 0


@pytest.mark.parametrize("permitted", [1, 3])
def test_leases_taken_one_at_a_time_by_rebuilt_breakers_stop_at_permitted(
    make_shared: Maker, clock: FakeClock, permitted: int
) -> None:
    """Five breakers of one name, each built after the previous took its probe: exactly
    ``permitted`` probes in all."""
    opener = make_shared("search", fail_max=1, reset_timeout=10, permitted_calls=permitted)
    opener.record_failure(opener.admit(), Boom())
    clock.advance(10)
    admitted = 0
    for _ in range(5):
        breaker = make_shared("search", fail_max=1, reset_timeout=10, permitted_calls=permitted)
        admitted += _probes(breaker, 1)
    assert admitted == permitted


@pytest.fixture
async def on_redis() -> AsyncIterator[list[CircuitBreaker]]:
    """Breakers built by a test over the real server, shut down afterwards."""
    built: list[CircuitBreaker] = []
    yield built
    for breaker in built:
        await breaker.ashutdown()


def _redis_breaker(
    built: list[CircuitBreaker], server: RedisServer, clock: FakeClock, **options: Any
) -> CircuitBreaker:
    breaker = CircuitBreaker("cancelled", shared=True, url=server.url, settings=PATIENT,
                             clock=clock, resync_interval=0, **options)  # fmt: skip
    built.append(breaker)
    return breaker


async def _half_open(
    built: list[CircuitBreaker], server: RedisServer, clock: FakeClock
) -> CircuitBreaker:
    """A shared breaker (fail_max=1, reset_timeout=10 s, probe_timeout=30 s) tripped
    through its async client, then moved to the end of its open period."""
    breaker = _redis_breaker(built, server, clock, fail_max=1, reset_timeout=10,
                             probe_timeout=30)  # fmt: skip
    await breaker.arecord_failure(await breaker.aadmit(), Boom())
    clock.advance(10)
    return breaker


def _leases_held(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.zcard("{resilient:breaker:cancelled}:probes"))


async def _leases_left(server: RedisServer) -> int:
    """The leases still held after up to 2 s of real time (a release is a round trip)."""
    for _ in range(200):
        if not _leases_held(server):
            break
        await asyncio.sleep(0.01)
    return _leases_held(server)


@pytest.mark.redis
async def test_a_caller_cancelled_while_taking_its_lease_leaves_no_lease_behind(
    redis_server: RedisServer, clock: FakeClock, on_redis: list[CircuitBreaker]
) -> None:
    """The caller is cancelled while its lease request waits on Redis (paused): the lease
    Redis grants afterwards is handed back, and the next caller probes at once instead
    of being rejected for probe_timeout (30 s) with a retry_after of 10 s."""
    breaker = await _half_open(on_redis, redis_server, clock)
    with faulted(redis_server, "pause"):
        caller = asyncio.create_task(breaker.aadmit())
        await asyncio.sleep(0.05)  # real time: the request is written and waits
        assert not caller.done()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
    # Redis runs the request now, then the release sent once its reply came.
    assert await _leases_left(redis_server) == 0
    probe = await breaker.aadmit()
    assert probe.lease
    await breaker.arecord_success(probe)
    assert breaker.current_state == STATE_CLOSED


@pytest.mark.redis
async def test_a_caller_cancelled_before_its_request_left_holds_no_local_slot(
    redis_server: RedisServer, clock: FakeClock, on_redis: list[CircuitBreaker]
) -> None:
    """Cancelled at its first await: nothing reached Redis, and this process's own slot
    is free again, so the next caller is not rejected locally."""
    breaker = await _half_open(on_redis, redis_server, clock)
    caller = asyncio.create_task(breaker.aadmit())
    caller.cancel()  # before it ran at all: admission never started
    with pytest.raises(asyncio.CancelledError):
        await caller
    caller = asyncio.create_task(breaker.aadmit())
    await asyncio.sleep(0)  # it took its local slot and awaits the lease
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await _leases_left(redis_server) == 0
    probe = await breaker.aadmit()
    assert probe.lease
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.aadmit()  # the one slot is taken: by the probe, for 30 s at most
    assert caught.value.retry_after == pytest.approx(10)
