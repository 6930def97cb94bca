"""backend_from_url: schemes, options, injection, clear errors."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis

from resilient.backends import (
    AsyncMemoryBackend,
    MemoryBackend,
    async_backend_from_url,
    backend_from_settings,
    backend_from_url,
    register_backend,
)
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError


def test_memory_is_the_default_scheme() -> None:
    """memory:// builds the in-memory backend in both flavours."""
    assert isinstance(backend_from_url("memory://"), MemoryBackend)
    assert isinstance(async_backend_from_url("memory://"), AsyncMemoryBackend)


def test_redis_options_from_query_and_keywords() -> None:
    """Query options set timeouts; keywords win; other query items reach redis-py."""
    backend = backend_from_url(
        "redis://:secret@127.0.0.1:6390/2?timeout=50ms&connect_timeout=20ms&client_name=x",
        connect_timeout=0.03,
    )
    assert isinstance(backend, RedisBackend)
    kwargs = backend.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.05
    assert kwargs["socket_connect_timeout"] == 0.03
    assert kwargs["client_name"] == "x"
    assert kwargs["db"] == 2
    assert kwargs["retry"].get_retries() == 0
    assert "secret" not in backend.name
    assert "***" in backend.name


def test_tls_and_unix_schemes() -> None:
    """rediss:// uses TLS connections; unix:// a socket path."""
    tls = backend_from_url("rediss://127.0.0.1:6390/0")
    assert isinstance(tls, RedisBackend)
    assert tls.client.connection_pool.connection_class.__name__ == "SSLConnection"
    unix = backend_from_url("unix:///tmp/redis.sock?db=1")
    assert isinstance(unix, RedisBackend)
    assert unix.client.connection_pool.connection_kwargs["path"] == "/tmp/redis.sock"


def test_sentinel_url_names_service_and_hosts() -> None:
    """redis+sentinel://h:p,h:p/service builds a master client for that service."""
    backend = backend_from_url("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/3")
    assert isinstance(backend, RedisBackend)
    pool: Any = backend.client.connection_pool
    assert pool.service_name == "mymaster"
    assert [
        (s.connection_pool.connection_kwargs["port"]) for s in pool.sentinel_manager.sentinels
    ] == [26379, 26380]
    assert pool.connection_kwargs["db"] == 3
    with pytest.raises(ConfigurationError, match="sentinel service name"):
        backend_from_url("redis+sentinel://127.0.0.1:26379")


def test_cluster_url_needs_host_port_pairs() -> None:
    """A malformed cluster URL is a configuration error, not a crash later."""
    with pytest.raises(ConfigurationError, match="host:port"):
        backend_from_url("redis+cluster://localhost")


def test_client_and_pool_injection() -> None:
    """An existing client or connection pool is used as given."""
    client = fakeredis.FakeRedis()
    backend = backend_from_url("redis://ignored:1/0", client=client)
    assert isinstance(backend, RedisBackend)
    assert backend.client is client
    pool = redis.ConnectionPool(host="127.0.0.1", port=6390)
    pooled = backend_from_url("redis://", connection_pool=pool)
    assert isinstance(pooled, RedisBackend)
    assert pooled.client.connection_pool is pool
    async_backend = async_backend_from_url("redis://127.0.0.1:6390/0")
    assert isinstance(async_backend, AsyncRedisBackend)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        (
            "postgres://x",
            {},
            "backend URL has value 'postgres://x'; expected a URL with a scheme",
        ),
        ("memory", {}, "expected a URL with a scheme"),
        ("memory://?max_entries=0", {}, "max_entries in backend URL has value '0'"),
        (
            "redis://h:1?timeout=fast",
            {},
            "timeout in backend URL has value 'fast'; expected a duration",
        ),
        (
            "memory://",
            {"colour": "blue"},
            "colour has value 'blue'; expected a backend option",
        ),
    ],
)
def test_bad_urls_and_options(url: str, options: dict[str, object], message: str) -> None:
    """Every bad URL or option names itself and what was expected."""
    with pytest.raises(ConfigurationError, match=message.replace("?", r"\?")):
        backend_from_url(url, **options)


def test_password_is_masked_in_errors() -> None:
    """A rejected URL never echoes its password."""
    with pytest.raises(ConfigurationError) as caught:
        backend_from_url("mysql://user:hunter2@db:3306/x")
    assert "hunter2" not in str(caught.value)


def test_register_backend_adds_a_scheme() -> None:
    """A custom scheme builds through the registered factories."""
    built = MemoryBackend(max_entries=7)
    register_backend(
        "custom",
        lambda parts, options: built,
        lambda parts, options: AsyncMemoryBackend(),
    )
    assert backend_from_url("custom://anything") is built


def test_backend_from_settings_uses_feature_url_and_timeouts() -> None:
    """A feature's own URL wins over the global one; timeouts come from settings."""
    settings = Settings.from_env(
        {
            "RESILIENT_RATELIMIT_URL": "redis://127.0.0.1:6390/0",
            "RESILIENT_OP_TIMEOUT": "30ms",
        }
    )
    backend = backend_from_settings(settings, "ratelimit")
    assert isinstance(backend, RedisBackend)
    assert backend.client.connection_pool.connection_kwargs["socket_timeout"] == 0.03
    assert isinstance(backend_from_settings(settings, "cache"), MemoryBackend)
    assert isinstance(backend_from_settings(settings, "cache", asyncio=True), AsyncMemoryBackend)
