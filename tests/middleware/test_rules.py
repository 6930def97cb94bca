"""Rules per route: patterns, methods, validation, and settings from code and environment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.middleware import (
    CachePolicy,
    ResilientASGIMiddleware,
    ResilientWSGIMiddleware,
    Rule,
)
from resilient.middleware.rules import Routes
from resilient.sansio.decisions import CacheRules
from tests.middleware.support import Origin, settings


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("/about", ["/about"], ["/about/", "/aboutus", "/"]),
        ("/users/{id}", ["/users/42", "/users/a.b"], ["/users/", "/users/1/x", "/users"]),
        ("/files/*.txt", ["/files/a.txt", "/files/.txt"], ["/files/a/b.txt", "/files/a.txtx"]),
        ("/static/**", ["/static", "/static/", "/static/a/b.css"], ["/staticx", "/other"]),
        ("/a/**/z", ["/a//z", "/a/b/c/z"], ["/a/z", "/a/b/c"]),
        ("/{rest:path}", ["/", "/x/y/z"], [""]),
        ("**", ["", "/anything/at/all"], []),
        ("/a.b(c)", ["/a.b(c)"], ["/aXb(c)"]),
    ],
)
def test_path_patterns(pattern: str, matching: list[str], other: list[str]) -> None:
    """Literal parts match literally; {x} and * stay in a segment; ** and {x:path} span."""
    rule = Rule(pattern)
    assert all(rule.matches("GET", path) for path in matching)
    assert not any(rule.matches("GET", path) for path in other)


def test_methods() -> None:
    """Methods are case-insensitive; GET covers HEAD; None covers everything."""
    rule = Rule("/a", methods=["get", "Post"])
    assert rule.matches("HEAD", "/a")
    assert rule.matches("POST", "/a")
    assert not rule.matches("PUT", "/a")
    assert Rule("/a", methods="DELETE").matches("DELETE", "/a")
    assert not Rule("/a", methods="DELETE").matches("GET", "/a")
    assert Rule("/a").matches("M-SEARCH", "/a")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"path": "no-slash"}, "Rule.path"),
        ({"path": 5}, "Rule.path"),
        ({"path": "/a", "methods": ["GET", "BAD METHOD"]}, "Rule.methods"),
        ({"path": "/a", "methods": [7]}, "Rule.methods"),
        ({"path": "/a", "name": "has space"}, "Rule.name"),
        ({"path": "/a", "cache": "yes"}, "Rule.cache"),
    ],
)
def test_bad_rules_fail_at_construction(kwargs: dict[str, Any], name: str) -> None:
    """A malformed rule raises ConfigurationError naming the argument."""
    with pytest.raises(ConfigurationError) as caught:
        Rule(**kwargs)
    assert caught.value.name == name


@pytest.mark.parametrize(
    ("policy", "name"),
    [
        (CachePolicy(ttl=-1), "CachePolicy.ttl"),
        (CachePolicy(ttl=float("inf")), "CachePolicy.ttl"),
        (CachePolicy(ttl="60"), "CachePolicy.ttl"),  # type: ignore[arg-type]
        (CachePolicy(ttl=True), "CachePolicy.ttl"),
        (CachePolicy(stale_if_error=-5), "CachePolicy.stale_if_error"),
        (CachePolicy(stale_while_revalidate=float("nan")), "CachePolicy.stale_while_revalidate"),
        (CachePolicy(max_body=-1), "CachePolicy.max_body"),
        (CachePolicy(max_body=1.5), "CachePolicy.max_body"),  # type: ignore[arg-type]
        (CachePolicy(vary_cookies=["ok", "not ok"]), "CachePolicy.vary_cookies"),
    ],
)
def test_bad_policies_fail_at_construction(policy: CachePolicy, name: str) -> None:
    """Unusable policy values raise when the middleware is built, naming the field."""
    with pytest.raises(ConfigurationError) as caught:
        ResilientWSGIMiddleware(Origin().wsgi, [Rule("/a", cache=policy)], settings=settings())
    assert caught.value.name == name


def test_non_rules_are_rejected() -> None:
    """rules must hold Rule objects."""
    with pytest.raises(ConfigurationError, match="Rule objects"):
        Routes(["/a"], settings())  # type: ignore[list-item]


def test_first_matching_rule_wins_and_the_default_catches_the_rest() -> None:
    """Rules are tried in order; requests no rule covers get the settings' defaults."""
    routes = Routes(
        [
            Rule("/a/**", cache=CachePolicy(ttl=1), name="one"),
            Rule("/a/b", cache=CachePolicy(ttl=2), name="two"),
        ],
        settings(),
    )
    assert routes.match("GET", "/a/b").name == "one"
    assert routes.match("GET", "/c") is routes.default
    assert routes.default.cache == CacheRules()


def cache_of(rule: Rule, env: dict[str, str]) -> CacheRules | None:
    return Routes([rule], settings(env)).match("GET", "/x").cache


