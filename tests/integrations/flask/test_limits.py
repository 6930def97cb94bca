"""``resilient.limit`` on Flask views: counts, headers, 429s, keys, proxies, backends."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask

from resilient.errors import ConfigurationError
from resilient.ratelimit import RequestView, by_header
from resilient_flask import Resilient
from tests.integrations.flask.support import hammer, make_app, problem
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer
from tests.support.sockets import refused_url


def limited_app(
    limits: str = "3/minute", config: dict[str, Any] | None = None, **options: Any
) -> Flask:
    app, resilient = make_app(config)

    @app.get("/search")
    @resilient.limit(limits, **options)
    def search() -> str:
        return "results"

    return app


def test_allowed_responses_carry_the_figures() -> None:
    client = limited_app("3/minute").test_client()
    responses = [client.get("/search") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.headers["RateLimit-Policy"] for r in responses} == {'"3-in-60s";q=3;w=60'}
    remaining = [r.headers["RateLimit"].split(";")[1] for r in responses]
    assert remaining == ["r=2", "r=1", "r=0"]
    assert all("Retry-After" not in r.headers for r in responses)


def test_over_the_limit_is_a_429_problem_with_headers() -> None:
    clock = FakeClock()
    client = limited_app("2/minute", strategy="fixed-window", clock=clock).test_client()
    client.get("/search")
    client.get("/search")
    clock.advance(15.5)  # the window ends 44.5 s later: Retry-After rounds up to 45
    response = client.get("/search")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "45"
    assert response.headers["RateLimit"] == '"2-in-60s";r=0;t=45'  # t agrees with Retry-After
    assert response.headers["RateLimit-Policy"] == '"2-in-60s";q=2;w=60'
    assert problem(response) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit 2/minute exceeded. Retry after 45 seconds.",
        "limit": "2/minute",
        "retry_after": 45,
    }
    clock.advance(45)
    assert client.get("/search").status_code == 200


def test_legacy_headers_from_app_config() -> None:
    app = limited_app("5/minute", {"RESILIENT_RATELIMIT_HEADERS": "legacy"})
    response = app.test_client().get("/search")
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    assert "RateLimit" not in response.headers


def test_exactly_the_limit_is_admitted_under_threads() -> None:
    """50 requests released at once through the whole WSGI stack: exactly 10 pass."""
    app = limited_app("10/minute")
    assert Counter(hammer(app, 50, "/search")) == {200: 10, 429: 40}


@pytest.mark.redis
def test_exactly_the_limit_is_admitted_on_redis(redis_server: RedisServer) -> None:
    """Two apps (two "processes") counting on one real Redis share one quota exactly."""
    config = {"RESILIENT_RATELIMIT_URL": redis_server.url, "RESILIENT_OP_TIMEOUT": "2s",
              "RESILIENT_CONNECT_TIMEOUT": "2s"}  # fmt: skip
    first, second = limited_app("10/minute", config), limited_app("10/minute", config)
    statuses = hammer(first, 25, "/search") + hammer(second, 25, "/search")
    assert Counter(statuses) == {200: 10, 429: 40}
    with redis_server.client() as client:
        keys = [key.decode() for key in client.keys("*")]
    assert len(keys) == 1
    # Counters are named after the view (escaped for the storage key), in every process.
    assert "tests.integrations.flask.test_limits.limited_app.%3Clocals%3E.search" in keys[0]
    Resilient.state(first).close()
    Resilient.state(second).close()


class TestClientIdentity:
    """The default key is the client IP; forwarding headers only from trusted proxies."""

    def statuses(self, app: Flask, peer: str, *forwarded: str) -> list[int]:
        client = app.test_client()
        return [
            client.get(
                "/search",
                environ_base={"REMOTE_ADDR": peer},
                headers={"X-Forwarded-For": hop} if hop else {},
            ).status_code
            for hop in forwarded
        ]

    def test_forwarding_headers_are_ignored_by_default(self) -> None:
        app = limited_app("2/minute")
        # A client inventing a new X-Forwarded-For each time is still one client.
        assert self.statuses(app, "203.0.113.9", "1.1.1.1", "2.2.2.2", "3.3.3.3") == [
            200,
            200,
            429,
        ]

    def test_trusted_proxies_from_app_config(self) -> None:
        app = limited_app("1/minute", {"RESILIENT_RATELIMIT_TRUSTED_PROXIES": "10.0.0.0/8"})
        proxy = "10.1.2.3"
        assert self.statuses(app, proxy, "203.0.113.7", "203.0.113.8") == [200, 200]
        # The client forged the leftmost hop; the proxy appended the real one.
        assert self.statuses(app, proxy, "198.51.100.1, 203.0.113.7") == [429]
        # A peer outside the trusted networks is the client, whatever it claims.
        assert self.statuses(app, "192.0.2.50", "203.0.113.99", "203.0.113.100") == [200, 429]


def test_key_cost_exemptions_and_shared_names() -> None:
    app, resilient = make_app()
    calls: list[str] = []

    def is_internal(request: RequestView) -> bool:
        return request.headers.get("x-internal") == "yes"

    @app.get("/a")
    @resilient.limit("4/minute", name="shared", key=by_header("x-user"), exempt_when=is_internal)
    def a() -> str:
        calls.append("a")
        return "a"

    @app.get("/b")
    @resilient.limit("4/minute", name="shared", key=by_header("x-user"), cost=2)
    def b() -> str:
        calls.append("b")
        return "b"

    client = app.test_client()
    alice, bob = {"X-User": "alice"}, {"X-User": "bob"}
    assert client.get("/b", headers=alice).status_code == 200  # 2 of alice's 4
    assert client.get("/a", headers=alice).status_code == 200  # 3
    assert client.get("/b", headers=alice).status_code == 429  # 2 more do not fit
    assert client.get("/a", headers=alice).status_code == 200  # 4
    assert client.get("/a", headers=alice).status_code == 429
    assert client.get("/b", headers=bob).status_code == 200
    exempt = client.get("/a", headers={**alice, "X-Internal": "yes"})
    assert exempt.status_code == 200
    assert "RateLimit" not in exempt.headers  # not counted, nothing to describe
    assert calls == ["b", "a", "a", "b", "a"]


def test_stacked_limits_are_described_together() -> None:
    """A view with an app-wide and a per-client limit: both policies in the headers."""
    app, resilient = make_app()

    @app.get("/export")
    @resilient.limit("3/hour", scope="exports", key=lambda request: "everyone")
    @resilient.limit("1/minute")
    def export() -> str:
        return "csv"

    client = app.test_client()
    first = client.get("/export")
    second = client.get("/export")  # the per-client limit rejects; the hourly one admitted
    policies = '"3-in-3600s";q=3;w=3600, "1-in-60s";q=1;w=60'
    assert first.headers["RateLimit-Policy"] == policies
    assert second.status_code == 429
    assert second.headers["RateLimit-Policy"] == policies
    assert second.headers["RateLimit"].startswith('"1-in-60s";r=0')
    assert problem(second)["limit"] == "1/minute"


def test_stacked_limits_of_one_window_count_each_request_once() -> None:
    """5/minute over 100/minute: five requests pass (a shared counter would admit 3)."""
    app, resilient = make_app()

    @app.get("/report")
    @resilient.limit("5/minute")
    @resilient.limit("100/minute")
    def report() -> str:
        return "ok"

    client = app.test_client()
    statuses = [client.get("/report").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_cost_can_depend_on_the_request() -> None:
    app = limited_app("10/minute", cost=lambda request: int(request.headers.get("x-items", "1")))
    client = app.test_client()
    assert client.get("/search", headers={"X-Items": "6"}).status_code == 200
    assert client.get("/search", headers={"X-Items": "5"}).status_code == 429
    assert client.get("/search", headers={"X-Items": "4"}).status_code == 200


def test_views_without_a_name_count_apart() -> None:
    app, resilient = make_app()

    @app.get("/one")
    @resilient.limit("1/minute")
    def one() -> str:
        return "one"

    @app.get("/two")
    @resilient.limit("1/minute")
    def two() -> str:
        return "two"

    client = app.test_client()
    assert [client.get(path).status_code for path in ("/one", "/two", "/one")] == [200, 200, 429]


def test_shadow_mode_admits_and_reports() -> None:
    client = limited_app("1/minute", {"RESILIENT_RATELIMIT_MODE": "shadow"}).test_client()
    statuses = [client.get("/search").status_code for _ in range(3)]
    last = client.get("/search")
    assert statuses == [200, 200, 200]
    assert last.status_code == 200
    assert last.headers["RateLimit"].startswith('"1-in-60s";r=0')


def test_fail_mode_closed_answers_503() -> None:
    """Rejected because the backend is down: the server's trouble, so a 503."""
    config = {"RESILIENT_RATELIMIT_URL": refused_url(), "RESILIENT_RATELIMIT_FAIL_MODE": "closed",
              "RESILIENT_GUARD_COOLDOWN": "7s"}  # fmt: skip
    response = limited_app("5/minute", config).test_client().get("/search")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    body = problem(response)
    assert body["detail"] == "Rate limiting is unavailable. Retry after 7 seconds."
    assert body["status"] == 503


