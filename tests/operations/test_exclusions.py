"""Paths left alone: RESILIENT_HTTP_EXCLUDE_PATHS and ``exclude=`` bypass every step.

The issue: with ``RESILIENT_HTTP_CACHE_TTL=30`` a mounted ``/metrics`` was cached and
counted. An excluded request must reach the app as if no middleware were there: the app
runs every time, nothing is counted, no field is added, no breaker answers for it.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from resilient.breaker import CircuitBreaker
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware, Rule
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.support import Harness, Origin, Reply

#: The issue's environment: app-mode caching and a limit on every route.
ENV = {"RESILIENT_HTTP_CACHE_TTL": "30", "RESILIENT_HTTP_LIMITS": "2/minute"}


def _added_fields(response: httpx.Response) -> list[str]:
    """Fields only the middleware would add (the origin sends none of them)."""
    names = [name.lower() for name in response.headers]
    return [n for n in names if "ratelimit" in n or n in ("retry-after", "cache-control", "age")]


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics/x", "/healthz", "/readyz"])
def test_default_exclusions_are_neither_cached_nor_counted(harness: Harness, path: str) -> None:
    origin = Origin()
    http = harness.client(origin, env=ENV)
    responses = [http.get(path) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5  # over 2/minute, never a 429
    assert origin.calls == 5  # the app ran every time: nothing was cached
    assert all(_added_fields(r) == [] for r in responses)


def test_a_path_not_excluded_is_still_cached_and_counted(harness: Harness) -> None:
    origin = Origin()
    http = harness.client(origin, env=ENV)
    statuses = [http.get("/api").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert origin.calls == 1  # the second was a hit
    assert http.get("/metrics").status_code == 200  # the limit's counter is not the path's


def test_exclusion_wins_over_a_rule_naming_the_path(harness: Harness) -> None:
    origin = Origin()
    rules = [Rule("/metrics", limits="1/minute"), Rule("/**", limits="1/minute")]
    http = harness.client(origin, rules, env=ENV)
    assert [http.get("/metrics").status_code for _ in range(3)] == [200, 200, 200]
    assert origin.calls == 3


def test_an_empty_variable_excludes_nothing(harness: Harness) -> None:
    origin = Origin()
    http = harness.client(origin, env={**ENV, "RESILIENT_HTTP_EXCLUDE_PATHS": ""})
    statuses = [http.get("/metrics").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the behaviour, now only when asked for
    assert origin.calls == 1


def test_the_variable_replaces_the_default_list(harness: Harness) -> None:
    origin = Origin()
    env = {**ENV, "RESILIENT_HTTP_EXCLUDE_PATHS": "/internal/**, /ping"}
    http = harness.client(origin, env=env)
    assert [http.get("/internal/stats").status_code for _ in range(3)] == [200] * 3
    assert [http.get("/ping").status_code for _ in range(3)] == [200] * 3
    assert origin.calls == 6
    assert [http.get("/metrics").status_code for _ in range(3)] == [200, 200, 429]


def test_the_keyword_overrides_the_environment(harness: Harness) -> None:
    origin = Origin()
    settings = Settings.from_env(ENV)
    built: ResilientWSGIMiddleware | ResilientASGIMiddleware
    if harness.kind == "wsgi":
        built = ResilientWSGIMiddleware(origin.wsgi, settings=settings, backend=harness.memory,
                                        clock=harness.clock, exclude=["/status"])  # fmt: skip
    else:
        built = ResilientASGIMiddleware(origin.asgi, settings=settings,
                                        backend=harness.async_memory(), clock=harness.clock,
                                        exclude=["/status"])  # fmt: skip
    http = harness.mount(built)
    assert [http.get("/status").status_code for _ in range(3)] == [200] * 3
    assert [http.get("/metrics").status_code for _ in range(3)] == [200, 200, 429]
    assert origin.calls == 4  # /status three times, /metrics once (then a hit, then a 429)


def test_an_excluded_path_never_meets_the_breaker(harness: Harness) -> None:
    origin = Origin(Reply(b"down", status=500))
    env = {"RESILIENT_HTTP_CACHE": "0"}
    breaker = CircuitBreaker("upstream", fail_max=1, clock=harness.clock)
    http = harness.client(origin, [Rule("/**", breaker=breaker)], env=env)
    assert [http.get("/api").status_code for _ in range(2)] == [500, 503]
    assert [http.get("/health").status_code for _ in range(3)] == [500] * 3
    assert origin.calls == 4


def test_an_unsafe_method_on_an_excluded_path_goes_straight_to_the_app(harness: Harness) -> None:
    origin = Origin()
    http = harness.client(origin, env=ENV)
    assert [http.post("/metrics").status_code for _ in range(3)] == [200] * 3
    assert origin.calls == 3


def test_an_unusable_pattern_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RESILIENT_HTTP_EXCLUDE_PATHS"):
        Settings.from_env({"RESILIENT_HTTP_EXCLUDE_PATHS": "metrics"})
    with pytest.raises(ConfigurationError, match="exclude"):
        ResilientASGIMiddleware(Origin().asgi, settings=Settings.from_env({}), exclude=["metrics"])


def test_framework_config_takes_a_list() -> None:
    settings = Settings.from_env({}, config={"RESILIENT_HTTP_EXCLUDE_PATHS": ["/a", "/b/**"]})
    assert settings.http.exclude_paths == ("/a", "/b/**")


def test_websocket_handshakes_on_excluded_paths_are_not_counted() -> None:
    accepted: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.append(scope["path"])

    middleware = ResilientASGIMiddleware(app, settings=Settings.from_env(ENV))

    async def handshake(path: str) -> str:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "websocket.connect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": path, "root_path": "", "headers": [],
                 "client": ("10.0.0.1", 1), "query_string": b""}  # fmt: skip
        await middleware(scope, receive, send)
        return str(sent[-1]["type"])

    async def main() -> list[str]:
        return [await handshake(p) for p in ["/healthz/ws"] * 3 + ["/chat"] * 3]

    outcome = asyncio.run(main())
    assert outcome == ["websocket.accept"] * 5 + ["websocket.close"]
    assert accepted == ["/healthz/ws"] * 3 + ["/chat"] * 2
