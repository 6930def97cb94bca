"""Building backends from URLs: option parsing and the Redis client factories.

Strictly private; the public entry points are in :mod:`resilient.backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlunsplit

from resilient import _parsers as p
from resilient._secrets import mask_url
from resilient.backends.base import Clock, monotonic
from resilient.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Options common to every backend, from the URL query and keyword arguments."""

    timeout: float = 0.1
    connect_timeout: float = 0.1
    guard_failures: int = 3
    guard_cooldown: float = 1.0
    max_entries: int = 100_000
    max_connections: int | None = None
    clock: Clock = monotonic
    client: Any = None
    connection_pool: Any = None
    passthrough: Mapping[str, str] = field(default_factory=dict)


_QUERY_PARSERS = {
    # As RESILIENT_OP_TIMEOUT and RESILIENT_CONNECT_TIMEOUT: 0 would fail every operation.
    "timeout": p.POSITIVE_DURATION,
    "connect_timeout": p.POSITIVE_DURATION,
    "guard_failures": p.POSITIVE_INT,
    "guard_cooldown": p.DURATION,
    "max_entries": p.POSITIVE_INT,
    "max_connections": p.POSITIVE_INT,
}
_KEYWORDS = frozenset(f.name for f in fields(BackendOptions)) - {"passthrough"}


_ONE_HOST = frozenset({"redis", "rediss", "unix"})


def _check_port(parts: SplitResult) -> None:
    # Else redis-py fails on it with a ValueError that quotes the "port": with a password
    # holding an unencoded "#", "?" or "/", that is part of the password.
    try:
        parts.port  # noqa: B018  (urllib checks the port when it is read)
    except ValueError:
        expected = "host[:port], with user and password percent-encoded (%23 for #)"
        raise ConfigurationError("backend URL", safe_name(parts), expected) from None


def parse_options(url: str, parts: SplitResult, keywords: Mapping[str, Any]) -> BackendOptions:
    """Options from the URL query, overridden by ``keywords``; the rest pass through."""
    if parts.scheme in _ONE_HOST:
        _check_port(parts)
    values: dict[str, Any] = {}
    passthrough: dict[str, str] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        parser = _QUERY_PARSERS.get(name)
        if parser is None:
            passthrough[name] = raw
            continue
        try:
            values[name] = parser.parse(raw)
        except ValueError:
            raise ConfigurationError(f"{name} in backend URL", raw, parser.expected) from None
    for name, value in keywords.items():
        if name not in _KEYWORDS:
            raise ConfigurationError(
                name, value, "a backend option: " + ", ".join(sorted(_KEYWORDS))
            )
        parser = _QUERY_PARSERS.get(name)
        if parser is not None and value is not None:
            # A keyword takes what the query takes: timeout=0 would fail every operation.
            try:
                value = parser.convert(value)
            except ValueError:
                raise ConfigurationError(name, value, parser.expected) from None
        values[name] = value
    return replace(BackendOptions(passthrough=passthrough), **values)


def _client_kwargs(options: BackendOptions, *, asyncio: bool = False) -> dict[str, Any]:
    from redis.backoff import NoBackoff

    if asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry: Any = AsyncRetry(NoBackoff(), 0)
    else:
        from redis.retry import Retry

        retry = Retry(NoBackoff(), 0)
    kwargs: dict[str, Any] = {
        "socket_timeout": options.timeout,
        "socket_connect_timeout": options.connect_timeout,
        # No retries on the hot path: a failing server must cost one timeout, not ten.
        "retry": retry,
        "retry_on_timeout": False,
    }
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    return kwargs


def _plain_url(parts: SplitResult, options: BackendOptions) -> str:
    # Our options leave the query; redis-py parses (and types) the rest itself.
    query = urlencode(dict(options.passthrough))
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")


def _hosts(parts: SplitResult) -> list[tuple[str, int]]:
    netloc = parts.netloc.rpartition("@")[2]
    hosts = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError("backend URL", urlunsplit(parts), "host:port pairs")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _credentials(parts: SplitResult) -> dict[str, str]:
    creds = {}
    if parts.username:
        creds["username"] = unquote(parts.username)
    if parts.password:
        creds["password"] = unquote(parts.password)
    return creds


def redis_client(parts: SplitResult, options: BackendOptions, *, asyncio: bool) -> Any:
    """A redis-py client for ``redis://``, ``rediss://`` or ``unix://``."""
    if asyncio:
        from redis.asyncio import Redis as AsyncRedis

        if options.connection_pool is not None:
            return AsyncRedis(connection_pool=options.connection_pool)
        return AsyncRedis.from_url(
            _plain_url(parts, options), **_client_kwargs(options, asyncio=True)
        )
    from redis import Redis

    if options.connection_pool is not None:
        return Redis(connection_pool=options.connection_pool)
    return Redis.from_url(_plain_url(parts, options), **_client_kwargs(options))


def cluster_client(parts: SplitResult, options: BackendOptions, *, asyncio: bool) -> Any:
    """A Redis Cluster client for ``redis+cluster://h1:p1,h2:p2``."""
    kwargs = {**_client_kwargs(options, asyncio=asyncio), **_credentials(parts)}
    kwargs.update(options.passthrough)
    kwargs.pop("retry_on_timeout")  # the cluster client takes its retry policy only
    if asyncio:
        from redis.asyncio.cluster import ClusterNode as AsyncNode
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        nodes = [AsyncNode(host, port) for host, port in _hosts(parts)]
        return AsyncCluster(startup_nodes=nodes, **kwargs)
    from redis.cluster import ClusterNode, RedisCluster

    nodes_sync = [ClusterNode(host, port) for host, port in _hosts(parts)]  # type: ignore[no-untyped-call]
    return RedisCluster(startup_nodes=nodes_sync, **kwargs)


def sentinel_client(parts: SplitResult, options: BackendOptions, *, asyncio: bool) -> Any:
    """The master of ``redis+sentinel://h1:p1,h2:p2/service[/db]`` through Sentinel."""
    path = [segment for segment in parts.path.split("/") if segment]
    if not path:
        raise ConfigurationError("backend URL", urlunsplit(parts), "a sentinel service name")
    service = path[0]
    db = int(path[1]) if len(path) > 1 else 0
    kwargs = {
        **_client_kwargs(options, asyncio=asyncio),
        **_credentials(parts),
        "db": db,
    }
    kwargs.update(options.passthrough)
    sentinel_kwargs = {
        "socket_timeout": options.timeout,
        "socket_connect_timeout": options.connect_timeout,
    }
    if asyncio:
        from redis.asyncio.sentinel import Sentinel as AsyncSentinel

        sentinel_class: Any = AsyncSentinel
    else:
        from redis.sentinel import Sentinel

        # Any: redis-py's Sentinel is untyped in some releases and typed in others.
        sentinel_class = Sentinel
    sentinel = sentinel_class(_hosts(parts), sentinel_kwargs=sentinel_kwargs, **kwargs)
    return sentinel.master_for(service)


def safe_name(parts: SplitResult) -> str:
    """The URL without password or query, for logs, errors and reprs."""
    # Masked as text before the query is cut: in a URL whose password holds an unencoded
    # "?" or "#", urllib puts part of the password in the query or fragment.
    masked = mask_url(urlunsplit(parts))
    return masked.partition("?")[0].partition("#")[0]
