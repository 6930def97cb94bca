"""The Flask app of the reliability suite (resilient-flask), served by gunicorn.

Every instance serves the same routes as the FastAPI app in ``fastapi_app.py``, under
the same limiter, breaker and cache names, so counts and states in Redis are shared
across frameworks. Settings come from the environment the test gives the process
(``RESILIENT_BACKEND_URL`` and friends); ``REL_*`` variables are the test's own.
"""

from __future__ import annotations

import os
import time

import redis
from flask import Flask, Response, request

from resilient import cached
from resilient.ratelimit import by_header
from resilient_flask import Resilient
from tests.reliability import routes

resilient = Resilient()


def create_app() -> Flask:
    """The app (gunicorn: ``tests.reliability.flask_app:create_app()``)."""
    app = Flask("reliability")
    resilient.init_app(app)
    counters: list[redis.Redis] = []  # built at first use: cluster runs never compute

    @cached(ttl=60, name=routes.COMPUTE_CACHE, lock=True, lock_ttl=5)
    def compute(key: str) -> str:
        # The view's own work: counted in Redis so the test sees every computation.
        if not counters:
            counters.append(redis.Redis.from_url(os.environ["REL_COUNTER_URL"], socket_timeout=2))
        counters[0].incr(routes.calls_key(key))
        time.sleep(routes.COMPUTE_SECONDS)
        return f"value-{key}"

    @cached(ttl=routes.WORK_TTL, name=routes.WORK_CACHE)
    def work_value(item: str) -> str:
        return f"item-{item}"

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/limited")
    @resilient.limit(routes.limit(), key=by_header(routes.KEY_HEADER), name=routes.LIMIT_NAME)
    def limited() -> str:
        return "admitted"

    @app.get("/compute/<key>")
    def compute_view(key: str) -> str:
        return compute(key)

    @app.get("/guarded")
    @resilient.breaker(routes.BREAKER_NAME, **routes.BREAKER_OPTIONS)
    def guarded() -> Response | str:
        if request.args.get("fail"):
            return Response("upstream failed", status=500)
        return "guarded"

    @app.get("/work")
    @resilient.limit(routes.WORK_LIMIT, key=by_header(routes.KEY_HEADER), name=routes.WORK_NAME)
    @resilient.breaker(routes.WORK_BREAKER, **routes.BREAKER_OPTIONS)
    def work() -> str:
        return work_value(request.args.get("item", "0"))

    return app
