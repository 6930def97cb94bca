"""A failing backend answers fast: timeouts, refused connections, the guard, resubscribing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from resilient.backends import async_backend_from_url, backend_from_url
from resilient.backends._guard import BackendGuard
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.errors import BackendError, BackendUnavailable
from tests.support.clock import FakeClock
from tests.support.probes import probe_threads, wait_for_probes
from tests.support.redis_servers import RedisServer
from tests.support.sockets import HungServer, refused_url

pytestmark = pytest.mark.usefixtures("paused_gc")

TIMEOUT = 0.1
SLACK = 0.05


def guard_of(backend: object) -> BackendGuard:
    assert isinstance(backend, (RedisBackend, AsyncRedisBackend))
    return backend.guard


def test_hung_server_fails_within_timeout(hung_server: HungServer) -> None:
    """A server that accepts and never answers costs one timeout (+50 ms), no retries."""
    backend = backend_from_url(hung_server.url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    for _ in range(2):  # the guard opens only after 3 failures: both calls hit the socket
        started = time.perf_counter()
        with pytest.raises(BackendError) as caught:
            backend.get("k")
        assert time.perf_counter() - started < TIMEOUT + SLACK
        assert caught.value.__cause__ is not None
    backend.close()


async def test_hung_server_fails_within_timeout_async(hung_server: HungServer) -> None:
    """The asyncio flavour obeys the same bound."""
    backend = async_backend_from_url(hung_server.url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    started = time.perf_counter()
    with pytest.raises(BackendError):
        await backend.get("k")
    assert time.perf_counter() - started < TIMEOUT + SLACK
    await backend.aclose()


def test_refused_connection_fails_at_once() -> None:
    """Nothing listening: the error comes back in well under the timeout."""
    backend = backend_from_url(refused_url(), timeout=1.0, connect_timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(BackendError):
        backend.set("k", b"v")
    assert time.perf_counter() - started < SLACK
    backend.close()


async def test_refused_connection_fails_at_once_async() -> None:
    """Same for asyncio."""
    backend = async_backend_from_url(refused_url(), timeout=1.0, connect_timeout=1.0)
    started = time.perf_counter()
    with pytest.raises(BackendError):
        await backend.incr("k")
    assert time.perf_counter() - started < SLACK
    await backend.aclose()


def test_guard_skips_a_failing_backend_then_probes(clock: FakeClock) -> None:
    """After 3 failures calls skip the server at once; after the cooldown a probe checks
    it beside the callers, and while it fails the server stays skipped."""
    backend = backend_from_url(refused_url(), guard_failures=3, guard_cooldown=5, clock=clock)
    assert isinstance(backend, RedisBackend)
    calls = 0
    original = backend.client.delete  # DEL goes through redis-py (GET takes the lane)

    def counting_delete(*keys: str) -> object:
        nonlocal calls
        calls += 1
        return original(*keys)

    backend.client.delete = counting_delete
    for _ in range(3):
        with pytest.raises(BackendError):
            backend.delete("k")
    assert calls == 3
    for _ in range(100):
        with pytest.raises(BackendUnavailable):
            backend.delete("k")
    assert calls == 3  # skipped: no socket touched
    clock.advance(5)
    with pytest.raises(BackendUnavailable):  # starts the probe, and is skipped itself
        backend.delete("k")
    assert calls == 3
    wait_for_probes()
    assert guard_of(backend).is_open  # the probe was refused: skipping again
    with pytest.raises(BackendUnavailable):
        backend.get("k")
    backend.close()


@pytest.mark.redis
def test_guard_closes_when_the_server_returns(
    redis_factory: Callable[[], RedisServer], clock: FakeClock
) -> None:
    """A killed server is skipped; once restarted, the probe closes the guard."""
    server = redis_factory()
    backend = backend_from_url(server.url, guard_failures=1, guard_cooldown=1, clock=clock)
    backend.set("k", b"v")
    server.kill()
    with pytest.raises(BackendError):
        backend.get("k")
    with pytest.raises(BackendUnavailable):
        backend.get("k")
    server.start()
    clock.advance(1)
    with pytest.raises(BackendUnavailable):
        backend.get("k")
    wait_for_probes()
    assert not guard_of(backend).is_open
    assert backend.set("k", b"w") is True
    assert backend.get("k") == b"w"
    backend.close()


def test_a_probe_of_a_hung_server_never_delays_a_caller(
    hung_server: HungServer, clock: FakeClock
) -> None:
    """The probe waits out the timeout in its own thread; every caller is answered at once."""
    backend = backend_from_url(
        hung_server.url, timeout=TIMEOUT, guard_failures=1, guard_cooldown=1, clock=clock
    )
    with pytest.raises(BackendError):
        backend.get("k")
    clock.advance(1)
    started = time.perf_counter()
    for _ in range(20):
        with pytest.raises(BackendUnavailable):
            backend.get("k")
    assert time.perf_counter() - started < SLACK
    assert probe_threads() == 1  # one probe per cooldown
    wait_for_probes()
    assert guard_of(backend).is_open  # the probe timed out: still skipped
    backend.close()


async def test_a_probe_of_a_hung_server_never_delays_a_caller_async(
    hung_server: HungServer, clock: FakeClock
) -> None:
    """Same for asyncio: the probe is a task of its own."""
    backend = async_backend_from_url(
        hung_server.url, timeout=TIMEOUT, guard_failures=1, guard_cooldown=1, clock=clock
    )
    with pytest.raises(BackendError):
        await backend.get("k")
    clock.advance(1)
    started = time.perf_counter()
    for _ in range(20):
        with pytest.raises(BackendUnavailable):
            await backend.get("k")
    assert time.perf_counter() - started < SLACK
    probes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    assert len(probes) == 1
    await asyncio.wait(probes, timeout=5)
    assert guard_of(backend).is_open
    clock.advance(1)
    with pytest.raises(BackendUnavailable):
        await backend.get("k")
    await asyncio.sleep(0)  # let the new probe start
    await backend.aclose()


@pytest.mark.redis
async def test_the_async_guard_closes_when_the_server_returns(
    redis_factory: Callable[[], RedisServer], clock: FakeClock
) -> None:
    """The asyncio probe closes the guard once the server is back."""
    server = redis_factory()
    backend = async_backend_from_url(server.url, guard_failures=1, guard_cooldown=1, clock=clock)
    await backend.set("k", b"v")
    server.kill()
    with pytest.raises(BackendError):
        await backend.get("k")
    server.start()
    clock.advance(1)
    with pytest.raises(BackendUnavailable):
        await backend.get("k")
    probes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    await asyncio.wait(probes, timeout=5)
    assert not guard_of(backend).is_open
    assert await backend.get("k") is None  # the restarted server starts empty
    await backend.aclose()


@pytest.mark.redis
def test_paused_server_costs_one_timeout(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """SIGSTOP: each call fails within the timeout and the guard then skips the server."""
    server = redis_factory()
    backend = backend_from_url(server.url, timeout=TIMEOUT, guard_failures=2)
    assert backend.set("k", b"v")
    server.pause()
    try:
        for _ in range(2):
            started = time.perf_counter()
            with pytest.raises(BackendError):
                backend.get("k")
            assert time.perf_counter() - started < TIMEOUT + SLACK
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable):
            backend.get("k")
        assert time.perf_counter() - started < 0.005
    finally:
        server.resume()
    backend.close()


@pytest.mark.redis
def test_subscription_resets_on_drop_and_reconnect(
    redis_factory: Callable[[], RedisServer],
) -> None:
    """Killing the server calls on_reset; after a restart messages flow again."""
    server = redis_factory()
    backend = backend_from_url(server.url, timeout=0.5, connect_timeout=0.5)
    resets = threading.Semaphore(0)
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(message: bytes) -> None:
        got.append(message)
        arrived.set()

    assert isinstance(backend, RedisBackend)
    subscription = backend.subscribe("c", on_message, resets.release)
    try:
        assert subscription.ready.wait(5)
        server.restart()
        assert resets.acquire(timeout=5)  # the drop
        assert resets.acquire(timeout=5)  # the reconnection
        deadline = time.monotonic() + 5
        while not arrived.is_set() and time.monotonic() < deadline:
            backend.publish("c", b"after")
            arrived.wait(0.05)
        assert got
        assert got[0] == b"after"
    finally:
        subscription.close()
        backend.close()


def test_backends_of_one_server_share_its_guard(hung_server: HungServer) -> None:
    """A server found down through one backend is skipped by every backend built from its
    URL, sync and asyncio alike: no second feature pays its own timeouts to learn it."""
    options: dict[str, Any] = {"timeout": TIMEOUT, "guard_failures": 1, "guard_cooldown": 60}
    limiter_backend = backend_from_url(hung_server.url, **options)
    cache_backend = backend_from_url(hung_server.url, **options)
    async_backend = async_backend_from_url(hung_server.url, **options)
    assert guard_of(cache_backend) is guard_of(limiter_backend) is guard_of(async_backend)
    with pytest.raises(BackendError):
        limiter_backend.get("k")  # one timeout opens the server's guard
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable):
        cache_backend.get("k")
    with pytest.raises(BackendUnavailable):
        asyncio.run(async_backend.get("k"))
    assert time.perf_counter() - started < SLACK
    other = backend_from_url(hung_server.url, timeout=TIMEOUT, guard_failures=2)
    assert guard_of(other) is not guard_of(limiter_backend)  # other settings: a guard of its own
    for backend in (limiter_backend, cache_backend, other):
        backend.close()
