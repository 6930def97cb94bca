"""The ASGI shell: translates ASGI 3 to and from the pipeline, and nothing more.

Scopes other than ``http`` go to the app untouched (a ``websocket`` handshake on a route
with a rate limit is counted first), and so do requests no stage takes part in. Request
bodies are never read: the app gets the server's ``receive``. All state of a request
lives in a responder made for it (the pattern of starlette's ``GZipMiddleware``, see
:mod:`._asgi_responder`), never on the middleware. A request whose route only counts a
rate limit is served inline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import cast

from resilient.backends import backend_from_settings
from resilient.backends.base import AsyncBackend, Clock
from resilient.config import Settings
from resilient.middleware._asgi_responder import (
    Responder,
    encoded,
    send_response,
    unconditional,
)
from resilient.middleware._common import build_pipeline
from resilient.middleware._limits import RejectionFactory, RouteLimit
from resilient.middleware._types import ASGIApp, Message, Receive, Scope, Send
from resilient.middleware.rules import Rule
from resilient.sansio.http import Headers, RequestInfo

__all__ = ["ResilientASGIMiddleware", "request_from_scope"]


def _route_path(path: str, root_path: str) -> str:
    # The path the app routes on: without the mount point, as starlette reads it.
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest.startswith("/"):
            return rest
    return path


def _target(scope: Scope) -> tuple[str, str]:
    # Method and routing path: all that matching a route needs.
    path = scope.get("path", "")
    root_path = scope.get("root_path", "")
    return str(scope.get("method", "GET")).upper(), _route_path(
        path, root_path
    ) if root_path else path


def request_from_scope(scope: Scope) -> RequestInfo:
    """The request an ASGI ``http`` scope describes.

    .. versionadded:: 0.1
    """
    return _request(scope, *_target(scope))


def _request(scope: Scope, method: str, path: str) -> RequestInfo:
    raw = tuple(scope.get("headers", ()))
    headers = Headers.from_bytes(raw)  # decoded when a feature reads them
    host = ""
    for name, value in raw:
        if name == b"host" or name.lower() == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] is not None else ""
    client = scope.get("client")
    query = scope.get("query_string", b"")
    # Positional: every request pays for this call, and keywords cost more.
    return RequestInfo(method, path, str(client[0]) if client else None, headers,
                       scope.get("scheme", "http"), host.lower(), scope.get("root_path", "") or "",
                       bytes(query).decode("latin-1") if query else "")  # fmt: skip


def _limit_key(limit: RouteLimit, scope: Scope) -> tuple[RequestInfo | None, str]:
    # The request is described only when the key needs more than the peer.
    if limit.of_peer is not None:
        client = scope.get("client")
        return None, limit.of_peer(str(client[0]) if client else None)
    request = request_from_scope(scope)
    return request, limit.key(request)


def _adding(send: Send, fields: list[tuple[bytes, bytes]]) -> Send:
    """``send``, adding ``fields`` to the response's head."""
    if not fields:
        return send

    def send_with_fields(message: Message) -> Awaitable[None]:
        # Not a coroutine: it hands back send's awaitable, so no frame is added per message.
        if message["type"] == "http.response.start":
            # A new list: the app's may be a response object's own, sent again later.
            message["headers"] = [*message.get("headers", ()), *fields]
        return send(message)

    return send_with_fields


