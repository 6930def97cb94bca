"""The dependencies on websocket routes: a rejection closes the handshake with a code."""

from __future__ import annotations

import contextlib

from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect

from resilient_fastapi import Breaker, RateLimit, install, registry_for
from tests.integrations.fastapi.support import websocket_handshake


def make_app(accepted: list[str]) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.websocket("/limited", dependencies=[Depends(RateLimit("2/minute"))])
    async def limited(websocket: WebSocket) -> None:
        accepted.append("limited")
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()

    @app.websocket("/guarded", dependencies=[Depends(Breaker("feed"))])
    async def guarded(websocket: WebSocket) -> None:
        accepted.append("guarded")
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.receive_text()

    return app


async def test_connection_attempts_over_the_limit_are_closed_with_1008() -> None:
    accepted: list[str] = []
    app = make_app(accepted)
    answers = [await websocket_handshake(app, "/limited") for _ in range(3)]
    assert [answer["type"] for answer in answers] == ["websocket.accept"] * 2 + ["websocket.close"]
    assert answers[2]["code"] == 1008
    assert answers[2]["reason"] == "rate limit 2/minute exceeded"
    assert accepted == ["limited", "limited"]
    other_peer = await websocket_handshake(app, "/limited", peer="10.0.0.9")
    assert other_peer["type"] == "websocket.accept"  # counted per client address


async def test_an_open_circuit_closes_the_handshake_with_1013() -> None:
    accepted: list[str] = []
    app = make_app(accepted)
    assert (await websocket_handshake(app, "/guarded"))["type"] == "websocket.accept"
    registry_for(app).breaker("feed", {}).open()
    refused = await websocket_handshake(app, "/guarded")
    assert refused["type"] == "websocket.close"
    assert refused["code"] == 1013
    assert accepted == ["guarded"]
