"""The asyncio lane after the server closed its connection: the first command after a
restart (or the server's idle timeout) succeeds, whether or not the event loop ran in
between to see the connection close."""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

import pytest

from resilient.backends import LuaScript, async_backend_from_url
from resilient.backends.redis import AsyncRedisBackend
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.redis

COUNT = LuaScript("return redis.call('INCR', KEYS[1])")


def _kill_clients(server: RedisServer) -> None:
    with server.client() as client:
        client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")


async def _wait_readable(backend: AsyncRedisBackend) -> None:
    """Until the lane's socket shows the server's close (without the loop reading it)."""
    lane = backend._loop_lane()
    assert lane is not None
    assert lane._link is not None
    transport = lane._link._transport
    assert transport is not None
    poller = select.poll()
    poller.register(transport.get_extra_info("socket").fileno(), select.POLLIN)
    assert poller.poll(2000), "the server's close never arrived"


@pytest.mark.parametrize("closing", ["restart", "client kill"])
@pytest.mark.parametrize("loop_ran", [False, True])
async def test_the_first_command_after_the_server_closed_the_connection_succeeds(
    redis_factory: Callable[[], RedisServer], closing: str, loop_ran: bool
) -> None:
    """A guard that opens at the first failure: a command lost on the closed connection
    would show. ``loop_ran=False`` blocks the loop meanwhile, as a busy one would be."""
    server = redis_factory()
    backend = async_backend_from_url(server.url, timeout=0.5, connect_timeout=1.0, guard_failures=1)
    assert isinstance(backend, AsyncRedisBackend)
    assert await backend.eval(COUNT, ["n"], []) == 1
    close = server.restart if closing == "restart" else lambda: _kill_clients(server)
    if loop_ran:
        await asyncio.to_thread(close)
        await asyncio.sleep(0.05)  # the loop sees the connection close
    else:
        close()
        await _wait_readable(backend)  # polls the socket; the loop reads nothing
    expected = 1 if closing == "restart" else 2
    assert await backend.eval(COUNT, ["n"], []) == expected
    assert await backend.get("missing") is None
    assert not backend.guard.is_open
    await backend.aclose()