class ResilientASGIMiddleware:
    """Response caching (RFC 9111 shared cache), rate limits and circuit breakers per
    route, for any ASGI app.

    Args:
        app: the ASGI application.
        rules: rules per route; the first that matches applies (see
            :mod:`resilient.middleware.rules`).
        settings: defaults for what the rules leave open (read from the environment
            when not given).
        backend: an asyncio backend for stored responses; by default the one the
            settings name (``RESILIENT_HTTP_URL``, else ``RESILIENT_BACKEND_URL``).
            Rate limits count there too when it is given (otherwise where
            ``RESILIENT_RATELIMIT_URL`` says).
        clock: wall-clock seconds since the epoch; ``Date``, ``Age`` and freshness are
            counted with it. An injected clock also times rate-limit windows and the
            breakers the middleware builds, so tests move time everywhere at once.
        on_reject: builds the answer to a refused request (a 429 over a rate limit, a
            503 while a circuit is open) from a :class:`~resilient.sansio.Rejection`;
            ``Retry-After`` and the rate-limit fields are added unless it sets them.
            Default: an RFC 9457 ``application/problem+json`` body.
        hmac_key: signs every stored response; a record failing verification (altered
            or forged in Redis, or copied under another key) is a miss. Default:
            ``RESILIENT_HTTP_CACHE_HMAC_KEY``, else ``RESILIENT_CACHE_HMAC_KEY``; the
            algorithm is ``RESILIENT_CACHE_HMAC_ALGORITHM``.
        exclude: path patterns left alone, in the syntax of rule paths: requests there
            go to the app as if there were no middleware (no cache, limits or breaker,
            whatever rule matches). Default: ``RESILIENT_HTTP_EXCLUDE_PATHS``
            (``/metrics/**``, ``/health/**``, ``/healthz/**``, ``/livez/**``,
            ``/readyz/**``); ``()`` for none.

    Raises:
        ConfigurationError: a rule, policy or setting is unusable.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        app: ASGIApp,
        rules: Sequence[Rule] = (),
        *,
        settings: Settings | None = None,
        backend: AsyncBackend | None = None,
        clock: Clock = time.time,
        on_reject: RejectionFactory | None = None,
        hmac_key: str | bytes | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        settings = Settings.from_env() if settings is None else settings
        given = backend is not None
        if backend is None:
            built = backend_from_settings(settings, "http", asyncio=True, clock=clock,
                                          max_entries=settings.http.cache_max_entries)  # fmt: skip
            backend = cast(AsyncBackend, built)
        self.app = app
        self.backend = backend
        self._pipeline = build_pipeline(rules, settings, backend, clock, asynchronous=True,
                                        given=given, on_reject=on_reject,
                                        hmac_key=hmac_key, exclude=exclude)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            limited = scope["type"] == "websocket" and self._pipeline.gate is not None
            if limited and await self._refuse_websocket(scope, receive, send):
                return
            await self.app(scope, receive, send)
            return
        pipeline = self._pipeline
        method, path = _target(scope)
        route, limit = pipeline.lean(method, path)
        request = None
        if limit is None:
            request = _request(scope, method, path)
            exchange = pipeline.begin(request, route=route)
            if exchange is None:
                await self.app(scope, receive, send)
                return
            limit = exchange.counting_only()
            if limit is None:
                await Responder(self, exchange, scope, receive, send).run()
                return
        # Lean: counting the limit is all there is to do, so do it inline, as its stage
        # would (no stage, no flow). Every call saved here shows: this runs on each
        # request of a limited route.
        if request is None and limit.of_peer is not None:  # the key needs the peer only
            client = scope.get("client")
            key = limit.of_peer(str(client[0]) if client else None)
        else:
            request = request or request_from_scope(scope)
            key = limit.key(request)
        decision = limit.limiter.hit(key) if limit.local else await limit.limiter.ahit(key)
        gate = pipeline.gate
        assert gate is not None
        if not decision.allowed:
            answer = gate.answer(limit, request or request_from_scope(scope), decision)
            assert answer is not None
            await send_response(send, answer)
            return
        await self.app(scope, receive, _adding(send, limit.wire_fields(decision, gate.clock)))

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Count a websocket handshake against its route's limit; refuse it when over.

        The refusal is the 429 itself where the server can send one (the
        ``websocket.http.response`` extension), else a close with code 1008 (policy
        violation) before the socket is accepted, which servers turn into a 403.
        """
        limit = self._pipeline.routes.match("GET", _target(scope)[1]).limit
        if limit is None:
            return False
        request, key = _limit_key(limit, scope)
        decision = limit.limiter.hit(key) if limit.local else await limit.limiter.ahit(key)
        if decision.allowed:
            return False
        gate = self._pipeline.gate
        assert gate is not None
        answer = gate.answer(limit, request or request_from_scope(scope), decision)
        assert answer is not None
        await receive()  # the handshake: websocket.connect
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": answer.status,
                        "headers": encoded(answer.headers)})  # fmt: skip
            await send({"type": "websocket.http.response.body", "body": answer.body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
        return True

    async def aclose(self) -> None:
        """Release the backend's connections, and those of the limiters and breakers the
        middleware built (not those the rules gave), on the running event loop."""
        await self._pipeline.routes.aclose()
        await self.backend.aclose()

    async def _refresh(self, scope: Scope) -> None:
        """Run a request again, answer discarded, so the cache stores a fresh response."""
        fresh = unconditional(scope)
        exchange = self._pipeline.begin(request_from_scope(fresh), background=True)
        if exchange is None:  # pragma: no cover - the stale hit came through the same stages
            return
        finished = asyncio.Event()
        asked = False

        async def receive() -> Message:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()  # the "client" leaves once the response is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished.set()

        await Responder(self, exchange, fresh, receive, send).run()
