"""The WSGI shell: translates PEP 3333 to and from the pipeline, and nothing more.

A request no stage takes part in goes to the app untouched, and so does the response of
one whose stages need nothing of the body: the app's iterable, ``wsgi.file_wrapper``
included, reaches the server as it was. Otherwise the body is streamed through (or held,
when the cache wants to send an ETag it computes from it), and ``close()`` always reaches
the app's iterable, as PEP 3333 requires.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from resilient.backends import backend_from_settings
from resilient.backends.base import Clock, SyncBackend
from resilient.config import Settings
from resilient.middleware._common import build_pipeline, reason_phrase
from resilient.middleware._limits import RejectionFactory, RouteLimit
from resilient.middleware._wsgi_body import close_iterable
from resilient.middleware._wsgi_responder import Responder, Write, unconditional
from resilient.middleware.rules import Rule
from resilient.sansio.http import Headers, RequestInfo

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ResilientWSGIMiddleware", "request_from_environ"]

logger = logging.getLogger("resilient.middleware")


def _text(value: str) -> str:
    # WSGI carries bytes as latin-1 str; the path the app sees is their UTF-8 reading.
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def _fields(environ: WSGIEnvironment) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-"), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-"), value


def request_from_environ(environ: WSGIEnvironment) -> RequestInfo:
    """The request an ``environ`` describes.

    .. versionadded:: 0.1
    """
    # Header fields are read from a snapshot, when a feature first asks: the app may
    # change environ meanwhile, and most requests never need them all.
    snapshot = environ.copy()
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "")
        port, scheme = environ.get("SERVER_PORT", ""), environ.get("wsgi.url_scheme", "http")
        if port and (scheme, port) not in (("http", "80"), ("https", "443")):
            host = f"{host}:{port}"
    return RequestInfo(
        str(environ.get("REQUEST_METHOD", "GET")).upper(),
        _text(environ.get("PATH_INFO", "")),
        environ.get("REMOTE_ADDR") or None,
        Headers.deferred(lambda: _fields(snapshot)),
        environ.get("wsgi.url_scheme", "http"),
        str(host).lower(),
        _text(environ.get("SCRIPT_NAME", "")),
        environ.get("QUERY_STRING", ""),
    )


def _discard(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Write:
    return len


class ResilientWSGIMiddleware:
    """Response caching (RFC 9111 shared cache), rate limits and circuit breakers per
    route, for any WSGI app.

    Args:
        app: the WSGI application.
        rules: rules per route; the first that matches applies (see
            :mod:`resilient.middleware.rules`).
        settings: defaults for what the rules leave open (read from the environment
            when not given).
        backend: where responses are stored; by default the backend the settings name
            (``RESILIENT_HTTP_URL``, else ``RESILIENT_BACKEND_URL``).
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
        app: WSGIApplication,
        rules: Sequence[Rule] = (),
        *,
        settings: Settings | None = None,
        backend: SyncBackend | None = None,
        clock: Clock = time.time,
        on_reject: RejectionFactory | None = None,
        hmac_key: str | bytes | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        settings = Settings.from_env() if settings is None else settings
        given = backend is not None
        if backend is None:
            built = backend_from_settings(settings, "http", clock=clock,
                                          max_entries=settings.http.cache_max_entries)  # fmt: skip
            backend = cast(SyncBackend, built)
        self.app = app
        self.backend = backend
        self._pipeline = build_pipeline(rules, settings, backend, clock, asynchronous=False,
                                        given=given, on_reject=on_reject,
                                        hmac_key=hmac_key, exclude=exclude)  # fmt: skip

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        route, limit = self._pipeline.lean(method, _text(environ.get("PATH_INFO", "")))
        if limit is not None:
            return self._lean(limit, environ, start_response)
        request = request_from_environ(environ)
        exchange = self._pipeline.begin(request, route=route)
        if exchange is None:
            return self.app(environ, start_response)
        limit = exchange.counting_only()
        if limit is not None:
            return self._lean(limit, environ, start_response, request)
        return Responder(self, exchange, environ, start_response).respond()

    def _lean(
        self,
        limit: RouteLimit,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        request: RequestInfo | None = None,
    ) -> Iterable[bytes]:
        """A request whose route only counts a limit: what its stage would do, inline."""
        gate = self._pipeline.gate
        assert gate is not None
        if request is None and limit.of_peer is not None:  # the key needs the peer only
            key = limit.of_peer(environ.get("REMOTE_ADDR") or None)
        else:
            request = request or request_from_environ(environ)
            key = limit.key(request)
        decision = limit.limiter.hit(key)
        if not decision.allowed:
            answer = gate.answer(limit, request or request_from_environ(environ), decision)
            assert answer is not None
            start_response(f"{answer.status} {reason_phrase(answer.status)}", list(answer.headers))
            return [answer.body] if answer.body else []
        extra = gate.fields(limit, decision)
        if not extra:
            return self.app(environ, start_response)

        def start_with_fields(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Write:
            return start_response(status, [*headers, *extra], exc_info)

        return self.app(environ, start_with_fields)

    def close(self) -> None:
        """Release the backend's connections, and those of the limiters and breakers the
        middleware built (not those the rules gave)."""
        self._pipeline.routes.close()
        self.backend.close()

    def _refresh(self, environ: WSGIEnvironment) -> None:
        """Run a request again, answer discarded, so the cache stores a fresh response."""
        fresh = unconditional(environ)
        fresh.update({"wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"})
        exchange = self._pipeline.begin(request_from_environ(fresh), background=True)
        if exchange is None:  # pragma: no cover - the stale hit came through the same stages
            return
        body = Responder(self, exchange, fresh, _discard).respond()
        try:
            for _ in body:
                pass
        finally:
            close_iterable(body)
