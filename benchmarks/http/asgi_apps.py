"""FastAPI apps for the HTTP benchmark; ``BENCH_VARIANT`` picks one (uvicorn ``--factory``).

Every variant serves the same endpoint, ``GET /items``: a JSON list of 50 records.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from benchmarks.http.payload import items

HUGE_LIMIT = "100000000/minute"  # never reached: measures the cost of counting, not of 429s


def bare() -> Any:
    app = FastAPI()

    @app.get("/items")
    async def list_items() -> list[dict[str, object]]:
        return items()

    return app


def resilient_cached() -> Any:
    from resilient.middleware import CachePolicy, ResilientASGIMiddleware, Rule

    rules = [Rule("/items", cache=CachePolicy(ttl=60))]
    return ResilientASGIMiddleware(bare(), rules)


def resilient_limited() -> Any:
    from resilient.middleware import ResilientASGIMiddleware, Rule

    rules = [Rule("/items", cache=False, limits=HUGE_LIMIT)]
    return ResilientASGIMiddleware(bare(), rules)


def slowapi_limited() -> Any:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(key_func=get_remote_address)
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    @app.get("/items")
    @limiter.limit(HUGE_LIMIT)
    async def list_items(request: Request, response: Response) -> list[dict[str, object]]:
        return items()

    return app


def fastapi_cache_cached() -> Any:
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.inmemory import InMemoryBackend
    from fastapi_cache.decorator import cache

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        FastAPICache.init(InMemoryBackend(), prefix="bench")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/items")
    @cache(expire=60)
    async def list_items() -> list[dict[str, object]]:
        return items()

    return app


VARIANTS = {
    "bare": bare,
    "resilient-cached": resilient_cached,
    "resilient-limited": resilient_limited,
    "slowapi-limited": slowapi_limited,
    "fastapi-cache2-cached": fastapi_cache_cached,
}


def make_app() -> Any:
    """The app named by ``BENCH_VARIANT``."""
    return VARIANTS[os.environ["BENCH_VARIANT"]]()
