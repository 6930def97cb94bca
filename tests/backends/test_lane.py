"""The lane: backends built from redis:// and unix:// URLs send EVALSHA, GET and SET over
lean connections of their own; every other command and client keeps redis-py.

Against real redis-server processes: the same replies as redis-py, exact counts under
concurrency (threads and tasks), AUTH and SELECT, scripts reloaded after a flush, error
replies that fail one caller only, cancelled callers that leave the others' replies in
order, and failures (paused, killed, garbage) that fail every waiting caller within the
timeout, count once with the guard, and heal on the next call.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from resilient.backends import LuaScript, async_backend_from_url, backend_from_url
from resilient.backends._lane import lane_address
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.errors import BackendError
from tests.support.redis_servers import RedisServer, faulted
from tests.support.sockets import HungServer

pytestmark = pytest.mark.usefixtures("paused_gc")

TIMEOUT = 0.2
SLACK = 0.15

COUNT = LuaScript(
    "if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end\n"
    "return redis.call('INCR', KEYS[1])\n"
)
SHAPES = LuaScript("return {1, 'two', {3, false}, ARGV[1], tonumber(ARGV[2]) * 2}")


def _address(url: str) -> Any:
    parts = urlsplit(url)
    query = dict(item.split("=", 1) for item in parts.query.split("&") if item)
    return lane_address(parts, query, 0.1, 0.2)


# -- which URLs take the lane ----------------------------------------------------------


def test_the_lane_reads_host_port_database_and_credentials() -> None:
    plain = _address("redis://cache.internal:6380/3")
    assert (plain.host, plain.port, plain.path) == ("cache.internal", 6380, None)
    assert plain.setup == (("SELECT", 3),)
    assert (plain.timeout, plain.connect_timeout) == (0.1, 0.2)
    assert _address("redis://:s%40cret@h:1/0").setup == (("AUTH", "s@cret"),)
    assert _address("redis://app:pw@h:1").setup == (("AUTH", "app", "pw"),)
    unix = _address("unix:///run/redis.sock?db=2")
    assert (unix.path, unix.setup) == ("/run/redis.sock", (("SELECT", 2),))
    assert _address("redis://h").port == 6379


@pytest.mark.parametrize(
    "url",
    [
        "rediss://h:6379/0",  # TLS: redis-py's context handling stays in charge
        "redis://h:6379/0?decode_responses=true",
        "redis://h:6379/0?protocol=3",
        "redis://h:6379/0?client_name=x",
        "redis://h:6379/x",
        "redis+cluster://h:7000,h:7001",
        "redis+sentinel://h:26379/mymaster",
    ],
)
def test_options_the_lane_does_not_speak_leave_evals_to_redis_py(url: str) -> None:
    assert _address(url) is None


def test_given_clients_and_pools_keep_their_evals() -> None:
    """A client or pool someone hands us may carry hooks: evals go through it too."""
    client = redis.Redis()
    assert isinstance(backend_from_url("redis://h:1/0", client=client), RedisBackend)
    assert backend_from_url("redis://h:1/0", client=client)._lane is None  # type: ignore[attr-defined]
    pool = redis.ConnectionPool()
    assert backend_from_url("redis://h:1/0", connection_pool=pool)._lane is None  # type: ignore[attr-defined]
    built = backend_from_url("redis://h:1/0")
    assert built._lane is not None  # type: ignore[attr-defined]
    aclient = async_backend_from_url("redis://h:1/0")
    assert isinstance(aclient, AsyncRedisBackend)
    assert aclient._lanes is not None


# -- replies and counts ----------------------------------------------------------------


@pytest.mark.redis
async def test_replies_match_redis_py(redis_server: RedisServer) -> None:
    sync = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    asynchronous = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    with redis_server.client() as client:
        expected = client.eval(SHAPES.source, 0, "x", 21)
    assert expected == [1, b"two", [3, None], b"x", 42]
    assert sync.eval(SHAPES, [], ["x", 21]) == expected
    assert await asynchronous.eval(SHAPES, [], ["x", 21.0]) == expected
    sync.close()
    await asynchronous.aclose()


@pytest.mark.redis
async def test_get_and_set_take_the_lane_with_redis_semantics(redis_server: RedisServer) -> None:
    """Binary values, PX and NX as redis-py sends them; WRONGTYPE is the caller's error."""
    sync = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    asynchronous = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    blob = bytes(range(256)) * 40  # every byte value, and more than one read's worth
    assert sync.set("s", blob, ttl=30) is True
    assert await asynchronous.get("s") == blob
    assert await asynchronous.set("s", b"other", only_if_new=True) is False
    assert sync.set("s", b"other", only_if_new=True) is False
    assert await asynchronous.set("a", b"\r\n$-1\r\n", ttl=0.5, only_if_new=True) is True
    assert sync.get("a") == b"\r\n$-1\r\n"
    assert sync.get("missing") is None
    assert await asynchronous.get("missing") is None
    with redis_server.client() as client:
        assert 29_000 < client.pttl("s") <= 30_000
        assert 0 < client.pttl("a") <= 500
        assert client.get("s") == blob
        client.rpush("list", b"x")
    with pytest.raises(BackendError, match="WRONGTYPE"):
        sync.get("list")
    with pytest.raises(BackendError, match="WRONGTYPE"):
        await asynchronous.get("list")
    assert sync.get("s") == blob  # the connection is still good after an error reply
    assert sync._lane is not None  # type: ignore[attr-defined]
    assert len(sync._lane._idle) == 1  # type: ignore[attr-defined]
    sync.close()
    await asynchronous.aclose()


