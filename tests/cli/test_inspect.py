"""``resilient inspect`` against a real redis-server: breakers, limits near their cap, cache."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from resilient import cached
from resilient.backends import async_backend_from_url, backend_from_url
from resilient.breaker import CircuitBreaker
from resilient.breaker.policies import ConsecutiveFailures
from resilient.breaker.shared import REGISTRY_KEY, SharedStore
from resilient.breaker.state import StateMachine
from resilient.ratelimit import RateLimiter
from tests.cli.conftest import PASSWORD, PATIENT, run, run_json
from tests.support.redis_servers import RedisServer


class Boom(Exception):
    """The dependency failed."""


def _boom() -> None:
    raise Boom


def test_breakers_with_state_failures_and_time_to_half_open(
    redis_server: RedisServer, breakers: Callable[..., CircuitBreaker]
) -> None:
    """Registered breakers, and one only a SCAN finds (its registry entry is gone)."""
    tripped = breakers("payments", redis_server.url, fail_max=1, reset_timeout=30)
    with pytest.raises(Boom):
        tripped.call(_boom)
    counting = breakers("search", redis_server.url, fail_max=5)
    for _ in range(2):
        with pytest.raises(Boom):
            counting.call(_boom)
    with redis_server.client() as client:
        # A breaker of a process whose registration was lost: found by its state key.
        client.hset("{resilient:breaker:legacy}:state",
                    mapping={"st": 0, "gen": 4, "until": 0, "fails": 1, "ok": 0})  # fmt: skip
    report = run_json("inspect", "--backend", redis_server.url)
    rows = {row["name"]: row for row in report["breakers"]}
    assert list(rows) == ["legacy", "payments", "search"]
    assert rows["payments"]["state"] == "open"
    assert 29.0 < rows["payments"]["half_open_in"] <= 30.0
    assert (rows["search"]["state"], rows["search"]["failures"]) == ("closed", 2)
    assert rows["search"]["fail_max"] == 5
    assert rows["search"]["half_open_in"] is None
    assert rows["legacy"] == {
        "name": "legacy", "state": "closed", "failures": 1, "fail_max": None,
        "generation": 4, "half_open_in": None, "stored": True,
    }  # fmt: skip
    status, text = run("inspect", "--backend", redis_server.url)
    assert status == 0
    lines = text.splitlines()
    assert lines[0] == f"backend {redis_server.url}"
    table = lines[2:6]
    assert table[0].split() == ["BREAKER", "STATE", "FAILURES", "HALF-OPEN", "IN"]
    assert table[1].split() == ["legacy", "closed", "1", "-"]
    assert table[2].split()[:3] == ["payments", "open", "0/1"]  # open: the count restarts
    assert table[3].split() == ["search", "closed", "2/5", "-"]


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window-counter", "moving-window"])
def test_limits_at_80_percent_of_their_amount(redis_server: RedisServer, strategy: str) -> None:
    """9 of 10 is listed, 7 of 10 is not; the amount comes from --limits, by window."""
    limiter = RateLimiter(
        "10/minute", scope="api", strategy=strategy, url=redis_server.url, settings=PATIENT
    )
    try:
        for _ in range(9):
            assert limiter.hit("alice").allowed
        for _ in range(7):
            assert limiter.hit("bob").allowed
    finally:
        limiter.close()
    report = run_json("inspect", "--backend", redis_server.url, "--limits", "10/minute")
    limits = report["limits"]
    assert limits["counters"] == 2
    assert limits["counters_without_known_amount"] == 0
    (row,) = limits["near_cap"]
    assert (row["scope"], row["identity"], row["window"]) == ("api", "alice", 60)
    assert (row["count"], row["amount"], row["usage"]) == (9, 10, 0.9)
    # Without an amount for that window the counters are only counted.
    unknown = run_json("inspect", "--backend", redis_server.url)["limits"]
    assert (unknown["near_cap"], unknown["counters_without_known_amount"]) == ([], 2)


def test_the_configured_limits_give_the_amounts(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RESILIENT_RATELIMIT_DEFAULT is read: a counter at 4 of 5 per second is listed."""
    monkeypatch.setenv("RESILIENT_RATELIMIT_DEFAULT", "5/second;1000/day")
    limiter = RateLimiter("5/hour", scope="jobs", url=redis_server.url, settings=PATIENT)
    try:
        for _ in range(4):
            limiter.hit("worker")
    finally:
        limiter.close()
    assert run_json("inspect", "--backend", redis_server.url)["limits"]["near_cap"] == []
    monkeypatch.setenv("RESILIENT_RATELIMIT_DEFAULT", "5/hour")
    (row,) = run_json("inspect", "--backend", redis_server.url)["limits"]["near_cap"]
    assert (row["identity"], row["count"], row["amount"]) == ("worker", 4, 5)


