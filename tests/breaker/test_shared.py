"""Shared state against real redis-server processes: round trips, pub/sub, resync, generations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from resilient.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker, _hub
from resilient.breaker.policies import ConsecutiveFailures
from resilient.breaker.shared import CHANNEL, SharedStore
from resilient.breaker.state import Snapshot, StateMachine
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import PATIENT, Maker, eventually
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisCluster, RedisServer
from tests.support.sockets import HungServer


class Boom(Exception):
    """The dependency failed."""


def _boom() -> None:
    raise Boom


class Sent:
    """Counts the commands a sync breaker's Redis backend sends: through its redis-py
    client, or its lane (pub/sub has its own connection)."""

    def __init__(self, breaker: CircuitBreaker, monkeypatch: pytest.MonkeyPatch) -> None:
        store = breaker._store
        assert isinstance(store, SharedStore)
        client = store.backend.client  # type: ignore[attr-defined]
        self.commands: list[str] = []
        original = client.execute_command

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.commands.append(str(args[0]))
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", counting)
        lane = getattr(store.backend, "_lane", None)  # evals of a URL-built sync backend
        if lane is not None:
            lane_call = lane.call

            def lane_counting(packed: bytes) -> Any:
                self.commands.append(packed.split(b"\r\n")[2].decode())
                return lane_call(packed)

            monkeypatch.setattr(lane, "call", lane_counting)


class ServerStats:
    """Commands the servers ran since :meth:`reset`, read over connections opened before it
    (so the reading itself, INFO, is the only thing left out)."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.admins = [node.client() for node in nodes]
        for admin in self.admins:
            admin.ping()

    def reset(self) -> None:
        for admin in self.admins:
            admin.config_resetstat()

    def calls(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for admin in self.admins:
            for name, stats in admin.info("commandstats").items():
                if name not in ("cmdstat_info", "cmdstat_config|resetstat"):
                    totals[name] = totals.get(name, 0) + int(stats["calls"])
        return totals

    def close(self) -> None:
        for admin in self.admins:
            admin.close()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.cluster),
    ]
)
def servers(request: pytest.FixtureRequest) -> tuple[str, list[RedisServer]]:
    """A real server (or cluster): its URL and its nodes."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url, [server]
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return cluster.url, cluster.nodes


@pytest.fixture
def stats(servers: tuple[str, list[RedisServer]]) -> Iterator[ServerStats]:
    """Command statistics of the servers under test."""
    reader = ServerStats(servers[1])
    yield reader
    reader.close()


@pytest.fixture
def built() -> Iterator[list[CircuitBreaker]]:
    """Breakers a test builds, shut down after it."""
    breakers: list[CircuitBreaker] = []
    yield breakers
    for breaker in breakers:
        breaker.shutdown()


def _shared(built: list[CircuitBreaker], url: str, **options: Any) -> CircuitBreaker:
    options.setdefault("resync_interval", 0)
    breaker = CircuitBreaker("shared", shared=True, url=url, settings=PATIENT, **options)
    built.append(breaker)
    return breaker


def test_closed_successes_cost_zero_round_trips(
    servers: tuple[str, list[RedisServer]],
    stats: ServerStats,
    built: list[CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10,000 successful calls in the closed state send no command at all."""
    breaker = _shared(built, servers[0], fail_max=3)
    guarded = breaker(lambda: "ok")
    sent = Sent(breaker, monkeypatch)
    stats.reset()
    for _ in range(10_000):
        assert guarded() == "ok"
    assert sent.commands == []
    assert stats.calls() == {}


async def test_closed_successes_cost_zero_round_trips_async(
    servers: tuple[str, list[RedisServer]], stats: ServerStats
) -> None:
    """The async path too: 10,000 awaited successes, nothing sent."""
    # Built off the loop, so that it is subscribed and synced before the count starts.
    breaker = await asyncio.to_thread(
        CircuitBreaker, "shared", shared=True, url=servers[0], settings=PATIENT, resync_interval=0
    )

    @breaker
    async def fetch() -> str:
        return "ok"

    stats.reset()
    for _ in range(10_000):
        assert await fetch() == "ok"
    assert stats.calls() == {}
    await breaker.ashutdown()


