"""Three instances, two frameworks, one Redis, behind nginx: what they promise together.

A global limit admits exactly N across all instances, a cached key is computed once
however many instances ask at once, and a breaker tripped through one instance rejects
on every instance within 100 ms.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest

from tests.reliability import routes
from tests.reliability.client import Client, Sample, burst, get
from tests.reliability.conftest import Figures
from tests.reliability.processes import Fleet
from tests.reliability.scenarios import LIMIT
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.redis]


def limited_burst(fleet: Fleet, key: str, count: int = 3 * LIMIT) -> list[Sample]:
    """``count`` concurrent requests through nginx's round robin, all counted as ``key``."""
    return burst(fleet.port, ["/limited"] * count, headers={routes.KEY_HEADER: key})


def test_global_limit_is_exact_across_instances(fleet: Fleet, figures: Figures) -> None:
    samples = limited_burst(fleet, f"exact-{uuid.uuid4().hex}")

    statuses = Counter(sample.status for sample in samples)
    figures.record("global limit", admitted=statuses[200], rejected=statuses[429], sent=30)
    assert statuses == {200: LIMIT, 429: 2 * LIMIT}, fleet.logs()
    # Every instance answered, so the count was shared, not per process.
    assert {sample.upstream for sample in samples} == {
        fleet.upstream(n) for n in range(len(fleet.instances))
    }


def test_each_cached_key_is_computed_once(
    fleet: Fleet, rel_redis: RedisServer, figures: Figures
) -> None:
    keys = [f"k{n}-{uuid.uuid4().hex[:8]}" for n in range(4)]
    # Each key asked for 3 times of every instance, all at once (12 threads).
    paths = [f"/i{n}/compute/{key}" for _ in range(3) for key in keys for n in range(3)]

    samples = burst(fleet.port, paths, threads=12)

    assert [s.status for s in samples] == [200] * len(paths), fleet.logs()
    with rel_redis.client() as client:
        calls = {key: int(client.get(routes.calls_key(key)) or 0) for key in keys}
    figures.record("cached key", requests_per_key=9, computations=calls)
    assert calls == dict.fromkeys(keys, 1)
    values = {sample.body.strip(b'"') for sample in samples}
    assert values == {f"value-{key}".encode() for key in keys}


def test_breaker_trip_through_one_instance_rejects_on_all(fleet: Fleet, figures: Figures) -> None:
    others = range(1, len(fleet.instances))
    # Every instance builds its shared breaker (and subscribes) before the trip.
    assert [get(fleet.port, f"/i{n}/guarded").status for n in range(3)] == [200] * 3

    failures = [
        get(fleet.port, "/i0/guarded?fail=1") for _ in range(routes.BREAKER_OPTIONS["fail_max"])
    ]
    tripped = failures[-1].started  # an upper bound: the trip happened after this
    assert [f.status for f in failures] == [500] * 3, fleet.logs()

    seen: dict[int, float] = {}

    def poll(n: int) -> None:
        client = Client(fleet.port)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sample = client.get(f"/i{n}/guarded")
            if sample.status == 503:
                seen[n] = sample.started + sample.elapsed - tripped
                break
            assert sample.status == 200
            time.sleep(0.002)
        client.close()

    pollers = [threading.Thread(target=poll, args=(n,)) for n in others]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join(timeout=10)

    figures.record(
        "breaker trip", seconds_until_rejected={f"i{n}": round(s, 4) for n, s in seen.items()}
    )
    assert get(fleet.port, "/i0/guarded").status == 503
    assert sorted(seen) == list(others), fleet.logs()
    assert max(seen.values()) <= 0.1
