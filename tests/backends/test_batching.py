"""Concurrent asyncio evals share pipelines: same replies, own errors, fewer round trips.

Batching applies to redis-py clients (given ones, Sentinel masters); a backend built from
a ``redis://`` URL sends its evals over its own pipelined lane instead (test_lane.py), so
these tests hand the backend a redis-py client. The first eval of an idle backend goes
out alone at once; the evals that start while it is
in flight are collected for one loop turn and sent as pipelines of at most ``eval_batch``.
So 200 evals started together make 1 plain call and 2 pipelines (128 + 71).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import pytest
import redis

from resilient.backends import AsyncBackend, LuaScript, async_backend_from_url, hash_tag
from resilient.backends.redis import AsyncRedisBackend
from resilient.errors import BackendError, BackendUnavailable
from tests.support.redis_servers import RedisServer, faulted
from tests.support.sockets import refused_url

pytestmark = pytest.mark.usefixtures("paused_gc")

TIMEOUT = 0.1
SLACK = 0.05

# A counter per key, and an error reply for the argument "bad".
COUNT = LuaScript(
    "if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end\n"
    "return ARGV[1] .. ':' .. redis.call('INCR', KEYS[1])\n"
)
OTHER = LuaScript("return 'other:' .. KEYS[1]")


class Counted:
    """Counts the pipelines a backend's client runs; may hold them until released."""

    def __init__(self, backend: AsyncRedisBackend) -> None:
        self.pipelines = 0
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()  # a gated pipeline is on its way
        original = backend.client.pipeline

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            self.pipelines += 1
            pipe = original(*args, **kwargs)
            execute = pipe.execute

            async def gated(*args: Any, **kwargs: Any) -> Any:
                if self.gate is not None:
                    self.entered.set()
                    await self.gate.wait()
                return await execute(*args, **kwargs)

            pipe.execute = gated
            return pipe

        backend.client.pipeline = pipeline


