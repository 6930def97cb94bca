"""The bodies the WSGI shell hands to the server: its own answers, and the app's wrapped.

Both make sure the exchange completes exactly once, whether the server iterates to the
end or closes early, and that the app's ``close()`` is always called (PEP 3333).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING

from resilient.middleware._drivers import run_sync
from resilient.middleware._pipeline import BodyMode, body_phase, error_phase
from resilient.sansio.http import Response

if TYPE_CHECKING:
    from resilient.middleware._wsgi_responder import Responder

__all__ = ["AppBody", "GeneratedBody", "close_iterable"]


class GeneratedBody:
    """A response the middleware made itself; ``close()`` finishes the exchange."""

    __slots__ = ("body", "responder")

    def __init__(self, responder: Responder, body: bytes) -> None:
        self.responder = responder
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        if self.body:
            yield self.body

    def close(self) -> None:
        self.responder.complete(None, None)
        self.responder.after()


def close_iterable(iterable: Iterable[bytes]) -> None:
    """Call the iterable's ``close()`` if it has one (PEP 3333)."""
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class AppBody:
    """The app's body on its way out, copied or held when a stage asked for it."""

    __slots__ = ("app_iter", "responder", "stream")

    def __init__(self, responder: Responder, app_iter: Iterable[bytes]) -> None:
        self.responder = responder
        self.app_iter = app_iter
        self.stream: Generator[bytes, None, None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        self.stream = self._chunks()
        return self.stream

    def close(self) -> None:
        try:
            if self.stream is not None:
                self.stream.close()
        finally:
            try:
                close_iterable(self.app_iter)
            finally:
                self.responder.complete(None, None)

    def _chunks(self) -> Generator[bytes, None, None]:
        responder = self.responder
        chunks = iter(self.app_iter)
        held: list[bytes] = []
        try:
            while responder.head is None:  # the app may call start_response lazily
                chunk = next(chunks, None)
                if chunk is None:
                    raise RuntimeError("the WSGI app ended without calling start_response")
                if chunk:
                    held.append(chunk)
        except Exception as exc:
            yield from self._fail(exc)
            return
        if not responder.decided:
            replacement = responder.decide()
            if replacement is not None:
                close_iterable(self.app_iter)
                responder.send_head(replacement.head())
                if replacement.body:
                    yield replacement.body
                responder.complete(None, None)
                return
        yield from self._send(held, chunks)

    def _fail(self, error: Exception) -> Iterator[bytes]:
        fallback = run_sync(error_phase(self.responder.exchange, error))
        if fallback is None:
            self.responder.complete(None, error)
            raise error
        self.responder.send_head(fallback.head())
        if fallback.body:
            yield fallback.body
        self.responder.complete(None, None)

    def _send(self, held: list[bytes], chunks: Iterator[bytes]) -> Iterator[bytes]:
        responder = self.responder
        exchange = responder.exchange
        mode, limit = exchange.body_mode, exchange.body_limit
        size = sum(len(chunk) for chunk in held)
        try:
            if mode is BodyMode.BUFFER and not responder.sent:
                over = size > limit
                if not over:
                    for chunk in chunks:
                        held.append(chunk)
                        size += len(chunk)
                        if size > limit:
                            over = True
                            break
                if not over:
                    yield from self._send_held(b"".join(held))
                    return
                mode = BodyMode.WATCH  # over the limit: stream the rest, keep nothing
            if not responder.sent:
                responder.send_head()
            keep = mode is BodyMode.TEE and size <= limit
            copy = list(held) if keep else []
            yield from held
            for chunk in chunks:
                if keep:
                    size += len(chunk)
                    keep = size <= limit
                    if keep:
                        copy.append(chunk)
                yield chunk
        except Exception as exc:
            responder.complete(None, exc)
            raise
        responder.complete(b"".join(copy) if keep else None, None)

    def _send_held(self, body: bytes) -> Iterator[bytes]:
        responder = self.responder
        assert responder.head is not None
        head = responder.head
        response = body_phase(responder.exchange, Response(head.status, tuple(head.headers), body))
        responder.send_head(response.head())
        if response.body:
            yield response.body
        responder.complete(body, None)
