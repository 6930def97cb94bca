"""Signed HTTP cache records, under WSGI and ASGI, over Redis (fakeredis): a record
altered, forged or moved in Redis is a miss, never served."""

from __future__ import annotations

import fakeredis
import httpx
import pytest

from resilient.backends.memory import MemoryBackend
from resilient.errors import ConfigurationError
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware
from resilient.middleware._drivers import run_sync
from resilient.middleware.store import ResponseStore
from resilient.sansio.entry import StoredResponse
from tests.middleware.support import Harness, Origin, Reply, Seen, settings
from tests.support.redis_servers import RedisServer

CACHEABLE = [("Cache-Control", "max-age=60")]
SIGNED = {"RESILIENT_HTTP_CACHE_HMAC_KEY": "s3cret"}


def counter() -> Origin:
    """An origin saying how many times it was called, cacheable."""
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        calls["n"] += 1
        return Reply(f"call {calls['n']} {seen.path}".encode(), 200, list(CACHEABLE))

    return Origin(handler)


def mounted(
    harness: Harness, env: dict[str, str]
) -> tuple[Origin, fakeredis.FakeRedis, httpx.Client]:
    """An origin behind the harness's shell storing in a fresh fakeredis, and a client
    of that Redis to look at (and tamper with) the records."""
    origin = counter()
    server = fakeredis.FakeServer()
    client = harness.client(origin, env=env, backend=harness.fakeredis(server))
    return origin, fakeredis.FakeRedis(server=server), client


def record(redis: fakeredis.FakeRedis, key: bytes) -> bytes:
    """The raw bytes stored under ``key``."""
    raw = redis.get(key)
    assert isinstance(raw, bytes)
    return raw


def only_key(redis: fakeredis.FakeRedis) -> bytes:
    keys = [key for key in redis.scan_iter() if not key.endswith(b":refresh")]
    assert len(keys) == 1
    return bytes(keys[0])


def test_a_signed_record_is_served(harness: Harness) -> None:
    """Signing changes nothing for records the middleware wrote itself."""
    app, _, client = mounted(harness, SIGNED)
    assert client.get("/a").text == "call 1 /a"
    assert client.get("/a").text == "call 1 /a"
    assert app.calls == 1


def test_a_tampered_record_is_a_miss(harness: Harness) -> None:
    """Bytes changed in Redis (the signature kept) fail verification: the app answers,
    and its response replaces the tampered record."""
    app, redis, client = mounted(harness, SIGNED)
    client.get("/a")
    key = only_key(redis)
    raw = record(redis, key)
    assert raw.endswith(b"call 1 /a")
    redis.set(key, raw.replace(b"call 1 /a", b"evil 1 /a"), keepttl=True)
    assert client.get("/a").text == "call 2 /a"
    assert client.get("/a").text == "call 2 /a"
    assert app.calls == 2


def test_a_record_moved_under_another_key_is_a_miss(harness: Harness) -> None:
    """The signature covers the key: /a's valid record copied under /b's key is no
    answer for /b (nor would the URL check let it be)."""
    app, redis, client = mounted(harness, SIGNED)
    client.get("/a")
    a_key = only_key(redis)
    raw = record(redis, a_key)
    client.get("/b")
    b_key = next(key for key in redis.scan_iter() if key != a_key)
    redis.set(b_key, raw)
    assert client.get("/b").text == "call 3 /b"
    assert app.calls == 3


def test_unsigned_records_are_misses_once_a_key_is_set(harness: Harness) -> None:
    """A record written without a key (or forged by anyone who can write to Redis) does
    not verify; the same record is served when no key is configured."""
    _, redis, client = mounted(harness, {})
    client.get("/a")
    key = only_key(redis)
    raw = record(redis, key)
    redis.set(key, raw.replace(b"call 1 /a", b"evil 1 /a"))
    assert client.get("/a").text == "evil 1 /a"  # unsigned: served as it is
    signed_origin, signed_redis, signed = mounted(harness, SIGNED)
    signed_redis.set(key, raw.replace(b"call 1 /a", b"evil 1 /a"))
    assert signed.get("/a").text == "call 1 /a"
    assert signed_origin.calls == 1


