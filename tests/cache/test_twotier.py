"""Two tiers: an L1 in memory kept coherent with Redis through pub/sub."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from resilient.cache import cached
from resilient.cache.decorator import engine_of
from resilient.cache.entries import Entry
from resilient.cache.memory import MemoryStore
from resilient.cache.twotier import L1Coherence, invalidation_message
from resilient.config import Settings
from tests.cache._workers import PATIENT, l1_reader
from tests.support.redis_servers import RedisServer

SETTINGS = Settings.from_env({})


class FakeSubscription:
    """Stands in for a live subscription in unit tests."""

    def __init__(self) -> None:
        self.connected = True


def _entry(version: int, l2key: str) -> Entry:
    return Entry("v", fresh_until=1e9, delta=0.0, beta=0.0, stale_for=0.0,
                 version=version, l2key=l2key)  # fmt: skip


def test_a_read_that_raced_an_invalidation_does_not_fill_l1() -> None:
    """The stamp taken before GET no longer matches after a message about that key."""
    store = MemoryStore(10)
    coherence = L1Coherence(store, "app:f:")
    coherence.attach(FakeSubscription())
    stamp = coherence.stamp("app:f:i1")
    other = coherence.stamp("app:f:i2")
    coherence.on_message(invalidation_message(5, ["app:f:i1"]))
    assert not coherence.may_fill(stamp, "app:f:i1")
    assert coherence.may_fill(other, "app:f:i2")  # other keys are unaffected


def test_messages_drop_older_versions_and_keep_the_same_one() -> None:
    """A write's own message (same version) leaves the copy; a newer version drops it."""
    store = MemoryStore(10)
    coherence = L1Coherence(store, "app:f:")
    store.put(1, _entry(7, "app:f:i1"))
    coherence.on_message(invalidation_message(7, ["app:f:i1"]))
    assert store.get(1) is not None
    coherence.on_message(invalidation_message(8, ["app:f:i1", "other:g:i1"]))
    assert store.get(1) is None
    store.put(1, _entry(9, "app:f:i1"))
    coherence.on_message(invalidation_message(0, ["app:f:i1"]))  # deleted
    assert store.get(1) is None
    coherence.on_message(b"not json")  # ignored


def test_a_drop_moves_l1_aside_and_a_reconnection_flushes_it() -> None:
    """Dropped: the hit path stops serving L1, failure paths may; back: all forgotten."""
    store = MemoryStore(10)
    coherence = L1Coherence(store, "app:f:")
    subscription = FakeSubscription()
    coherence.attach(subscription)
    store.put(1, _entry(3, "app:f:i1"))
    stamp = coherence.stamp("app:f:i1")
    subscription.connected = False
    coherence.on_reset()
    assert store.get(1) is None
    assert 1 in coherence.reserve
    assert not coherence.live
    assert not coherence.may_fill(stamp, "app:f:i1")
    subscription.connected = True
    coherence.on_reset()
    assert coherence.reserve == {}
    assert coherence.live


def test_the_changes_table_is_bounded() -> None:
    """Per-key counters are forgotten past a bound; open stamps become stale then."""
    store = MemoryStore(2)
    coherence = L1Coherence(store, "app:f:")
    coherence.attach(FakeSubscription())
    stamp = coherence.stamp("app:f:i0")
    coherence.on_message(invalidation_message(1, [f"app:f:i{n}" for n in range(1, 20)]))
    coherence.on_message(invalidation_message(1, ["app:f:i99"]))
    assert not coherence.may_fill(stamp, "app:f:i0")


