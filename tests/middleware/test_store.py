"""The response store over every backend: memory, fakeredis, a real server, a cluster."""

from __future__ import annotations

import asyncio
import threading
from wsgiref.validate import validator

import httpx
import pytest

from resilient.backends import AsyncBackend, SyncBackend
from resilient.backends.memory import MemoryBackend
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware, ResponseStore
from resilient.middleware._drivers import run_async, run_sync
from resilient.middleware.store import MARKER_TTL
from resilient.sansio.entry import StoredResponse, VaryMarker, decode_record
from resilient.sansio.http import Headers
from resilient.sansio.keys import vary_values
from tests.middleware.support import BASE_URL, Origin, Reply, Seen, settings
from tests.support.clock import FakeClock

URL = "http://testserver/a?x=1"
BODY = bytes(range(256)) * 8


def entry(vary: tuple[tuple[str, str | None], ...] = (), body: bytes = BODY) -> StoredResponse:
    return StoredResponse(
        200, (("Content-Type", "application/octet-stream"),), body, URL, vary, 1000.0, 0.0, 60.0
    )


def en_fr() -> tuple[Headers, Headers]:
    return Headers([("Accept-Language", "en")]), Headers([("Accept-Language", "fr")])


def test_plain_entry_round_trip(sync_backend: SyncBackend) -> None:
    """A response without Vary is one record under the URL's key, body bytes untouched."""
    store = ResponseStore(sync_backend, prefix="t")
    assert run_sync(store.lookup(URL, Headers())) is None
    run_sync(store.save(entry(), (), 30))
    assert run_sync(store.lookup(URL, Headers())) == entry()
    assert sync_backend.get(store.primary_key(URL)) == entry().encode()
    assert run_sync(store.lookup(URL.replace("x=1", "x=2"), Headers())) is None


def test_variants_behind_a_marker(sync_backend: SyncBackend) -> None:
    """Responses that vary are found by the request's values; other values miss."""
    store = ResponseStore(sync_backend, prefix="t")
    english, french = en_fr()
    fields = ("accept-language",)
    run_sync(store.save(entry(vary_values(english, fields, frozenset()), b"en"), fields, 30))
    run_sync(store.save(entry(vary_values(french, fields, frozenset()), b"fr"), fields, 30))
    found = [run_sync(store.lookup(URL, headers)) for headers in (english, french, Headers())]
    assert [record.body if record else None for record in found] == [b"en", b"fr", None]
    marker = sync_backend.get(store.primary_key(URL))
    assert marker is not None
    assert marker.startswith(b"\x00rhv1")


def test_invalidation_orphans_every_variant(sync_backend: SyncBackend) -> None:
    """Deleting the URL's key makes all variants unreachable, even when the same values
    are stored again later under a new generation."""
    store = ResponseStore(sync_backend, prefix="t")
    english, _ = en_fr()
    fields = ("accept-language",)
    values = vary_values(english, fields, frozenset())
    run_sync(store.save(entry(values, b"old"), fields, 30))
    run_sync(store.invalidate([URL, URL]))
    assert run_sync(store.lookup(URL, english)) is None
    marker = VaryMarker(fields, "stale-generation")
    sync_backend.set(store.primary_key(URL), marker.encode())
    assert run_sync(store.lookup(URL, english)) is None
    run_sync(store.invalidate([URL]))
    run_sync(store.save(entry(values, b"new"), fields, 30))
    found = run_sync(store.lookup(URL, english))
    assert found is not None
    assert found.body == b"new"


def test_changed_vary_fields_replace_the_marker(sync_backend: SyncBackend) -> None:
    """A response varying on other fields, or on none, takes the URL over."""
    store = ResponseStore(sync_backend, prefix="t")
    english, _ = en_fr()
    run_sync(
        store.save(
            entry(vary_values(english, ("accept-language",), frozenset())), ("accept-language",), 30
        )
    )
    by_accept = vary_values(Headers([("Accept", "text/html")]), ("accept",), frozenset())
    run_sync(store.save(entry(by_accept, b"html"), ("accept",), 30))
    assert run_sync(store.lookup(URL, english)) is None
    found = run_sync(store.lookup(URL, Headers([("Accept", "text/html")])))
    assert found is not None
    assert found.body == b"html"
    run_sync(store.save(entry(body=b"plain"), (), 30))
    found = run_sync(store.lookup(URL, Headers([("Accept", "text/html")])))
    assert found is not None
    assert found.body == b"plain"


