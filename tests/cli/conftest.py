"""Fixtures for the command's tests against real redis-server processes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient.breaker import CircuitBreaker
from resilient.cli import main
from resilient.config import Settings
from tests.support.redis_servers import RedisServer

#: Generous timeouts: the two-core CI box is shared, and these tests are not about timeouts.
PATIENT = Settings.from_env({}, overrides={"op_timeout": 2.0, "connect_timeout": 2.0})
PASSWORD = "hunter2-secret"


def run(*argv: str) -> tuple[int, str]:
    """The exit status and standard output of ``resilient *argv``."""
    out = io.StringIO()
    status = main(list(argv), out)
    return status, out.getvalue()


def run_json(*argv: str) -> Any:
    """``resilient *argv --json``, which must succeed, parsed."""
    status, text = run(*argv, "--json")
    assert status == 0, text
    return json.loads(text)


@pytest.fixture
def secured(redis_factory: Callable[[], RedisServer]) -> tuple[RedisServer, str]:
    """A dedicated server that requires a password, and its URL with the password."""
    server = redis_factory()
    with server.client() as client:
        client.config_set("requirepass", PASSWORD)
    return server, f"redis://default:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture
def breakers() -> Iterator[Callable[..., CircuitBreaker]]:
    """Builds shared breakers (no periodic resync: only pub/sub moves them), shut down
    after the test."""
    built: list[CircuitBreaker] = []

    def build(name: str, url: str, **options: Any) -> CircuitBreaker:
        options.setdefault("resync_interval", 0)
        breaker = CircuitBreaker(name, shared=True, url=url, settings=PATIENT, **options)
        built.append(breaker)
        return breaker

    yield build
    for breaker in built:
        breaker.shutdown()