def _wait(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def _live(function: Any) -> bool:
    coherence = engine_of(function).coherence
    return coherence is not None and coherence.live


def test_two_caches_of_one_function_stay_coherent(remote: Any) -> None:
    """Two caches of one name (as in two processes) share invalidations through pub/sub."""
    name = f"coherent-{uuid.uuid4().hex}"
    source = {"k": "v1"}

    def make() -> Any:
        @cached(ttl=60, two_tier=True, backend=remote, name=name, settings=SETTINGS)
        def read(key: str) -> str:
            return source[key]

        return read

    first, second = make(), make()
    first("k")
    second("k")  # subscribes on first use
    _wait(lambda: _live(first) and _live(second), "both caches subscribed")
    second.clear()
    second("k")
    assert second.stats().size == 1
    before = second.stats()
    assert second("k") == "v1"
    assert second.stats().remote_hits == before.remote_hits  # an L1 hit
    source["k"] = "v2"
    first.refresh("k")
    _wait(lambda: second.stats().size == 0, "the refresh reached the second L1")
    assert second("k") == "v2"
    assert second.stats().misses == before.misses  # read from Redis, not recomputed
    first.invalidate("k")
    _wait(lambda: second.stats().size == 0, "the invalidation reached the second L1")
    first.close()
    second.close()


async def test_async_two_tier(aremote: Any) -> None:
    """Coroutine functions get the same L1, fed by an asyncio subscription."""
    name = f"async-coherent-{uuid.uuid4().hex}"
    calls: list[str] = []

    @cached(ttl=60, two_tier=True, backend=aremote, name=name, settings=SETTINGS)
    async def read(key: str) -> str:
        calls.append(key)
        return key.upper()

    coherence = engine_of(read).coherence
    assert coherence is not None
    assert await read("a") == "A"
    deadline = time.monotonic() + 5
    while read.stats().size == 0:
        assert time.monotonic() < deadline
        read.clear()
        await read("a")
        await _sleep(0.005)
    assert await read.ainvalidate("a") is True
    assert read.stats().size == 0
    assert await read("a") == "A"
    await read.aclose()
    assert not coherence.live


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.mark.redis
def test_an_invalidation_reaches_another_process_within_100ms(redis_server: RedisServer) -> None:
    """Two OS processes, one Redis: the other process's L1 drops the entry in < 100 ms."""
    name = f"two-processes-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_server.url)
    client.set("source:k", "v1")
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=l1_reader, args=(redis_server.url, name, theirs))
    child.start()

    @cached(ttl=60, two_tier=True, backend=redis_server.url, name=name, settings=PATIENT)
    def read(key: str) -> str:
        raw: Any = client.get(f"source:{key}")
        return raw.decode() if raw is not None else "missing"

    try:
        ours.send(("fill", "k"))
        value, stats = ours.recv()
        assert (value, stats.size) == ("v1", 1)

        client.set("source:k", "v2")
        ours.send(("watch", "v2"))
        time.sleep(0.2)  # the child keeps answering v1 from its L1 meanwhile
        read.invalidate("k")
        invalidated_at = time.time()
        seen_at, served_old, before, after = ours.recv()
        assert seen_at - invalidated_at < 0.1
        assert served_old > 50  # v1 was being served all along...
        assert after.remote_hits == before.remote_hits  # ...from L1, without Redis

        client.set("source:k", "v3")
        ours.send(("watch", "v3"))
        time.sleep(0.2)
        read.refresh("k")  # a new version written by this process
        refreshed_at = time.time()
        seen_at, _, before, after = ours.recv()
        assert seen_at - refreshed_at < 0.1
        assert after.misses == before.misses  # the child read our value from Redis
    finally:
        ours.send(("stop", None))
        child.join(10)
        read.close()
        client.close()
    assert child.exitcode == 0


@pytest.mark.redis
def test_l1_is_flushed_when_the_subscription_reconnects(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """A restart may have lost messages: L1 is emptied, then refills once back."""
    server = redis_factory()
    calls: list[str] = []

    @cached(ttl=60, two_tier=True, backend=server.url, name="flush", settings=PATIENT)
    def read(key: str) -> str:
        calls.append(key)
        return "value"

    coherence = engine_of(read).coherence
    assert coherence is not None
    read("k")
    _wait(lambda: coherence.live, "subscribed")

    def filled() -> bool:
        # A fill is refused while an invalidation of the key (the first write's own
        # message, delivered late) crosses the read: read again until one sticks.
        read.clear()
        read("k")
        return read.stats().size == 1

    _wait(filled, "L1 filled")
    server.restart()  # data gone too: the next read recomputes
    _wait(lambda: not coherence.live, "the drop was noticed")
    assert read.stats().size == 0
    _wait(lambda: coherence.live, "resubscribed")
    assert coherence.reserve == {}
    assert read("k") == "value"
    assert calls == ["k", "k"]
    read.close()


class _ReadyOnly:
    """A subscription exposing only ``ready`` (no ``connected``)."""

    def __init__(self) -> None:
        self.ready = threading.Event()


def test_liveness_from_ready_and_foreign_messages() -> None:
    """Without ``connected``, ``ready`` decides; other functions' keys are ignored."""
    store = MemoryStore(10)
    coherence = L1Coherence(store, "app:f:")
    subscription = _ReadyOnly()
    coherence.attach(subscription)
    assert not coherence.live
    subscription.ready.set()
    assert coherence.live
    store.put(1, _entry(3, "app:f:i1"))
    coherence.on_message(invalidation_message(9, ["app:g:i1"]))
    assert store.get(1) is not None
