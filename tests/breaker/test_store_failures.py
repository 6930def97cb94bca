"""Every shared-state operation failing at the worst moment, deterministically.

A fakeredis backend that can be switched off makes each script run fail exactly where a
test wants it to: while a probe's lease is being taken, while a trip or a probe result
is reported, during a manual move. The breaker must carry each decision out locally.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import fakeredis
import pybreaker
import pytest

from resilient.backends.base import LuaScript
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from resilient.breaker.shared import SharedStore
from resilient.errors import BackendError, CircuitOpenError, ConfigurationError
from tests.breaker.conftest import eventually
from tests.support.clock import FakeClock


class Boom(Exception):
    """The dependency failed."""


class Switchable(RedisBackend):
    """fakeredis behind a switch: while ``down``, every script run fails."""

    down = False

    def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> object:
        if self.down:
            raise BackendError("switched off")
        return super().eval(script, keys, args)


class AsyncSwitchable(AsyncRedisBackend):
    """The asyncio twin, sharing the switch of a sync one."""

    def __init__(self, client: Any, twin: Switchable) -> None:
        super().__init__(client)
        self.twin = twin

    async def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> object:
        if self.twin.down:
            raise BackendError("switched off")
        return await super().eval(script, keys, args)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def built() -> Iterator[list[CircuitBreaker]]:
    breakers: list[CircuitBreaker] = []
    yield breakers
    for breaker in breakers:
        breaker.shutdown()


def _breaker(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock, **options: Any
) -> tuple[CircuitBreaker, Switchable]:
    backend = Switchable(fakeredis.FakeRedis(server=server))
    breaker = CircuitBreaker(
        "flaky", backend=backend, clock=clock, resync_interval=0,
        async_backend=AsyncSwitchable(fakeredis.FakeAsyncRedis(server=server), backend),
        **options,
    )  # fmt: skip
    built.append(breaker)
    return breaker, backend


def _tripped(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock, **options: Any
) -> tuple[CircuitBreaker, Switchable]:
    """A shared breaker opened through Redis whose open period has just ended."""
    breaker, backend = _breaker(built, server, clock, fail_max=1, reset_timeout=5, **options)
    breaker.record_failure(breaker.admit(), Boom())
    assert breaker.current_state == STATE_OPEN
    clock.advance(5)
    return breaker, backend


def test_lease_unavailable_probe_goes_ahead_locally(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """Redis fails as the probe asks for its lease: a local probe, and no other one."""
    breaker, backend = _tripped(built, server, clock)
    backend.down = True
    probe = breaker.admit()
    assert probe.lease
    assert breaker.current_state == STATE_HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    breaker.record_success(probe)
    assert breaker.current_state == STATE_CLOSED


async def test_lease_unavailable_async(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """The same through aadmit() and the async driver."""
    breaker, backend = _tripped(built, server, clock)
    backend.down = True
    probe = await breaker.aadmit()
    await breaker.arecord_failure(probe, Boom())
    assert breaker.current_state == STATE_OPEN


@pytest.mark.parametrize(("outcome", "state"), [("success", STATE_CLOSED), ("failure", STATE_OPEN)])
def test_probe_result_unreportable(
    built: list[CircuitBreaker],
    server: fakeredis.FakeServer,
    clock: FakeClock,
    outcome: str,
    state: str,
) -> None:
    """The probe ran under a Redis lease, then Redis failed: its result decides locally."""
    breaker, backend = _tripped(built, server, clock)
    probe = breaker.admit()
    backend.down = True
    if outcome == "success":
        breaker.record_success(probe)
    else:
        breaker.record_failure(probe, Boom())
    assert breaker.current_state == state


def test_rate_trip_unreportable(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """A rate breaker's window crosses the threshold while Redis is down: it opens locally."""
    breaker, backend = _breaker(
        built, server, clock, policy="rate", window_size=2, minimum_calls=2, failure_rate=50
    )
    breaker.record_success(breaker.admit())
    backend.down = True
    breaker.record_failure(breaker.admit(), Boom())
    assert breaker.current_state == STATE_OPEN


