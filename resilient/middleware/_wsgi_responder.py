"""One request's passage through the stages under WSGI: the app's head, its body, the
completion, and ``close()`` reaching the app's iterable. Strictly private to :mod:`.wsgi`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from resilient.middleware._common import CONDITIONAL_FIELDS, reason_phrase
from resilient.middleware._drivers import run_sync
from resilient.middleware._pipeline import (
    BodyMode,
    Exchange,
    complete_phase,
    error_phase,
    head_phase,
    request_phase,
)
from resilient.middleware._wsgi_body import AppBody, GeneratedBody, close_iterable
from resilient.sansio.http import Response, ResponseHead

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from resilient.middleware.wsgi import ResilientWSGIMiddleware

__all__ = ["Responder", "Write", "status_code", "unconditional"]

logger = logging.getLogger("resilient.middleware")

Write = Callable[[bytes], object]
"""The ``write()`` callable ``start_response`` hands back (PEP 3333)."""


def unconditional(
    environ: WSGIEnvironment, validators: Iterable[tuple[str, str]] = ()
) -> WSGIEnvironment:
    """``environ`` without the validators the cache answers itself, with ``validators``
    (the stored response's, to revalidate it) in their place."""
    dropped = {"HTTP_" + name.upper().replace("-", "_") for name in CONDITIONAL_FIELDS}
    fresh = {key: value for key, value in environ.items() if key not in dropped}
    for name, value in validators:
        fresh["HTTP_" + name.upper().replace("-", "_")] = value
    return fresh


def status_code(status: str) -> int:
    """The code of a WSGI status line; 0 when it has none."""
    head = status[:3]
    return int(head) if head.isascii() and head.isdigit() else 0


class Responder:
    """One request's state: the captured head, whether it was sent, the completion."""

    __slots__ = ("app_status", "completed", "decided", "environ", "exchange", "head",
                 "middleware", "sent", "server_write", "start_response", "status_line",
                 "wrote")  # fmt: skip

    def __init__(
        self,
        middleware: ResilientWSGIMiddleware,
        exchange: Exchange,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> None:
        self.middleware = middleware
        self.exchange = exchange
        self.environ = environ
        self.start_response = start_response
        self.head: ResponseHead | None = None
        self.status_line = ""
        self.app_status = 0
        self.decided = False
        self.sent = False
        self.wrote = False
        self.completed = False
        self.server_write: Write | None = None

    def respond(self) -> Iterable[bytes]:
        exchange = self.exchange
        answer = run_sync(request_phase(exchange))
        if answer is not None:
            return self.generated(answer)
        environ = (
            unconditional(self.environ, exchange.validators)
            if exchange.unconditional
            else self.environ
        )
        try:
            app_iter = self.middleware.app(environ, self.capture)
        except Exception as exc:
            return self.failed(exc)
        except BaseException as exc:  # exiting: no answer, but the stages hear of the end
            self.complete(None, exc)
            raise
        if self.head is None or self.sent:
            return AppBody(self, app_iter)
        replacement = self.decide()
        if replacement is not None:
            close_iterable(app_iter)
            return self.generated(replacement)
        if exchange.body_mode is BodyMode.PASS:
            self.send_head()
            return app_iter  # untouched: file wrappers and close() reach the server as they are
        return AppBody(self, app_iter)

    def capture(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Write:
        if exc_info is not None and exc_info[0] is not None and self.sent:
            return self.start_response(status, headers, exc_info)  # re-raises (PEP 3333)
        self.status_line, self.app_status = status, status_code(status)
        self.head = ResponseHead(self.app_status, list(headers))
        return self.write

    def write(self, data: bytes) -> None:
        # The legacy write() callable: the app streams past us, so nothing is kept.
        if not self.sent:
            self.wrote = True
            if not self.decided:
                self.decide()
            self.send_head()
        assert self.server_write is not None
        self.server_write(data)

    def decide(self) -> Response | None:
        """Run the head phase; a replacement response, or ``None`` to send the app's."""
        assert self.head is not None
        self.decided = True
        head, body = run_sync(head_phase(self.exchange, self.head))
        self.head = head
        return None if body is None else Response(head.status, tuple(head.headers), body)

    def send_head(self, head: ResponseHead | None = None) -> None:
        head = self.head if head is None else head
        assert head is not None
        if head.status == self.app_status and self.status_line:
            status = self.status_line
        else:
            status = f"{head.status} {reason_phrase(head.status)}"
        self.server_write = self.start_response(status, list(head.headers))
        self.sent = True

    def generated(self, response: Response) -> Iterable[bytes]:
        self.send_head(response.head())
        return GeneratedBody(self, response.body)

    def failed(self, error: Exception) -> Iterable[bytes]:
        fallback = run_sync(error_phase(self.exchange, error))
        if fallback is None:
            self.complete(None, error)
            raise error
        return self.generated(fallback)

    def complete(self, body: bytes | None, error: BaseException | None) -> None:
        if self.completed:
            return
        self.completed = True
        run_sync(complete_phase(self.exchange, None if self.wrote else body, error))

    def after(self) -> None:
        if self.exchange.revalidate:
            try:
                self.middleware._refresh(self.environ)
            except Exception:
                logger.debug("refreshing a stale response failed", exc_info=True)
