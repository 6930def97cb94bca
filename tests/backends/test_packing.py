"""Asyncio clients built from URLs pack commands in C, byte for byte as redis-py would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import ConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.utils import HIREDIS_AVAILABLE

from resilient.backends import async_backend_from_url
from resilient.backends._packing import pack_in_c
from resilient.backends.redis import AsyncRedisBackend
from tests.support.redis_servers import RedisServer

pytestmark = pytest.mark.skipif(not HIREDIS_AVAILABLE, reason="hiredis is not installed")

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 1, "rl:{127.0.0.1}:/items", 1, 1, 100000000, 60000),
    ("SET", "clé ünïcode", b"\x00\xffbytes", "PX", 1500),
    ("SET", "k", 1.5),
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", bytearray(b"array")),
    ("CLIENT SETINFO", "LIB-NAME", "redis-py"),  # a two-word command name is split
]


@pytest.mark.parametrize("base", [Connection, SSLConnection, UnixDomainSocketConnection])
def test_each_connection_class_gets_a_c_packer(base: type[Connection]) -> None:
    client = AsyncRedis(connection_pool=ConnectionPool(connection_class=base))
    pack_in_c(client)
    fast_class = client.connection_pool.connection_class
    assert fast_class is not base
    assert issubclass(fast_class, base)
    python_packed = base().pack_commands(COMMANDS)
    assert b"".join(fast_class().pack_commands(COMMANDS)) == b"".join(python_packed)


def test_other_encodings_keep_the_python_packer() -> None:
    client = AsyncRedis(encoding="latin-1")
    pack_in_c(client)
    assert client.connection_pool.connection_class is Connection


def test_injected_clients_are_left_alone() -> None:
    client = AsyncRedis()
    backend = AsyncRedisBackend(client)
    assert backend.client.connection_pool.connection_class is Connection


@pytest.mark.redis
async def test_a_url_client_packs_in_c_and_talks_to_redis(redis_server: RedisServer) -> None:
    backend = async_backend_from_url(redis_server.url)
    assert isinstance(backend, AsyncRedisBackend)
    pool = backend.client.connection_pool
    assert pool.connection_class.__module__ == "resilient.backends._packing"
    await backend.set("clé", "ünïcode".encode(), ttl=10)
    assert await backend.get("clé") == "ünïcode".encode()
    await backend.aclose()
