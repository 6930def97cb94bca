"""Half-open admission is exact and permits always go back, under real concurrency.

Many requests race a half-open circuit (tasks under ASGI, threads under WSGI) while the
app holds the probe: exactly ``permitted_calls`` reach it. A probe that ends without an
outcome (the client went away, the task was cancelled, the server closed the body
unread) hands its permit back without counting as a failure, so the next request probes.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.breaker import CircuitBreaker
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware, Rule
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.support import settings
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONCURRENT = 20


def half_open(clock: FakeClock, permitted: int = 1) -> CircuitBreaker:
    """A breaker whose circuit admits probes now."""
    breaker = CircuitBreaker("probe", fail_max=1, reset_timeout=10, permitted_calls=permitted,
                             clock=clock, settings=settings())  # fmt: skip
    breaker.open()
    clock.advance(10)
    return breaker


# -- ASGI ------------------------------------------------------------------------------


class HeldApp:
    """Holds every request until released, then answers 200."""

    def __init__(self) -> None:
        self.arrived = 0
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.arrived += 1
        self.reached.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def asgi(app: Any, breaker: CircuitBreaker, clock: FakeClock) -> ResilientASGIMiddleware:
    return ResilientASGIMiddleware(app, [Rule("/a", cache=False, breaker=breaker)],
                                   settings=settings(), backend=AsyncMemoryBackend(clock=clock),
                                   clock=clock)  # fmt: skip


async def request(app: ResilientASGIMiddleware) -> int:
    scope: Scope = {"type": "http", "method": "GET", "path": "/a", "headers": [],
                    "client": ("10.0.0.1", 1), "server": ("t", 80)}  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never sends more, never leaves
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


@pytest.mark.parametrize("permitted", [1, 3])
async def test_asgi_admits_exactly_the_permitted_probes(permitted: int) -> None:
    """Of many concurrent requests on a half-open circuit, exactly the permitted probes
    reach the app; the rest get 503 at once. The probes' successes close it."""
    clock = FakeClock()
    breaker = half_open(clock, permitted)
    held = HeldApp()
    app = asgi(held, breaker, clock)
    tasks = [asyncio.create_task(request(app)) for _ in range(CONCURRENT)]
    pending: set[asyncio.Task[int]] = set(tasks)
    while len(pending) > permitted:  # the refused ones finish; the probes wait
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    assert held.arrived == permitted
    held.release.set()
    statuses = await asyncio.gather(*tasks)
    assert sorted(statuses) == [200] * permitted + [503] * (CONCURRENT - permitted)
    assert breaker.current_state == "closed"


async def test_asgi_a_cancelled_probe_is_released() -> None:
    """A probe cancelled mid-call (the client went away) is no failure: its permit goes
    back and the next request probes."""
    clock = FakeClock()
    breaker = half_open(clock)
    held = HeldApp()
    app = asgi(held, breaker, clock)
    probe = asyncio.create_task(request(app))
    await held.reached.wait()
    assert await request(app) == 503  # the probe's slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.current_state == "half-open"
    held.release.set()
    assert await request(app) == 200
    assert breaker.current_state == "closed"


async def test_asgi_cancelled_calls_are_not_failures() -> None:
    """Closed circuit, fail_max 1: a cancelled request does not open it."""
    clock = FakeClock()
    breaker = CircuitBreaker("closed", fail_max=1, clock=clock, settings=settings())
    held = HeldApp()
    app = asgi(held, breaker, clock)
    call = asyncio.create_task(request(app))
    await held.reached.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert breaker.current_state == "closed"
    assert breaker.fail_counter == 0


async def test_asgi_an_app_that_sends_nothing_releases_its_probe() -> None:
    """An app that returns without a response hands the probe back (no outcome)."""
    clock = FakeClock()
    breaker = half_open(clock)

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    app = asgi(silent, breaker, clock)
    scope: Scope = {"type": "http", "method": "GET", "path": "/a", "headers": []}

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    async def discard(message: Message) -> None:
        return None

    for _ in range(3):  # each one gets the probe: none held it
        await app(scope, nothing, discard)
    assert breaker.current_state == "half-open"


# -- WSGI ------------------------------------------------------------------------------


def environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "SERVER_NAME": "t", "SERVER_PORT": "80",
            "REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
            "wsgi.errors": io.StringIO()}  # fmt: skip


def call(app: ResilientWSGIMiddleware) -> int:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = app(environ(), start_response)
    try:
        b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return int(statuses[0][:3])


def wsgi(app: Any, breaker: CircuitBreaker, clock: FakeClock) -> ResilientWSGIMiddleware:
    return ResilientWSGIMiddleware(app, [Rule("/a", cache=False, breaker=breaker)],
                                   settings=settings(), backend=MemoryBackend(clock=clock),
                                   clock=clock)  # fmt: skip


def test_wsgi_admits_exactly_one_probe_across_threads() -> None:
    """Threads racing a half-open circuit: one reaches the app, the others get 503."""
    clock = FakeClock()
    breaker = half_open(clock)
    arrived: list[int] = []
    release = threading.Event()

    def held(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        arrived.append(1)
        release.wait(10)
        start_response("200 OK", [])
        return [b"ok"]

    app = wsgi(held, breaker, clock)
    barrier = threading.Barrier(CONCURRENT)
    statuses: list[int] = []

    def worker() -> None:
        barrier.wait()
        statuses.append(call(app))

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    while len(statuses) < CONCURRENT - 1:
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(arrived) == 1
    assert sorted(statuses) == [200] + [503] * (CONCURRENT - 1)
    assert breaker.current_state == "closed"


def test_wsgi_a_body_closed_unread_releases_its_probe() -> None:
    """A lazy app whose body the server closes before reading: no head, no outcome, the
    permit goes back."""
    clock = FakeClock()
    breaker = half_open(clock)

    def lazy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"ok"

    app = wsgi(lazy, breaker, clock)
    for _ in range(3):
        body = app(environ(), lambda status, headers, exc_info=None: lambda data: None)
        getattr(body, "close")()  # noqa: B009 - the server hangs up before reading
    assert breaker.current_state == "half-open"
    assert call(app) == 200
    assert breaker.current_state == "closed"


def test_wsgi_an_exit_is_not_a_failure() -> None:
    """SystemExit from the app goes through and counts as nothing."""
    clock = FakeClock()
    breaker = half_open(clock)

    def exiting(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise SystemExit(1)

    app = wsgi(exiting, breaker, clock)
    for _ in range(2):
        with pytest.raises(SystemExit):
            call(app)
    assert breaker.current_state == "half-open"
