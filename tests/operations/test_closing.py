"""What closing releases: the middleware's own limiters and breakers, every Flask app.

Counted as this process's sockets to a redis-server of the test's own (a fresh one: the
session's server may hold other tests' connections), before and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from flask import Flask
from starlette.types import Receive, Scope, Send

from resilient.config import Settings
from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware, Rule
from resilient.ratelimit import RateLimiter
from resilient_flask import Resilient, close_all
from tests.operations.apps.probe import redis_sockets
from tests.support.redis_servers import RedisServer


@pytest.fixture
def own_redis(redis_factory: Callable[[], RedisServer]) -> RedisServer:
    """A redis-server only this test talks to."""
    return redis_factory()


def _env(server: RedisServer) -> dict[str, str]:
    return {"RESILIENT_BACKEND_URL": server.url, "RESILIENT_HTTP_LIMITS": "100/minute",
            "RESILIENT_HTTP_BREAKER": "1", "RESILIENT_BREAKER_SHARED": "1"}  # fmt: skip


def _wsgi_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [b"ok"]


def test_wsgi_close_releases_what_the_middleware_built_only(own_redis: RedisServer) -> None:
    settings = Settings.from_env(_env(own_redis))
    given = RateLimiter("100/minute", url=own_redis.url, settings=settings)
    rules = [Rule("/given", limits=given)]
    middleware = ResilientWSGIMiddleware(_wsgi_app, rules, settings=settings)
    http = httpx.Client(transport=httpx.WSGITransport(app=middleware), base_url="http://t")
    assert http.get("/given").status_code == 200
    assert http.get("/built").status_code == 200
    assert redis_sockets(own_redis.port) > 0
    middleware.close()
    # The given limiter is the caller's: still open, and still counting.
    held = redis_sockets(own_redis.port)
    assert held > 0
    given.close()
    assert redis_sockets(own_redis.port) == 0
    middleware.close()  # twice is harmless


def test_asgi_aclose_releases_what_the_middleware_built(own_redis: RedisServer) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> tuple[int, int]:
        middleware = ResilientASGIMiddleware(app, settings=Settings.from_env(_env(own_redis)))
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/a")).status_code == 200
        during = redis_sockets(own_redis.port)
        await middleware.aclose()
        return during, redis_sockets(own_redis.port)

    during, after = asyncio.run(main())
    assert during > 0
    assert after == 0


def test_flask_close_all_is_a_gunicorn_hook_and_may_run_twice(own_redis: RedisServer) -> None:
    app = Flask(__name__)
    app.config.update({f"RESILIENT_{k[10:]}": v for k, v in _env(own_redis).items()})

    @app.get("/")
    def index() -> str:
        return "ok"

    Resilient(app)
    http = app.test_client()
    assert http.get("/", buffered=True).status_code == 200
    assert redis_sockets(own_redis.port) > 0
    close_all(object(), object())  # gunicorn calls worker_exit(server, worker)
    assert redis_sockets(own_redis.port) == 0
    assert http.get("/", buffered=True).status_code == 200  # serving again reopens
    close_all()
    close_all()
    assert redis_sockets(own_redis.port) == 0
