"""A failing backend never fails a request: it is answered by the app, within the op timeout."""

from __future__ import annotations

import time
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from resilient.backends import async_backend_from_url, backend_from_url
from resilient.backends.memory import MemoryBackend
from resilient.errors import BackendError
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware
from tests.middleware.support import BASE_URL, Harness, Origin, Reply, settings
from tests.support.clock import FakeClock
from tests.support.sockets import HungServer, refused_url

pytestmark = pytest.mark.usefixtures("paused_gc")

TIMEOUT = 0.1
SLACK = 0.1  # headroom for a loaded two-core CI machine
CACHEABLE = [("Cache-Control", "max-age=60, stale-while-revalidate=60")]


class ReadOnly(MemoryBackend):
    """A memory backend whose writes can be made to fail (a replica gone read-only)."""

    read_only = False

    def set(
        self, key: str, value: bytes, ttl: float | None = None, *, only_if_new: bool = False
    ) -> bool:
        if self.read_only:
            raise BackendError("read-only")
        return super().set(key, value, ttl, only_if_new=only_if_new)

    def delete(self, *keys: str) -> int:
        if self.read_only:
            raise BackendError("read-only")
        return super().delete(*keys)


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


@pytest.mark.parametrize("server", ["refused", "hung"])
def test_wsgi_answers_within_the_op_timeout(server: str, hung_server: HungServer) -> None:
    """With Redis refusing or hanging, every request gets the app's answer and costs at most
    one op timeout; once the backend guard opens, requests cost nothing extra."""
    url = refused_url() if server == "refused" else hung_server.url
    backend = backend_from_url(url, timeout=TIMEOUT, connect_timeout=TIMEOUT, guard_failures=3)
    origin = Origin(Reply(b"from the app", headers=CACHEABLE))
    app = ResilientWSGIMiddleware(validator(origin.wsgi), settings=settings(), backend=backend)
    client = httpx.Client(transport=httpx.WSGITransport(app=validator(app)), base_url=BASE_URL)
    for _ in range(5):
        elapsed, answer = timed(lambda: client.get("/a"))
        assert (answer.status_code, answer.text) == (200, "from the app")
        assert elapsed < TIMEOUT + SLACK
    elapsed, answer = timed(lambda: client.post("/a"))
    assert answer.status_code == 200
    assert elapsed < SLACK  # the guard is open: no socket is even tried
    assert origin.calls == 6
    backend.close()


@pytest.mark.parametrize("server", ["refused", "hung"])
async def test_asgi_answers_within_the_op_timeout(server: str, hung_server: HungServer) -> None:
    """The same bound for the ASGI shell over redis.asyncio."""
    url = refused_url() if server == "refused" else hung_server.url
    backend = async_backend_from_url(url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    origin = Origin(Reply(b"from the app", headers=CACHEABLE))
    app = ResilientASGIMiddleware(origin.asgi, settings=settings(), backend=backend)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for _ in range(5):
            started = time.perf_counter()
            answer = await client.get("/a")
            assert time.perf_counter() - started < TIMEOUT + SLACK
            assert (answer.status_code, answer.text) == (200, "from the app")
    assert origin.calls == 5
    await backend.aclose()


def test_failing_writes_never_fail_a_request(harness: Harness, clock: FakeClock) -> None:
    """Stores, invalidations and refresh leases that fail leave every answer intact: a
    stale copy is still served, the refresh is skipped, the POST goes through."""
    backend = ReadOnly(clock=clock)
    harness.memory = backend
    origin = Origin(Reply(b"v", headers=CACHEABLE))
    client = harness.client(origin)
    client.get("/a")
    backend.read_only = True
    clock.advance(61)
    stale = client.get("/a")
    assert (stale.text, stale.headers["age"]) == ("v", "61")
    assert origin.calls == 1  # no lease, no refresh
    assert client.post("/a").status_code == 200
    assert client.get("/b").text == "v"
    assert client.get("/b").text == "v"
    assert origin.calls == 4  # /b could not be stored
