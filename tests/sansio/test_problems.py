"""The middleware's own answers: RFC 9457 problems for 429 and 503, and their fields."""

from __future__ import annotations

import json

import pytest

from resilient.sansio.http import Headers, RequestInfo, Response
from resilient.sansio.problems import (
    PROBLEM_JSON,
    QUOTA_EXCEEDED,
    Rejection,
    is_failure,
    problem_response,
    with_fields,
    without_body,
)

REQUEST = RequestInfo("GET", "/a", "192.0.2.1", Headers())


def body(response: Response) -> dict[str, object]:
    fields = dict(response.headers)
    assert fields["Content-Type"] == PROBLEM_JSON
    assert fields["Content-Length"] == str(len(response.body))
    assert fields["Cache-Control"] == "no-store"
    parsed: dict[str, object] = json.loads(response.body)
    return parsed


def test_a_quota_exceeded_problem() -> None:
    """A 429 names the IETF quota-exceeded type, the limit and the violated policies;
    the wait is whole seconds, rounded up."""
    rejection = Rejection(429, "rate-limited", 12.01, REQUEST, limit="5/minute",
                          policies=("5-in-60s",))  # fmt: skip
    response = problem_response(rejection)
    assert response.status == 429
    assert body(response) == {
        "type": QUOTA_EXCEEDED,
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit 5/minute exceeded; retry in 13 s.",
        "violated-policies": ["5-in-60s"],
    }
    unnamed = problem_response(Rejection(429, "rate-limited", 0.0, REQUEST))
    assert body(unnamed)["detail"] == "A rate limit exceeded; retry in 0 s."


def test_a_service_unavailable_problem() -> None:
    """A 503 from an open circuit is a plain problem: nothing about the breaker leaks."""
    response = problem_response(Rejection(503, "circuit-open", 29.5, REQUEST, breaker="db"))
    assert body(response) == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable; retry in 30 s.",
    }
    assert b"db" not in response.body


def test_with_fields_keeps_what_the_response_has() -> None:
    """Fields are added unless the response has them already (any case)."""
    response = Response(429, (("retry-after", "7"),), b"x")
    added = with_fields(response, [("Retry-After", "9"), ("RateLimit", '"a";r=0;t=9')])
    assert added.headers == (("retry-after", "7"), ("RateLimit", '"a";r=0;t=9'))
    assert added.body == b"x"
    assert with_fields(response, [("Retry-After", "9")]) is response


def test_without_body() -> None:
    """A HEAD gets the fields and no body."""
    response = problem_response(Rejection(503, "circuit-open", 1.0, REQUEST))
    head = without_body(response)
    assert (head.status, head.headers, head.body) == (503, response.headers, b"")


@pytest.mark.parametrize(
    ("status", "failure"),
    [(200, False), (404, False), (499, False), (500, True), (503, True), (599, True)],
)
def test_failures_are_server_errors(status: int, failure: bool) -> None:
    """A breaker counts 5xx answers as failures, nothing else."""
    assert is_failure(status) is failure
