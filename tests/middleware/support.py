"""One origin, two shells: the app behind the middleware in tests, as WSGI and as ASGI.

An :class:`Origin` answers every request from one handler and counts the calls, so a
test states its app once and runs it under both middlewares. :class:`Harness` mounts it
behind :class:`ResilientWSGIMiddleware` (``wsgiref.validate`` on both sides) or
:class:`ResilientASGIMiddleware` (httpx's ASGI transport on a thread-hosted event loop),
and hands back an ``httpx.Client`` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from wsgiref.validate import validator

import fakeredis
import httpx
from anyio.from_thread import BlockingPortal

from resilient.backends import AsyncBackend, SyncBackend
from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.config import Settings
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware, Rule
from resilient.middleware._limits import RejectionFactory
from resilient.middleware._types import Receive, Scope, Send
from resilient.ratelimit import RateLimiter
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BASE_URL = "http://testserver"


@dataclass
class Seen:
    """A request as the origin received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What the origin answers. A list ``body`` is streamed chunk by chunk, without length."""

    body: bytes | list[bytes] = b"ok"
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "text/plain"


Handler = Callable[[Seen], Reply]


class Origin:
    """The app behind the middleware: one handler, every call recorded."""

    def __init__(self, handler: Handler | Reply | None = None) -> None:
        if handler is None:
            handler = Reply()
        self.handler: Handler = handler if callable(handler) else (lambda _seen: handler)
        self.seen: list[Seen] = []

    @property
    def calls(self) -> int:
        return len(self.seen)

    def _answer(self, seen: Seen) -> tuple[Reply, list[tuple[str, str]]]:
        self.seen.append(seen)
        reply = self.handler(seen)
        headers = list(reply.headers)
        if reply.content_type is not None:
            headers.append(("Content-Type", reply.content_type))
        if isinstance(reply.body, bytes) and reply.status not in (204, 304):
            headers.append(("Content-Length", str(len(reply.body))))
        return reply, headers

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        # Without a length (a chunked upload) the server ends the input at the body's end.
        body = stream.read(int(length)) if length else b"".join(iter(stream))
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        seen = Seen(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            headers,
            body,
        )
        reply, fields = self._answer(seen)
        start_response(f"{reply.status} X", fields)
        if isinstance(reply.body, bytes):
            return [reply.body] if reply.body else []
        return iter(list(reply.body))

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        seen = Seen(
            scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers, body
        )
        reply, fields = self._answer(seen)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in fields]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        if isinstance(reply.body, bytes):
            await send({"type": "http.response.body", "body": reply.body})
            return
        for chunk in reply.body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


class PortalTransport(httpx.BaseTransport):
    """httpx's ASGI transport driven from sync code, on one event loop in a thread."""

    def __init__(
        self, app: Callable[..., Any], portal: BlockingPortal, client: str = "127.0.0.1"
    ) -> None:
        self.transport = httpx.ASGITransport(app=app, client=(client, 123))
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the ASGI transport needs a body it can iterate asynchronously

        async def exchange() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            response = await self.transport.handle_async_request(request)
            body = await response.aread()
            return response.status_code, response.headers.raw, body

        status, headers, body = self.portal.call(exchange)
        # A stream, not content=: httpx would add a Content-Length the app never sent.
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` alone (the process environment is not read)."""
    return Settings.from_env(dict(env or {}))


@dataclass
class Harness:
    """Mounts an origin behind one of the two shells."""

    kind: str
    clock: FakeClock
    portal: BlockingPortal
    memory: MemoryBackend = field(init=False)

    def __post_init__(self) -> None:
        self.memory = MemoryBackend(clock=self.clock)

    def middleware(
        self,
        origin: Origin,
        rules: Sequence[Rule] = (),
        env: Mapping[str, str] | None = None,
        backend: SyncBackend | AsyncBackend | None = None,
        on_reject: RejectionFactory | None = None,
    ) -> ResilientWSGIMiddleware | ResilientASGIMiddleware:
        if self.kind == "wsgi":
            sync = backend if backend is not None else self.memory
            assert isinstance(sync, SyncBackend)
            return ResilientWSGIMiddleware(
                validator(origin.wsgi),
                rules,
                settings=settings(env),
                backend=sync,
                clock=self.clock,
                on_reject=on_reject,
            )
        asynchronous = backend if backend is not None else self.async_memory()
        assert isinstance(asynchronous, AsyncBackend)
        return ResilientASGIMiddleware(origin.asgi, rules, settings=settings(env),
                                       backend=asynchronous, clock=self.clock,
                                       on_reject=on_reject)  # fmt: skip

    def async_memory(self) -> AsyncMemoryBackend:
        """The asyncio view of :attr:`memory` (the same entries, the same clock)."""
        return AsyncMemoryBackend(sync=self.memory)

    def fakeredis(self, server: fakeredis.FakeServer) -> RedisBackend | AsyncRedisBackend:
        """A Redis backend over ``server`` (fakeredis), of the kind this harness's shell
        takes: a test reads the same server through ``fakeredis.FakeRedis(server=...)``."""
        if self.kind == "wsgi":
            return RedisBackend(fakeredis.FakeRedis(server=server))
        return AsyncRedisBackend(fakeredis.FakeAsyncRedis(server=server))

    def limiter(self, limits: str, **options: Any) -> RateLimiter:
        """A rate limiter counting in :attr:`memory`, usable by this harness's shell."""
        if self.kind == "wsgi":
            return RateLimiter(limits, backend=self.memory, settings=settings(), **options)
        return RateLimiter(limits, async_backend=self.async_memory(), settings=settings(),
                           **options)  # fmt: skip

    def client(
        self,
        origin: Origin,
        rules: Sequence[Rule] = (),
        env: Mapping[str, str] | None = None,
        backend: SyncBackend | AsyncBackend | None = None,
        on_reject: RejectionFactory | None = None,
    ) -> httpx.Client:
        return self.mount(self.middleware(origin, rules, env, backend, on_reject))

    def mount(
        self, app: ResilientWSGIMiddleware | ResilientASGIMiddleware, client: str = "127.0.0.1"
    ) -> httpx.Client:
        """A client of ``app`` whose requests come from the socket address ``client``."""
        transport: httpx.BaseTransport
        if isinstance(app, ResilientWSGIMiddleware):
            transport = httpx.WSGITransport(app=validator(app), remote_addr=client)
        else:
            transport = PortalTransport(app, self.portal, client)
        return httpx.Client(transport=transport, base_url=BASE_URL)


def header_lines(response: httpx.Response) -> list[tuple[str, str]]:
    """Every field line of a response, names lower-cased, in order."""
    return [
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in response.headers.raw
    ]


__all__ = [
    "BASE_URL",
    "Harness",
    "Origin",
    "PortalTransport",
    "Reply",
    "Seen",
    "header_lines",
    "settings",
]
