"""Protocol corners of the ASGI shell: mount points, held bodies, late failures."""

from __future__ import annotations

from typing import Any

import pytest

from resilient.backends.memory import AsyncMemoryBackend
from resilient.middleware import CachePolicy, ResilientASGIMiddleware, Rule
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.support import Origin, Reply, settings
from tests.support.clock import FakeClock


def scope(path: str = "/a", root_path: str = "") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "query_string": b"",
        "root_path": root_path,
        "headers": [(b"host", b"testserver")],
        "client": None,
        "server": None,
    }


async def run(app: Any, request_scope: Scope) -> list[Message]:
    sent: list[Message] = []
    pending = [{"type": "http.request", "body": b""}]

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(request_scope, receive, send)
    return sent


def asgi(
    app: Any, clock: FakeClock, rules: list[Rule] | None = None, env: dict[str, str] | None = None
) -> ResilientASGIMiddleware:
    return ResilientASGIMiddleware(
        app,
        rules or [],
        settings=settings(env),
        backend=AsyncMemoryBackend(clock=clock),
        clock=clock,
    )


async def test_asgi_mount_point_is_not_part_of_the_route(clock: FakeClock) -> None:
    """Under a root_path, rules match the path the app routes on; the URL keeps the mount
    point, whether the server put it in path or not."""
    origin = Origin(Reply(b"x"))
    middleware = asgi(origin.asgi, clock, [Rule("/items", cache=CachePolicy(ttl=30))])
    for path, root in (("/api/items", "/api"), ("/items", "/api"), ("/apiitems", "/api")):
        sent = await run(middleware, scope(path, root))
        fields = dict(sent[0]["headers"])
        assert (b"cache-control" in fields) is (path != "/apiitems"), path
    await run(middleware, scope("/api/items", "/api"))
    assert origin.calls == 2  # /api/items twice more from the cache; /apiitems uncached


async def test_asgi_refresh_that_waits_for_the_client_to_leave(clock: FakeClock) -> None:
    """A refresh whose app waits on receive() after answering is told the client left."""
    calls: list[int] = []

    async def app(request_scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(1)
        await receive()
        fields = [(b"cache-control", b"max-age=10, stale-while-revalidate=60")]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await send({"type": "http.response.body", "body": b"v%d" % len(calls)})
        assert (await receive())["type"] == "http.disconnect"

    middleware = asgi(app, clock)
    await run(middleware, scope())
    clock.advance(20)
    assert (await run(middleware, scope()))[1]["body"] == b"v1"
    assert (await run(middleware, scope()))[1]["body"] == b"v2"
    assert len(calls) == 2


async def test_asgi_held_body_then_another_message(clock: FakeClock) -> None:
    """A held response followed by an unknown message (a pathsend) is released first."""

    async def app(request_scope: Scope, receive: Receive, send: Send) -> None:
        fields = [(b"cache-control", b"max-age=60"), (b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await send({"type": "http.response.pathsend", "path": "/tmp/file"})

    sent = await run(asgi(app, clock), scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]


async def test_asgi_lying_content_length(clock: FakeClock) -> None:
    """A held body that outgrows the cap in its last message is sent whole, not stored."""
    calls: list[int] = []

    async def app(request_scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(1)
        fields = [(b"cache-control", b"max-age=60"), (b"content-length", b"4")]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        if len(calls) == 1:
            await send({"type": "http.response.body", "body": b"x" * 200})
        else:
            await send({"type": "http.response.body", "body": b"x" * 200, "more_body": True})
            await send({"type": "http.response.body", "body": b"y"})

    middleware = asgi(app, clock, env={"RESILIENT_HTTP_CACHE_MAX_BODY": "100"})
    sent = await run(middleware, scope())
    assert sent[1] == {"type": "http.response.body", "body": b"x" * 200, "more_body": False}
    sent = await run(middleware, scope())
    assert [m["body"] for m in sent[1:]] == [b"x" * 200, b"y"]
    assert len(calls) == 2


async def test_asgi_errors_after_the_head_propagate(clock: FakeClock) -> None:
    """An app failing midway through its body raises to the server; nothing is stored."""
    calls: list[int] = []

    async def app(request_scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(1)
        fields = [(b"cache-control", b"max-age=60, stale-if-error=60")]
        await send({"type": "http.response.start", "status": 200, "headers": fields})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("broken stream")

    middleware = asgi(app, clock)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken stream"):
            await run(middleware, scope())
    assert len(calls) == 2
