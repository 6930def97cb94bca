"""No repr, str or error message of what a Redis URL builds (backends, the clients and
pools we build, lanes and their addresses) shows the URL's password, whether it comes
in the authority (``redis://:pw@host``) or the query (``?password=pw``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient.backends import LuaScript, async_backend_from_url, backend_from_url
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.errors import BackendError
from tests.support.redis_servers import RedisServer
from tests.support.sockets import refused_url

SECRET = "s3cr3t-Pa55"
COUNT = LuaScript("return redis.call('INCR', KEYS[1])")


def _urls(port: int) -> list[str]:
    return [
        f"redis://:{SECRET}@127.0.0.1:{port}/0",
        f"redis://app:{SECRET}@127.0.0.1:{port}/2",
        f"redis://127.0.0.1:{port}/0?password={SECRET}",
        f"redis://app@127.0.0.1:{port}/0?password={SECRET}&db=1",
        f"unix:///run/redis-{port}.sock?password={SECRET}",
        f"rediss://:{SECRET}@127.0.0.1:{port}/0",
        f"redis+sentinel://:{SECRET}@127.0.0.1:{port}/mymaster",
    ]


def _shown(*objects: object) -> Iterator[str]:
    for thing in objects:
        if thing is not None:
            yield repr(thing)
            yield str(thing)


def _chain_text(error: BaseException) -> str:
    """str and repr of an error and of everything it was raised from."""
    texts = []
    chain: BaseException | None = error
    while chain is not None:
        texts += [str(chain), repr(chain)]
        chain = chain.__cause__ or chain.__context__
    return "\n".join(texts)


def _everything(backend: Any) -> list[str]:
    lane = getattr(backend, "_lane", None)
    address = getattr(backend, "_lane_address", None) or getattr(lane, "address", None)
    client = backend.client
    return list(
        _shown(
            backend,
            backend.name,
            backend.guard.name,
            client,
            getattr(client, "connection_pool", None),
            lane,
            address,
        )
    )


@pytest.mark.parametrize("url", _urls(1))
def test_nothing_built_from_a_url_shows_its_password(url: str) -> None:
    sync = backend_from_url(url)
    asynchronous = async_backend_from_url(url)
    for text in _everything(sync) + _everything(asynchronous):
        assert SECRET not in text
    assert isinstance(sync, RedisBackend)
    assert isinstance(asynchronous, AsyncRedisBackend)


def test_the_lanes_address_keeps_the_password_but_never_shows_it() -> None:
    backend = backend_from_url(f"redis://:{SECRET}@127.0.0.1:1/0")
    assert isinstance(backend, RedisBackend)
    lane: Any = backend._lane
    assert lane.address.setup == (("AUTH", SECRET),)  # the lane does authenticate
    assert SECRET not in repr(lane.address)
    assert SECRET not in repr(lane)


@pytest.mark.parametrize("query", [False, True])
async def test_errors_of_a_refused_connection_do_not_show_the_password(query: bool) -> None:
    plain = refused_url()
    url = f"{plain}?password={SECRET}" if query else plain.replace("//", f"//:{SECRET}@")
    sync = backend_from_url(url)
    asynchronous = async_backend_from_url(url)
    failures: list[BaseException] = []
    with pytest.raises(BackendError) as caught:
        sync.eval(COUNT, ["n"], [])
    failures.append(caught.value)
    with pytest.raises(BackendError) as caught:
        sync.get("k")
    failures.append(caught.value)
    with pytest.raises(BackendError) as caught:
        await asynchronous.eval(COUNT, ["n"], [])
    failures.append(caught.value)
    with pytest.raises(BackendError) as caught:
        await asynchronous.get("k")
    failures.append(caught.value)
    for failure in failures:
        assert SECRET not in _chain_text(failure)
    await asynchronous.aclose()


@pytest.fixture
def guarded(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    server = redis_factory()
    with server.client() as client:
        client.config_set("requirepass", SECRET)
    return server


@pytest.mark.redis
@pytest.mark.parametrize("where", ["authority", "query"])
def test_a_server_with_a_password_is_reached_and_a_wrong_one_never_shown(
    guarded: RedisServer, where: str
) -> None:
    base = f"redis://127.0.0.1:{guarded.port}/0"

    def url(password: str) -> str:
        if where == "query":
            return f"{base}?password={password}"
        return base.replace("//", f"//:{password}@")

    right = backend_from_url(url(SECRET), connect_timeout=1.0, timeout=1.0)
    assert right.eval(COUNT, ["n"], []) == 1
    right.close()
    wrong_secret = "wr0ng-Pa55"
    wrong = backend_from_url(url(wrong_secret), connect_timeout=1.0, timeout=1.0)
    asynchronous = async_backend_from_url(url(wrong_secret), connect_timeout=1.0, timeout=1.0)
    failures: list[BaseException] = []
    with pytest.raises(BackendError) as caught:
        wrong.eval(COUNT, ["n"], [])
    failures.append(caught.value)
    with pytest.raises(BackendError) as acaught:
        asyncio.run(asynchronous.eval(COUNT, ["n"], []))
    failures.append(acaught.value)
    for failure in failures:
        assert wrong_secret not in _chain_text(failure)
    wrong.close()
