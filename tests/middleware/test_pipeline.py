"""The extension points: drivers, and steps around the cache, under both shells.

Rate limiting and circuit breakers join the pipeline as steps. The steps here stand in
for them, to pin the contract they will rely on: a step before the cache can answer
first (a 429) and decorates every answer, hits included; a step after the cache is not
reached by fresh hits, sees the app's failures first and can answer with the stale copy
the cache offers (a breaker serving stale); stages can ask for the body.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from resilient.errors import BackendError
from resilient.middleware._common import reason_phrase
from resilient.middleware._drivers import Call, Flow, run_async, run_sync
from resilient.middleware._pipeline import BodyMode, Exchange, Stage
from resilient.middleware.asgi import ResilientASGIMiddleware
from resilient.middleware.wsgi import ResilientWSGIMiddleware
from resilient.sansio.http import Response, ResponseHead
from resilient.sansio.serving import serve_stored
from tests.middleware.support import Harness, Origin, Reply, Seen
from tests.support.clock import FakeClock


def flow(results: list[object]) -> Generator[Call, Any, list[object]]:
    """Adds one, fails, recovers: what the drivers must run identically."""
    results.append((yield Call(lambda a, b=0: a + b, 1, b=2)))
    try:
        yield Call(_raise)
    except BackendError as exc:
        results.append(str(exc))
    return results


def _raise() -> None:
    raise BackendError("down")


async def _async_add(a: int, b: int = 0) -> int:
    return a + b


def test_sync_driver_calls_and_throws_errors_in() -> None:
    """run_sync calls each Call and throws its exception into the flow."""
    assert run_sync(flow([])) == [3, "down"]


async def test_async_driver_awaits_when_needed() -> None:
    """run_async awaits awaitables and takes plain values as they are."""
    assert await run_async(flow([])) == [3, "down"]

    def awaiting() -> Flow[int]:
        total: int = yield Call(_async_add, 4, b=5)
        return total

    assert await run_async(awaiting()) == 9


def test_uncaught_errors_leave_the_flow() -> None:
    """An error the flow does not handle reaches the caller of the driver."""

    def failing() -> Flow[None]:
        yield Call(_raise)

    with pytest.raises(BackendError, match="down"):
        run_sync(failing())
    assert repr(Call(_raise)) == "Call(_raise, (), {})"


class Events:
    def __init__(self) -> None:
        self.log: list[str] = []


class Gate:
    """Stands in for a rate limiter: answers some requests itself, stamps every answer."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self.stamps = 0

    def begin(self, exchange: Exchange) -> Stage | None:
        return None if exchange.background else _GateStage(self, exchange)


class _GateStage(Stage):
    def __init__(self, step: Gate, exchange: Exchange) -> None:
        self.step = step
        self.exchange = exchange

    def on_request(self) -> Flow[Response | None]:
        yield from ()
        self.step.events.log.append(f"gate {self.exchange.request.path}")
        if self.exchange.request.path == "/limited":
            return Response(429, (("Retry-After", "1"), ("Content-Type", "text/plain")), b"slow")
        return None

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        yield from ()
        self.step.stamps += 1
        head.headers.append(("X-Gate", str(self.step.stamps)))
        return head


class Breaker:
    """Stands in for a circuit breaker: records failures; when open, answers 503 or stale."""

    def __init__(self, events: Events, clock: FakeClock) -> None:
        self.events = events
        self.clock = clock
        self.open = False

    def begin(self, exchange: Exchange) -> Stage | None:
        return _BreakerStage(self, exchange)


class _BreakerStage(Stage):
    def __init__(self, step: Breaker, exchange: Exchange) -> None:
        self.step = step
        self.exchange = exchange

    def on_request(self) -> Flow[Response | None]:
        yield from ()
        request = self.exchange.request
        self.step.events.log.append(
            f"breaker {request.path}" + (" background" if self.exchange.background else "")
        )
        if not self.step.open:
            return None
        if self.exchange.stale is not None:
            return serve_stored(
                self.exchange.stale, request.method, request.headers, self.step.clock()
            )
        return Response(503, (("Retry-After", "30"), ("Content-Type", "text/plain")), b"open")

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        yield from ()
        if head.status >= 500:
            self.step.events.log.append(f"failure {head.status}")
        return head

    def on_error(self, error: Exception) -> Flow[Response | None]:
        yield from ()
        self.step.events.log.append(f"error {error}")
        return None


class BodyWatcher:
    """Asks for a copy of every body (or to hold it) and records what it got."""

    def __init__(self, mode: BodyMode) -> None:
        self.mode = mode
        self.bodies: list[bytes | None] = []

    def begin(self, exchange: Exchange) -> Stage | None:
        return _WatchStage(self, exchange)


