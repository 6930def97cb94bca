"""Paths left alone through both adapters: the settings they read carry the exclusions.

With ``RESILIENT_HTTP_CACHE_TTL=30`` and ``RESILIENT_HTTP_LIMITS`` set, a mounted
``/metrics`` is neither cached nor counted behind ``Resilient(app)`` or ``install(app)``;
a route that is not excluded still is.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from flask import Flask
from starlette.types import Receive, Scope, Send

from resilient_fastapi import install
from resilient_flask import Resilient
from tests.integrations.fastapi.support import client

ENV = {"RESILIENT_HTTP_CACHE_TTL": "30", "RESILIENT_HTTP_LIMITS": "2/minute"}


@pytest.fixture(autouse=True)
def _issue_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    # The middleware's limits count in the process's memory backend: counters of their
    # own per test, so that no test sees another's.
    monkeypatch.setenv("RESILIENT_RATELIMIT_KEY_PREFIX", f"test:{uuid.uuid4().hex}")


def _middleware_fields(headers: dict[str, str]) -> list[str]:
    names = [name.lower() for name in headers]
    return [n for n in names if "ratelimit" in n or n in ("retry-after", "cache-control", "age")]


def test_flask_extension_leaves_metrics_alone() -> None:
    app = Flask(__name__)
    calls = {"metrics": 0, "api": 0}

    @app.get("/metrics")
    def metrics() -> str:
        calls["metrics"] += 1
        return "up 1\n"

    @app.get("/api")
    def api() -> str:
        calls["api"] += 1
        return "data"

    Resilient(app)
    http = app.test_client()
    responses = [http.get("/metrics", buffered=True) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert calls["metrics"] == 5
    assert all(_middleware_fields(dict(r.headers)) == [] for r in responses)
    # Buffered: the body is read and closed, so the cache stores it at once.
    assert [http.get("/api", buffered=True).status_code for _ in range(3)] == [200, 200, 429]
    assert calls["api"] == 1


def test_flask_config_names_the_paths() -> None:
    app = Flask(__name__)
    app.config["RESILIENT_HTTP_EXCLUDE_PATHS"] = ["/ops/**"]

    @app.get("/ops/stats")
    def stats() -> str:
        return "ok"

    Resilient(app)
    http = app.test_client()
    assert [http.get("/ops/stats").status_code for _ in range(3)] == [200] * 3
    assert app.extensions["resilient"].settings.http.exclude_paths == ("/ops/**",)


def test_fastapi_install_leaves_a_mounted_metrics_app_alone() -> None:
    app = FastAPI()
    calls = {"metrics": 0, "api": 0}

    async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
        # What prometheus_client.make_asgi_app() is to the app: a mounted ASGI app.
        calls["metrics"] += 1
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"up 1\n"})

    @app.get("/api")
    async def api() -> str:
        calls["api"] += 1
        return "data"

    app.mount("/metrics", metrics_app)
    install(app)

    async def main() -> tuple[list[int], list[list[str]], list[int]]:
        async with client(app) as http:
            metrics = [await http.get("/metrics/") for _ in range(5)]
            api = [(await http.get("/api")).status_code for _ in range(3)]
        fields = [_middleware_fields(dict(r.headers)) for r in metrics]
        return [r.status_code for r in metrics], fields, api

    statuses, fields, limited = asyncio.run(main())
    assert statuses == [200] * 5
    assert calls["metrics"] == 5
    assert fields == [[]] * 5
    assert limited == [200, 200, 429]
    assert calls["api"] == 1


def test_fastapi_install_takes_the_setting_as_an_override() -> None:
    app = FastAPI()
    calls = []

    @app.get("/metrics")
    async def metrics() -> str:
        calls.append(1)
        return "up"

    install(app, http_exclude_paths="")  # nothing excluded: the issue's behaviour

    async def main() -> list[int]:
        async with client(app) as http:
            return [(await http.get("/metrics")).status_code for _ in range(3)]

    assert asyncio.run(main()) == [200, 200, 429]
    assert calls == [1]