def test_the_cache_key_signs_when_the_http_one_is_unset(harness: Harness) -> None:
    """RESILIENT_CACHE_HMAC_KEY signs HTTP records too, unless the HTTP key is set."""
    app, redis, client = mounted(harness, {"RESILIENT_CACHE_HMAC_KEY": "k"})
    client.get("/a")
    key = only_key(redis)
    raw = record(redis, key)
    redis.set(key, raw[:-1] + b"X")
    assert client.get("/a").text == "call 2 /a"
    assert app.calls == 2


def stored(url: str) -> StoredResponse:
    return StoredResponse(200, (("ETag", '"x"'),), b"body", url, (), 0.0, 0.0, 60.0)


@pytest.mark.parametrize("vary", [(), ("accept",)])
def test_store_verifies_markers_and_variants(vary: tuple[str, ...]) -> None:
    """Every record is signed, Vary markers included; a store with another key (or none)
    reads none of them."""
    backend = MemoryBackend()
    signed = ResponseStore(backend, hmac_key=b"one")
    entry = stored("http://h/a")
    if vary:
        entry = StoredResponse(200, (("ETag", '"x"'),), b"body", "http://h/a",
                               (("accept", None),), 0.0, 0.0, 60.0)  # fmt: skip
    run_sync(signed.save(entry, vary, 60))
    assert run_sync(signed.lookup("http://h/a", {})) == entry
    for other in (ResponseStore(backend, hmac_key=b"two"), ResponseStore(backend)):
        assert run_sync(other.lookup("http://h/a", {})) is None


@pytest.mark.parametrize(
    ("options", "name"),
    [({"hmac_algorithm": "md5"}, "hmac_algorithm"), ({"hmac_key": ""}, "hmac_key")],
)
def test_store_options_are_checked(options: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        ResponseStore(MemoryBackend(), **options)


def test_the_middleware_keyword_signs(harness: Harness) -> None:
    """hmac_key= on either middleware signs the records it stores."""
    memory = harness.memory
    origin = counter()
    app: ResilientWSGIMiddleware | ResilientASGIMiddleware
    if harness.kind == "wsgi":
        app = ResilientWSGIMiddleware(origin.wsgi, settings=settings(), backend=memory,
                                      clock=harness.clock, hmac_key="kw")  # fmt: skip
    else:
        app = ResilientASGIMiddleware(origin.asgi, settings=settings(),
                                      backend=harness.async_memory(), clock=harness.clock,
                                      hmac_key="kw")  # fmt: skip
    assert harness.mount(app).get("/a").text == "call 1 /a"
    url = "http://testserver/a"
    assert run_sync(ResponseStore(memory, hmac_key="kw").lookup(url, {})) is not None
    assert run_sync(ResponseStore(memory).lookup(url, {})) is None


def test_a_tampered_record_in_a_real_redis_is_a_miss(
    harness: Harness, redis_server: RedisServer
) -> None:
    """The same against a real redis-server, through the backend the settings build
    (the lean lane serves GET and SET there): a record edited in Redis is not served."""
    env = {**SIGNED, "RESILIENT_HTTP_URL": redis_server.url}
    origin = counter()
    app: ResilientWSGIMiddleware | ResilientASGIMiddleware
    if harness.kind == "wsgi":
        app = ResilientWSGIMiddleware(origin.wsgi, settings=settings(env), clock=harness.clock)
    else:
        app = ResilientASGIMiddleware(origin.asgi, settings=settings(env), clock=harness.clock)
    client = harness.mount(app)
    assert client.get("/a").text == "call 1 /a"
    with redis_server.client() as redis:
        (key,) = [key for key in redis.scan_iter() if not key.endswith(b":refresh")]
        raw = redis.get(key)
        assert isinstance(raw, bytes)
        redis.set(key, raw.replace(b"call 1 /a", b"evil 1 /a"), keepttl=True)
    assert client.get("/a").text == "call 2 /a"
    assert client.get("/a").text == "call 2 /a"
    assert origin.calls == 2
    if isinstance(app, ResilientWSGIMiddleware):
        app.close()
    else:
        harness.portal.call(app.aclose)
