"""Helpers for the Flask adapter tests: app factories and response readers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from werkzeug.test import TestResponse

from resilient_flask import Resilient


def make_app(
    config: Mapping[str, Any] | None = None,
    *,
    extension: Resilient | None = None,
    **overrides: Any,
) -> tuple[Flask, Resilient]:
    """A fresh app with ``config``, set up by ``extension`` (a new one by default)."""
    app = Flask(__name__)
    app.config.update(config or {})
    if extension is None:
        extension = Resilient(app, **overrides)
    else:
        extension.init_app(app)
    return app, extension


def problem(response: TestResponse) -> dict[str, Any]:
    """The problem+json body of ``response``, after checking its media type."""
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    return body


def hammer(app: Flask, count: int, path: str, **environ: str) -> list[int]:
    """``count`` requests to ``path`` at once from ``count`` threads; their statuses."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        client = app.test_client()
        barrier.wait()
        status = client.get(path, environ_base=dict(environ)).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(statuses) == count
    return statuses


def counting_view(calls: list[str], name: str) -> Callable[[], dict[str, int]]:
    """A view that records its calls and returns how many there were."""

    def view() -> dict[str, int]:
        calls.append(name)
        return {"calls": len(calls)}

    view.__name__ = name
    view.__qualname__ = name
    return view
