"""WebSocket handshakes count against their route's limit (ASGI only; WSGI has none)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from resilient.backends.memory import AsyncMemoryBackend
from resilient.middleware import ResilientASGIMiddleware, Rule
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.support import settings
from tests.support.clock import FakeClock


class Accepting:
    """A websocket app that accepts every connection."""

    def __init__(self) -> None:
        self.accepted = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        self.accepted += 1
        await send({"type": "websocket.accept"})


def middleware(app: Accepting, rules: list[Rule]) -> ResilientASGIMiddleware:
    clock = FakeClock()
    backend = AsyncMemoryBackend(clock=clock)
    return ResilientASGIMiddleware(app, rules, settings=settings(), backend=backend, clock=clock)


async def connect(app: ResilientASGIMiddleware, path: str, **scope: Any) -> list[Message]:
    """One handshake; what the app (or the middleware) sent the server."""
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return incoming.pop() if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    full: Scope = {"type": "websocket", "path": path, "headers": [], "client": ("192.0.2.7", 1),
                   "server": ("t", 80), **scope}  # fmt: skip
    await app(full, receive, send)
    return sent


async def test_over_the_limit_the_handshake_is_closed_with_1008() -> None:
    """Limit 2: two connections are accepted, the third is refused before accept."""
    app = Accepting()
    limited = middleware(app, [Rule("/ws", limits="2/minute")])
    answers = [await connect(limited, "/ws") for _ in range(3)]
    assert [answer[0]["type"] for answer in answers] == [
        "websocket.accept",
        "websocket.accept",
        "websocket.close",
    ]
    assert answers[2][0]["code"] == 1008
    assert app.accepted == 2


async def test_with_the_http_response_extension_the_refusal_is_a_429() -> None:
    """Where the server can send an HTTP answer to a handshake, it is the 429 itself."""
    app = Accepting()
    limited = middleware(app, [Rule("/ws", limits="1/minute")])
    extensions: dict[str, object] = {"websocket.http.response": {}}
    await connect(limited, "/ws", extensions=extensions)
    start, body = await connect(limited, "/ws", extensions=extensions)
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 429)
    fields = dict(start["headers"])
    assert fields[b"retry-after"] == b"61"
    assert fields[b"content-type"] == b"application/problem+json"
    assert json.loads(body["body"])["status"] == 429


@pytest.mark.parametrize("rules", [[], [Rule("/ws")], [Rule("/other", limits="1/minute")]])
async def test_routes_without_limits_are_untouched(rules: list[Rule]) -> None:
    """No limit on the route: every handshake reaches the app."""
    app = Accepting()
    plain = middleware(app, rules)
    for _ in range(3):
        assert (await connect(plain, "/ws"))[0]["type"] == "websocket.accept"
    assert app.accepted == 3
