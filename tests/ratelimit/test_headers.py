"""Header rendering: IETF draft fields (checked with an RFC 9651 parser), legacy, Retry-After."""

from __future__ import annotations

import dataclasses

import pytest

from resilient.backends import MemoryBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit import Decision, RateLimiter, rate_limit_headers, retry_after_value
from resilient.ratelimit.decision import LimitState
from resilient.ratelimit.policy import parse_limits
from tests.ratelimit.sfv import parse_list
from tests.support.clock import FakeClock


def limiter(limits: str, clock: FakeClock, **options: object) -> RateLimiter:
    return RateLimiter(
        limits,
        backend=MemoryBackend(clock=clock),
        strategy="fixed-window",
        settings=Settings.from_env({}),
        **options,  # type: ignore[arg-type]
    )


def test_draft_fields_parse_as_structured_field_lists(clock: FakeClock) -> None:
    """RateLimit-Policy names every limit; RateLimit the one with the fewest units left."""
    limits = limiter("10/second;500/hour", clock)
    for _ in range(3):
        decision = limits.hit("a")
    headers = dict(rate_limit_headers(decision, style="draft"))
    assert set(headers) == {"RateLimit-Policy", "RateLimit"}
    assert parse_list(headers["RateLimit-Policy"]) == [
        ("10-in-1s", {"q": 10, "w": 1}),
        ("500-in-3600s", {"q": 500, "w": 3600}),
    ]
    assert parse_list(headers["RateLimit"]) == [("10-in-1s", {"r": 7, "t": 1})]


def test_all_limits_lists_every_current_state(clock: FakeClock) -> None:
    """all_limits=True reports each limit, closest to rejecting first."""
    limits = limiter("10/second;12/hour", clock)
    for _ in range(9):
        decision = limits.hit("a")
        clock.advance(1)
    headers = dict(rate_limit_headers(decision, all_limits=True))
    assert parse_list(headers["RateLimit"]) == [
        ("12-in-3600s", {"r": 3, "t": 3592}),
        ("10-in-1s", {"r": 9, "t": 1}),
    ]


def test_rejection_reports_the_breached_limit_and_retry_after(clock: FakeClock) -> None:
    """On 429: t agrees with Retry-After, which is an integer rounded up."""
    limits = limiter("2/minute;100/hour", clock)
    limits.hit("a")
    clock.advance(20.5)
    limits.hit("a")
    decision = limits.hit("a")
    assert not decision.allowed
    headers = rate_limit_headers(decision, style="both", status=429, now=1_700_000_000.2)
    values = dict(headers)
    assert parse_list(values["RateLimit"]) == [("2-in-60s", {"r": 0, "t": 40})]
    assert values["Retry-After"] == "40"  # 39.5 s and a millisecond, rounded up
    assert values["X-RateLimit-Limit"] == "2"
    assert values["X-RateLimit-Remaining"] == "0"
    assert values["X-RateLimit-Reset"] == str(1_700_000_000 + 40)
    assert [name for name, _ in headers].count("Retry-After") == 1


@pytest.mark.parametrize("status", [200, 201, 304, 400, 404, 500])
def test_retry_after_only_on_429_and_503(status: int, clock: FakeClock) -> None:
    """Even for a rejected decision, Retry-After is never sent with other statuses."""
    limits = limiter("1/minute", clock)
    limits.hit("a")
    decision = limits.hit("a")
    assert "Retry-After" not in dict(rate_limit_headers(decision, status=status))
    assert "Retry-After" in dict(rate_limit_headers(decision, status=503))


def test_retry_after_is_never_sent_for_an_admitted_call(clock: FakeClock) -> None:
    """An allowed decision has nothing to wait for, even on a 429 from elsewhere."""
    decision = limiter("5/minute", clock).hit("a")
    assert "Retry-After" not in dict(rate_limit_headers(decision, status=429))


def test_styles(clock: FakeClock) -> None:
    """off renders nothing, legacy only X-RateLimit-*, draft only the IETF fields."""
    decision = limiter("5/minute", clock).hit("a")
    assert rate_limit_headers(decision, style="off") == []
    legacy = dict(rate_limit_headers(decision, style="legacy", now=100.0))
    assert legacy == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": "160",
    }
    assert {name for name, _ in rate_limit_headers(decision)} == {"RateLimit", "RateLimit-Policy"}
    with pytest.raises(ConfigurationError, match="style"):
        rate_limit_headers(decision, style="x-draft")


def test_decisions_without_figures_render_nothing_but_closed_has_retry_after() -> None:
    """Mode off, exempt and fail-open add no headers; fail-closed (503) says when to retry."""
    assert rate_limit_headers(Decision(True, False, "a", (), "off"), status=200) == []
    closed = Decision(False, True, "a", (), "closed", 1.0, "5/minute")
    assert rate_limit_headers(closed, status=503) == [("Retry-After", "1")]


def test_several_decisions_merge_and_name_each_policy_once(clock: FakeClock) -> None:
    """A route limiter and an app limiter: one field each, duplicates collapsed."""
    route = limiter("5/minute", clock, scope="route").hit("a")
    app_limiter = limiter("5/minute;1000/day", clock, scope="app")
    for _ in range(3):
        app = app_limiter.hit("a")
    headers = dict(rate_limit_headers([route, app]))
    policies = parse_list(headers["RateLimit-Policy"])
    assert [name for name, _ in policies] == ["5-in-60s", "1000-in-86400s"]
    assert parse_list(headers["RateLimit"]) == [("5-in-60s", {"r": 2, "t": 60})]


def test_values_are_clamped_to_the_structured_field_range() -> None:
    """Integers have at most 15 digits; names are printable ASCII, quoted and escaped."""
    (big,) = parse_limits("999999999999999999/day")
    state = LimitState(big, 999_999_999_999_999_999, 1e20, 0.0)
    values = dict(rate_limit_headers(Decision(True, False, "a", (state,), "memory")))
    limit = 999_999_999_999_999
    assert parse_list(values["RateLimit"]) == [(big.name, {"r": limit, "t": limit})]
    odd = LimitState(dataclasses.replace(big, name='a "q" \\ é'), 1, 1.0, 0.0)
    values = dict(rate_limit_headers(Decision(True, False, "a", (odd,), "memory")))
    assert parse_list(values["RateLimit-Policy"])[0][0] == 'a "q" \\ ?'


def test_retry_after_value_rounds_up_and_is_never_negative() -> None:
    """RFC 9110 delay-seconds: a non-negative integer; 0.2 s must not become 0."""
    assert retry_after_value(0.2) == "1"
    assert retry_after_value(1.0) == "1"
    assert retry_after_value(1.001) == "2"
    assert retry_after_value(-3) == "0"
