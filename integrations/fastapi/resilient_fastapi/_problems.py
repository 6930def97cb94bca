"""Error responses: RFC 9457 problem details for rate-limit and circuit-breaker rejections.

The dependencies raise :class:`ProblemException`, an ``HTTPException``: without
:func:`~resilient_fastapi.install` FastAPI's own handler answers it (status, headers and
``{"detail": ...}``); with it, the body is ``application/problem+json`` with the standard
members (``type`` ``about:blank``, ``title``, ``status``, ``detail``) and a
``retry_after`` extension member. Nothing internal (breaker names, client identities)
reaches the client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from resilient.errors import CircuitOpenError, RateLimitExceeded
from resilient.ratelimit import retry_after_value

__all__ = [
    "PROBLEM_JSON",
    "ProblemException",
    "circuit_open",
    "handle_circuit_open",
    "handle_problem",
    "handle_rate_limit_exceeded",
    "rate_limited",
]

PROBLEM_JSON = "application/problem+json"


def _seconds(text: str) -> str:
    return "1 second" if text == "1" else f"{text} seconds"


class ProblemException(HTTPException):
    """An ``HTTPException`` that renders as RFC 9457 problem details once installed.

    Attributes:
        status_code: the HTTP status.
        detail: the human-readable explanation.
        headers: ``Retry-After`` and any rate-limit headers.
        members: extension members of the problem document.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        status_code: int,
        detail: str,
        retry_after: float,
        headers: Sequence[tuple[str, str]] = (),
        **members: object,
    ) -> None:
        wait = retry_after_value(retry_after)
        fields = {"Retry-After": wait}
        fields.update((name, value) for name, value in headers if name != "Retry-After")
        super().__init__(status_code, f"{detail} Retry after {_seconds(wait)}.", fields)
        self.members: dict[str, object] = {**members, "retry_after": int(wait)}

    def to_response(self) -> Response:
        """The problem+json response."""
        body = {
            "type": "about:blank",
            "title": HTTPStatus(self.status_code).phrase,
            "status": self.status_code,
            "detail": self.detail,
            **self.members,
        }
        return Response(
            json.dumps(body), self.status_code, headers=self.headers, media_type=PROBLEM_JSON
        )


def rate_limited(
    limit: str, retry_after: float, headers: Sequence[tuple[str, str]] = (), *, closed: bool
) -> ProblemException:
    """The rejection of a request over ``limit``: 429, or 503 when the backend failed.

    With ``RESILIENT_RATELIMIT_FAIL_MODE=closed`` requests are rejected while the backend
    is down; that is the server's trouble, not the client's, hence a 503.
    """
    if closed:
        return ProblemException(503, "Rate limiting is unavailable.", retry_after, headers)
    return ProblemException(429, f"Rate limit {limit} exceeded.", retry_after, headers, limit=limit)


def circuit_open(retry_after: float) -> ProblemException:
    """The rejection of a request a circuit breaker turned away: 503."""
    return ProblemException(503, "The service is temporarily unavailable.", retry_after)


async def handle_problem(request: Request, exc: Exception) -> Response:
    """Exception handler for :class:`ProblemException`."""
    assert isinstance(exc, ProblemException)
    return exc.to_response()


async def handle_rate_limit_exceeded(request: Request, exc: Exception) -> Response:
    """Exception handler for ``RateLimitExceeded`` raised anywhere (``@rate_limited``)."""
    assert isinstance(exc, RateLimitExceeded)
    return rate_limited(exc.limit, exc.retry_after, closed=False).to_response()


async def handle_circuit_open(request: Request, exc: Exception) -> Response:
    """Exception handler for ``CircuitOpenError`` raised anywhere (``@circuit_breaker``)."""
    assert isinstance(exc, CircuitOpenError)
    return circuit_open(exc.retry_after).to_response()