@pytest.mark.redis
async def test_concurrent_tasks_get_exact_distinct_counts(redis_server: RedisServer) -> None:
    """500 evals in one burst go out pipelined; each runs once and gets its own reply."""
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    replies = await asyncio.gather(*(backend.eval(COUNT, ["n"], [i]) for i in range(500)))
    assert sorted(replies) == list(range(1, 501))  # type: ignore[type-var]
    assert replies == list(range(1, 501))  # one connection: replies in the order asked
    await backend.aclose()


@pytest.mark.redis
def test_concurrent_threads_get_exact_distinct_counts(redis_server: RedisServer) -> None:
    backend = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: backend.eval(COUNT, ["n"], [i]), range(800)))
    assert sorted(replies) == list(range(1, 801))  # type: ignore[type-var]
    with redis_server.client() as client:
        assert client.get("n") == b"800"
    assert 1 <= len(backend._lane._idle) <= 8  # type: ignore[attr-defined]
    backend.close()


@pytest.mark.redis
async def test_auth_and_database_are_set_up_on_each_connection(
    redis_factory: Callable[[], RedisServer],
) -> None:
    server = redis_factory()
    with server.client() as client:
        client.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/5"
    sync = backend_from_url(url, timeout=2.0, connect_timeout=2.0)
    asynchronous = async_backend_from_url(url, timeout=2.0, connect_timeout=2.0)
    assert sync.eval(COUNT, ["n"], [0]) == 1
    assert await asynchronous.eval(COUNT, ["n"], [0]) == 2
    with server.client(password="s3cret", db=5) as client:
        assert client.get("n") == b"2"
    wrong = f"redis://:nope@127.0.0.1:{server.port}/5"
    with pytest.raises(BackendError, match=r"WRONGPASS|invalid password"):
        backend_from_url(wrong, timeout=2.0).eval(COUNT, ["n"], [0])
    with pytest.raises(BackendError, match=r"WRONGPASS|invalid password"):
        await async_backend_from_url(wrong, timeout=2.0).eval(COUNT, ["n"], [0])
    sync.close()
    await asynchronous.aclose()


