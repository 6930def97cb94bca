"""Setting an app up: the lifespan, install(), the middleware added by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fakeredis
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.applications import Starlette

from resilient.backends.redis import AsyncRedisBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient_fastapi import (
    Breaker,
    CachePolicy,
    Lifespan,
    RateLimit,
    ResilientASGIMiddleware,
    Rule,
    install,
    lifespan,
    registry_for,
)
from tests.integrations.fastapi.support import client, running
from tests.support.redis_servers import RedisServer


def search_app(**kwargs: Any) -> FastAPI:
    """The README example."""
    app = FastAPI(**kwargs)

    @app.get("/search", dependencies=[Depends(RateLimit("5/second"))])
    async def search(q: str) -> list[str]:
        return [q]

    return app


async def test_the_readme_example_runs() -> None:
    app = search_app(lifespan=lifespan)
    async with running(app), client(app) as http:
        response = await http.get("/search", params={"q": "shoes"})
    assert response.json() == ["shoes"]
    assert response.headers["ratelimit-policy"] == '"5-in-1s";q=5;w=1'


async def test_the_lifespan_reads_the_settings_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad variable stops the app from starting, not its first request."""
    monkeypatch.setenv("RESILIENT_RATELIMIT_HEADERS", "loud")
    app = search_app(lifespan=lifespan)
    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT_HEADERS"):
        async with running(app):
            pass  # pragma: no cover - startup fails


async def test_a_user_lifespan_runs_inside_and_its_state_is_passed_on() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def mine(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("start")
        yield {"greeting": "hello"}
        events.append("stop")

    app = FastAPI(lifespan=Lifespan(mine))

    @app.get("/", dependencies=[Depends(RateLimit("5/second"))])
    async def index() -> str:
        return "ok"

    async with running(app) as state:
        assert events == ["start"]
        assert state == {"greeting": "hello"}  # what the server copies into each request
        registry = registry_for(app)
        async with client(app) as http:
            assert (await http.get("/")).status_code == 200
        assert len(registry.limiters) == 1
    assert events == ["start", "stop"]
    assert not registry.limiters  # forgotten at shutdown, rebuilt if it serves again


@pytest.mark.redis
async def test_shutdown_closes_the_pools_the_adapter_opened(redis_server: RedisServer) -> None:
    """Limiters, shared breakers and the cache middleware each hold Redis connections;
    after shutdown the server sees none of them."""
    settings = Settings.from_env({"RESILIENT_BACKEND_URL": redis_server.url,
                                  "RESILIENT_OP_TIMEOUT": "2s",
                                  "RESILIENT_CONNECT_TIMEOUT": "2s"})  # fmt: skip
    app = FastAPI(lifespan=lifespan)
    install(app, settings=settings)
    guard = Breaker("orders", shared=True, resync_interval=0)

    @app.get("/orders", dependencies=[Depends(RateLimit("100/second")), Depends(guard)])
    async def orders() -> PlainTextResponse:
        return PlainTextResponse("orders", headers={"cache-control": "max-age=60"})

    def connections() -> int:
        with redis_server.client() as redis:
            return len(redis.client_list()) - 1  # not counting this one

    async with running(app):
        async with client(app) as http:
            responses = await asyncio.gather(*(http.get("/orders") for _ in range(5)))
        assert {r.status_code for r in responses} == {200}
        assert connections() >= 3  # limiter, breaker, cache
    assert connections() == 0


async def test_shutdown_leaves_backends_it_was_given_open() -> None:
    given = AsyncRedisBackend(fakeredis.FakeAsyncRedis(), name="fakeredis")
    app = FastAPI(lifespan=lifespan)

    @app.get("/", dependencies=[Depends(RateLimit("5/second", async_backend=given))])
    async def index() -> str:
        return "ok"

    async with running(app), client(app) as http:
        assert (await http.get("/")).headers["ratelimit"].startswith('"5-in-1s";r=4')
    # The caller owns it: it still answers.
    assert await given.incr("still-open", 1, None) == 1
    await given.aclose()


async def test_install_twice_or_with_conflicting_arguments_is_an_error() -> None:
    app = FastAPI()
    install(app)
    with pytest.raises(ConfigurationError, match="not set up yet"):
        install(app)
    with pytest.raises(ConfigurationError, match="overrides"):
        install(FastAPI(), settings=Settings.from_env({}), ratelimit_headers="both")
    with pytest.raises(ConfigurationError, match="rules"):
        install(FastAPI(), [Rule("/a")], middleware=False)
    with pytest.raises(ConfigurationError, match="ratelimit_headrs"):
        install(FastAPI(), ratelimit_headrs="both")


async def test_install_caches_by_its_rules() -> None:
    app = FastAPI(lifespan=lifespan)
    install(app, [Rule("/articles/{id}", methods=["GET"], cache=CachePolicy(ttl=60))])
    calls: list[int] = []

    @app.get("/articles/{number}")
    async def article(number: int) -> dict[str, int]:
        calls.append(number)
        return {"article": number}

    async with running(app), client(app) as http:
        first, second = await http.get("/articles/7"), await http.get("/articles/7")
    assert first.json() == second.json() == {"article": 7}
    assert second.headers["cache-control"] == "max-age=60"
    assert "age" in second.headers
    assert calls == [7]


async def test_install_without_the_middleware() -> None:
    app = FastAPI()
    install(app, middleware=False)
    counted: list[str] = []

    @app.get("/page")
    async def page() -> PlainTextResponse:
        counted.append("page")
        return PlainTextResponse("page", headers={"cache-control": "max-age=60"})

    async with client(app) as http:
        await http.get("/page")
        await http.get("/page")
    assert counted == ["page", "page"]  # nothing caches


async def test_add_middleware_takes_the_core_middleware_as_it_is() -> None:
    """``app.add_middleware(ResilientASGIMiddleware, rules=...)``: Starlette's calling
    convention (the app first, then the keywords) is the middleware's own."""
    for app in (FastAPI(), Starlette()):
        calls: list[str] = []
        app.add_middleware(
            ResilientASGIMiddleware, rules=[Rule("/hello", cache=CachePolicy(ttl=30))]
        )

        async def hello(request: Request, calls: list[str] = calls) -> PlainTextResponse:
            calls.append("hello")
            return PlainTextResponse("hello")

        app.add_route("/hello", hello)
        async with client(app) as http:
            responses = [await http.get("/hello") for _ in range(2)]
        assert [r.text for r in responses] == ["hello", "hello"]
        assert responses[1].headers["cache-control"] == "max-age=30"
        assert calls == ["hello"]
