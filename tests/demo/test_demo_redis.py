"""``resilient demo`` against a real redis-server, in one process and in several."""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import re
from typing import Any

import pytest

from resilient import _demo
from resilient._demo_app import Plan
from resilient.cli import main
from tests.demo.support import assert_consistent, summary
from tests.support.redis_servers import RedisServer

RUN_PART = re.compile(r"\d+-[0-9a-f]{8}")


def _run_parts(server: RedisServer) -> set[str]:
    with server.client() as client:
        keys = [key.decode() for key in client.scan_iter(count=1000)]
    assert keys, "the demo stored nothing in Redis"
    return {match.group() for key in keys if (match := RUN_PART.search(key))}


def test_two_workers_share_redis(
    redis_server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """--workers 2 on Redis: two server processes, figures consistent, each feature at
    work, the workers' breaker transitions in the display (not on their stderr), and
    every process ended afterwards."""
    out = io.StringIO()
    assert main(["demo", "--backend", redis_server.url, "--workers", "2", "--duration", "2"],
                out) == 0  # fmt: skip
    text = out.getvalue()
    assert f"resilient demo on {redis_server.url}, 2 server processes" in text
    rows = summary(text)
    assert_consistent(rows)
    assert rows["upstream calls"][1] < rows["upstream calls"][0]
    assert rows["cache hit ratio"][1] > 0
    assert rows["rate limited (429)"][1] > 0
    assert rows["breaker trips"][1] >= 1
    assert multiprocessing.active_children() == []
    assert re.search(r"^  +[\d.]+ s  worker [12]: breaker 'upstream': closed -> open$", text,
                     re.MULTILINE)  # fmt: skip
    assert capfd.readouterr().err == ""
    parts = _run_parts(redis_server)
    assert len(parts) == 1  # one run: its names in the backend all carry the same part
    assert not [part for part in parts if part in text]  # and it is never printed


def test_backend_from_the_environment(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Already on Redis (RESILIENT_BACKEND_URL): the default run uses it, and a second
    run on the same server counts apart from the first (names unique per run)."""
    monkeypatch.setenv("RESILIENT_BACKEND_URL", redis_server.url)
    figures = []
    for _ in range(2):
        out = io.StringIO()
        assert main(["demo", "--duration", "1"], out) == 0
        assert f"resilient demo on {redis_server.url}, one server process" in out.getvalue()
        figures.append(summary(out.getvalue()))
    for rows in figures:
        assert_consistent(rows)
        assert rows["rate limited (429)"][1] > 0
    assert len(_run_parts(redis_server)) == 2


def test_a_refused_password_is_one_line(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server answers, with an error: its reason in one line, the password masked."""
    url = redis_server.url.replace("redis://", "redis://:hunter2@")
    assert main(["demo", "--backend", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"resilient demo: cannot reach {url.replace('hunter2', '***')} (")
    assert "AUTH" in err
    assert err.count("\n") == 1
    assert "hunter2" not in err


def test_a_worker_that_cannot_start_is_one_line(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker whose middleware refuses its settings: the reason in one line, exit 1,
    and no worker process left."""
    real = _demo.plan_for

    def broken(*args: Any) -> Plan:
        plan = real(*args)
        return dataclasses.replace(plan, environ={**(plan.environ or {}),
                                                  "RESILIENT_CACHE_TTL": "forever"})  # fmt: skip

    monkeypatch.setattr(_demo, "plan_for", broken)
    argv = ["demo", "--backend", redis_server.url, "--workers", "2", "--duration", "1"]
    assert main(argv, io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith("resilient demo: a worker failed: ConfigurationError: ")
    assert "RESILIENT_CACHE_TTL" in err
    assert err.count("\n") == 1
    assert multiprocessing.active_children() == []