@pytest.mark.redis
async def test_a_unix_socket_url_takes_the_lane(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = RedisServer("--unixsocket", str(path), "--unixsocketperm", "700").start()
    try:
        url = f"unix://{path}?db=1"
        sync = backend_from_url(url, timeout=2.0, connect_timeout=2.0)
        asynchronous = async_backend_from_url(url, timeout=2.0, connect_timeout=2.0)
        assert sync._lane is not None  # type: ignore[attr-defined]
        assert sync.eval(COUNT, ["n"], [0]) == 1
        assert await asynchronous.eval(COUNT, ["n"], [0]) == 2
        with server.client(db=1) as client:
            assert client.get("n") == b"2"
        sync.close()
        await asynchronous.aclose()
    finally:
        server.stop()


@pytest.mark.redis
async def test_a_flushed_script_is_loaded_again(redis_server: RedisServer) -> None:
    sync = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    asynchronous = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    assert sync.eval(COUNT, ["n"], [0]) == 1
    with redis_server.client() as client:
        client.script_flush()
    assert sync.eval(COUNT, ["n"], [0]) == 2
    with redis_server.client() as client:
        client.script_flush()
    replies = await asyncio.gather(*(asynchronous.eval(COUNT, ["n"], [i]) for i in range(10)))
    assert sorted(replies) == list(range(3, 13))  # type: ignore[type-var]
    sync.close()
    await asynchronous.aclose()


@pytest.mark.redis
async def test_an_error_reply_fails_its_caller_only(redis_server: RedisServer) -> None:
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    args: list[str | int] = [0, "bad", 0, "bad", 0]
    replies = await asyncio.gather(
        *(backend.eval(COUNT, ["n"], [arg]) for arg in args), return_exceptions=True
    )
    assert replies[0::2] == [1, 2, 3]
    for reply in replies[1::2]:
        assert isinstance(reply, BackendError)
        assert "bad argument" in str(reply)
    sync = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    with pytest.raises(BackendError, match="bad argument"):
        sync.eval(COUNT, ["n"], ["bad"])
    assert sync.eval(COUNT, ["n"], [0]) == 4  # the connection went back and still works
    assert len(sync._lane._idle) == 1  # type: ignore[attr-defined]
    sync.close()
    await backend.aclose()


@pytest.mark.redis
async def test_cancelled_callers_leave_the_others_replies_in_order(
    redis_server: RedisServer,
) -> None:
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    assert await backend.eval(COUNT, ["warm-up"], [0]) == 1
    tasks = [asyncio.ensure_future(backend.eval(COUNT, ["n"], [i])) for i in range(40)]
    await asyncio.sleep(0)  # all of them are queued on the connection now
    for task in tasks[::2]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    kept = done[1::2]
    assert all(isinstance(item, asyncio.CancelledError) for item in done[::2])
    # Sent before they were cancelled, the cancelled ones ran too: each kept caller has
    # the reply of its own position in the pipeline.
    assert kept == [2 * i + 2 for i in range(20)]
    assert await backend.eval(COUNT, ["n"], [0]) == 41
    await backend.aclose()


@pytest.mark.redis
def test_each_event_loop_gets_its_own_connection(redis_server: RedisServer) -> None:
    """asyncio.run() per call: a connection cannot outlive its closed loop, so each loop
    opens its own, which is closed as the loop shuts down (no warning filters here)."""
    backend = async_backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    assert isinstance(backend, AsyncRedisBackend)

    async def count() -> tuple[object, object]:
        return await backend.eval(COUNT, ["n"], [0]), backend._loop_lane()

    lanes = []
    for expected in (1, 2, 3):
        reply, lane = asyncio.run(count())
        assert reply == expected
        lanes.append(lane)
    assert len({id(lane) for lane in lanes}) == 3
    assert backend._lanes is not None
    assert len(backend._lanes) == 0
    with redis_server.client() as client:
        assert len(client.client_list()) == 1  # only the one asking


@pytest.mark.redis
def test_a_forked_child_never_reuses_the_parents_sockets(redis_server: RedisServer) -> None:
    backend = backend_from_url(redis_server.url, timeout=2.0, connect_timeout=2.0)
    lane: Any = backend._lane  # type: ignore[attr-defined]
    assert backend.eval(COUNT, ["n"], [0]) == 1
    inherited = lane._idle[0]
    lane._pid = -1  # as seen from a child process after fork()
    assert backend.eval(COUNT, ["n"], [0]) == 2
    assert len(lane._idle) == 1
    assert lane._idle[0] is not inherited
    inherited.close()
    backend.close()


# -- failures --------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_a_failing_server_fails_every_waiting_caller_once(
    redis_factory: Callable[[], RedisServer], fault: str
) -> None:
    """Paused or killed: every caller gets its BackendError within the timeout; the guard
    hears of the broken connection once; the next call after recovery succeeds."""
    server = redis_factory()
    backend = async_backend_from_url(
        server.url, timeout=TIMEOUT, connect_timeout=1.0, guard_failures=100
    )
    assert isinstance(backend, AsyncRedisBackend)
    assert await backend.eval(COUNT, ["n"], [0]) == 1  # connected
    with faulted(server, fault, restart=True):
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(backend.eval(COUNT, ["n"], [i]) for i in range(50)), return_exceptions=True
        )
        assert time.perf_counter() - started < TIMEOUT + SLACK
    for reply in replies:
        assert isinstance(reply, BackendError)
        assert isinstance(reply.__cause__, redis.RedisError | OSError)
    assert backend.guard._failures == 1
    # A thawed server may still run what reached it before the timeout: a new key.
    assert await backend.eval(COUNT, ["after"], [0]) == 1
    assert backend.guard._failures == 0
    await backend.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_a_failing_server_fails_a_thread_within_the_timeout(
    redis_factory: Callable[[], RedisServer], fault: str
) -> None:
    server = redis_factory()
    backend = backend_from_url(server.url, timeout=TIMEOUT, connect_timeout=1.0)
    assert backend.eval(COUNT, ["n"], [0]) == 1
    with faulted(server, fault, restart=True):
        started = time.perf_counter()
        with pytest.raises(BackendError):
            backend.eval(COUNT, ["n"], [0])
        assert time.perf_counter() - started < TIMEOUT + SLACK
        assert backend._lane._idle == []  # type: ignore[attr-defined]
    assert backend.eval(COUNT, ["after"], [0]) == 1
    backend.close()


