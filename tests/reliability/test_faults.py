"""Redis killed, paused and restarted under a bounded load, with every feature failing open.

A load loop sends ``GET /i<n>/work`` through nginx to each instance in turn (a rate limit,
a shared breaker and a cached value: every kind of Redis use on each request) before,
during and after the fault. Figures per scenario:

- ``failed``: requests answered with anything but 200, or not answered (target 0: the
  view itself never fails, so every failure is resilient's);
- ``added_p99_ms``: p99 latency while Redis is down, from 0.5 s after the fault (the
  backend guards are skipping Redis by then), minus p99 before the fault (target <= 10);
- ``recovery_s``: from Redis answering again until every instance counts in it again
  (target <= 1; the guard probes once per 1 s cooldown);
- the global limit's exactness on a fresh key right after recovery.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.reliability import routes
from tests.reliability.client import LoadLoop, Sample, burst, percentile
from tests.reliability.conftest import Figures
from tests.reliability.processes import Fleet
from tests.reliability.scenarios import LIMIT, Phase
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.redis]

BASELINE = 1.5  # seconds of load before the fault
DOWN = {"kill": 3.0, "pause": 5.0, "restart": 0.0}  # seconds Redis stays away
SETTLE = 0.5  # seconds after the fault before the guards are taken to be skipping
AFTER = 0.5  # seconds of load after every instance is back on Redis
#: How late the test may see a recovery: each instance gets a request every ~10 ms, and
#: Redis is scanned for its key every ~5 ms. Not the system's time, the measurement's.
MEASURE_SLACK = 0.05


def wait_until_counted(server: RedisServer, phase: Phase, since: float) -> dict[str, float]:
    """Seconds from ``since`` until each instance's ``after`` key appears in Redis."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 10
    with server.client() as client:
        while len(seen) < 3 and time.monotonic() < deadline:
            for n in range(3):
                name = f"i{n}"
                found = name in seen or any(client.scan_iter(f"*{phase.key(n)}*", count=1000))
                if name not in seen and found:
                    seen[name] = round(time.monotonic() - since, 3)
            time.sleep(0.005)
    return seen


def window(samples: list[Sample], start: float, end: float) -> list[float]:
    return [s.elapsed for s in samples if start <= s.started < end]


@pytest.mark.parametrize("fault", ["kill", "pause", "restart"])
def test_redis_fault_under_load_fails_open(
    fault: str, fleet: Fleet, rel_redis: RedisServer, figures: Figures
) -> None:
    phase = Phase(fault)
    load = LoadLoop(fleet.port, phase.request, threads=3, interval=0.005, max_seconds=40)
    load.start()
    try:
        time.sleep(BASELINE)
        faulted = time.monotonic()
        if fault == "restart":
            rel_redis.restart()  # kill, then start again on the same port at once
        else:
            rel_redis.kill() if fault == "kill" else rel_redis.pause()
            time.sleep(DOWN[fault])
            rel_redis.start() if fault == "kill" else rel_redis.resume()
        back = time.monotonic()
        phase.name = "after"
        recovered = wait_until_counted(rel_redis, phase, back)
        time.sleep(AFTER)
    finally:
        samples = load.stop()

    statuses = Counter(s.status for s in samples)
    failed = sum(count for status, count in statuses.items() if status != 200)
    before = window(samples, faulted - BASELINE + 0.3, faulted)
    down = window(samples, faulted + SETTLE, back)
    figure = {
        "requests": len(samples),
        "failed": failed,
        "statuses": dict(statuses),
        "p50_ms_before": round(percentile(before, 0.5) * 1000, 2),
        "p99_ms_before": round(percentile(before, 0.99) * 1000, 2),
        "recovery_s": recovered,
    }
    added_p99_ms = round((percentile(down, 0.99) - percentile(before, 0.99)) * 1000, 2)
    if down:
        figure.update(
            requests_down=len(down),
            p50_ms_down=round(percentile(down, 0.5) * 1000, 2),
            p99_ms_down=round(percentile(down, 0.99) * 1000, 2),
            max_ms_down=round(max(down) * 1000, 2),
            # Requests that paid a timeout: a guard's probe of a server that does not answer.
            over_50ms_down=sum(1 for elapsed in down if elapsed > 0.05),
            seconds_down=round(back - faulted - SETTLE, 2),
            added_p99_ms=added_p99_ms,
        )
    exact = Counter(
        s.status
        for s in burst(fleet.port, ["/limited"] * 3 * LIMIT,
                       headers={routes.KEY_HEADER: f"{phase.scenario}-exact"})
    )  # fmt: skip
    figure["limit_after_recovery"] = dict(exact)
    figures.record(f"redis {fault}", **figure)

    # Every target is checked, so that one miss does not hide the others' figures.
    misses = []
    if failed:
        misses.append(f"{failed} requests failed")
    if down and added_p99_ms > 10:
        misses.append(f"p99 added latency {added_p99_ms} ms > 10 ms")
    if sorted(recovered) != ["i0", "i1", "i2"] or max(recovered.values()) > 1.0 + MEASURE_SLACK:
        misses.append(f"recovery {recovered} > 1 s")
    if exact != {200: LIMIT, 429: 2 * LIMIT}:
        misses.append(f"limit after recovery {dict(exact)}, not {LIMIT} of {3 * LIMIT}")
    assert not misses, f"{fault}: {'; '.join(misses)}\n{fleet.logs()}"
