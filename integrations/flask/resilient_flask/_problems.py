"""Error responses: RFC 9457 problem details for rate-limit and circuit-breaker rejections.

A rejected request gets ``application/problem+json`` with the standard members (``type``
``about:blank``, ``title`` the status phrase, ``status``, ``detail``) and a
``retry_after`` extension member that repeats the ``Retry-After`` header in seconds.
Nothing internal (breaker names, client identities) is revealed to the client.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from flask import Response, request

from resilient.errors import CircuitOpenError, RateLimitExceeded
from resilient.ratelimit import Decision, retry_after_value

__all__ = [
    "DECISIONS_KEY",
    "PROBLEM_JSON",
    "circuit_open_response",
    "problem_response",
    "rate_limited_response",
]

PROBLEM_JSON = "application/problem+json"
#: Where the rate-limit decisions of a request are kept (``environ``), for the headers.
DECISIONS_KEY = "resilient.decisions"


def _seconds(text: str) -> str:
    return "1 second" if text == "1" else f"{text} seconds"


def problem_response(status: int, detail: str, retry_after: float, **members: object) -> Response:
    """A problem+json response with ``Retry-After`` (whole seconds, rounded up)."""
    wait = retry_after_value(retry_after)
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": f"{detail} Retry after {_seconds(wait)}.",
        **members,
        "retry_after": int(wait),
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers["Retry-After"] = wait
    return response


def _rejection(error: RateLimitExceeded) -> Decision | None:
    """The decision of this request that rejected it, if one of our limits did."""
    decisions: list[Decision] = request.environ.get(DECISIONS_KEY, [])
    for decision in decisions:
        if not decision.allowed:
            return decision
    return None


def rate_limited_response(error: RateLimitExceeded) -> Response:
    """429 for a request over a rate limit; 503 when the limiter's backend failed.

    With ``RESILIENT_RATELIMIT_FAIL_MODE=closed`` a request is rejected while the backend
    is down; that is the server's trouble, not the client's, hence a 503.
    """
    rejection = _rejection(error)
    if rejection is not None and rejection.source == "closed":
        return problem_response(503, "Rate limiting is unavailable.", error.retry_after)
    return problem_response(
        429, f"Rate limit {error.limit} exceeded.", error.retry_after, limit=error.limit
    )


def circuit_open_response(error: CircuitOpenError) -> Response:
    """503 for a request a circuit breaker rejected."""
    return problem_response(503, "The service is temporarily unavailable.", error.retry_after)
