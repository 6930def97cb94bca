"""Code run in separate processes by the exactness tests (imported by spawned children)."""

from __future__ import annotations

import threading
from typing import Any

from resilient.backends import backend_from_url
from resilient.config import Settings
from resilient.ratelimit import RateLimiter

LIMIT = "50/hour"  # an hour: the window cannot roll while the test runs


def admit_concurrently(limiter: RateLimiter, identity: str, callers: int, start: Any) -> int:
    """Fire ``callers`` threads at once (after ``start()`` returns); count admissions."""
    gate = threading.Event()
    admitted: list[bool] = []
    lock = threading.Lock()

    def call() -> None:
        gate.wait()
        allowed = limiter.hit(identity).allowed
        with lock:
            admitted.append(allowed)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    start()
    gate.set()
    for thread in threads:
        thread.join()
    assert len(admitted) == callers
    return sum(admitted)


def process_main(
    url: str, strategies: list[str], scope: str, callers: int, barrier: Any, results: Any
) -> None:
    """One process: for each strategy, wait for every process, then fire its callers."""
    backend = backend_from_url(url, timeout=10.0, connect_timeout=10.0, guard_failures=10_000)
    try:
        for strategy in strategies:
            limiter = RateLimiter(
                LIMIT,
                backend=backend,
                strategy=strategy,
                scope=f"{scope}-{strategy}",
                settings=Settings.from_env({}),
            )
            admitted = admit_concurrently(limiter, "everyone", callers, barrier.wait)
            results.put((strategy, admitted))
    finally:
        backend.close()