def test_fail_mode_open_admits_without_headers() -> None:
    config = {"RESILIENT_RATELIMIT_URL": refused_url()}
    response = limited_app("5/minute", config).test_client().get("/search")
    assert response.status_code == 200
    assert "RateLimit" not in response.headers


def test_rate_limit_headers_are_never_stored_in_the_cache() -> None:
    """A cached copy is served without the headers of the client whose request made it."""
    app, resilient = make_app()
    calls: list[str] = []

    @app.get("/news")
    @resilient.limit("5/minute")
    @resilient.cached(60)
    def news() -> str:
        calls.append("news")
        return "news"

    client = app.test_client()
    miss = client.get("/news", environ_base={"REMOTE_ADDR": "203.0.113.1"})
    assert miss.get_data() == b"news"
    hit = client.get("/news", environ_base={"REMOTE_ADDR": "203.0.113.2"})
    assert hit.get_data() == b"news"
    assert "Age" in hit.headers
    assert miss.headers["RateLimit"].startswith('"5-in-60s";r=4')
    assert "RateLimit" not in hit.headers
    assert calls == ["news"]


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"limits": "often"}, "limits"),
        ({"limits": "5/minute", "cost": 0}, "cost"),
        ({"limits": "5/minute", "cost": True}, "cost"),
    ],
)
def test_bad_arguments_fail_at_decoration(arguments: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Resilient().limit(**arguments)


def test_bad_options_fail_at_the_first_request() -> None:
    app = limited_app("5/minute", strategy="leaky-bucket")
    app.testing = True
    with pytest.raises(ConfigurationError, match="strategy"):
        app.test_client().get("/search")


def test_limits_hold_when_dispatched_without_the_wsgi_stack() -> None:
    """Dispatching in a request context skips app.wsgi_app: no headers, same limits."""
    app = limited_app("1/minute")
    statuses = []
    for _ in range(2):
        with app.test_request_context("/search"):
            response = app.full_dispatch_request()
            statuses.append(response.status_code)
            assert "RateLimit" not in response.headers
    assert statuses == [200, 429]


def test_close_releases_and_rebuilds() -> None:
    app = limited_app("1/minute")
    client = app.test_client()
    assert client.get("/search").status_code == 200
    assert client.get("/search").status_code == 429
    Resilient.state(app).close()
    # In memory, the counts went with the closed backend; the app keeps serving.
    assert client.get("/search").status_code == 200
