"""Setting an app up: settings precedence, per-app state, error handlers, cacheable views."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, Response, abort, request

from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.middleware import ResilientWSGIMiddleware
from resilient_flask import Resilient, ResilientState
from tests.integrations.flask.support import make_app, problem


def test_settings_precedence_argument_over_app_config_over_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each layer wins over the one below it, per setting."""
    monkeypatch.setenv("RESILIENT_RATELIMIT_HEADERS", "legacy")
    monkeypatch.setenv("RESILIENT_RATELIMIT_KEY_PREFIX", "from-env")
    monkeypatch.setenv("RESILIENT_BREAKER_FAIL_MAX", "7")
    config = {"RESILIENT_RATELIMIT_HEADERS": "both", "RESILIENT_BREAKER_FAIL_MAX": "4"}
    app, _ = make_app(config, breaker_fail_max=2)
    settings = Resilient.state(app).settings
    assert settings.ratelimit.key_prefix == "from-env"  # env only
    assert settings.ratelimit.headers == "both"  # app.config over env
    assert settings.breaker.fail_max == 2  # argument over app.config and env


def test_precedence_shows_in_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The header style the layers settle on is the one responses carry."""
    monkeypatch.setenv("RESILIENT_RATELIMIT_HEADERS", "off")
    outcomes = {}
    layers: tuple[tuple[str, dict[str, str], dict[str, Any]], ...] = (
        ("env", {}, {}),
        ("config", {"RESILIENT_RATELIMIT_HEADERS": "legacy"}, {}),
        ("argument", {"RESILIENT_RATELIMIT_HEADERS": "legacy"}, {"ratelimit_headers": "draft"}),
    )
    for label, config, overrides in layers:
        app, resilient = make_app(config, **overrides)

        @app.get("/")
        @resilient.limit("5/minute")
        def index() -> str:
            return "ok"

        headers = app.test_client().get("/").headers
        outcomes[label] = sorted(name for name, _ in headers.items() if "ratelimit" in name.lower())
    assert outcomes == {
        "env": [],
        "config": ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
        "argument": ["RateLimit", "RateLimit-Policy"],
    }


def test_state_lives_on_the_app_not_the_extension() -> None:
    """One extension, two apps, two states; init_app wraps each app's wsgi_app."""
    resilient = Resilient()
    first, _ = make_app({"RESILIENT_RATELIMIT_KEY_PREFIX": "one"}, extension=resilient)
    second, _ = make_app({"RESILIENT_RATELIMIT_KEY_PREFIX": "two"}, extension=resilient)
    one, two = first.extensions["resilient"], second.extensions["resilient"]
    assert isinstance(one, ResilientState)
    assert isinstance(two, ResilientState)
    assert one is not two
    assert one.extension is two.extension is resilient
    assert (one.settings.ratelimit.key_prefix, two.settings.ratelimit.key_prefix) == (
        "one",
        "two",
    )
    assert isinstance(one.middleware, ResilientWSGIMiddleware)
    assert not hasattr(resilient, "app")


def test_two_apps_with_different_limits_count_apart() -> None:
    """The same view code in two apps: each app's own default limit, its own counts."""
    resilient = Resilient()

    def create(default: str) -> Flask:
        app, _ = make_app({"RESILIENT_RATELIMIT_DEFAULT": default}, extension=resilient)

        @app.get("/search")
        @resilient.limit()
        def search() -> str:
            return "ok"

        return app

    small, large = create("2/minute"), create("3/minute")
    small_client, large_client = small.test_client(), large.test_client()
    small_statuses = [small_client.get("/search").status_code for _ in range(4)]
    large_statuses = [large_client.get("/search").status_code for _ in range(4)]
    assert small_statuses == [200, 200, 429, 429]
    assert large_statuses == [200, 200, 200, 429]


def test_setting_an_app_up_twice_is_an_error() -> None:
    app, resilient = make_app()
    with pytest.raises(ConfigurationError, match="resilient has not set up"):
        resilient.init_app(app)
    with pytest.raises(ConfigurationError):
        Resilient(app)


def test_bad_app_config_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT_HEADERS"):
        make_app({"RESILIENT_RATELIMIT_HEADERS": "loud"})
    with pytest.raises(ConfigurationError, match="ratelimit_headrs"):
        make_app(ratelimit_headrs="draft")


def test_decorators_on_an_app_not_set_up_say_so() -> None:
    resilient = Resilient()
    app = Flask(__name__)
    app.testing = True

    @app.get("/")
    @resilient.limit("5/minute")
    def index() -> str:
        return "ok"

    with pytest.raises(RuntimeError, match="Resilient\\(app\\)"):
        app.test_client().get("/")
    with pytest.raises(RuntimeError, match="was not set up"):
        Resilient.state(app)


