"""Code run in spawned processes by the multi-process breaker tests (not a test module)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis

from resilient.breaker import CircuitBreaker
from resilient.config import Settings
from resilient.errors import CircuitOpenError

PATIENT = Settings.from_env({}, overrides={"op_timeout": 2.0, "connect_timeout": 2.0})


def shared_breaker(url: str, **options: Any) -> CircuitBreaker:
    """The breaker every process builds: same name, same Redis."""
    options.setdefault("resync_interval", 0)
    return CircuitBreaker("across", shared=True, url=url, settings=PATIENT, **options)


def probe_storm(url: str, threads: int, total: int, go: Any, results: Any) -> None:
    """``threads`` threads call at once; the probe holds until all others were rejected."""
    breaker = shared_breaker(url, fail_max=1, reset_timeout=0.2, probe_timeout=30)
    client = redis.Redis.from_url(url)
    start = threading.Barrier(threads)
    lock = threading.Lock()
    counts = {"probes": 0, "rejected": 0}

    def probe() -> None:
        client.incr("probes")
        deadline = time.monotonic() + 10
        while int(client.get("rejected") or 0) < total - 1 and time.monotonic() < deadline:
            time.sleep(0.005)

    def caller() -> None:
        start.wait()
        try:
            breaker.call(probe)
        except CircuitOpenError:
            client.incr("rejected")
            kind = "rejected"
        else:
            kind = "probes"
        with lock:
            counts[kind] += 1

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    go.wait()  # every process is ready and the open period is over
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((counts["probes"], counts["rejected"]))
    breaker.shutdown()
    client.close()


def die_holding_a_probe(url: str) -> None:
    """Take the probe's lease and vanish without reporting (a crashed worker)."""
    breaker = shared_breaker(url, fail_max=1, reset_timeout=0.05, probe_timeout=0.4)
    while breaker.retry_after > 0:
        time.sleep(0.01)
    permit = breaker.admit()
    assert permit.lease
    os._exit(0)


def trip_and_report(url: str, go: Any, results: Any) -> None:
    """Open the circuit on the signal and report when (system-wide monotonic clock)."""
    breaker = shared_breaker(url, fail_max=1, reset_timeout=30)
    go.wait()
    breaker.record_failure(breaker.admit(), RuntimeError("down"))
    results.put(time.monotonic())
    breaker.shutdown()
