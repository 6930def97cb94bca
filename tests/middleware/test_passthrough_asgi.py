"""What the ASGI shell leaves alone: other scopes, receive, streams, its own state."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from resilient.backends.memory import AsyncMemoryBackend
from resilient.middleware import ResilientASGIMiddleware
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.support import Harness, Origin, Reply, Seen, settings
from tests.support.clock import FakeClock

CACHEABLE = [("Cache-Control", "max-age=60")]


def test_request_bodies_reach_the_app_intact(harness: Harness) -> None:
    """A large request body arrives byte for byte, on cached routes too."""

    def handler(seen: Seen) -> Reply:
        return Reply(hashlib.sha256(seen.body).hexdigest().encode(), headers=CACHEABLE)

    client = harness.client(Origin(handler))
    payload = bytes(range(256)) * 4096
    digest = hashlib.sha256(payload).hexdigest()
    assert client.post("/upload", content=payload).text == digest
    assert client.put("/upload", content=iter([payload[:1000], payload[1000:]])).text == digest


def asgi_middleware(app: Any, clock: FakeClock) -> ResilientASGIMiddleware:
    return ResilientASGIMiddleware(
        app, settings=settings(), backend=AsyncMemoryBackend(clock=clock), clock=clock
    )


def http_scope(method: str = "GET", path: str = "/a", **extra: Any) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("10.0.0.1", 5),
        "server": ("testserver", 80),
        **extra,
    }


@pytest.mark.parametrize("kind", ["websocket", "lifespan"])
async def test_other_scopes_are_passed_untouched(clock: FakeClock, kind: str) -> None:
    """websocket and lifespan scopes reach the app with the very same scope and channels."""
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": f"{kind}.connect"}

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": kind, "asgi": {"version": "3.0"}, "path": "/ws", "headers": []}
    await asgi_middleware(app, clock)(scope, receive, send)
    assert seen == [(scope, receive, send)]


async def test_receive_is_the_servers_own(clock: FakeClock) -> None:
    """The app gets the server's receive: request bodies are never read or buffered."""
    received: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(receive)
        await send({"type": "http.response.start", "status": 200, "headers": CACHE_BYTES})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> Message:
        raise AssertionError("the middleware must not read the body")

    async def send(message: Message) -> None:
        return None

    middleware = asgi_middleware(app, clock)
    await middleware(http_scope("POST"), receive, send)
    await middleware(http_scope("GET"), receive, send)
    assert received == [receive, receive]


CACHE_BYTES = [(b"cache-control", b"max-age=60"), (b"content-type", b"text/plain")]
SSE_BYTES = [(b"content-type", b"text/event-stream")]


@pytest.mark.parametrize("headers", [SSE_BYTES, CACHE_BYTES], ids=["sse", "cacheable"])
async def test_streams_flow_chunk_by_chunk(clock: FakeClock, headers: list[Any]) -> None:
    """Each chunk reaches the server before the app produces the next: server-sent events
    are never buffered, and a cacheable stream is copied while it flows."""
    delivered = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for number in range(3):
            delivered.clear()
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % number, "more_body": True}
            )
            await asyncio.wait_for(delivered.wait(), timeout=2)
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("more_body"):
            delivered.set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    middleware = asgi_middleware(app, clock)
    await middleware(http_scope(), receive, send)
    assert [m.get("body") for m in sent[1:]] == [
        b"data: 0\n\n",
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"",
    ]
    cached = headers is CACHE_BYTES
    sent.clear()
    await middleware(http_scope(), receive, send)
    bodies = [m.get("body") for m in sent[1:]]
    assert bodies == ([b"data: 0\n\ndata: 1\n\ndata: 2\n\n"] if cached else bodies)
    assert len(sent) == (2 if cached else 5)


async def test_trailers_and_other_messages_pass(clock: FakeClock) -> None:
    """A response with trailers is never held; unknown message types are forwarded."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "trailers": True,
                "headers": [*CACHE_BYTES, (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    await asgi_middleware(app, clock)(http_scope(), receive, send)
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.trailers",
    ]
    assert sent[0]["trailers"] is True


async def test_an_app_that_stops_early_keeps_what_it_sent(clock: FakeClock) -> None:
    """An app that returns before its last body message: what it sent still goes out."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*CACHE_BYTES, (b"content-length", b"10")],
            }
        )
        await send({"type": "http.response.body", "body": b"half", "more_body": True})

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    middleware = asgi_middleware(app, clock)
    await middleware(http_scope(), receive, send)
    assert [m.get("body") for m in sent] == [None, b"half"]
    sent.clear()
    await middleware(http_scope(), receive, send)
    assert len(sent) == 2  # nothing was stored: the app ran again


async def test_no_state_lives_on_the_middleware(clock: FakeClock) -> None:
    """Concurrent requests each get their own answer; the middleware object never changes."""
    gate = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": CACHE_BYTES})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    middleware = asgi_middleware(app, clock)
    before = dict(vars(middleware))
    results: dict[str, bytes] = {}

    async def one(path: str) -> None:
        async def send(message: Message) -> None:
            if message["type"] == "http.response.body":
                results[path] = message["body"]

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        await middleware(http_scope(path=path), receive, send)

    tasks = [asyncio.create_task(one(f"/p{i}")) for i in range(50)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert results == {f"/p{i}": f"/p{i}".encode() for i in range(50)}
    assert vars(middleware) == before
