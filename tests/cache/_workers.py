"""Code run in separate processes by the two-tier and lease tests (imported by spawned
children, so everything here is importable and picklable)."""

from __future__ import annotations

import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import redis

from resilient.backends import backend_from_url
from resilient.cache import cached
from resilient.config import Settings

# Exactness, not latency, is under test here: generous timeouts so that a loaded machine
# cannot turn a slow answer into a failure (and a second computation).
PATIENT = Settings.from_env({"RESILIENT_OP_TIMEOUT": "5s", "RESILIENT_CONNECT_TIMEOUT": "5s",
                             "RESILIENT_GUARD_FAILURES": "1000"})  # fmt: skip


def l1_reader(url: str, name: str, conn: Connection) -> None:
    """A process with a two-tier cache of ``source:<key>``, driven through ``conn``."""
    client = redis.Redis.from_url(url)

    @cached(ttl=60, two_tier=True, backend=url, name=name, settings=PATIENT)
    def read(key: str) -> str:
        raw: Any = client.get(f"source:{key}")
        return raw.decode() if raw is not None else "missing"

    try:
        while True:
            command, argument = conn.recv()
            if command == "fill":
                deadline = time.monotonic() + 10
                while read.stats().size == 0 and time.monotonic() < deadline:
                    read.clear()
                    read(argument)
                    time.sleep(0.005)
                conn.send((read(argument), read.stats()))
            elif command == "watch":
                conn.send(_watch(read, argument))
            else:
                break
    finally:
        read.close()
        client.close()


def _watch(read: Any, expected: str) -> tuple[float, int, Any, Any]:
    """Call every millisecond until ``expected`` comes back; report when and how."""
    before = read.stats()
    served_old = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if read("k") == expected:
            return time.time(), served_old, before, read.stats()
        served_old += 1
        time.sleep(0.001)
    return float("inf"), served_old, before, read.stats()


def raw_client(url: str) -> Any:
    """A redis-py client (single server or cluster) for bookkeeping outside the cache."""
    backend: Any = backend_from_url(url, timeout=5.0, connect_timeout=5.0)
    return backend.client


def lease_caller(url: str, name: str, callers: int, barrier: Any, results: Any) -> None:
    """``callers`` threads at once on one cold key, with the Redis lease."""
    client = raw_client(url)

    @cached(ttl=60, backend=url, lock=True, lock_ttl=10, name=name, settings=PATIENT)
    def compute(x: int) -> str:
        client.incr(f"{name}:runs")
        time.sleep(0.5)  # every process's leader arrives while this one computes
        return f"value {x}"

    gate = threading.Event()
    values: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        gate.wait()
        value = compute(1)
        with lock:
            values.append(value)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    gate.set()
    for thread in threads:
        thread.join()
    stats = compute.stats()
    results.put(
        (sorted(set(values)), len(values), stats.misses, stats.hits, stats.refreshes, stats.errors)
    )
    compute.close()
    client.close()


def lease_holder(url: str, name: str, lock_ttl: float) -> None:
    """Takes the lease for key 1 and computes forever (until the test kills it)."""
    client = redis.Redis.from_url(url)

    @cached(ttl=60, backend=url, lock=True, lock_ttl=lock_ttl, name=name, settings=PATIENT)
    def compute(x: int) -> str:
        client.set(f"{name}:computing", "1")
        time.sleep(60)
        return "holder"

    compute(1)
