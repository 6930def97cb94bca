"""The commands on Redis Cluster: scans cover every primary, deletions never cross slots."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from resilient.breaker import STATE_OPEN, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import eventually
from tests.cli.conftest import run_json
from tests.support.redis_servers import RedisCluster

pytestmark = pytest.mark.cluster


def test_inspect_breaker_and_purge_on_a_cluster(
    redis_cluster: RedisCluster, breakers: Callable[..., CircuitBreaker]
) -> None:
    """Breakers, namespace keys spread over the three primaries, a purge of all of them."""
    url = redis_cluster.url
    names = [f"svc-{n}" for n in range(6)]  # hash tags on several slots
    live = {name: breakers(name, url) for name in names}
    first = redis_cluster.nodes[0]
    client = redis.RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=5)
    try:
        for n in range(600):
            client.set(f"app:k{n}", b"x")
        report = run_json("inspect", "--backend", url)
        assert [row["name"] for row in report["breakers"]] == names
        assert report["cache"]["entries_per_namespace"]["app"] == 600
        assert run_json("breaker", "open", "svc-3", "--backend", url)["state"] == "open"
        assert eventually(lambda: live["svc-3"].current_state == STATE_OPEN)
        with pytest.raises(CircuitOpenError):
            live["svc-3"].call(lambda: None)
        result = run_json("cache", "purge", "--namespace", "app", "--backend", url)
        assert result == {"namespace": "app", "deleted": 600, "truncated": False}
        assert not any(client.scan_iter("app:*"))
    finally:
        client.close()
