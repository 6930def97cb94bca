"""``Depends(RateLimit(...))``: counts, headers, 429s, keys, proxies, backends."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit import RequestView, by_header
from resilient_fastapi import RateLimit, install, registry_for
from tests.integrations.fastapi.support import client, problem
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisServer
from tests.support.sockets import refused_url


def limited_app(
    limits: str | None = "3/minute", *, installed: bool = False, settings: Settings | None = None,
    **options: Any,
) -> FastAPI:  # fmt: skip
    app = FastAPI()
    if installed:
        install(app, settings=settings)

    @app.get("/search", dependencies=[Depends(RateLimit(limits, **options))])
    async def search() -> list[str]:
        return ["result"]

    return app


def env_settings(**env: str) -> Settings:
    return Settings.from_env({f"RESILIENT_{name.upper()}": value for name, value in env.items()})


@pytest.mark.parametrize("installed", [False, True], ids=["bare", "installed"])
async def test_allowed_responses_carry_the_figures(installed: bool) -> None:
    async with client(limited_app("3/minute", installed=installed)) as http:
        responses = [await http.get("/search") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert {r.headers["ratelimit-policy"] for r in responses} == {'"3-in-60s";q=3;w=60'}
    assert [r.headers["ratelimit"].split(";")[1] for r in responses] == ["r=2", "r=1", "r=0"]
    assert all(len(r.headers.get_list("ratelimit")) == 1 for r in responses)  # never twice
    assert all("retry-after" not in r.headers for r in responses)


async def test_over_the_limit_without_install_is_fastapis_http_exception() -> None:
    """The bare dependency raises an HTTPException: FastAPI's handler answers it."""
    clock = FakeClock()
    app = limited_app("2/minute", strategy="fixed-window", clock=clock)
    async with client(app) as http:
        await http.get("/search")
        await http.get("/search")
        clock.advance(15.5)  # the window ends 44.5 s later: Retry-After rounds up to 45
        response = await http.get("/search")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "45"
    assert response.headers["ratelimit"] == '"2-in-60s";r=0;t=45'
    assert response.json() == {"detail": "Rate limit 2/minute exceeded. Retry after 45 seconds."}


async def test_over_the_limit_once_installed_is_a_problem() -> None:
    clock = FakeClock()
    app = limited_app("2/minute", installed=True, strategy="fixed-window", clock=clock)
    async with client(app) as http:
        await http.get("/search")
        await http.get("/search")
        clock.advance(15.5)
        response = await http.get("/search")
        clock.advance(45)
        again = await http.get("/search")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "45"
    assert response.headers.get_list("ratelimit") == ['"2-in-60s";r=0;t=45']
    assert response.headers["ratelimit-policy"] == '"2-in-60s";q=2;w=60'
    assert problem(response) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit 2/minute exceeded. Retry after 45 seconds.",
        "limit": "2/minute",
        "retry_after": 45,
    }
    assert again.status_code == 200


async def test_installed_headers_reach_endpoints_returning_a_response() -> None:
    """FastAPI drops the injected Response's headers here; the headers layer does not."""
    for installed in (False, True):
        app = FastAPI()
        if installed:
            install(app)

        @app.get("/plain", dependencies=[Depends(RateLimit("5/minute"))])
        async def plain() -> PlainTextResponse:
            return PlainTextResponse("plain")

        async with client(app) as http:
            response = await http.get("/plain")
        assert ("ratelimit" in response.headers) is installed


@pytest.mark.parametrize("installed", [False, True], ids=["bare", "installed"])
async def test_exactly_the_limit_is_admitted_under_concurrency(installed: bool) -> None:
    """50 requests gathered at once through the whole ASGI stack: exactly 10 pass."""
    app = limited_app("10/minute", installed=installed)
    async with client(app) as http:
        responses = await asyncio.gather(*(http.get("/search") for _ in range(50)))
    assert Counter(r.status_code for r in responses) == {200: 10, 429: 40}


