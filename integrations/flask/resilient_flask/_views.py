"""The per-view decorators: a rate limit, a circuit breaker, cacheable responses.

Each decorator finds its app's state through ``current_app`` at request time, so one
decorated view works in every app the extension set up (the factory pattern). Views may
be sync or ``async def``: they are called through ``current_app.ensure_sync``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.ratelimit import Decision, RequestView
from resilient.ratelimit.scopes import default_scope, mark_limited
from resilient.sansio import CacheRules, Headers, RequestInfo, plan_request
from resilient.sansio.caching import parse_vary
from resilient_flask._problems import DECISIONS_KEY
from resilient_flask._state import ResilientState

__all__ = ["CACHEABLE_STATUSES", "cache_control", "guard", "limited", "request_view", "state"]

F = TypeVar("F", bound=Callable[..., Any])
Cost = int | Callable[[RequestView], int]

#: Statuses :func:`cache_control` marks: successes and permanent redirects.
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308})
_DEFAULT_RULES = CacheRules()  # no cookies named: a request with a Cookie is personal


def state(app: Flask | None = None) -> ResilientState:
    """The extension's state for ``app`` (default: the current app).

    Raises:
        RuntimeError: the app was not set up with ``Resilient(app)`` / ``init_app``.
    """
    app = current_app if app is None else app
    found = app.extensions.get("resilient")
    if not isinstance(found, ResilientState):
        raise RuntimeError(
            f"app {app.name!r} uses resilient but was not set up: "
            "call Resilient(app) or resilient.init_app(app)"
        )
    return found


def request_view() -> RequestInfo:
    """The current request as key functions read it (method, path, peer, headers)."""
    return RequestInfo(
        method=request.method,
        path=request.path,
        client=request.remote_addr,
        headers=Headers(request.headers.items()),
        scheme=request.scheme,
        host=request.host.lower(),
        root_path=request.root_path,
        query=request.query_string.decode("latin-1"),
    )


def _call(view: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return current_app.ensure_sync(view)(*args, **kwargs)


def limited(
    view: F,
    limits: object,
    *,
    key: Callable[[RequestView], str] | None,
    cost: Cost,
    exempt_when: Callable[[RequestView], bool] | None,
    options: dict[str, Any],
) -> F:
    """``view`` counted against ``limits`` before it runs (see ``Resilient.limit``)."""
    owner = object()  # one limiter per decorated view and app
    if options.get("name") is None and options.get("scope") is None:
        # Counters are named after the view, as @rate_limited names them after the
        # function: the same in every process, and apart from other views' counters,
        # and from the other limits stacked on this view.
        options = {**options, "scope": default_scope(view)}

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        app_state = state()
        seen = request_view()
        if exempt_when is not None and exempt_when(seen):
            return _call(view, args, kwargs)
        limiter = app_state.limiter(owner, limits=limits, **options)
        identity = (key or app_state.client_key)(seen)
        units = cost(seen) if callable(cost) else cost
        decision = limiter.hit(identity, cost=units)
        recorded: list[Decision] | None = request.environ.get(DECISIONS_KEY)
        if recorded is not None:
            recorded.append(decision)
        decision.raise_for_limit()
        return _call(view, args, kwargs)

    mark_limited(wrapper, view)
    return cast(F, wrapper)


def _status_of(error: BaseException) -> int | None:
    """The status an exception becomes, when it is one Flask answers with a status."""
    if isinstance(error, HTTPException):
        return error.code
    if isinstance(error, RateLimitExceeded):
        return 429
    if isinstance(error, CircuitOpenError):
        return 503
    return None


def guard(view: F, name: str, options: dict[str, Any]) -> F:
    """``view`` guarded by this app's breaker ``name`` (see ``Resilient.breaker``)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        breaker = state().breaker(name, options)
        permit = breaker.admit()  # CircuitOpenError: the error handler answers 503
        try:
            response = current_app.make_response(_call(view, args, kwargs))
        except BaseException as exc:
            status = _status_of(exc)
            # A client error (abort(404), a rate limit) says nothing about the upstream.
            if status is not None and status < 500:
                breaker.record_success(permit)
            else:
                breaker.record_failure(permit, exc)
            raise
        if response.status_code >= 500:
            breaker.record_failure(permit)
        else:
            breaker.record_success(permit)
        return response

    return cast(F, wrapper)


def _seconds(argument: str, value: float | timedelta, minimum: float) -> int:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ConfigurationError(argument, value, "seconds (a number or a timedelta)")
    if not math.isfinite(seconds) or seconds < minimum:
        raise ConfigurationError(argument, value, f"a finite number of seconds >= {minimum:g}")
    return math.ceil(seconds)


def _shareable(response: Response) -> bool:
    """Whether a shared cache may hand this response to anyone: the middleware's rules.

    Credentials or cookies on the request, or a cookie set by the response, make it
    personal (Flask CVE-2023-30861 was a session cookie cached by a proxy); ``Vary: *``
    says no two requests are alike. Marking such a response ``max-age`` would invite a
    CDN to serve one user's page to the next.
    """
    if not plan_request(request_view(), _DEFAULT_RULES).store:
        return False
    return "Set-Cookie" not in response.headers and (
        parse_vary(response.headers.get("Vary")) is not None
    )


def cache_control(
    ttl: float | timedelta,
    stale_while_revalidate: float | timedelta = 0,
    stale_if_error: float | timedelta = 0,
) -> Callable[[F], F]:
    """A decorator marking ``view``'s responses fresh for ``ttl`` seconds.

    Raises:
        ConfigurationError: a duration is not a finite number of seconds.
    """
    parts = [f"max-age={_seconds('ttl', ttl, 1)}"]
    revalidate = _seconds("stale_while_revalidate", stale_while_revalidate, 0)
    if revalidate:
        parts.append(f"stale-while-revalidate={revalidate}")
    if_error = _seconds("stale_if_error", stale_if_error, 0)
    if if_error:
        parts.append(f"stale-if-error={if_error}")
    directives = ", ".join(parts)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            response = current_app.make_response(_call(view, args, kwargs))
            if (
                request.method in ("GET", "HEAD")
                and response.status_code in CACHEABLE_STATUSES
                and "Cache-Control" not in response.headers
                and _shareable(response)
            ):
                response.headers["Cache-Control"] = directives
            return response

        return cast(F, wrapper)

    return decorate
