"""One request's passage through the stages under ASGI: the app's head, what is held or
copied of its body, and the completion. Strictly private to :mod:`.asgi`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from resilient.middleware._common import CONDITIONAL_FIELDS
from resilient.middleware._drivers import run_async
from resilient.middleware._pipeline import (
    BodyMode,
    Exchange,
    body_phase,
    complete_phase,
    error_phase,
    head_phase,
    request_phase,
)
from resilient.middleware._types import Message, Receive, Scope, Send
from resilient.sansio.http import Response, ResponseHead

if TYPE_CHECKING:
    from resilient.middleware.asgi import ResilientASGIMiddleware

__all__ = ["Responder", "encoded", "send_response", "unconditional"]

logger = logging.getLogger("resilient.middleware")

_CONDITIONAL = frozenset(name.encode("latin-1") for name in CONDITIONAL_FIELDS)


def unconditional(scope: Scope, validators: Iterable[tuple[str, str]] = ()) -> Scope:
    """``scope`` without the validators the cache answers itself, with ``validators``
    (the stored response's, to revalidate it) in their place."""
    headers = [(name, value) for name, value in scope.get("headers", ())
               if name.lower() not in _CONDITIONAL]  # fmt: skip
    headers.extend(encoded(validators))
    return {**scope, "headers": headers}


def encoded(fields: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header fields as ASGI sends them: lower-case names, ISO-8859-1 bytes."""
    return [(name.lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
            for name, value in fields]  # fmt: skip


async def send_response(send: Send, response: Response) -> None:
    """Send a response the middleware made itself."""
    await send({"type": "http.response.start", "status": response.status,
                "headers": encoded(response.headers)})  # fmt: skip
    await send({"type": "http.response.body", "body": response.body})


class Responder:
    """One request's state: the app's head, what is held or copied, the completion."""

    __slots__ = ("app_start", "completed", "copy", "exchange", "head", "held", "holding",
                 "middleware", "receive", "replaced", "scope", "send", "size")  # fmt: skip

    def __init__(
        self,
        middleware: ResilientASGIMiddleware,
        exchange: Exchange,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.middleware = middleware
        self.exchange = exchange
        self.scope = scope
        self.receive = receive
        self.send = send
        self.app_start: Message | None = None
        self.head: ResponseHead | None = None
        self.holding = False
        self.replaced = False
        self.completed = False
        self.held: list[bytes] = []
        self.copy: list[bytes] | None = None
        self.size = 0

    async def run(self) -> None:
        exchange = self.exchange
        answer = await run_async(request_phase(exchange))
        if answer is not None:
            await self.respond(answer)
            await self.complete(None, None)
            await self.after()
            return
        scope = (
            unconditional(self.scope, exchange.validators) if exchange.unconditional else self.scope
        )
        try:
            await self.middleware.app(scope, self.receive, self.on_send)
        except Exception as exc:
            if self.head is not None:  # too late for another answer
                await self.complete(None, exc)
                raise
            fallback = await run_async(error_phase(exchange, exc))
            if fallback is None:
                await self.complete(None, exc)
                raise
            await self.respond(fallback)
            await self.complete(None, None)
            return
        except BaseException as exc:
            # Cancelled (the client went away) or exiting: no answer, but the stages
            # hear of the end (a breaker's permit goes back; it is no failure).
            await self.complete(None, exc)
            raise
        if self.holding:  # the app stopped before its last body message: pass on what it sent
            await self.release(more_body=True)
        await self.complete(None, None)

    async def respond(self, response: Response) -> None:
        await send_response(self.send, response)

    async def start(self) -> None:
        assert self.head is not None
        base: dict[str, Any] = dict(self.app_start or {"type": "http.response.start"})
        base.update(status=self.head.status, headers=encoded(self.head.headers))
        await self.send(base)

    async def complete(self, body: bytes | None, error: BaseException | None) -> None:
        if not self.completed:
            self.completed = True
            await run_async(complete_phase(self.exchange, body, error))

    async def after(self) -> None:
        if self.exchange.revalidate:
            try:
                await self.middleware._refresh(self.scope)
            except Exception:
                logger.debug("refreshing a stale response failed", exc_info=True)

    async def release(self, *, more_body: bool) -> None:
        """Stop holding: send the head and what is held, keep no copy."""
        self.holding = False
        await self.start()
        body, self.held = b"".join(self.held), []
        if body or not more_body:
            await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def on_send(self, message: Message) -> None:
        kind = message["type"]
        if self.replaced:
            return  # a replacement went out; the rest of the app's response is dropped
        if kind == "http.response.start":
            await self.on_start(message)
        elif kind == "http.response.body" and self.head is not None:
            await self.on_body(message)
        else:
            if self.holding:
                await self.release(more_body=True)
            await self.send(message)

    async def on_start(self, message: Message) -> None:
        self.app_start = message
        head = ResponseHead(int(message["status"]), [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in message.get("headers", ())])  # fmt: skip
        head, body = await run_async(head_phase(self.exchange, head))
        self.head = head
        if body is not None:
            self.replaced = True
            await self.respond(Response(head.status, tuple(head.headers), body))
            await self.complete(None, None)
            return
        mode = self.exchange.body_mode
        if message.get("trailers"):  # a body with trailers is never held or copied
            mode = min(mode, BodyMode.WATCH)
        if mode is BodyMode.BUFFER:
            self.holding = True
            return
        if mode is BodyMode.TEE:
            self.copy = []
        await self.start()

    async def on_body(self, message: Message) -> None:
        chunk = bytes(message.get("body", b""))
        more = bool(message.get("more_body", False))
        limit = self.exchange.body_limit
        self.size += len(chunk)
        if self.holding:
            self.held.append(chunk)
            if self.size > limit:
                await self.release(more_body=more)
                if not more:
                    await self.complete(None, None)
            elif not more:
                await self.send_held()
            return
        if self.copy is not None:
            if self.size <= limit:
                self.copy.append(chunk)
            else:
                self.copy = None
        await self.send(message)
        if not more:
            await self.complete(None if self.copy is None else b"".join(self.copy), None)

    async def send_held(self) -> None:
        assert self.head is not None
        self.holding = False
        body, self.held = b"".join(self.held), []
        head = self.head
        response = body_phase(self.exchange, Response(head.status, tuple(head.headers), body))
        self.head = response.head()
        await self.start()
        await self.send({"type": "http.response.body", "body": response.body})
        await self.complete(body, None)