@pytest.mark.redis
async def test_exactly_the_limit_is_admitted_on_redis(redis_server: RedisServer) -> None:
    """Two apps (two "processes") on one real Redis, 50 concurrent requests: 10 pass."""
    settings = env_settings(ratelimit_url=redis_server.url, op_timeout="2s",
                            connect_timeout="2s")  # fmt: skip
    first = limited_app("10/minute", installed=True, settings=settings)
    second = limited_app("10/minute", installed=True, settings=settings)
    async with client(first) as one, client(second) as two:
        responses = await asyncio.gather(
            *(http.get("/search") for http in (one, two) for _ in range(25))
        )
    assert Counter(r.status_code for r in responses) == {200: 10, 429: 40}
    with redis_server.client() as redis:
        keys = [key.decode() for key in redis.keys("*")]
    assert len(keys) == 1
    assert "test_ratelimit.limited_app.%3Clocals%3E.search" in keys[0]
    for app in (first, second):
        await registry_for(app).aclose()


class TestClientIdentity:
    """The default key is the client IP; forwarding headers only from trusted proxies."""

    async def statuses(self, app: FastAPI, peer: str, *forwarded: str) -> list[int]:
        async with client(app, peer) as http:
            return [
                (await http.get("/search", headers={"x-forwarded-for": hop})).status_code
                for hop in forwarded
            ]

    async def test_forwarding_headers_are_ignored_by_default(self) -> None:
        app = limited_app("2/minute")
        statuses = await self.statuses(app, "203.0.113.9", "1.1.1.1", "2.2.2.2", "3.3.3.3")
        assert statuses == [200, 200, 429]

    async def test_trusted_proxies_from_the_settings(self) -> None:
        settings = env_settings(ratelimit_trusted_proxies="10.0.0.0/8")
        app = limited_app("1/minute", installed=True, settings=settings)
        proxy = "10.1.2.3"
        assert await self.statuses(app, proxy, "203.0.113.7", "203.0.113.8") == [200, 200]
        # The client forged the leftmost hop; the proxy appended the real one.
        assert await self.statuses(app, proxy, "198.51.100.1, 203.0.113.7") == [429]
        # A peer outside the trusted networks is the client, whatever it claims.
        statuses = await self.statuses(app, "192.0.2.50", "203.0.113.99", "203.0.113.100")
        assert statuses == [200, 429]

    async def test_trusted_proxies_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("RESILIENT_RATELIMIT_TRUSTED_PROXIES", "10.0.0.0/8")
        app = limited_app("1/minute")
        assert await self.statuses(app, "10.9.9.9", "203.0.113.7", "203.0.113.8") == [200, 200]


async def test_key_cost_exemptions_and_shared_names() -> None:
    app = FastAPI()
    install(app)
    calls: list[str] = []

    def is_internal(request: RequestView) -> bool:
        return request.headers.get("x-internal") == "yes"

    users = by_header("x-user")
    light = RateLimit("4/minute", name="shared", key=users, exempt_when=is_internal)
    heavy = RateLimit("4/minute", name="shared", key=users, cost=2)

    @app.get("/a", dependencies=[Depends(light)])
    async def a() -> str:
        calls.append("a")
        return "a"

    @app.get("/b", dependencies=[Depends(heavy)])
    async def b() -> str:
        calls.append("b")
        return "b"

    alice, bob = {"x-user": "alice"}, {"x-user": "bob"}
    async with client(app) as http:
        assert (await http.get("/b", headers=alice)).status_code == 200  # 2 of alice's 4
        assert (await http.get("/a", headers=alice)).status_code == 200  # 3
        assert (await http.get("/b", headers=alice)).status_code == 429  # 2 more do not fit
        assert (await http.get("/a", headers=alice)).status_code == 200  # 4
        assert (await http.get("/a", headers=alice)).status_code == 429
        assert (await http.get("/b", headers=bob)).status_code == 200
        exempt = await http.get("/a", headers={**alice, "x-internal": "yes"})
    assert exempt.status_code == 200
    assert "ratelimit" not in exempt.headers  # not counted, nothing to describe
    assert calls == ["b", "a", "a", "b", "a"]


