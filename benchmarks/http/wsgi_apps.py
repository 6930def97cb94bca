"""Flask apps for the HTTP benchmark; ``BENCH_VARIANT`` picks one (gunicorn ``app()``).

Every variant serves the same endpoint, ``GET /items``: a JSON list of 50 records.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify

from benchmarks.http.payload import items

HUGE_LIMIT = "100000000/minute"  # never reached: measures the cost of counting, not of 429s


def bare() -> Any:
    app = Flask("bench")

    @app.get("/items")
    def list_items() -> Any:
        return jsonify(items())

    return app


def resilient_cached() -> Any:
    from resilient.middleware import CachePolicy, ResilientWSGIMiddleware, Rule

    app = bare()
    app.wsgi_app = ResilientWSGIMiddleware(
        app.wsgi_app, [Rule("/items", cache=CachePolicy(ttl=60))]
    )
    return app


def resilient_limited() -> Any:
    from resilient.middleware import ResilientWSGIMiddleware, Rule

    app = bare()
    rules = [Rule("/items", cache=False, limits=HUGE_LIMIT)]
    app.wsgi_app = ResilientWSGIMiddleware(app.wsgi_app, rules)
    return app


def flask_limiter_limited() -> Any:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    app = bare()
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    app.view_functions["list_items"] = limiter.limit(HUGE_LIMIT)(app.view_functions["list_items"])
    return app


def flask_caching_cached() -> Any:
    from flask_caching import Cache

    app = Flask("bench")
    cache = Cache(app, config={"CACHE_TYPE": "SimpleCache"})

    @app.get("/items")
    @cache.cached(timeout=60)
    def list_items() -> Any:
        return jsonify(items())

    return app


VARIANTS = {
    "bare": bare,
    "resilient-cached": resilient_cached,
    "resilient-limited": resilient_limited,
    "flask-limiter-limited": flask_limiter_limited,
    "flask-caching-cached": flask_caching_cached,
}


def app() -> Any:
    """The app named by ``BENCH_VARIANT`` (gunicorn: ``benchmarks.http.wsgi_apps:app()``)."""
    return VARIANTS[os.environ["BENCH_VARIANT"]]()
