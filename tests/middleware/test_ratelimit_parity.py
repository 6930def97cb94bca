"""One script, both shells, both paths: the same statuses, fields and bodies, byte for byte.

A route that only counts a limit is served inline by the shells (no exchange, no stages);
a route that also caches runs the rate-limit stage. The answers must not differ in any
way, whichever shell and whichever path; fail modes behave as in the decorator.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from resilient.middleware import Rule
from resilient.middleware.rules import Routes
from resilient.ratelimit import (
    Decision,
    LimitState,
    RateLimiter,
    parse_limits,
    rate_limit_headers,
)
from tests.middleware.support import Harness, Origin, Reply, header_lines, settings
from tests.support.clock import FakeClock

# Answers the cache cannot store: the staged path changes nothing but the route.
NOT_STORED = Reply(b'{"ok": true}', headers=[("Cache-Control", "no-store"), ("X-App", "1")])
STYLES = ["draft", "legacy", "both", "off"]


Answer = tuple[int, list[tuple[str, str]], bytes]


def script(client: httpx.Client, clock: FakeClock) -> list[Answer]:
    """Bursts, a HEAD, time passing: every answer, fields in order."""
    seen = []
    for step in range(9):
        method = "HEAD" if step == 4 else "GET"
        response = client.request(method, "/a", headers={"X-Forwarded-For": "192.0.2.1"})
        lines = [(n, v) for n, v in header_lines(response) if n not in ("date", "server")]
        seen.append((response.status_code, lines, response.content))
        clock.advance(11 if step == 5 else 0.25)
    return seen


@pytest.mark.parametrize("style", STYLES)
def test_shells_and_paths_answer_alike(portal: BlockingPortal, style: str) -> None:
    """WSGI and ASGI, inline and staged: identical answers for the same traffic."""
    env = {"RESILIENT_RATELIMIT_HEADERS": style}
    results = {}
    for kind in ("wsgi", "asgi"):
        for path, cache in (("lean", False), ("staged", True)):
            clock = FakeClock(1_700_000_000.0)
            harness = Harness(kind, clock, portal)
            rules = [Rule("/a", cache=cache, limits="3/10 seconds;5/minute")]
            client = harness.client(Origin(NOT_STORED), rules, env)
            results[(kind, path)] = script(client, clock)
    first = results[("wsgi", "lean")]
    assert [status for status, _, _ in first] == [200, 200, 200, 429, 429, 429, 200, 429, 429]
    for other in results.values():
        assert other == first


def test_lean_routes_skip_the_stages(harness: Harness) -> None:
    """Only routes that do nothing but count are served inline."""
    routes = Routes(
        [Rule("/lean", cache=False, limits="1/minute"), Rule("/cached", limits="1/minute"),
         Rule("/guarded", cache=False, limits="1/minute", breaker=True)],
        settings(),
    )  # fmt: skip
    assert routes.match("GET", "/lean").lean is routes.match("GET", "/lean").limit
    assert routes.match("GET", "/cached").lean is None
    assert routes.match("GET", "/guarded").lean is None


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("open", [200, 200, 200]), ("closed", [429, 429, 429]), ("local", [200, 200, 429])],
)
def test_fail_modes(
    harness: Harness, caplog: pytest.LogCaptureFixture, mode: str, expected: list[int]
) -> None:
    """With the backend refusing connections: open admits, closed refuses (Retry-After
    from the guard's cooldown), local counts in memory meanwhile."""
    caplog.set_level(logging.CRITICAL)
    for cache in (False, True):
        # Its own scope: the memory that fail mode local counts in is the process's.
        scope = f"{harness.kind}-{mode}-{cache}"
        limiter = RateLimiter("2/minute", url="redis://127.0.0.1:1/0", fail_mode=mode,
                              scope=scope, settings=settings())  # fmt: skip
        client = harness.client(Origin(NOT_STORED), [Rule("/a", cache=cache, limits=limiter)])
        responses = [client.get("/a") for _ in range(3)]
        assert [r.status_code for r in responses] == expected
        if mode == "closed":
            assert responses[0].headers["retry-after"] == "1"
        if mode == "open":
            assert "ratelimit" not in responses[-1].headers


def test_fields_match_rate_limit_headers(harness: Harness) -> None:
    """The route's precomputed fields equal what rate_limit_headers renders, for every
    style and shape of decision (one limit, several, breached, shadow)."""
    limits = parse_limits("3/second;10/minute;100/hour")

    def decision(*figures: tuple[int, float, float], shadow: bool = False) -> Decision:
        states = tuple(
            LimitState(limit, *figure) for limit, figure in zip(limits, figures, strict=True)
        )
        wait = max(figure[2] for figure in figures)
        return Decision(True, shadow, "k", states, "memory", wait)

    decisions = [
        decision((2, 0.4, 0.0), (9, 59.6, 0.0), (99, 3599.6, 0.0)),
        decision((2, 0.4, 0.0), (1, 30.2, 0.0), (50, 100.0, 0.0)),  # the minute is tightest
        decision((1, 0.9, 0.0), (1, 50.2, 0.0), (1, 50.2, 0.0)),  # ties: the longest reset
        decision((0, 0.5, 0.7), (4, 20.0, 0.0), (7, 20.0, 0.0), shadow=True),  # breached
        decision((10**16, 0.0, 0.0), (10**16, 0.0, 0.0), (10**16, 0.0, 0.0)),  # huge
        Decision(True, False, "k", (), "open"),
    ]
    for style in STYLES:
        env = {"RESILIENT_RATELIMIT_HEADERS": style}
        routes = Routes([Rule("/a", limits="3/second;10/minute;100/hour")], settings(env))
        limit = routes.match("GET", "/a").limit
        assert limit is not None
        for case in decisions:
            expected = rate_limit_headers(case, style=style, status=200, now=1000.5)
            assert limit.fields(case, lambda: 1000.5) == expected
            wire = [(n.lower().encode(), v.encode()) for n, v in expected]
            assert limit.wire_fields(case, lambda: 1000.5) == wire
