"""``resilient.breaker`` on Flask views: 5xx and exceptions trip it, 503s, recovery."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, abort

from resilient.errors import ConfigurationError
from resilient_flask import Resilient
from tests.integrations.flask.support import make_app, problem
from tests.support.clock import FakeClock


class Upstream:
    """What the guarded view does on its next call: answer, fail with 5xx, raise, abort."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.mode == "500":
            return "upstream down", 502
        if self.mode == "raise":
            raise ConnectionError("upstream refused")
        if self.mode == "404":
            abort(404)
        return "paid"


def guarded_app(
    upstream: Upstream, config: dict[str, Any] | None = None, **options: Any
) -> tuple[Flask, Resilient]:
    app, resilient = make_app(config)

    @app.post("/pay")
    @resilient.breaker("payments", **options)
    def pay() -> Any:
        return upstream()

    return app, resilient


def test_trips_on_5xx_answers_503_then_recovers_after_the_reset_timeout() -> None:
    clock = FakeClock()
    upstream = Upstream()
    app, _ = guarded_app(upstream, fail_max=2, reset_timeout=30, clock=clock)
    client = app.test_client()
    assert client.post("/pay").status_code == 200
    upstream.mode = "500"
    assert [client.post("/pay").status_code for _ in range(2)] == [502, 502]
    rejected = client.post("/pay")
    assert rejected.status_code == 503
    assert rejected.headers["Retry-After"] == "30"
    assert problem(rejected) == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable. Retry after 30 seconds.",
        "retry_after": 30,
    }
    assert upstream.calls == 3  # the rejected request never reached the view
    clock.advance(10)
    assert client.post("/pay").headers["Retry-After"] == "20"
    clock.advance(20)
    upstream.mode = "ok"
    assert client.post("/pay").status_code == 200  # the probe succeeds: closed again
    assert client.post("/pay").status_code == 200
    assert Resilient.state(app).breakers["payments"].current_state == "closed"
    assert upstream.calls == 5


def test_a_failed_probe_opens_it_again() -> None:
    clock = FakeClock()
    upstream = Upstream()
    app, _ = guarded_app(upstream, fail_max=1, reset_timeout=5, clock=clock)
    client = app.test_client()
    upstream.mode = "500"
    client.post("/pay")
    clock.advance(5)
    assert client.post("/pay").status_code == 502  # the probe
    assert client.post("/pay").status_code == 503
    assert upstream.calls == 2


def test_exceptions_count_as_failures() -> None:
    upstream = Upstream()
    app, _ = guarded_app(upstream, fail_max=2, clock=FakeClock())
    upstream.mode = "raise"
    client = app.test_client()
    assert [client.post("/pay").status_code for _ in range(3)] == [500, 500, 503]
    assert upstream.calls == 2


def test_client_errors_do_not_trip_it() -> None:
    upstream = Upstream()
    app, _ = guarded_app(upstream, fail_max=1, clock=FakeClock())
    upstream.mode = "404"
    client = app.test_client()
    assert [client.post("/pay").status_code for _ in range(3)] == [404, 404, 404]
    assert Resilient.state(app).breakers["payments"].fail_counter == 0


def test_rejections_inside_the_view_are_judged_by_their_status() -> None:
    """A rate limit inside the guarded view is the client's doing; an open inner
    circuit is a 503, a failure."""
    app, resilient = make_app()
    inner: dict[str, Any] = {"error": None}

    @app.get("/quote")
    @resilient.breaker("quotes", fail_max=1, clock=FakeClock())
    @resilient.limit("1/minute")
    def quote() -> str:
        return "42"

    @app.get("/nested")
    @resilient.breaker("outer", fail_max=2, clock=FakeClock())
    @resilient.breaker("inner", fail_max=1, clock=FakeClock())
    def nested() -> Any:
        return inner["error"] or "ok"

    client = app.test_client()
    assert [client.get("/quote").status_code for _ in range(3)] == [200, 429, 429]
    assert Resilient.state(app).breakers["quotes"].current_state == "closed"
    inner["error"] = ("inner down", 500)
    assert client.get("/nested").status_code == 500  # opens "inner", counts for "outer"
    assert client.get("/nested").status_code == 503  # "inner" rejects: fails "outer" too
    assert client.get("/nested").status_code == 503  # "outer" rejects
    breakers = Resilient.state(app).breakers
    assert (breakers["inner"].current_state, breakers["outer"].current_state) == ("open",) * 2


def test_breaker_settings_come_from_app_config_per_name() -> None:
    upstream = Upstream()
    config = {"RESILIENT_BREAKER_FAIL_MAX": "5", "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": "1"}
    app, _ = guarded_app(upstream, config, clock=FakeClock())
    upstream.mode = "500"
    client = app.test_client()
    assert [client.post("/pay").status_code for _ in range(2)] == [502, 503]


def test_each_app_has_its_own_breakers() -> None:
    """The same breaker name in two apps: tripping one leaves the other closed."""
    resilient = Resilient()
    upstreams = {"one": Upstream(), "two": Upstream()}
    apps = {}
    for label, upstream in upstreams.items():
        app, _ = make_app(extension=resilient)

        @app.post("/pay")
        @resilient.breaker("payments", fail_max=1, clock=FakeClock())
        def pay(upstream: Upstream = upstream) -> Any:
            return upstream()

        apps[label] = app
    upstreams["one"].mode = "500"
    apps["one"].test_client().post("/pay")
    assert apps["one"].test_client().post("/pay").status_code == 503
    assert apps["two"].test_client().post("/pay").status_code == 200
    one, two = (Resilient.state(app).breakers["payments"] for app in apps.values())
    assert one is not two


def test_views_sharing_a_breaker_must_agree_on_its_options() -> None:
    app, resilient = make_app()
    app.testing = True

    @app.get("/a")
    @resilient.breaker("search", fail_max=3)
    def a() -> str:
        return "a"

    @app.get("/b")
    @resilient.breaker("search", fail_max=4)
    def b() -> str:
        return "b"

    @app.get("/c")
    @resilient.breaker("search", fail_max=3)
    def c() -> str:
        return "c"

    client = app.test_client()
    assert client.get("/a").status_code == 200
    assert client.get("/c").status_code == 200  # same options: the same breaker
    with pytest.raises(ConfigurationError, match="options of breaker 'search'"):
        client.get("/b")


@pytest.mark.parametrize(
    ("name", "options", "argument"),
    [("", {}, "name"), ("payments", {"fail_max": 0}, "fail_max"),
     ("payments", {"reset_timeout": -1}, "reset_timeout")],
)  # fmt: skip
def test_bad_breaker_arguments_fail_at_decoration(
    name: str, options: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        Resilient().breaker(name, **options)


def test_close_shuts_breakers_down_and_forgets_them() -> None:
    upstream = Upstream()
    app, _ = guarded_app(upstream, fail_max=1, clock=FakeClock())
    upstream.mode = "500"
    client = app.test_client()
    client.post("/pay")
    assert client.post("/pay").status_code == 503
    Resilient.state(app).close()
    assert Resilient.state(app).breakers == {}
    upstream.mode = "ok"
    assert client.post("/pay").status_code == 200  # a new breaker, closed