def test_rate_limit_exceeded_from_anywhere_is_a_429_problem() -> None:
    """A RateLimitExceeded raised by the view's own code gets the same answer."""
    app, _ = make_app()

    @app.get("/partner")
    def partner() -> str:
        raise RateLimitExceeded("10/second", 0.2)

    response = app.test_client().get("/partner")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"  # rounded up, never 0
    assert "RateLimit" not in response.headers  # no decision of ours: no figures
    assert problem(response) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit 10/second exceeded. Retry after 1 second.",
        "limit": "10/second",
        "retry_after": 1,
    }


def test_circuit_open_from_anywhere_is_a_503_problem() -> None:
    app, _ = make_app()

    @app.get("/pay")
    def pay() -> str:
        raise CircuitOpenError("payments-db", 12.5)

    response = app.test_client().get("/pay")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "13"
    body = problem(response)
    assert body == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable. Retry after 13 seconds.",
        "retry_after": 13,
    }
    assert "payments-db" not in response.get_data(as_text=True)  # no internals leak


class TestCached:
    """``resilient.cached`` marks responses; the cache middleware stores them."""

    def make(self) -> tuple[Flask, list[str]]:
        app, resilient = make_app()
        calls: list[str] = []

        @app.route("/page", methods=["GET", "POST"])
        @resilient.cached(60, stale_while_revalidate=timedelta(seconds=30), stale_if_error=600)
        def page() -> str:
            calls.append("page")
            return f"page {len(calls)}"

        @app.get("/own")
        @resilient.cached(60)
        def own() -> Response:
            calls.append("own")
            return Response("own", headers={"Cache-Control": "no-store"})

        @app.get("/missing")
        @resilient.cached(60)
        def missing() -> str:
            calls.append("missing")
            abort(500)

        return app, calls

    def test_marked_responses_are_served_from_the_cache(self) -> None:
        app, calls = self.make()
        client = app.test_client()
        first = client.get("/page")
        # The test client reads bodies lazily; the cache stores once the body went out.
        assert first.get_data(as_text=True) == "page 1"
        second = client.get("/page")
        directives = "max-age=60, stale-while-revalidate=30, stale-if-error=600"
        assert first.headers["Cache-Control"] == directives
        assert second.get_data(as_text=True) == "page 1"
        assert second.headers["Age"] == "0"
        assert calls == ["page"]

    def test_only_safe_successful_anonymous_responses_are_marked(self) -> None:
        app, calls = self.make()
        client = app.test_client()
        posted = client.post("/page")
        with_credentials = client.get("/page", headers={"Authorization": "Bearer x"})
        own = client.get("/own")
        failed = client.get("/missing")
        assert "Cache-Control" not in posted.headers
        assert "Cache-Control" not in with_credentials.headers
        assert own.headers["Cache-Control"] == "no-store"  # the view's own word stands
        assert failed.status_code == 500
        assert "Cache-Control" not in failed.headers
        client.get("/own")
        assert calls.count("own") == 2  # not stored

    def test_personal_responses_are_never_marked_shareable(self) -> None:
        """Cookies either way, or Vary: *, keep a response out of shared caches."""
        app, resilient = make_app()

        @app.get("/greeting")
        @resilient.cached(60)
        def greeting() -> Response:
            response = Response("hello")
            if "set" in request.args:
                response.set_cookie("user", "alice")
            if "any" in request.args:
                response.headers["Vary"] = "*"
            return response

        client = app.test_client()
        anonymous = client.get("/greeting")
        client.set_cookie("session", "alice-token")
        with_cookie = client.get("/greeting")
        client.delete_cookie("session")
        setting = client.get("/greeting?set=1")
        varying = client.get("/greeting?any=1")
        assert anonymous.headers["Cache-Control"] == "max-age=60"
        for personal in (with_cookie, setting, varying):
            assert personal.status_code == 200
            assert "Cache-Control" not in personal.headers

    @pytest.mark.parametrize(
        ("arguments", "name"),
        [
            ({"ttl": 0}, "ttl"),
            ({"ttl": float("inf")}, "ttl"),
            ({"ttl": "60"}, "ttl"),
            ({"ttl": 60, "stale_if_error": -1}, "stale_if_error"),
            ({"ttl": 60, "stale_while_revalidate": True}, "stale_while_revalidate"),
        ],
    )
    def test_bad_durations_fail_at_decoration(
        self, arguments: dict[str, object], name: str
    ) -> None:
        resilient = Resilient()
        with pytest.raises(ConfigurationError, match=name):
            resilient.cached(**arguments)  # type: ignore[arg-type]
