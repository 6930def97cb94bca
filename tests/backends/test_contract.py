"""One contract, every backend: memory, fakeredis, a real server and a real cluster."""

from __future__ import annotations

import asyncio
import threading

import pytest

from resilient.backends import AsyncBackend, LuaScript, SyncBackend, hash_tag
from tests.support.clock import FakeClock

ECHO_SUM = LuaScript(
    "local total = 0\n"
    "for _, key in ipairs(KEYS) do\n"
    "  total = total + tonumber(redis.call('INCRBY', key, ARGV[1]))\n"
    "end\n"
    "return total\n"
)


def test_get_set_delete(sync_backend: SyncBackend) -> None:
    """A stored value reads back as the same bytes; deleted keys read as None."""
    assert sync_backend.get("k") is None
    assert sync_backend.set("k", b"\x00value\xff") is True
    assert sync_backend.get("k") == b"\x00value\xff"
    assert sync_backend.delete("k", "missing") == 1
    assert sync_backend.get("k") is None
    assert sync_backend.delete() == 0


def test_set_only_if_new(sync_backend: SyncBackend) -> None:
    """only_if_new sets a missing key once and never overwrites."""
    assert sync_backend.set("lease", b"a", 10, only_if_new=True) is True
    assert sync_backend.set("lease", b"b", 10, only_if_new=True) is False
    assert sync_backend.get("lease") == b"a"


def test_incr_counts_and_sets_ttl_once(sync_backend: SyncBackend) -> None:
    """incr creates a counter with the TTL and adds to it afterwards."""
    assert sync_backend.incr("c", 1, ttl=30) == 1
    assert sync_backend.incr("c", 5, ttl=30) == 6
    assert sync_backend.get("c") == b"6"


def test_ttl_expires_on_memory(clock: FakeClock) -> None:
    """Memory keys expire when the injected clock passes their TTL, with no timer."""
    from resilient.backends import MemoryBackend

    backend = MemoryBackend(clock=clock)
    backend.set("k", b"v", ttl=5)
    backend.incr("n", 1, ttl=5)
    assert backend.ttl("k") == pytest.approx(5)
    clock.advance(4.999)
    assert backend.get("k") == b"v"
    clock.advance(0.002)
    assert backend.get("k") is None
    assert backend.ttl("k") is None
    assert backend.incr("n", 1, ttl=5) == 1  # an expired counter starts again
    backend.set("forever", b"v")
    assert backend.ttl("forever") is None


def test_ttl_reaches_redis(sync_backend: SyncBackend, backend_kind: str) -> None:
    """On Redis the TTL is set in milliseconds on the server."""
    if backend_kind == "memory":
        pytest.skip("memory expiry is covered with the injected clock")
    client = sync_backend.client  # type: ignore[attr-defined]
    sync_backend.set("k", b"v", ttl=2.5)
    sync_backend.incr("n", 1, ttl=7)
    assert 2000 < client.pttl("k") <= 2500
    assert 6000 < client.pttl("n") <= 7000


def test_eval_runs_lua_atomically(sync_backend: SyncBackend) -> None:
    """Scripts run where supported (on one cluster slot via hash tags); memory says no."""
    keys = [hash_tag("user:1") + ":a", hash_tag("user:1") + ":b"]
    if not sync_backend.scripting:
        with pytest.raises(NotImplementedError):
            sync_backend.eval(ECHO_SUM, keys, [2])
        return
    assert sync_backend.eval(ECHO_SUM, keys, [2]) == 4
    assert sync_backend.eval(ECHO_SUM, keys, [3]) == 10


def test_publish_subscribe(sync_backend: SyncBackend, backend_kind: str) -> None:
    """A subscriber receives what is published on its channel."""
    if backend_kind == "fakeredis":
        pytest.skip("fakeredis pub/sub needs a shared server; covered by real Redis")
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(message: bytes) -> None:
        got.append(message)
        arrived.set()

    subscription = sync_backend.subscribe("chan", on_message)
    try:
        ready = getattr(subscription, "ready", None)
        assert ready is None or ready.wait(5)
        sync_backend.publish("chan", b"hello")
        assert arrived.wait(5)
        assert got == [b"hello"]
    finally:
        subscription.close()


def test_hash_tag_escapes_braces() -> None:
    """A key with braces still forms exactly one hash tag."""
    assert hash_tag("a{b}c") == "{a(b)c}"


async def test_async_operations(async_backend: AsyncBackend) -> None:
    """The asyncio flavour has the same operations and results."""
    assert await async_backend.get("k") is None
    assert await async_backend.set("k", b"v", 30) is True
    assert await async_backend.set("k", b"w", 30, only_if_new=True) is False
    assert await async_backend.get("k") == b"v"
    assert await async_backend.incr("n", 2, 30) == 2
    assert await async_backend.incr("n", 2, 30) == 4
    assert await async_backend.delete("k", "n") == 2
    assert await async_backend.delete() == 0
    keys = [hash_tag("u") + ":a", hash_tag("u") + ":b"]
    if async_backend.scripting:
        assert await async_backend.eval(ECHO_SUM, keys, [1]) == 2
    else:
        with pytest.raises(NotImplementedError):
            await async_backend.eval(ECHO_SUM, keys, [1])


async def test_async_publish_subscribe(async_backend: AsyncBackend, backend_kind: str) -> None:
    """Async subscribers receive messages on the event loop."""
    if backend_kind == "fakeredis":
        pytest.skip("fakeredis pub/sub needs a shared server; covered by real Redis")
    arrived = asyncio.Event()
    got: list[bytes] = []

    def on_message(message: bytes) -> None:
        got.append(message)
        arrived.set()

    subscription = await async_backend.subscribe("chan", on_message)
    try:
        ready = getattr(subscription, "ready", None)
        if ready is not None:
            await asyncio.wait_for(ready.wait(), 5)
        await async_backend.publish("chan", b"hi")
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == [b"hi"]
    finally:
        aclose = getattr(subscription, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            subscription.close()
