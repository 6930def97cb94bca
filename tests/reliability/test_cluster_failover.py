"""A Redis Cluster losing a master under load: the apps answer throughout (failing open),
and once a replica has taken over, the global limit counts exactly again, also on the
slots that moved.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from tests.reliability import routes
from tests.reliability.client import LoadLoop, burst
from tests.reliability.cluster import ReplicatedCluster
from tests.reliability.conftest import Figures, need_tools
from tests.reliability.processes import Fleet
from tests.reliability.scenarios import LIMIT, Phase
from tests.support.redis_servers import RedisServer

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.cluster,
]


#: Seconds after the failover within which the limit must count exactly again.
EXACT_WITHIN = 10.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[ReplicatedCluster]:
    need_tools()
    started = ReplicatedCluster().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def cluster_fleet(cluster: ReplicatedCluster) -> Iterator[Fleet]:
    started = Fleet(cluster.url, cluster.nodes[0].url)
    started.start()
    try:
        yield started
    finally:
        started.stop()


def limit_slot(value: str) -> int:
    """The slot of ``/limited``'s counter for key header ``value`` (its hash tag)."""
    return key_slot(f"{routes.LIMIT_NAME}/h:{routes.KEY_HEADER}:{value}".encode())


def limited(fleet: Fleet, value: str, count: int = 3 * LIMIT) -> Counter[int]:
    paths = ["/limited"] * count
    return Counter(s.status for s in burst(fleet.port, paths, headers={routes.KEY_HEADER: value}))


def moved_key(cluster: ReplicatedCluster, promoted: RedisServer) -> str:
    """A fresh key header value whose ``/limited`` counter lives on ``promoted``."""
    return next(
        value
        for value in (f"post-{uuid.uuid4().hex[:8]}" for _ in range(100_000))
        if cluster.master_of_slot(limit_slot(value)) is promoted
    )


def counted(cluster: ReplicatedCluster, pattern: str) -> bool:
    """Whether any live master holds a key matching ``pattern``."""
    for node in cluster.live_nodes():
        with node.client() as client:
            if any(client.scan_iter(pattern, count=1000)):
                return True
    return False


def test_master_failover_under_load(
    cluster: ReplicatedCluster, cluster_fleet: Fleet, figures: Figures
) -> None:
    fleet = cluster_fleet
    before_key = f"pre-{uuid.uuid4().hex[:8]}"
    slot = limit_slot(before_key)
    victim = cluster.master_of_slot(slot)
    assert limited(fleet, before_key) == {200: LIMIT, 429: 2 * LIMIT}, fleet.logs()
    with victim.client() as client:  # the counter lives where the test will strike
        assert client.keys(f"*{before_key}*")

    phase = Phase("failover")
    load = LoadLoop(fleet.port, phase.request, threads=3, interval=0.005, max_seconds=60)
    load.start()
    try:
        time.sleep(1.0)
        killed = time.monotonic()
        victim.kill()
        cluster.wait_healthy(masters=3, replicas=2, seconds=30)
        failed_over = time.monotonic()
        phase.name = "after"
        promoted = cluster.master_of_slot(slot)
        # Bursts on fresh keys whose counters live on the slots that moved, until one
        # counts exactly: failing open meanwhile, the apps admit more than the limit.
        bursts: list[dict[int, int]] = []
        exact_after: float | None = None
        while exact_after is None and time.monotonic() < failed_over + EXACT_WITHIN:
            bursts.append(dict(limited(fleet, moved_key(cluster, promoted))))
            if bursts[-1] == {200: LIMIT, 429: 2 * LIMIT}:
                exact_after = round(time.monotonic() - failed_over, 3)
            else:
                time.sleep(0.2)
        recovered = {f"i{n}": counted(cluster, f"*{phase.key(n)}*") for n in range(3)}
        time.sleep(0.5)
    finally:
        samples = load.stop()

    statuses = Counter(s.status for s in samples)
    failed = sum(count for status, count in statuses.items() if status != 200)
    again = limited(fleet, before_key, count=LIMIT)
    figures.record(
        "cluster failover",
        requests=len(samples),
        failed=failed,
        statuses=dict(statuses),
        failover_s=round(failed_over - killed, 3),
        limit_exact_again_s=exact_after,
        bursts_after_failover=bursts,
        load_counted_after=recovered,
        old_key_after_failover=dict(again),
    )
    assert promoted is not victim
    assert failed == 0, fleet.logs()
    assert exact_after is not None, bursts
    assert recovered == {"i0": True, "i1": True, "i2": True}
