"""Route dependencies: ``Depends(RateLimit("5/second"))`` and ``Depends(Breaker("name"))``.

Both read what they need from FastAPI's injected connection and ``Response``, so the
endpoint's own signature stays as it is, and both work on websocket routes too: there a
rejection closes the handshake (1008 over a limit, 1013 while a circuit is open).
Everything async goes through ``redis.asyncio`` (``RateLimiter.ahit``,
``CircuitBreaker.aadmit``): no sync Redis call on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection
from starlette.responses import Response

from resilient.breaker import circuit_breaker
from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.ratelimit import Decision, RequestView, parse_limits, rate_limit_headers
from resilient.sansio import Headers, RequestInfo
from resilient_fastapi._headers import DECISIONS_KEY
from resilient_fastapi._problems import circuit_open, rate_limited
from resilient_fastapi._registry import registry_for

__all__ = ["Breaker", "RateLimit", "request_view"]


#: Close codes of RFC 6455 §7.4.1 for a refused websocket handshake.
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def request_view(request: HTTPConnection) -> RequestView:
    """The request as key functions read it (method, path, peer, headers).

    A websocket handshake is a ``GET``: that is its method here.
    """
    scope = request.scope
    client = request.client
    return RequestInfo(
        method=scope.get("method", "GET"),
        path=scope.get("path", ""),
        client=client.host if client else None,
        headers=Headers(request.headers.items()),
        scheme=request.url.scheme,
        host=request.headers.get("host", "").lower(),
        root_path=scope.get("root_path", ""),
        query=request.url.query,
    )


def _route_scope(request: HTTPConnection) -> str:
    # Counters are named after the endpoint, as @rate_limited names them after the
    # function: the same in every process, and apart from other endpoints' counters.
    endpoint = request.scope.get("endpoint")
    if endpoint is None:  # pragma: no cover - FastAPI always routes to an endpoint
        return str(request.scope.get("path", ""))
    return f"{endpoint.__module__}.{endpoint.__qualname__}"


class RateLimit:
    """A dependency rate-limiting a route: ``dependencies=[Depends(RateLimit("5/second"))]``.

    Each request is counted (all limits or none) with ``RateLimiter.ahit``. Over the
    limit, the endpoint does not run: a 429 with ``Retry-After`` and the rate-limit
    headers (a 503 when ``RESILIENT_RATELIMIT_FAIL_MODE=closed`` and the backend is
    down), as problem+json once :func:`~resilient_fastapi.install` ran. Allowed responses
    get the rate-limit headers too.

    Args:
        limits: limit strings (``"5/second"``, ``"10/second;500/hour"``); ``None`` for
            ``RESILIENT_RATELIMIT_DEFAULT``.
        key: who a request counts against: a function of the request view
            (``resilient.ratelimit.by_api_key()``...). Default: the client IP, with
            forwarding headers believed only from ``RESILIENT_RATELIMIT_TRUSTED_PROXIES``.
        cost: units a request takes, or a function of the request view.
        name: for per-name settings (``RESILIENT_RATELIMIT__<NAME>__*``); routes using
            the same name share counts.
        scope: routes with the same scope share counts. Default: ``name``, else the
            endpoint's ``module.qualname`` (one counter per route, even when one
            ``RateLimit`` object guards several).
        exempt_when: a predicate of the request view; true skips the limit.
        **options: more :class:`resilient.ratelimit.RateLimiter` arguments
            (``strategy``, ``mode``, ``fail_mode``, ``url``, ``clock``...).

    Raises:
        ConfigurationError: unusable limits or cost, at once; unusable options, at the
            first request.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        limits: str | Sequence[str] | None = None,
        *,
        key: Callable[[RequestView], str] | None = None,
        cost: int | Callable[[RequestView], int] = 1,
        name: str | None = None,
        scope: str | None = None,
        exempt_when: Callable[[RequestView], bool] | None = None,
        **options: Any,
    ) -> None:
        if limits is not None:
            parse_limits(limits)
        if not callable(cost) and (isinstance(cost, bool) or not isinstance(cost, int) or cost < 1):
            raise ConfigurationError("cost", cost, "a whole number >= 1 or a function")
        self.limits = limits
        self.key = key
        self.cost = cost
        self.name = name
        self.scope = scope
        self.exempt_when = exempt_when
        self.options = options

    async def __call__(self, request: HTTPConnection, response: Response) -> None:
        registry = registry_for(request.app)
        seen = request_view(request)
        # Numbered before the exemption check: the order must not depend on requests.
        scope = self.scope or self.name or registry.route_scope(_route_scope(request), self)
        if self.exempt_when is not None and self.exempt_when(seen):
            return
        limiter = registry.limiter(
            (self, scope), limits=self.limits, name=self.name, scope=scope, **self.options
        )
        identity = (self.key or registry.client_key)(seen)
        units = self.cost(seen) if callable(self.cost) else self.cost
        decision = await limiter.ahit(identity, cost=units)
        style = registry.settings.ratelimit.headers
        recorded: list[Decision] | None = request.scope.get(DECISIONS_KEY)
        if recorded is not None:
            recorded.append(decision)  # the headers middleware adds the headers
        if not decision.allowed:
            if request.scope["type"] == "websocket":
                reason = f"rate limit {decision.limit} exceeded"
                raise WebSocketException(POLICY_VIOLATION, reason)
            headers = rate_limit_headers(decision, style=style, status=429)
            closed = decision.source == "closed"
            raise rate_limited(decision.limit, decision.retry_after, headers, closed=closed)
        if recorded is None:
            for field, value in rate_limit_headers(decision, style=style):
                response.headers[field] = value


