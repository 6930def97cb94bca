"""Fixtures of the reliability suite: one redis-server, the apps behind nginx, figures.

The suite needs redis-server, nginx, gunicorn and uvicorn; without one it skips with
the reason, unless RESILIENT_TEST_REQUIRE_REDIS=1 (set by ``.ci/run``) makes it required:
that switch makes every test of real servers required, these included.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import processes
from tests.reliability.processes import Fleet
from tests.support import redis_servers
from tests.support.redis_servers import RedisServer

#: Where the measured figures of a run are written (also printed, shown with ``-s``).
FIGURES_FILE = Path(tempfile.gettempdir()) / "resilient-reliability-figures.json"


def need_tools() -> None:
    """Skip (or fail, where required) when a binary the suite runs is missing."""
    missing = processes.missing_tools()
    if redis_servers.REDIS_SERVER is None or redis_servers.REDIS_CLI is None:
        missing.insert(0, "redis-server and redis-cli (apt-get install redis-server)")
    if missing:
        reason = "reliability suite needs " + ", ".join(missing)
        if redis_servers.REQUIRE:
            pytest.fail(reason + " (required here)")
        pytest.skip(reason)


class Figures:
    """Measured figures by scenario, written to :data:`FIGURES_FILE` as they come."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def record(self, scenario: str, **values: Any) -> None:
        self.data.setdefault(scenario, {}).update(values)
        FIGURES_FILE.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        shown = ", ".join(f"{name}={value}" for name, value in values.items())
        print(f"\n[reliability] {scenario}: {shown} (all figures: {FIGURES_FILE})")


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


@pytest.fixture(scope="package")
def rel_redis() -> Iterator[RedisServer]:
    """The one redis-server all instances share; fault tests kill and restart it."""
    need_tools()
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def fleet(rel_redis: RedisServer) -> Iterator[Fleet]:
    """Two gunicorn Flask instances and one uvicorn FastAPI instance behind nginx."""
    started = Fleet(rel_redis.url, rel_redis.url)
    started.start()
    try:
        yield started
    finally:
        started.stop()
