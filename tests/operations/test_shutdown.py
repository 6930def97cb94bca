"""Graceful shutdown: SIGTERM during traffic under real uvicorn and gunicorn.

Each test serves an app with Redis-backed limits and cache from the test's own
redis-server, starts slow requests (0.5 s each), sends SIGTERM once all of them are in
the app, and checks that every one completes with a 200, that the server exits 0 in
time, that nothing is logged as an error (nor an unclosed resource warned about), and
that the app's connections to Redis are gone.
"""

from __future__ import annotations

import os
import signal

import pytest
import redis

from tests.operations.servers import (
    BIN,
    Server,
    error_lines,
    free_port,
    serving,
    traffic,
    wait_for,
)
from tests.support.redis_servers import RedisServer

IN_FLIGHT = 8
EXIT_WITHIN = 10.0


def _env(redis_server: RedisServer) -> dict[str, str]:
    return {
        "RESILIENT_BACKEND_URL": redis_server.url,
        "RESILIENT_HTTP_LIMITS": "1000/minute",
        "RESILIENT_HTTP_CACHE_TTL": "30",
        # Breakers with state shared through Redis: a subscription and a resync thread.
        "RESILIENT_HTTP_BREAKER": "1",
        "RESILIENT_BREAKER_SHARED": "1",
        "RESILIENT_RATELIMIT_KEY_PREFIX": f"shutdown:{os.getpid()}",
    }


def _client_ids(client: redis.Redis) -> set[int]:
    return {int(entry["id"]) for entry in client.client_list()}


def _shut_down_mid_traffic(
    server: Server, probe: redis.Redis, before: set[int], *, processes: int, exit_code: int = 0
) -> str:
    sent = traffic(server.url, [f"/slow?n={n}" for n in range(IN_FLIGHT)])
    wait_for(lambda: server.started_count() == IN_FLIGHT, 10, "every request in the app")
    opened = _client_ids(probe) - before
    assert opened, "the app holds connections to Redis while it serves"
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=EXIT_WITHIN)
    sent.join(5)
    assert sorted(map(str, sent.outcomes)) == ["200"] * IN_FLIGHT
    output = server.stderr() + server.stdout()
    assert code == exit_code, output
    assert error_lines(output, server.port) == [], output
    # Each app process closed its Redis sockets itself, before it ended.
    left = server.left_open()
    assert len(left) == processes, output
    assert set(left.values()) == {0}, left
    wait_for(lambda: not (_client_ids(probe) & opened), 2, "the app's connections to close")
    return output


def test_uvicorn_finishes_in_flight_requests_and_closes_pools(redis_server: RedisServer) -> None:
    port = free_port()
    probe = redis_server.client()
    before = _client_ids(probe)
    command = [str(BIN / "uvicorn"), "tests.operations.apps.fastapi_app:app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]  # fmt: skip
    with serving(command, _env(redis_server), port) as server:
        # uvicorn (since 0.29) re-raises the signal it handled once it has shut down
        # cleanly, so that a supervisor sees how it ended: -SIGTERM is its clean exit.
        output = _shut_down_mid_traffic(
            server, probe, before, processes=1, exit_code=-signal.SIGTERM
        )
    probe.close()
    assert "Application shutdown complete." in output  # the lifespan ran to its end


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_finishes_in_flight_requests_and_closes_pools(
    redis_server: RedisServer, worker: str
) -> None:
    port = free_port()
    probe = redis_server.client()
    before = _client_ids(probe)
    # A sync worker serves one request at a time: one worker per request in flight.
    scale = ["--workers", str(IN_FLIGHT)] if worker == "sync" else ["--threads", str(IN_FLIGHT)]
    command = [str(BIN / "gunicorn"), "tests.operations.apps.flask_app:app",
               "--bind", f"127.0.0.1:{port}", "--worker-class", worker, *scale,
               "--graceful-timeout", "5", "--log-level", "info",
               # The control socket's path is one per user: other gunicorns may run.
               "--no-control-socket"]  # fmt: skip
    with serving(command, _env(redis_server), port) as server:
        processes = IN_FLIGHT if worker == "sync" else 1
        _shut_down_mid_traffic(server, probe, before, processes=processes)
    probe.close()