def test_each_event_costs_one_round_trip(
    servers: tuple[str, list[RedisServer]],
    stats: ServerStats,
    built: list[CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure, a trip, a probe lease, a probe result: one EVALSHA each; rejections: none."""
    breaker = _shared(built, servers[0], fail_max=2, reset_timeout=0.05)
    sent = Sent(breaker, monkeypatch)
    stats.reset()
    for expected in (["EVALSHA"], ["EVALSHA"] * 2):  # a failure, then the one that trips
        with pytest.raises(Boom):
            breaker.call(_boom)
        assert sent.commands == expected
    assert stats.calls()["cmdstat_evalsha"] == 2
    for _ in range(100):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    assert len(sent.commands) == 2  # rejections are decided locally
    # Real time: the server's clock (TIME) decides when the open period ends.
    assert eventually(lambda: breaker.retry_after == 0)
    breaker.call(lambda: None)  # the probe: take the lease, then report success
    assert sent.commands == ["EVALSHA"] * 4
    assert breaker.current_state == STATE_CLOSED


def test_a_success_after_failures_clears_the_count_once(
    servers: tuple[str, list[RedisServer]],
    built: list[CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the first success after a failure writes (to reset the shared count)."""
    url, _ = servers
    breaker = _shared(built, url, fail_max=5)
    sent = Sent(breaker, monkeypatch)
    with pytest.raises(Boom):
        breaker.call(_boom)
    for _ in range(100):
        breaker.call(lambda: None)
    assert sent.commands == ["EVALSHA", "EVALSHA"]


def test_a_trip_reaches_other_processes_within_100_ms(
    servers: tuple[str, list[RedisServer]], built: list[CircuitBreaker]
) -> None:
    """Pub/sub carries the trip: another breaker on another connection sees it fast."""
    url, _ = servers
    first = _shared(built, url, fail_max=1, reset_timeout=30)
    second = _shared(built, url, fail_max=1, reset_timeout=30)
    with pytest.raises(Boom):
        first.call(_boom)
    tripped = time.perf_counter()
    assert eventually(lambda: second.current_state == STATE_OPEN, within=1.0)
    assert time.perf_counter() - tripped < 0.1
    with pytest.raises(CircuitOpenError) as caught:
        second.call(lambda: None)
    assert 29 < caught.value.retry_after <= 30
    first.close()
    assert eventually(lambda: second.current_state == STATE_CLOSED, within=1.0)


def test_a_lost_message_is_made_up_for_by_resync(
    redis_server: RedisServer, built: list[CircuitBreaker]
) -> None:
    """A breaker that missed the message still opens within its resync interval."""
    first = _shared(built, redis_server.url, fail_max=1, reset_timeout=30)
    second = _shared(built, redis_server.url, fail_max=1, reset_timeout=30, resync_interval=0.2)
    store = second._store
    assert store is not None
    _hub.unsubscribe(store.backend, second.name, second)  # its messages are lost
    with pytest.raises(Boom):
        first.call(_boom)
    tripped = time.perf_counter()
    # Real time: the resync thread runs on the wall clock (0.2 s here, well under 1 s).
    assert eventually(lambda: second.current_state == STATE_OPEN, within=0.6)
    assert time.perf_counter() - tripped < 0.2 + 0.15


def test_new_breakers_do_not_reset_shared_counts(
    servers: tuple[str, list[RedisServer]], built: list[CircuitBreaker]
) -> None:
    """Building another instance keeps the failures counted so far (pybreaker #26)."""
    url, _ = servers
    first = _shared(built, url, fail_max=3)
    for _ in range(2):
        with pytest.raises(Boom):
            first.call(_boom)
    late = _shared(built, url, fail_max=3)
    assert late.fail_counter == 2  # it read the count; it did not reset it
    with pytest.raises(Boom):
        late.call(_boom)
    assert late.current_state == STATE_OPEN


def test_a_new_breaker_joins_an_open_period_without_restarting_it(
    make_shared: Maker, clock: FakeClock
) -> None:
    """An instance built while the shared circuit is open (a process starting up) takes
    the remaining open time from Redis; it neither closes the circuit nor restarts it."""
    first = make_shared(fail_max=1, reset_timeout=10)
    with pytest.raises(Boom):
        first.call(_boom)
    clock.advance(6)
    late = make_shared(fail_max=1, reset_timeout=10)
    assert late.current_state == STATE_OPEN
    with pytest.raises(CircuitOpenError) as caught:
        late.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(4, abs=0.01)
    first.resync()
    assert first.retry_after == pytest.approx(4, abs=0.01)  # the period was not rewritten
    clock.advance(4)
    assert late.call(lambda: "probe") == "probe"
    first.resync()
    assert first.current_state == STATE_CLOSED


def test_stale_writers_cannot_reset_counts(
    servers: tuple[str, list[RedisServer]], built: list[CircuitBreaker]
) -> None:
    """A success reported under an old generation does not clear the current count."""
    url, _ = servers
    first = _shared(built, url, fail_max=3)
    stale = _shared(built, url, fail_max=3)
    store = stale._store
    assert store is not None
    _hub.unsubscribe(store.backend, stale.name, stale)  # it will miss what follows
    with pytest.raises(Boom):
        stale.call(_boom)  # its mirror now holds a count to clear on its next success
    first.resync()
    first.open()
    first.close()  # two generations later
    for _ in range(2):
        with pytest.raises(Boom):
            first.call(_boom)
    stale.call(lambda: None)  # sends its reset with the old generation: refused
    assert stale.current_state == STATE_CLOSED
    with pytest.raises(Boom):
        first.call(_boom)
    assert first.current_state == STATE_OPEN


async def test_async_probe_leases_are_exact_across_connections(
    make_shared: Maker, clock: FakeClock
) -> None:
    """Two breakers, async probes: one lease at a time in Redis, freed by the report."""
    first = make_shared(fail_max=1, reset_timeout=10)
    second = make_shared(fail_max=1, reset_timeout=10)
    await first.arecord_failure(await first.aadmit(), Boom())
    second.resync()
    clock.advance(10)
    probe = await first.aadmit()
    assert probe.lease
    with pytest.raises(CircuitOpenError) as caught:
        await second.aadmit()  # the lease is taken in Redis
    assert caught.value.retry_after > 0
    assert second.current_state == STATE_HALF_OPEN
    await first.arecord_success(probe)
    assert first.current_state == STATE_CLOSED
    second.resync()
    assert second.current_state == STATE_CLOSED


def test_manual_changes_are_shared(make_shared: Maker) -> None:
    """open(), half_open() and close() on one breaker move the others."""
    first = make_shared()
    second = make_shared()
    for move, state in (
        (first.open, STATE_OPEN),
        (first.half_open, STATE_HALF_OPEN),
        (first.close, STATE_CLOSED),
    ):
        move()
        second.resync()
        assert second.current_state == state


def test_a_foreign_message_on_the_channel_is_ignored(
    redis_server: RedisServer, built: list[CircuitBreaker]
) -> None:
    """Garbage published on the breakers' channel changes nothing and breaks nothing."""
    breaker = _shared(built, redis_server.url, fail_max=1)
    with redis_server.client() as client:
        for junk in (b"nonsense", b"shared\nnot numbers", b"shared\n9 1 2 3 4 5"):
            client.publish(CHANNEL, junk)
        other = _shared(built, redis_server.url, fail_max=1)
        with pytest.raises(Boom):
            other.call(_boom)
    assert eventually(lambda: breaker.current_state == STATE_OPEN)


def test_keys_share_one_cluster_slot_and_expire(
    redis_server: RedisServer, built: list[CircuitBreaker]
) -> None:
    """State and leases sit under one hash tag, with a TTL so abandoned breakers go away."""
    breaker = _shared(built, redis_server.url, fail_max=1, reset_timeout=5)
    with pytest.raises(Boom):
        breaker.call(_boom)
    with redis_server.client() as client:
        keys = sorted(key.decode() for key in client.keys("*"))
        # The state, and the registry naming every shared breaker (resilient inspect).
        assert keys == ["resilient:breakers", "{resilient:breaker:shared}:state"]
        assert all(client.pttl(key) > 0 for key in keys)


def test_redis_time_decides_the_open_period(
    redis_server: RedisServer, built: list[CircuitBreaker]
) -> None:
    """Without an injected clock the server's TIME is used (no 1-second truncation)."""
    breaker = _shared(built, redis_server.url, fail_max=1, reset_timeout=0.3)
    with pytest.raises(Boom):
        breaker.call(_boom)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(lambda: None)
    assert 0.2 < caught.value.retry_after <= 0.3
    # Real time (0.3 s): the open period is measured by the server's clock.
    assert eventually(lambda: breaker.retry_after == 0, within=0.6)
    assert breaker.call(lambda: "probe") == "probe"


@pytest.mark.usefixtures("paused_gc")
async def test_built_inside_a_coroutine_it_does_not_block_the_loop(
    redis_server: RedisServer, hung_server: HungServer, built: list[CircuitBreaker]
) -> None:
    """A decorator's first call may build a shared breaker on the event loop: no waiting
    there, even for a server that never answers; the state is read in the background."""
    started = time.perf_counter()
    stuck = CircuitBreaker("hung", shared=True, url=hung_server.url, resync_interval=0)
    built.append(stuck)
    assert time.perf_counter() - started < 0.05  # the op and connect timeouts are 0.1 s
    opener = await asyncio.to_thread(_shared, built, redis_server.url, fail_max=1)
    opener.open()
    late = _shared(built, redis_server.url, fail_max=1)
    assert await asyncio.to_thread(eventually, lambda: late.current_state == STATE_OPEN)


def test_a_resync_of_a_later_generation_wins_over_a_message_it_overtook() -> None:
    """A message published before a resync read may arrive while the resync is in
    flight: the resync's later generation wins; a message as new as it keeps its figures."""
    machine = StateMachine("m", ConsecutiveFailures(5), reset_timeout=1.0, success_threshold=1,
                           permitted_calls=1, probe_timeout=1.0, authoritative=False)  # fmt: skip
    machine.apply(Snapshot(STATE_OPEN, 1, 1.0, 0, 0), 0.0)
    sent = machine.updates  # the resync goes out; shared state is closed in generation 3
    machine.apply(Snapshot(STATE_HALF_OPEN, 2, 0.0, 0, 0), 0.0)  # the late message
    transition = machine.rejoin(Snapshot(STATE_CLOSED, 3, 0.0, 0, 0), 0.0, force=False,
                                updates=sent)  # fmt: skip
    assert transition is not None
    assert (machine.state, machine.generation) == (STATE_CLOSED, 3)
    sent = machine.updates
    machine.apply(Snapshot(STATE_CLOSED, 3, 0.0, 2, 0), 0.0)  # a failure's reply meanwhile
    assert machine.rejoin(Snapshot(STATE_CLOSED, 3, 0.0, 1, 0), 0.0, force=False,
                          updates=sent) is None  # fmt: skip
    assert isinstance(machine.policy, ConsecutiveFailures)
    assert machine.policy.count == 2
