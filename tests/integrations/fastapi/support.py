"""Helpers for the FastAPI adapter tests: an httpx client over ASGI, a lifespan driver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

BASE_URL = "http://testserver"


@asynccontextmanager
async def client(
    app: ASGIApp, peer: str = "127.0.0.1", *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in process, from ``peer``.

    With ``raise_app_exceptions=False`` an unhandled exception is the 500 a server sends.
    """
    transport = httpx.ASGITransport(
        app, client=(peer, 40000), raise_app_exceptions=raise_app_exceptions
    )
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@asynccontextmanager
async def running(app: ASGIApp) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s lifespan as a server does (ASGI lifespan protocol); yields its state.

    A failed startup re-raises the app's exception.
    """
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    state: dict[str, Any] = {}
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
             "state": state}  # fmt: skip

    async def serve() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(serve())
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        await task  # raises what the startup raised
        raise AssertionError(f"startup failed: {started}")
    try:
        yield state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await task
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


def problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json body of ``response``, after checking its media type."""
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response.text)
    return body


async def websocket_handshake(app: ASGIApp, path: str, peer: str = "127.0.0.1") -> Message:
    """Open a websocket on ``app`` in process; the app's first answer (accept or close).

    After an accept the client closes at once, so the endpoint's receive loop ends.
    """
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver")], "client": (peer, 40000),
             "server": ("testserver", 80), "subprotocols": []}  # fmt: skip
    await inbox.put({"type": "websocket.connect"})

    async def serve() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(serve())
    answered = asyncio.create_task(outbox.get())
    await asyncio.wait({task, answered}, return_when=asyncio.FIRST_COMPLETED)
    if not answered.done():  # the app ended without answering: its error is the result
        answered.cancel()
        await task
        raise AssertionError("the app ended the websocket without accepting or closing")
    await inbox.put({"type": "websocket.disconnect", "code": 1000})
    await task
    return answered.result()