async def test_one_dependency_on_two_routes_counts_per_route() -> None:
    app = FastAPI()
    once = RateLimit("1/minute")

    @app.get("/one", dependencies=[Depends(once)])
    async def one() -> str:
        return "one"

    @app.get("/two", dependencies=[Depends(once)])
    async def two() -> str:
        return "two"

    async with client(app) as http:
        statuses = [(await http.get(path)).status_code for path in ("/one", "/two", "/one")]
    assert statuses == [200, 200, 429]


async def test_stacked_limits_of_one_window_count_each_request_once() -> None:
    """5/minute and 100/minute on one route: five requests pass (a shared counter: 3)."""
    app = FastAPI()
    install(app)
    limits = [Depends(RateLimit("5/minute")), Depends(RateLimit("100/minute"))]

    @app.get("/report", dependencies=limits)
    async def report() -> str:
        return "ok"

    async with client(app) as http:
        statuses = [(await http.get("/report")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    scopes = sorted(limiter.scope for limiter in registry_for(app).limiters)
    route = f"{report.__module__}.{report.__qualname__}"
    assert scopes == [route, f"{route}#2"]


async def test_cost_can_depend_on_the_request() -> None:
    app = limited_app("10/minute", cost=lambda request: int(request.headers.get("x-items", "1")))
    async with client(app) as http:
        statuses = [
            (await http.get("/search", headers={"x-items": items})).status_code
            for items in ("6", "5", "4")
        ]
    assert statuses == [200, 429, 200]


async def test_two_apps_count_apart() -> None:
    """The same route code in two apps in one process: separate in-memory counts."""
    first, second = limited_app("1/minute"), limited_app("1/minute")
    async with client(first) as one, client(second) as two:
        statuses = [(await http.get("/search")).status_code for http in (one, two, one, two)]
    assert statuses == [200, 200, 429, 429]


async def test_fail_mode_closed_answers_503() -> None:
    settings = env_settings(ratelimit_url=refused_url(), ratelimit_fail_mode="closed",
                            guard_cooldown="7s")  # fmt: skip
    async with client(limited_app("5/minute", installed=True, settings=settings)) as http:
        response = await http.get("/search")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    body = problem(response)
    assert body["detail"] == "Rate limiting is unavailable. Retry after 7 seconds."
    assert "limit" not in body


async def test_shadow_mode_admits_and_reports() -> None:
    async with client(limited_app("1/minute", mode="shadow")) as http:
        responses = [await http.get("/search") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[-1].headers["ratelimit"].startswith('"1-in-60s";r=0')


async def test_rate_limit_headers_are_never_stored_in_the_cache() -> None:
    """A cached copy goes out without the headers of the client whose request made it.

    Dependencies run inside the app, so a request the cache answers is not counted.
    """
    app = FastAPI()
    install(app)
    calls: list[str] = []

    @app.get("/news", dependencies=[Depends(RateLimit("5/minute"))])
    async def news() -> PlainTextResponse:
        calls.append("news")
        return PlainTextResponse("news", headers={"cache-control": "max-age=60"})

    async with client(app, "203.0.113.1") as first, client(app, "203.0.113.2") as second:
        miss = await first.get("/news")
        hit = await second.get("/news")
    assert miss.headers["ratelimit"].startswith('"5-in-60s";r=4')
    assert hit.text == "news"
    assert "age" in hit.headers
    assert "ratelimit" not in hit.headers
    assert calls == ["news"]


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"limits": "often"}, "limits"),
        ({"limits": "5/minute", "cost": 0}, "cost"),
        ({"limits": "5/minute", "cost": 2.5}, "cost"),
    ],
)
def test_bad_arguments_fail_at_construction(arguments: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        RateLimit(**arguments)


async def test_default_limits_come_from_the_settings() -> None:
    settings = env_settings(ratelimit_default="1/minute")
    app = limited_app(None, installed=True, settings=settings)
    async with client(app) as http:
        statuses = [(await http.get("/search")).status_code for _ in range(2)]
    assert statuses == [200, 429]
