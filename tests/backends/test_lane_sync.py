"""The sync lane against real redis-server processes: idle connections that the server
closed are dropped at checkout (the first call after a restart succeeds), the timeout is
a deadline for the whole operation (a reply that trickles in fails at it), and
``max_connections`` caps the connections that the lane opens.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from resilient.backends import LuaScript, backend_from_url
from resilient.backends._lane import _Connection
from resilient.backends.redis import RedisBackend
from resilient.errors import BackendError
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("paused_gc")]

COUNT = LuaScript("return redis.call('INCR', KEYS[1])")
# Keeps the server busy for a moment, so that concurrent callers really overlap.
SLOW_COUNT = LuaScript(
    "local t = redis.call('TIME')\n"
    "local until_us = t[1] * 1000000 + t[2] + 2000\n"
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_us\n"
    "return redis.call('INCR', KEYS[1])\n"
)


def _lane(backend: object) -> Any:
    assert isinstance(backend, RedisBackend)
    return backend._lane


def _fill_idle(backend: object, count: int) -> None:
    """``count`` idle connections in the lane, as after ``count`` concurrent requests."""
    lane = _lane(backend)
    lane._idle.extend(_Connection(lane.address) for _ in range(count))


def _closed(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _kill_clients(server: RedisServer) -> None:
    """The server closes every idle client connection, as its ``timeout`` setting does."""
    with server.client() as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")


@pytest.mark.parametrize("idle", [8, 32])
@pytest.mark.parametrize("closing", ["restart", "client kill"])
def test_the_first_call_after_the_server_closed_idle_sockets_succeeds(
    redis_factory: Callable[[], RedisServer], idle: int, closing: str
) -> None:
    """A guard that opens at the first failure: any stale socket reused would show."""
    server = redis_factory()
    backend = backend_from_url(server.url, timeout=0.5, connect_timeout=1.0, guard_failures=1)
    _fill_idle(backend, idle)
    assert len(_lane(backend)._idle) == idle
    server.restart() if closing == "restart" else _kill_clients(server)
    deadline = time.monotonic() + 2
    while closing == "client kill" and not all(_closed(c.sock) for c in _lane(backend)._idle):
        assert time.monotonic() < deadline  # the FINs are on their way
        time.sleep(0.005)
    for expected in range(1, 4):
        assert backend.eval(COUNT, ["n"], []) == expected
    assert backend.get("missing") is None
    assert backend.set("k", b"v", 10)
    assert len(_lane(backend)._idle) == 1  # every closed socket dropped, one fresh one
    assert isinstance(backend, RedisBackend)
    assert not backend.guard.is_open
    backend.close()


class TricklingProxy:
    """A loopback proxy to a redis-server that passes requests at once and replies one
    byte at a time, ``pace`` seconds apart: a slow reply that never stalls a ``recv``
    for a whole timeout."""

    def __init__(self, upstream: RedisServer, pace: float) -> None:
        self.upstream = upstream
        self.pace = pace
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()
        self._sockets: list[socket.socket] = [self.sock]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream.port))
            self._sockets += [client, server]
            for source, sink, pace in ((client, server, 0.0), (server, client, self.pace)):
                thread = threading.Thread(target=self._pump, args=(source, sink, pace), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, pace: float) -> None:
        source.settimeout(0.05)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                if not pace:
                    sink.sendall(data)
                    continue
                for n in range(len(data)):
                    sink.sendall(data[n : n + 1])
                    time.sleep(pace)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self._sockets:
            sock.close()


def test_a_reply_that_trickles_in_fails_at_the_operation_deadline(
    redis_server: RedisServer,
) -> None:
    """A 47-byte reply at one byte per 20 ms takes about 0.94 s; no recv() ever waits
    20 ms, so only a deadline for the operation stops it at the 0.2 s timeout."""
    with redis_server.client() as client:
        client.set("big", b"x" * 40)
    proxy = TricklingProxy(redis_server, pace=0.02)
    try:
        backend = backend_from_url(proxy.url, timeout=0.2, connect_timeout=1.0)
        started = time.perf_counter()
        with pytest.raises(BackendError) as caught:
            backend.get("big")
        elapsed = time.perf_counter() - started
        assert isinstance(caught.value.__cause__, redis.TimeoutError | TimeoutError)
        assert 0.2 <= elapsed < 0.2 + 0.15
        assert _lane(backend)._idle == []  # half a reply in flight: never reused
        backend.close()
    finally:
        proxy.close()


def test_a_fast_reply_keeps_the_full_timeout_for_the_next_operation(
    redis_server: RedisServer,
) -> None:
    """A deadline shortened for one slow reply does not stay on the socket."""
    with redis_server.client() as client:
        client.set("small", b"y")
    proxy = TricklingProxy(redis_server, pace=0.01)
    try:
        backend = backend_from_url(proxy.url, timeout=0.5, connect_timeout=1.0)
        for _ in range(3):  # "$1\r\ny\r\n": 7 bytes, about 70 ms, each within 0.5 s
            assert backend.get("small") == b"y"
        connection = _lane(backend)._idle[0]
        assert connection.sock.gettimeout() == 0.5
        backend.close()
    finally:
        proxy.close()


def _connections_received(server: RedisServer) -> int:
    with server.client() as client:
        info: dict[str, Any] = client.info("stats")
    return int(info["total_connections_received"])


@pytest.mark.parametrize("limit", [1, 4])
def test_max_connections_caps_the_sync_lane(redis_server: RedisServer, limit: int) -> None:
    """16 threads at once, each eval holding the server 2 ms: exact distinct counts, and
    never more than ``limit`` connections opened (waiters take a freed one)."""
    backend = backend_from_url(
        redis_server.url, timeout=5.0, connect_timeout=2.0, max_connections=limit
    )
    before = _connections_received(redis_server)
    start = threading.Barrier(16)

    def work(_: int) -> list[int]:
        start.wait()
        return [int(backend.eval(SLOW_COUNT, ["n"], [])) for _ in range(5)]  # type: ignore[call-overload]

    with ThreadPoolExecutor(16) as pool:
        counts = [n for chunk in pool.map(work, range(16)) for n in chunk]
    assert sorted(counts) == list(range(1, 81))
    # One more connection: the INFO client of _connections_received itself.
    assert _connections_received(redis_server) - before <= limit + 1
    assert len(_lane(backend)._idle) <= limit
    backend.close()


def test_callers_past_max_connections_wait_then_fail_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    backend = backend_from_url(redis_server.url, timeout=0.2, max_connections=1)
    lane = _lane(backend)
    assert lane._slots.acquire(timeout=1)  # the one connection is in use elsewhere
    started = time.perf_counter()
    with pytest.raises(BackendError, match="Too many connections"):
        backend.eval(COUNT, ["n"], [])
    assert 0.2 <= time.perf_counter() - started < 0.2 + 0.15
    lane._slots.release()
    assert backend.eval(COUNT, ["n"], []) == 1
    backend.close()