def _redis_py(url: str, timeout: float, connect_timeout: float = 2.0, **options: Any) -> Any:
    """An asyncio backend over a redis-py client, as a URL would build it, without the
    lane: a given client keeps every command."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                            retry=Retry(NoBackoff(), 0))  # fmt: skip
    backend = async_backend_from_url(url, client=client, timeout=timeout, **options)
    assert isinstance(backend, AsyncRedisBackend)
    assert backend._lane_address is None
    return backend


def _evalsha_calls(server: RedisServer) -> int:
    with server.client() as client:
        stats: dict[str, Any] = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def _reset_stats(server: RedisServer) -> None:
    with server.client() as client:
        client.config_resetstat()


def _split(reply: object) -> tuple[bytes, int]:
    assert isinstance(reply, bytes)
    prefix, count = reply.split(b":")
    return prefix, int(count)


async def _warm(backend: AsyncBackend) -> None:
    """Loads both scripts: batches then see no NOSCRIPT replies to send again."""
    await backend.eval(OTHER, ["warm-up"], [])
    await backend.eval(COUNT, ["warm-up"], [0])


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[AsyncRedisBackend]:
    """A single-server asyncio backend: fakeredis, then a real redis-server."""
    if request.param == "fakeredis":
        made = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="fakeredis")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = _redis_py(server.url, timeout=2.0)
    yield made
    await made.aclose()


async def test_concurrent_evals_share_pipelines(backend: AsyncRedisBackend) -> None:
    """200 evals at once: 200 correct, distinct replies over 1 plain call and 2 pipelines."""
    await _warm(backend)
    counted = Counted(backend)
    replies = await asyncio.gather(*(backend.eval(COUNT, ["n"], [i]) for i in range(200)))
    prefixes = [_split(reply)[0] for reply in replies]
    counts = sorted(_split(reply)[1] for reply in replies)
    assert prefixes == [str(i).encode() for i in range(200)]  # each caller its own reply
    assert counts == list(range(1, 201))  # each ran once
    assert counted.pipelines == 2


@pytest.mark.redis
async def test_the_server_still_runs_one_evalsha_per_call(redis_server: RedisServer) -> None:
    """Counted by the server: one EVALSHA per eval, batched or not."""
    backend = _redis_py(redis_server.url, timeout=2.0)
    await backend.eval(COUNT, ["n"], ["warm-up"])  # the script is loaded now
    _reset_stats(redis_server)
    await asyncio.gather(*(backend.eval(COUNT, [f"k{i}"], [i]) for i in range(300)))
    assert _evalsha_calls(redis_server) == 300
    await backend.aclose()


async def test_a_lone_caller_makes_the_plain_call(backend: AsyncRedisBackend) -> None:
    """One eval at a time never builds a pipeline."""
    await _warm(backend)
    counted = Counted(backend)
    for i in range(5):
        assert await backend.eval(COUNT, ["n"], [i]) == f"{i}:{i + 1}".encode()
    assert counted.pipelines == 0


async def test_an_error_reply_fails_only_its_caller(backend: AsyncRedisBackend) -> None:
    """One script error in a batch: that caller gets BackendError, the others their replies."""
    await _warm(backend)
    counted = Counted(backend)
    args = ["bad" if i == 7 else i for i in range(20)]
    replies = await asyncio.gather(
        *(backend.eval(COUNT, [f"k{i}"], [arg]) for i, arg in enumerate(args)),
        return_exceptions=True,
    )
    assert counted.pipelines == 1
    failed = replies.pop(7)
    assert isinstance(failed, BackendError)
    assert isinstance(failed.__cause__, redis.ResponseError)
    assert "bad argument" in str(failed)
    assert replies == [f"{i}:1".encode() for i in range(20) if i != 7]
    assert not backend.guard.is_open


async def test_a_batch_of_error_replies_feeds_the_guard_once(backend: AsyncRedisBackend) -> None:
    """Nothing succeeded: the batch counts as one failure (the lone first call as another)."""
    await _warm(backend)
    replies = await asyncio.gather(
        *(backend.eval(COUNT, ["k"], ["bad"]) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(reply, BackendError) for reply in replies)
    assert len({id(reply) for reply in replies}) == 10  # each caller its own exception
    assert backend.guard._failures == 2  # the default threshold is 3: still closed
    assert not backend.guard.is_open


async def test_noscript_in_a_batch_loads_each_script_once(backend: AsyncRedisBackend) -> None:
    """After SCRIPT FLUSH, a batch mixing two scripts reloads them and every call succeeds."""
    await backend.eval(COUNT, ["warm-up"], [0])
    await backend.eval(OTHER, ["warm-up"], [])
    await backend.client.script_flush()
    loads = 0
    original = backend.client.script_load

    async def script_load(source: str) -> Any:
        nonlocal loads
        loads += 1
        return await original(source)

    backend.client.script_load = script_load
    counted = Counted(backend)
    calls = [
        backend.eval(COUNT, [f"k{i}"], [i]) if i % 2 else backend.eval(OTHER, [f"k{i}"], [])
        for i in range(40)
    ]
    replies = await asyncio.gather(*calls)
    assert replies == [f"{i}:1".encode() if i % 2 else f"other:k{i}".encode() for i in range(40)]
    # The lone first call (OTHER) may load OTHER once more; the batch loads each once.
    assert 2 <= loads <= 3
    assert counted.pipelines == 2  # the batch, then its NOSCRIPT replies sent again


async def test_a_cancelled_caller_does_not_affect_the_others(backend: AsyncRedisBackend) -> None:
    """Cancelled while queued, its call is not sent; the others all get their replies."""
    await _warm(backend)
    counted = Counted(backend)
    tasks = [asyncio.ensure_future(backend.eval(COUNT, [f"k{i}"], [i])) for i in range(20)]
    await asyncio.sleep(0)  # all have started: 0 is in flight, 1 leads, 2..19 queue
    tasks[1].cancel()  # the leader, while it collects
    tasks[5].cancel()  # a follower
    replies = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(replies[1], asyncio.CancelledError)
    assert isinstance(replies[5], asyncio.CancelledError)
    assert [reply for i, reply in enumerate(replies) if i not in (1, 5)] == [
        f"{i}:1".encode() for i in range(20) if i not in (1, 5)
    ]
    assert counted.pipelines == 1
    assert await backend.client.mget("k1", "k5", "k6") == [None, None, b"1"]


async def test_callers_cancelled_in_flight_leave_the_batch_whole(
    backend: AsyncRedisBackend,
) -> None:
    """Cancelling the leader and a follower of a batch on the wire changes nothing else."""
    await _warm(backend)
    counted = Counted(backend)
    counted.gate = asyncio.Event()
    tasks = [asyncio.ensure_future(backend.eval(COUNT, [f"k{i}"], [i])) for i in range(10)]
    await counted.entered.wait()
    tasks[1].cancel()
    tasks[4].cancel()
    counted.gate.set()
    replies = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(replies[1], asyncio.CancelledError)
    assert isinstance(replies[4], asyncio.CancelledError)
    assert [reply for i, reply in enumerate(replies) if i not in (1, 4)] == [
        f"{i}:1".encode() for i in range(10) if i not in (1, 4)
    ]
    assert await backend.client.mget("k1", "k4") == [b"1", b"1"]  # sent: they ran


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_a_failing_server_fails_the_whole_batch_once(
    redis_factory: Callable[[], RedisServer], fault: str
) -> None:
    """Paused or killed: every caller gets its BackendError within the timeout; the guard
    hears of the batch once (and once of the lone first call)."""
    server = redis_factory()
    # A generous connect timeout: the sockets opened before the fault must not time out
    # on a cold machine; after it, a paused server still accepts (the kernel does) and a
    # killed one refuses, so only the operation timeout is measured.
    backend = _redis_py(server.url, TIMEOUT, connect_timeout=1.0, guard_failures=100)
    await asyncio.gather(*(backend.eval(COUNT, ["n"], [i]) for i in range(10)))  # 2 sockets
    counted = Counted(backend)
    with faulted(server, fault):
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(backend.eval(COUNT, ["n"], [i]) for i in range(50)), return_exceptions=True
        )
        assert time.perf_counter() - started < TIMEOUT + SLACK
    for reply in replies:
        assert isinstance(reply, BackendError)
        assert isinstance(reply.__cause__, redis.RedisError | OSError)
    assert counted.pipelines == 1
    assert backend.guard._failures == 2
    await backend.aclose()


async def test_an_open_guard_fails_every_caller_at_once() -> None:
    """Open: concurrent callers get BackendUnavailable without a pipeline or a socket."""
    backend = _redis_py(refused_url(), 0.1, guard_failures=1, guard_cooldown=60)
    with pytest.raises(BackendError):
        await backend.eval(COUNT, ["n"], [0])
    counted = Counted(backend)
    replies = await asyncio.gather(
        *(backend.eval(COUNT, ["n"], [i]) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(reply, BackendUnavailable) for reply in replies)
    assert counted.pipelines == 0
    await backend.aclose()


def test_each_event_loop_batches_its_own_callers() -> None:
    """A backend used from one loop, then another, batches in each."""
    backend = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="fakeredis")
    counted = Counted(backend)

    async def burst() -> list[object]:
        return list(await asyncio.gather(*(backend.eval(OTHER, [str(i)], []) for i in range(5))))

    asyncio.run(_warm(backend))
    for _ in range(2):
        assert asyncio.run(burst()) == [f"other:{i}".encode() for i in range(5)]
    assert counted.pipelines == 2


def test_batching_can_be_turned_off_and_never_applies_to_a_cluster_client() -> None:
    """eval_batch=1 sends each eval alone; a Cluster client keeps its own per-node path."""
    from redis.asyncio.cluster import RedisCluster

    assert AsyncRedisBackend(fakeredis.FakeAsyncRedis(), eval_batch=1)._eval_batch == 0
    cluster = RedisCluster.__new__(RedisCluster)  # never connects: only its type matters
    assert AsyncRedisBackend(cluster)._eval_batch == 0


async def test_concurrent_evals_agree_with_every_backend(async_backend: AsyncBackend) -> None:
    """Memory, fakeredis, a server and a cluster: concurrent evals count exactly."""
    if not async_backend.scripting:
        pytest.skip("no scripting on this backend")
    # One call first: redis.asyncio's cluster client, initialised by many callers at once,
    # drops some of them (ConnectionError); that is its own first-use problem, not ours.
    await _warm(async_backend)
    keys = [hash_tag(f"u{i % 7}") + ":n" for i in range(100)]
    replies = await asyncio.gather(*(async_backend.eval(COUNT, [key], [1]) for key in keys))
    per_key: dict[str, list[int]] = {}
    for key, reply in zip(keys, replies, strict=True):
        per_key.setdefault(key, []).append(_split(reply)[1])
    assert all(sorted(counts) == list(range(1, len(counts) + 1)) for counts in per_key.values())