def test_records_must_match_the_request(sync_backend: SyncBackend) -> None:
    """A record under the key but for another URL, or foreign bytes, is a miss."""
    store = ResponseStore(sync_backend, prefix="t")
    elsewhere = StoredResponse(200, (), b"x", "http://testserver/other", (), 1000.0, 0.0, 60.0)
    sync_backend.set(store.primary_key(URL), elsewhere.encode())
    assert run_sync(store.lookup(URL, Headers())) is None
    sync_backend.set(store.primary_key(URL), b"not a record")
    assert run_sync(store.lookup(URL, Headers())) is None
    varying = entry((("accept", "a"),))
    sync_backend.set(store.primary_key(URL), varying.encode())  # a variant in the wrong place
    assert run_sync(store.lookup(URL, Headers([("Accept", "a")]))) is None


def test_refresh_lease(sync_backend: SyncBackend) -> None:
    """One caller wins the refresh lease; others do not until it expires."""
    store = ResponseStore(sync_backend, prefix="t")
    assert run_sync(store.claim_refresh(URL, 30)) is True
    assert run_sync(store.claim_refresh(URL, 30)) is False
    assert run_sync(store.claim_refresh(URL + "&y", 30)) is True


def test_ttls_are_set(clock: FakeClock) -> None:
    """Entries expire with the TTL given; the marker lives at least a day."""
    backend = MemoryBackend(clock=clock)
    store = ResponseStore(backend, prefix="t")
    english, _ = en_fr()
    fields = ("accept-language",)
    run_sync(store.save(entry(vary_values(english, fields, frozenset())), fields, 30))
    primary = backend.ttl(store.primary_key(URL))
    assert primary is not None
    assert primary == pytest.approx(MARKER_TTL)
    clock.advance(30)
    assert run_sync(store.lookup(URL, english)) is None
    assert backend.get(store.primary_key(URL)) is not None


async def test_async_store(async_backend: AsyncBackend) -> None:
    """The same flows over every asyncio backend."""
    store = ResponseStore(async_backend, prefix="t")
    english, french = en_fr()
    fields = ("accept-language",)
    await run_async(store.save(entry(vary_values(english, fields, frozenset()), b"en"), fields, 30))
    await run_async(store.save(entry(vary_values(french, fields, frozenset()), b"fr"), fields, 30))
    found = await run_async(store.lookup(URL, french))
    assert found is not None
    assert found.body == b"fr"
    assert await run_async(store.claim_refresh(URL, 5)) is True
    await run_async(store.invalidate([URL]))
    assert await run_async(store.lookup(URL, french)) is None


def varying_origin() -> Origin:
    def handler(seen: Seen) -> Reply:
        return Reply(
            seen.headers.get("accept-language", "-").encode(),
            headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
        )

    return Origin(handler)


def test_wsgi_over_every_backend(sync_backend: SyncBackend, clock: FakeClock) -> None:
    """Hits, variants and invalidation through the WSGI shell on each backend."""
    origin = varying_origin()
    app = ResilientWSGIMiddleware(
        validator(origin.wsgi), settings=settings(), backend=sync_backend, clock=clock
    )
    client = httpx.Client(transport=httpx.WSGITransport(app=validator(app)), base_url=BASE_URL)
    for _ in range(2):
        assert client.get("/a", headers={"Accept-Language": "en"}).text == "en"
        assert client.get("/a", headers={"Accept-Language": "fr"}).text == "fr"
    assert origin.calls == 2
    client.post("/a")
    client.get("/a", headers={"Accept-Language": "en"})
    assert origin.calls == 4