async def test_garbage_from_the_server_is_a_backend_error_not_a_hang() -> None:
    server = HungServer(reply=b"?not resp\r\n")
    try:
        asynchronous = async_backend_from_url(server.url, timeout=2.0, connect_timeout=1.0)
        replies = await asyncio.gather(
            *(asynchronous.eval(COUNT, ["n"], [i]) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(reply, BackendError) for reply in replies)
        assert "Protocol error" in str(replies[0])
        sync = backend_from_url(server.url, timeout=2.0, connect_timeout=1.0)
        with pytest.raises(BackendError, match="Protocol error"):
            sync.eval(COUNT, ["n"], [0])
        assert sync._lane._idle == []  # type: ignore[attr-defined]
        await asynchronous.aclose()
    finally:
        server.close()


async def test_a_refused_connection_fails_fast_and_an_open_guard_opens_nothing() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    backend = async_backend_from_url(url, guard_failures=1, guard_cooldown=60)
    assert isinstance(backend, AsyncRedisBackend)
    with pytest.raises(BackendError):
        await backend.eval(COUNT, ["n"], [0])
    replies = await asyncio.gather(
        *(backend.eval(COUNT, ["n"], [i]) for i in range(20)), return_exceptions=True
    )
    assert all(type(reply).__name__ == "BackendUnavailable" for reply in replies)
    lane = backend._loop_lane()
    assert lane is not None
    assert lane._opening is None


async def test_callers_sharing_a_refused_connect_count_once_with_the_guard() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = async_backend_from_url(f"redis://127.0.0.1:{port}/0", guard_failures=3)
    assert isinstance(backend, AsyncRedisBackend)
    replies = await asyncio.gather(
        *(backend.eval(COUNT, ["n"], [i]) for i in range(10)), return_exceptions=True
    )
    for reply in replies:
        assert isinstance(reply, BackendError)
        assert isinstance(reply.__cause__, OSError)
    assert backend.guard._failures == 1
    assert not backend.guard.is_open