def test_ignored_probe_while_redis_is_down(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """Releasing a probe cannot reach Redis: the local slot is free all the same."""
    breaker, backend = _tripped(built, server, clock)
    probe = breaker.admit()
    backend.down = True
    breaker.release(probe)
    breaker.record_success(breaker.admit())
    assert breaker.current_state == STATE_CLOSED


def test_manual_moves_while_redis_is_down(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """open() and close() still move this breaker when Redis cannot be told."""
    breaker, backend = _breaker(built, server, clock)
    backend.down = True
    breaker.open()
    assert breaker.current_state == STATE_OPEN
    breaker.close()
    assert breaker.current_state == STATE_CLOSED


def test_resync_degrades_then_rejoins(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """A failed resync leaves the breaker deciding alone; a good one makes it follow again."""
    breaker, backend = _breaker(built, server, clock, fail_max=2)
    other, _ = _breaker(built, server, clock, fail_max=2)
    backend.down = True
    breaker.resync()
    assert breaker._machine.authoritative
    other.open()  # meanwhile, elsewhere
    backend.down = False
    breaker.resync()
    assert not breaker._machine.authoritative
    assert breaker.current_state == STATE_OPEN


def test_messages_wait_while_degraded(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """A degraded breaker ignores messages (the next resync reconciles)."""
    breaker, backend = _breaker(built, server, clock)
    backend.down = True
    breaker.resync()
    breaker._on_shared_message((1, 99, 10_000_000, 0, 0, 1_000_000))
    assert breaker.current_state == STATE_CLOSED


def test_a_message_before_any_reply_uses_its_own_times(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """Without a measured clock offset, a message's until and now give the time left."""
    breaker, _ = _breaker(built, server, clock)
    store = breaker._store
    assert isinstance(store, SharedStore)
    store.offset = None
    snapshot = store.snapshot_of((1, 7, 12_000, 0, 0, 10_000), clock())
    assert (snapshot.state, snapshot.generation) == (STATE_OPEN, 7)
    assert snapshot.deadline == clock() + 2.0


async def test_async_paths_need_an_async_backend(
    built: list[CircuitBreaker], server: fakeredis.FakeServer, clock: FakeClock
) -> None:
    """A shared breaker given only a sync backend refuses to block the loop with it."""
    breaker = CircuitBreaker(
        "sync-only", backend=RedisBackend(fakeredis.FakeRedis(server=server)), clock=clock,
        resync_interval=0, fail_max=1,
    )  # fmt: skip
    built.append(breaker)
    with pytest.raises(ConfigurationError, match="async_backend"):
        await breaker.arecord_failure(await breaker.aadmit(), Boom())


def test_a_listener_failing_in_the_background_is_logged(
    built: list[CircuitBreaker],
    server: fakeredis.FakeServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener raising on a pub/sub-driven change does not stop the subscription."""

    class Broken(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            raise RuntimeError("listener bug")

    source, _ = _breaker(built, server, clock, fail_max=1)
    watcher, _ = _breaker(built, server, clock, fail_max=1, listeners=[Broken()])
    with caplog.at_level(logging.ERROR, logger="resilient.breaker"):
        source.open()
        # Real time: pub/sub delivery runs on the subscription thread.
        assert eventually(lambda: watcher.current_state == STATE_OPEN)
        source.close()
        assert eventually(lambda: watcher.current_state == STATE_CLOSED)
        assert eventually(lambda: len(caplog.records) == 2)
    assert "a listener failed" in caplog.records[0].getMessage()


def test_a_resync_without_shared_state_does_nothing(clock: FakeClock) -> None:
    """resync() on a local breaker is a no-op, and breakers get a name if none is given."""
    breaker = CircuitBreaker(clock=clock)
    breaker.resync()
    assert breaker.name.startswith("breaker-")
    breaker.shutdown()