def test_precedence_argument_then_per_route_then_global() -> None:
    """An explicit policy value beats RESILIENT_HTTP__<NAME>__*, which beats RESILIENT_HTTP_*."""
    env = {
        "RESILIENT_HTTP_CACHE_TTL": "10",
        "RESILIENT_HTTP__NEWS__CACHE_TTL": "20",
        "RESILIENT_HTTP__NEWS__CACHE_VARY_COOKIES": "lang,theme",
        "RESILIENT_HTTP_CACHE_MAX_BODY": "2kib",
    }
    named = cache_of(Rule("/x", name="news"), env)
    assert named is not None
    assert (named.ttl, named.vary_cookies, named.max_body) == (
        20.0,
        frozenset({"lang", "theme"}),
        2048,
    )
    explicit = cache_of(
        Rule("/x", name="news", cache=CachePolicy(ttl=timedelta(seconds=5), max_body=10)), env
    )
    assert explicit is not None
    assert (explicit.ttl, explicit.max_body) == (5.0, 10)
    unnamed = cache_of(Rule("/x"), env)
    assert unnamed is not None
    assert unnamed.ttl == 10.0


def test_every_policy_field_comes_from_the_environment() -> None:
    """Each CachePolicy field has its variable."""
    rules = cache_of(
        Rule("/x"),
        {
            "RESILIENT_HTTP_CACHE_TTL": "1m",
            "RESILIENT_HTTP_CACHE_STALE_WHILE_REVALIDATE": "5",
            "RESILIENT_HTTP_CACHE_STALE_IF_ERROR": "1h",
            "RESILIENT_HTTP_CACHE_VARY_COOKIES": "a",
            "RESILIENT_HTTP_CACHE_MAX_BODY": "10",
            "RESILIENT_HTTP_RESPECT_REQUEST_CACHE_CONTROL": "1",
        },
    )
    assert rules == CacheRules(60.0, 5.0, 3600.0, frozenset({"a"}), 10, True)
    policy = cache_of(
        Rule(
            "/x",
            cache=CachePolicy(
                ttl=1,
                stale_while_revalidate=2,
                stale_if_error=3,
                vary_cookies="b",
                max_body=4,
                respect_request_cache_control=False,
            ),
        ),
        {"RESILIENT_HTTP_CACHE_TTL": "1m"},
    )
    assert policy == CacheRules(1.0, 2.0, 3.0, frozenset({"b"}), 4, False)


def test_switches() -> None:
    """Caching turns off globally, per route from the env, or per rule in code; a
    per-route variable can turn one route back on."""
    assert cache_of(Rule("/x"), {"RESILIENT_HTTP_CACHE": "0"}) is None
    assert cache_of(Rule("/x", name="a"), {"RESILIENT_HTTP__A__CACHE": "no"}) is None
    assert (
        cache_of(
            Rule("/x", name="a"), {"RESILIENT_HTTP_CACHE": "no", "RESILIENT_HTTP__A__CACHE": "yes"}
        )
        is not None
    )
    assert cache_of(Rule("/x", cache=False), {}) is None
    assert cache_of(Rule("/x"), {"RESILIENT_CACHE_ENABLED": "0"}) is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESILIENT_HTTP_CACHE_TTL", "soon"),
        ("RESILIENT_HTTP_CACHE_MAX_BODY", "big"),
        ("RESILIENT_HTTP_CACHE_VARY_COOKIES", "ok,not ok"),
        ("RESILIENT_HTTP_CACHE", "maybe"),
        ("RESILIENT_HTTP__NEWS__CACHE_TTL", "-1"),
    ],
)
def test_bad_variables_name_themselves(variable: str, value: str) -> None:
    """A bad variable raises ConfigurationError naming it and its value."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: value})
    assert (caught.value.name, caught.value.value) == (variable, value)


def test_empty_ttl_means_no_app_mode() -> None:
    """RESILIENT_HTTP_CACHE_TTL set but empty is "no TTL"."""
    assert Settings.from_env({"RESILIENT_HTTP_CACHE_TTL": ""}).http.cache_ttl is None


def test_settings_are_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings, the middleware reads RESILIENT_* when it is built and builds the
    backend they name (memory by default, Redis from a URL)."""
    monkeypatch.setenv("RESILIENT_HTTP_CACHE_MAX_ENTRIES", "7")
    wsgi = ResilientWSGIMiddleware(Origin().wsgi)
    asgi = ResilientASGIMiddleware(Origin().asgi)
    assert isinstance(wsgi.backend, MemoryBackend)
    assert wsgi.backend.max_entries == 7
    assert isinstance(asgi.backend, AsyncMemoryBackend)
    monkeypatch.setenv("RESILIENT_HTTP_URL", "redis://127.0.0.1:1/0")
    assert isinstance(ResilientWSGIMiddleware(Origin().wsgi).backend, RedisBackend)
    assert isinstance(ResilientASGIMiddleware(Origin().asgi).backend, AsyncRedisBackend)


async def test_close_releases_the_backend() -> None:
    """close() and aclose() release the backends the middleware built."""
    closed: list[str] = []
    wsgi = ResilientWSGIMiddleware(Origin().wsgi, settings=settings())
    asgi = ResilientASGIMiddleware(Origin().asgi, settings=settings())
    wsgi.backend.close = lambda: closed.append("sync")  # type: ignore[method-assign]

    async def aclose() -> None:
        closed.append("async")

    asgi.backend.aclose = aclose  # type: ignore[method-assign]
    wsgi.close()
    await asgi.aclose()
    assert closed == ["sync", "async"]
