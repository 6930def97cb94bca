"""The in-memory backend: bounded, thread-safe, no timers."""

from __future__ import annotations

import threading

from resilient.backends import MemoryBackend, backend_from_url


def test_lru_bound_evicts_least_recently_used() -> None:
    """Past max_entries the least recently used key goes; a read refreshes recency."""
    backend = MemoryBackend(max_entries=3)
    for key in "abc":
        backend.set(key, b"x")
    assert backend.get("a") == b"x"  # a is now the most recent
    backend.set("d", b"x")
    assert len(backend) == 3
    assert backend.get("b") is None
    assert [backend.get(key) for key in "acd"] == [b"x", b"x", b"x"]


def test_max_entries_from_url() -> None:
    """The URL query sets the bound."""
    backend = backend_from_url("memory://?max_entries=2")
    for key in "abcdef":
        backend.set(key, b"x")
    assert len(backend) == 2  # type: ignore[arg-type]


def test_concurrent_incr_is_exact() -> None:
    """16 threads x 1,000 increments on one key count to exactly 16,000."""
    backend = MemoryBackend()
    barrier = threading.Barrier(16)

    def work() -> None:
        barrier.wait()
        for _ in range(1000):
            backend.incr("n")

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.get("n") == b"16000"


def test_no_background_threads() -> None:
    """Building and using a memory backend starts no thread."""
    before = threading.active_count()
    backend = MemoryBackend(max_entries=10)
    for index in range(100):
        backend.set(str(index), b"x", ttl=0.001)
    assert threading.active_count() == before


def test_clear_and_unsubscribe() -> None:
    """clear() drops keys; a closed subscription receives nothing more."""
    backend = MemoryBackend()
    backend.set("k", b"v")
    backend.clear()
    assert backend.get("k") is None
    got: list[bytes] = []
    subscription = backend.subscribe("c", got.append)
    assert backend.publish("c", b"1") == 1
    subscription.close()
    subscription.close()
    assert backend.publish("c", b"2") == 0
    assert got == [b"1"]