def _status_of(error: BaseException) -> int | None:
    """The status an exception becomes, when FastAPI answers it with a status."""
    if isinstance(error, HTTPException):
        return error.status_code
    if isinstance(error, RequestValidationError):
        return 422
    if isinstance(error, RateLimitExceeded):
        return 429
    if isinstance(error, CircuitOpenError):
        return 503
    return None


class Breaker:
    """A dependency guarding a route with the app's circuit breaker ``name``.

    ``dependencies=[Depends(Breaker("payments"))]``. While the circuit is open the
    endpoint does not run: a 503 with ``Retry-After``. An exception from the endpoint
    counts as a failure, except client errors (an ``HTTPException`` below 500, a
    validation error, a rate limit), which count as successes; so does a 5xx status set
    on the injected ``Response``. (A ``Response`` object the endpoint returns is not
    seen by dependencies: raise ``HTTPException(503)`` rather than return a 5xx.)

    Args:
        name: the breaker's name; routes naming the same breaker share it.
        **options: :class:`resilient.breaker.CircuitBreaker` arguments (``fail_max``,
            ``reset_timeout``, ``clock``...); unset ones come from the settings
            (``RESILIENT_BREAKER__<NAME>__*`` too).

    Raises:
        ConfigurationError: an option value is unusable (checked now where it can be,
            else at the first request).

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, **options: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name", name, "a non-empty string")
        circuit_breaker(name, **options)  # checks the option values; builds nothing
        self.name = name
        self.options = options

    async def __call__(self, request: HTTPConnection, response: Response) -> AsyncIterator[None]:
        breaker = registry_for(request.app).breaker(self.name, self.options)
        try:
            permit = await breaker.aadmit()
        except CircuitOpenError as exc:
            if request.scope["type"] == "websocket":
                reason = f"circuit {self.name!r} is open"
                raise WebSocketException(TRY_AGAIN_LATER, reason) from None
            raise circuit_open(exc.retry_after) from None
        try:
            yield
        except BaseException as exc:
            status = _status_of(exc)
            # A client error says nothing about the upstream.
            if status is not None and status < 500:
                await breaker.arecord_success(permit)
            else:
                await breaker.arecord_failure(permit, exc)
            raise
        if (response.status_code or 200) >= 500:
            await breaker.arecord_failure(permit)
        else:
            await breaker.arecord_success(permit)