async def test_asgi_over_every_backend(async_backend: AsyncBackend, clock: FakeClock) -> None:
    """The same through the ASGI shell, on the test's own event loop."""
    origin = varying_origin()
    app = ResilientASGIMiddleware(
        origin.asgi, settings=settings(), backend=async_backend, clock=clock
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for _ in range(2):
            english = await client.get("/a", headers={"Accept-Language": "en"})
            french = await client.get("/a", headers={"Accept-Language": "fr"})
            assert (english.text, french.text) == ("en", "fr")
        assert origin.calls == 2
        await client.post("/a")
        await client.get("/a", headers={"Accept-Language": "en"})
    assert origin.calls == 4


def test_hot_records_are_decoded_once(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """While the backend returns the same bytes, a record is decoded once; new bytes under
    the key are decoded afresh; the memo stays within its bounds."""
    from resilient.middleware import store as store_module

    decoded: list[bytes] = []
    real = decode_record

    def counting(data: bytes | None) -> object:
        decoded.append(data or b"")
        return real(data)

    monkeypatch.setattr(store_module, "decode_record", counting)
    backend = MemoryBackend(clock=clock)
    store = ResponseStore(backend, prefix="t")
    run_sync(store.save(entry(body=b"one"), (), 30))
    for _ in range(3):
        found = run_sync(store.lookup(URL, Headers()))
        assert found is not None
        assert found.body == b"one"
    assert len(decoded) == 1
    run_sync(store.save(entry(body=b"two"), (), 30))
    found = run_sync(store.lookup(URL, Headers()))
    assert found is not None
    assert found.body == b"two"
    assert len(decoded) == 2
    backend.set(
        store.primary_key(URL), bytes(entry(body=b"two").encode())
    )  # equal bytes, new object
    run_sync(store.lookup(URL, Headers()))
    assert len(decoded) == 2
    for number in range(300):
        other = URL + f"&n={number}"
        record = StoredResponse(200, (), b"x", other, (), 1000.0, 0.0, 60.0)
        backend.set(store.primary_key(other), record.encode())
        run_sync(store.lookup(other, Headers()))
    assert len(store._decoded._items) == store._decoded.max_items
    big = entry(body=b"x" * (store._decoded.max_bytes + 1))
    run_sync(store.save(big, (), 30))
    run_sync(store.lookup(URL, Headers()))
    run_sync(store.lookup(URL, Headers()))
    assert decoded.count(big.encode()) == 2  # too big to keep: decoded on every hit


def refresh_origin() -> Origin:
    return Origin(
        lambda seen: Reply(
            b"v", headers=[("Cache-Control", "max-age=10, stale-while-revalidate=60")]
        )
    )


def test_one_refresh_across_threads(sync_backend: SyncBackend, clock: FakeClock) -> None:
    """32 threads hit a stale response at once: all get it, exactly one refreshes it."""
    origin = refresh_origin()
    app = ResilientWSGIMiddleware(
        origin.wsgi, settings=settings(), backend=sync_backend, clock=clock
    )
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE_URL)
    client.get("/a")
    clock.advance(20)
    barrier = threading.Barrier(32)
    bodies: list[str] = []

    def one() -> None:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE_URL) as own:
            barrier.wait()
            bodies.append(own.get("/a").text)

    threads = [threading.Thread(target=one) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bodies == ["v"] * 32
    assert origin.calls == 2  # the first fill and exactly one refresh


async def test_one_refresh_across_tasks(async_backend: AsyncBackend, clock: FakeClock) -> None:
    """32 concurrent requests on the event loop: exactly one refresh."""
    origin = refresh_origin()
    app = ResilientASGIMiddleware(
        origin.asgi, settings=settings(), backend=async_backend, clock=clock
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await client.get("/a")
        clock.advance(20)
        answers = await asyncio.gather(*(client.get("/a") for _ in range(32)))
    assert [answer.text for answer in answers] == ["v"] * 32
    assert origin.calls == 2
