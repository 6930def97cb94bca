"""What every micro-benchmark shares: alternating timed blocks and a throw-away Redis.

Contenders alternate in small blocks of calls so that each gets the same share of a busy
machine; the best block of each is the least disturbed measure of it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.redis_servers import RedisServer


def best_ns(
    contenders: dict[str, Callable[[int], None]], block: int, blocks: int
) -> dict[str, float]:
    """Best ns per call of each contender, over ``blocks`` alternating blocks of calls."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(blocks):
        for name, run in contenders.items():
            started = time.perf_counter_ns()
            run(block)
            best[name] = min(best[name], (time.perf_counter_ns() - started) / block)
    return best


@contextmanager
def redis_server() -> Iterator[int]:
    """A redis-server on a free loopback port (never 6379), stopped by its pid; yields the port."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    try:
        yield server.port
    finally:
        server.stop()
