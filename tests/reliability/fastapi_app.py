"""The FastAPI app of the reliability suite (resilient-fastapi), served by uvicorn.

The same routes, names and options as ``flask_app.py`` (see ``routes.py``), through the
adapter's dependencies, ``install`` and ``lifespan``.
"""

from __future__ import annotations

import asyncio
import os

import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException

from resilient import cached
from resilient.ratelimit import by_header
from resilient_fastapi import Breaker, RateLimit, install, lifespan
from tests.reliability import routes


def create_app() -> FastAPI:
    """The app (uvicorn: ``--factory tests.reliability.fastapi_app:create_app``)."""
    app = FastAPI(lifespan=lifespan)
    install(app)
    counters: list[redis.asyncio.Redis] = []  # built on the serving loop, at first use
    per_header = by_header(routes.KEY_HEADER)
    edge = Breaker(routes.BREAKER_NAME, **routes.BREAKER_OPTIONS)

    @cached(ttl=60, name=routes.COMPUTE_CACHE, lock=True, lock_ttl=5)
    async def compute(key: str) -> str:
        # The view's own work: counted in Redis so the test sees every computation.
        if not counters:
            counters.append(redis.asyncio.Redis.from_url(os.environ["REL_COUNTER_URL"]))
        await counters[0].incr(routes.calls_key(key))
        await asyncio.sleep(routes.COMPUTE_SECONDS)
        return f"value-{key}"

    @cached(ttl=routes.WORK_TTL, name=routes.WORK_CACHE)
    async def work_value(item: str) -> str:
        return f"item-{item}"

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    limited_by = RateLimit(routes.limit(), key=per_header, name=routes.LIMIT_NAME)

    @app.get("/limited", dependencies=[Depends(limited_by)])
    async def limited() -> str:
        return "admitted"

    @app.get("/compute/{item}")
    async def compute_view(item: str) -> str:
        return await compute(item)

    @app.get("/guarded", dependencies=[Depends(edge)])
    async def guarded(fail: str = "") -> str:
        if fail:
            raise HTTPException(500, "upstream failed")
        return "guarded"

    work_limit = RateLimit(routes.WORK_LIMIT, key=per_header, name=routes.WORK_NAME)
    work_breaker = Breaker(routes.WORK_BREAKER, **routes.BREAKER_OPTIONS)

    @app.get("/work", dependencies=[Depends(work_limit), Depends(work_breaker)])
    async def work(item: str = "0") -> str:
        return await work_value(item)

    return app