class _WatchStage(Stage):
    def __init__(self, step: BodyWatcher, exchange: Exchange) -> None:
        self.step = step
        self.exchange = exchange

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        yield from ()
        self.exchange.want_body(self.step.mode, 1000)
        return head

    def on_complete(self, body: bytes | None, error: BaseException | None) -> Flow[None]:
        yield from ()
        self.step.bodies.append(body)


def install(
    middleware: ResilientWSGIMiddleware | ResilientASGIMiddleware,
    before: list[Any],
    after: list[Any],
) -> None:
    pipeline = middleware._pipeline
    pipeline.steps = (*before, *pipeline.steps, *after)


def counting(*fields: tuple[str, str], status: int = 200) -> Origin:
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        calls["n"] += 1
        if seen.path == "/boom":
            raise RuntimeError("boom")
        return Reply(f"v{calls['n']}".encode(), status, list(fields))

    return Origin(handler)


def test_a_step_before_the_cache(harness: Harness) -> None:
    """It answers first (the cache is never asked) and stamps every answer, hits too;
    its stamp is never stored in the cache."""
    events = Events()
    origin = counting(("Cache-Control", "max-age=60"))
    middleware = harness.middleware(origin)
    install(middleware, [Gate(events)], [])
    client = harness.mount(middleware)
    limited = client.get("/limited")
    assert (limited.status_code, limited.text, limited.headers.get("x-gate")) == (429, "slow", None)
    assert len(harness.memory) == 0
    miss, hit = client.get("/a"), client.get("/a")
    assert (miss.text, hit.text) == ("v1", "v1")
    assert (miss.headers["x-gate"], hit.headers["x-gate"]) == ("1", "2")
    assert origin.calls == 1
    assert events.log == ["gate /limited", "gate /a", "gate /a"]


def test_a_step_after_the_cache(harness: Harness, clock: FakeClock) -> None:
    """Fresh hits never reach it; it sees failures and exceptions first; when it refuses
    the app, the cache's stale copy (within stale-if-error) can answer instead of a 503."""
    events = Events()
    breaker = Breaker(events, clock)
    origin = counting(("Cache-Control", "max-age=10, stale-if-error=60"))
    middleware = harness.middleware(origin)
    install(middleware, [], [breaker])
    client = harness.mount(middleware)
    client.get("/a")
    client.get("/a")
    assert events.log == ["breaker /a"]
    with pytest.raises(RuntimeError, match="boom"):
        client.get("/boom")
    assert events.log[-2:] == ["breaker /boom", "error boom"]
    breaker.open = True
    clock.advance(20)
    stale = client.get("/a")
    assert (stale.status_code, stale.text, stale.headers["age"]) == (200, "v1", "20")
    refused = client.get("/b")
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "30")
    assert origin.calls == 2


def test_background_refreshes_are_marked(harness: Harness, clock: FakeClock) -> None:
    """A stale-while-revalidate refresh runs through the steps with background set, so a
    rate limiter can stand aside while a breaker still counts the upstream call."""
    events = Events()
    origin = counting(("Cache-Control", "max-age=10, stale-while-revalidate=60"))
    middleware = harness.middleware(origin)
    install(middleware, [Gate(events)], [Breaker(events, clock)])
    client = harness.mount(middleware)
    client.get("/a")
    clock.advance(20)
    assert client.get("/a").text == "v1"
    assert events.log == ["gate /a", "breaker /a", "gate /a", "breaker /a background"]


@pytest.mark.parametrize("mode", [BodyMode.TEE, BodyMode.BUFFER, BodyMode.WATCH])
def test_stages_can_ask_for_the_body(harness: Harness, mode: BodyMode) -> None:
    """Any stage may ask for a copy (or to hold the body) and gets it when it ends, on
    responses the cache does not store too; WATCH gets the end without a copy."""
    watcher = BodyWatcher(mode)
    origin = Origin(lambda seen: Reply([b"ab", b"cd"] if seen.path == "/s" else b"abcd"))
    middleware = harness.middleware(origin)
    install(middleware, [watcher], [])
    client = harness.mount(middleware)
    assert client.get("/s").text == "abcd"
    assert client.get("/f").text == "abcd"
    expected = None if mode is BodyMode.WATCH else b"abcd"
    assert watcher.bodies == [expected, expected]


def test_the_default_hooks_do_nothing() -> None:
    """A Stage that overrides nothing passes everything on unchanged."""
    stage = Stage()
    head = ResponseHead(200)
    response = Response(200, (), b"x")
    assert run_sync(stage.on_request()) is None
    assert run_sync(stage.on_head(head)) is head
    assert run_sync(stage.on_error(RuntimeError())) is None
    assert stage.on_body(response) is response
    assert run_sync(stage.on_complete(b"x", None)) is None


def test_reason_phrases() -> None:
    """Known statuses get their phrase; others "Unknown"."""
    assert (reason_phrase(304), reason_phrase(599)) == ("Not Modified", "Unknown")