def test_cache_entries_per_namespace_and_tags(redis_server: RedisServer) -> None:
    """Three entries of namespace app, two of namespace reports, three tag sets."""

    @cached(ttl=60, name="profile", namespace="app", tags=["user:{uid}"], backend=redis_server.url)
    def profile(uid: int) -> dict[str, int]:
        return {"uid": uid}

    @cached(ttl=60, name="report", namespace="reports", backend=redis_server.url)
    def report(day: int) -> int:
        return day

    for uid in (1, 2, 2, 3):
        profile(uid)
    report(1)
    report(2)
    result = run_json("inspect", "--backend", redis_server.url)
    assert result["cache"] == {
        "entries_per_namespace": {"app": 3, "reports": 2}, "tag_sets": 3, "http_entries": 0,
    }  # fmt: skip
    assert result["truncated"] is False
    text = run("inspect", "--backend", redis_server.url)[1]
    rows = [line.split() for line in text.splitlines()]
    assert ["app", "3"] in rows
    assert ["reports", "2"] in rows
    assert ["tag", "sets", "3"] in rows


def test_scans_stop_at_the_limit(redis_server: RedisServer) -> None:
    """--limit bounds the keys examined; the report says it is partial."""
    with redis_server.client() as client:
        client.mset({f"app:k{n}": b"x" for n in range(2000)})
    result = run_json("inspect", "--backend", redis_server.url, "--limit", "600")
    assert result["truncated"] is True
    assert 0 < result["cache"]["entries_per_namespace"]["app"] < 2000
    assert run_json("inspect", "--backend", redis_server.url)["cache"]["entries_per_namespace"] == {
        "app": 2000
    }
    text = run("inspect", "--backend", redis_server.url, "--limit", "600")[1]
    assert text.endswith("stopped at --limit keys scanned: figures are partial\n")


def test_inspect_never_shows_the_password(
    secured: tuple[RedisServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Table and JSON name the backend with its password masked."""
    server, url = secured
    table = run("inspect", "--backend", url)[1]
    report = run_json("inspect", "--backend", url)
    assert table.splitlines()[0] == f"backend redis://default:***@127.0.0.1:{server.port}/0"
    assert report["backend"] == f"redis://default:***@127.0.0.1:{server.port}/0"
    captured = capsys.readouterr()
    assert all(PASSWORD not in text for text in (table, str(report), captured.err))


async def test_a_breaker_first_used_from_asyncio_registers_too(redis_server: RedisServer) -> None:
    """The registry write follows the first reply on the asyncio path as on the sync one,
    once per store."""
    machine = StateMachine("async-only", ConsecutiveFailures(4), reset_timeout=12.0,
                           success_threshold=2, permitted_calls=3, probe_timeout=5.0,
                           authoritative=False)  # fmt: skip
    backend = backend_from_url(redis_server.url, timeout=2.0)
    async_backend = async_backend_from_url(redis_server.url, timeout=2.0)
    store = SharedStore("async-only", machine, backend, async_backend=async_backend)
    client = redis_server.client()
    try:
        await store.arun("fail", 0)
        assert json.loads(client.hget(REGISTRY_KEY, "async-only") or b"") == {
            "reset_timeout": 12.0, "fail_max": 4, "success_threshold": 2,
            "permitted_calls": 3, "probe_timeout": 5.0,
        }  # fmt: skip
        client.delete(REGISTRY_KEY)
        await store.arun("fail", 0)
        assert client.exists(REGISTRY_KEY) == 0  # written once per store, not per event
        await store.arun("sync", 0)
    finally:
        await store.aclose()
        backend.close()
        client.close()
    (row,) = run_json("inspect", "--backend", redis_server.url)["breakers"]
    # Its registry entry was deleted: found by SCAN, without settings.
    assert (row["name"], row["failures"], row["fail_max"]) == ("async-only", 2, None)


def test_foreign_keys_under_the_limit_prefix_are_skipped(redis_server: RedisServer) -> None:
    """A hash, a bad value and a key without a window under ``resilient:rl:`` are counted
    or skipped, never an error."""
    with redis_server.client() as client:
        client.hset("resilient:rl:{x/y}:fw:60", "a", 1)  # WRONGTYPE for GET
        client.set("resilient:rl:{x/z}:sw:60", b"garbage")
        client.set("resilient:rl:{x/w}:fw:soon", b"1:2")
    report = run_json("inspect", "--backend", redis_server.url, "--limits", "1/minute")
    assert report["limits"] == {"near_cap": [], "counters": 2, "counters_without_known_amount": 0}
