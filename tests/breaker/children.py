"""Code run in spawned and forked processes by the multi-process breaker tests (not a
test module)."""

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


def probe_storm(
    url: str,
    threads: int,
    total: int,
    go: Any,
    results: Any,
    permitted: int = 1,
    breaker: CircuitBreaker | None = None,
) -> None:
    """``threads`` threads call at once; the ``permitted`` probes hold until all others
    were rejected. ``breaker``: one built before this process was forked (a preloading
    server); None builds this process's own."""
    forked = breaker is not None
    if breaker is None:
        breaker = shared_breaker(
            url, fail_max=1, reset_timeout=0.2, probe_timeout=30, permitted_calls=permitted
        )
    client = redis.Redis.from_url(url)
    start = threading.Barrier(threads)
    lock = threading.Lock()
    counts = {"probes": 0, "rejected": 0}

    def probe() -> None:
        client.incr("probes")
        deadline = time.monotonic() + 10
        while int(client.get("rejected") or 0) < total - permitted:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)

    def caller() -> None:
        assert breaker is not None
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
    if not forked:  # a forked child leaves the parent's subscription alone
        breaker.shutdown()
    client.close()


def admit_in_turn(
    url: str, attempts: int, go: Any, results: Any, breaker: CircuitBreaker | None = None
) -> None:
    """On the signal, try ``attempts`` admissions, holding every probe admitted; report how
    many were. ``breaker``: one built before this process was forked, as in
    :func:`probe_storm`."""
    if breaker is None:
        breaker = shared_breaker(
            url, fail_max=1, reset_timeout=0.2, probe_timeout=30, permitted_calls=3
        )
    go.wait(60)
    admitted = 0
    for _ in range(attempts):
        try:
            permit = breaker.admit()
        except CircuitOpenError:
            continue
        admitted += 1 if permit.lease else 0
    results.put(admitted)


def watch_for_a_trip(breaker: CircuitBreaker, ready: Any, results: Any) -> None:
    """In a child forked after ``breaker`` was built: report whether a trip made by
    another process reaches this one's mirror within 3 s."""
    ready.set()
    deadline = time.monotonic() + 3
    while breaker.current_state != "open" and time.monotonic() < deadline:
        time.sleep(0.005)
    results.put(breaker.current_state)


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
