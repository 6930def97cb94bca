"""Answers the middleware gives in the app's place: a 429 or a 503, as RFC 9457 problems.

A :class:`Rejection` says why a request was refused; :func:`problem_response` renders
the default answer, an ``application/problem+json`` body. The problem type of a 429 is
the one the IETF rate-limit headers draft registers (``quota-exceeded``, naming the
violated policies); a 503 from an open circuit is a plain ``about:blank`` problem, since
clients need nothing more than when to come back. Neither names routes, breakers or keys:
that is for logs, not for clients.

.. versionadded:: 0.1
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from resilient.sansio.http import RequestInfo, Response

__all__ = [
    "PROBLEM_JSON",
    "QUOTA_EXCEEDED",
    "Rejection",
    "is_failure",
    "problem_response",
    "with_fields",
    "without_body",
]

#: The media type of RFC 9457 problem details.
PROBLEM_JSON = "application/problem+json"
#: The problem type of a request over its quota (draft-ietf-httpapi-ratelimit-headers).
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

_TITLES = {429: "Too Many Requests", 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the middleware answers a request itself instead of calling the app.

    Attributes:
        status: 429 (over a rate limit) or 503 (the route's circuit is open).
        reason: ``"rate-limited"`` or ``"circuit-open"``.
        retry_after: seconds until the request could pass.
        request: the request refused.
        limit: the breached limit in ``limits``' syntax (``"5/minute"``), for a 429.
        policies: the names of the violated policies (``"5-in-60s"``), as the
            ``RateLimit-Policy`` field names them.
        breaker: the name of the open circuit, for a 503.

    .. versionadded:: 0.1
    """

    status: int
    reason: str
    retry_after: float
    request: RequestInfo
    limit: str = ""
    policies: tuple[str, ...] = ()
    breaker: str = ""


def problem_response(rejection: Rejection) -> Response:
    """The default answer to ``rejection``: an RFC 9457 ``application/problem+json`` body.

    The fields carry no ``Retry-After`` and no rate-limit fields: the middleware adds
    those to whatever answer it sends (see :func:`with_fields`).

    .. versionadded:: 0.1
    """
    wait = max(0, math.ceil(rejection.retry_after))  # as Retry-After counts
    problem: dict[str, object]
    if rejection.status == 429:
        limit = f"Rate limit {rejection.limit}" if rejection.limit else "A rate limit"
        problem = {
            "type": QUOTA_EXCEEDED,
            "title": _TITLES[429],
            "status": 429,
            "detail": f"{limit} exceeded; retry in {wait} s.",
            "violated-policies": list(rejection.policies),
        }
    else:
        problem = {
            "type": "about:blank",
            "title": _TITLES.get(rejection.status, "Service Unavailable"),
            "status": rejection.status,
            "detail": f"The service is temporarily unavailable; retry in {wait} s.",
        }
    body = json.dumps(problem, separators=(",", ":")).encode("utf-8")
    fields = (
        ("Content-Type", PROBLEM_JSON),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    )
    return Response(rejection.status, fields, body)


def with_fields(response: Response, fields: Iterable[tuple[str, str]]) -> Response:
    """``response`` with each of ``fields`` added, unless it already has that field.

    How the middleware's own fields (``Retry-After``, ``RateLimit``) reach an answer a
    custom factory built: the factory's own values win.
    """
    present = {name.lower() for name, _ in response.headers}
    added = tuple((name, value) for name, value in fields if name.lower() not in present)
    if not added:
        return response
    return Response(response.status, (*response.headers, *added), response.body)


def without_body(response: Response) -> Response:
    """``response`` as the answer to a HEAD request: the same fields, no body."""
    return Response(response.status, response.headers, b"")


def is_failure(status: int) -> bool:
    """Whether a response with ``status`` counts as a failure for a circuit breaker (5xx).

    .. versionadded:: 0.1
    """
    return status >= 500
