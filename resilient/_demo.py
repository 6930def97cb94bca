"""``resilient demo``: each feature at work on the configured backend. Strictly private.

It runs in well under two seconds: a cached slow lookup, a breaker that trips on a failing
upstream and recovers through one probe, and a rate limit that admits exactly its quota.
Names carry the process id so that runs against a shared Redis do not see each other.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

from resilient.breaker import CircuitBreaker
from resilient.cache import cached
from resilient.config import Settings, mask_url
from resilient.errors import CircuitOpenError, RateLimitExceeded
from resilient.ratelimit import RateLimiter, rate_limit_headers

_SLOW_LOOKUP = 0.05  # seconds the uncached function takes
_RESET_TIMEOUT = 0.3  # seconds the demo breaker stays open


def _micro(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.1f} ms"


def _cache(settings: Settings, run: str, out: TextIO) -> bool:
    calls = 0

    @cached(ttl=30, name=f"demo.{run}.price", settings=settings)
    def price(item: str) -> float:
        nonlocal calls
        calls += 1
        time.sleep(_SLOW_LOOKUP)  # the "database"
        return 9.99

    out.write(f"\n1. Caching: @cached(ttl=30) on a lookup that takes {_SLOW_LOOKUP * 1e3:.0f} ms\n")
    for attempt in (1, 2, 3):
        started = time.perf_counter()
        value = price("book")
        elapsed = time.perf_counter() - started
        out.write(f"   call {attempt}: {value} in {_micro(elapsed)}\n")
    stats = price.stats()
    out.write(f"   the function ran {calls} time(s); hits={stats.hits} misses={stats.misses}\n")
    price.invalidate("book")
    return calls == 1 and stats.hits == 2


def _breaker(settings: Settings, run: str, out: TextIO) -> bool:
    breaker = CircuitBreaker(
        f"demo.{run}.upstream",
        fail_max=3,
        reset_timeout=_RESET_TIMEOUT,
        settings=settings,
    )
    healthy = False

    def upstream() -> str:
        if not healthy:
            raise ConnectionError("upstream refused the connection")
        return "200 OK"

    out.write("\n2. Circuit breaker: fail_max=3, reset_timeout=0.3s, upstream down\n")
    rejected = 0
    for attempt in range(1, 6):
        try:
            breaker.call(upstream)
        except CircuitOpenError as exc:
            rejected += 1
            out.write(f"   call {attempt}: rejected at once, retry after {exc.retry_after:.2f}s\n")
        except ConnectionError as exc:
            out.write(f"   call {attempt}: failed ({exc}); state {breaker.current_state}\n")
    healthy = True
    time.sleep(_RESET_TIMEOUT)
    result = breaker.call(upstream)
    out.write(f"   after {_RESET_TIMEOUT}s, upstream back: one probe -> {result}; ")
    out.write(f"state {breaker.current_state}\n")
    return rejected == 2 and breaker.current_state == "closed"


def _rate_limit(settings: Settings, run: str, out: TextIO) -> bool:
    limiter = RateLimiter("5/second", name=f"demo.{run}.api", settings=settings)
    out.write("\n3. Rate limit: 5/second for client 203.0.113.7, 8 calls at once\n")
    admitted = 0
    for attempt in range(1, 9):
        decision = limiter.hit("203.0.113.7")
        if decision.allowed:
            admitted += 1
            continue
        error = RateLimitExceeded("5/second", decision.retry_after)
        out.write(f"   call {attempt}: 429, {error}\n")
        if attempt == 8:
            for name, value in rate_limit_headers(decision, status=429):
                out.write(f"     {name}: {value}\n")
    out.write(f"   admitted {admitted} of 8\n")
    return admitted == 5


def run_demo(settings: Settings, out: TextIO) -> int:
    """Run the three demonstrations; exit status 0 when each behaved as it should."""
    run = f"{os.getpid()}-{time.time_ns() % 1_000_000}"
    out.write(f"resilient demo on {mask_url(settings.backend_url)}")
    out.write(" (set RESILIENT_BACKEND_URL=redis://... to use Redis)\n")
    results = [_cache(settings, run, out), _breaker(settings, run, out)]
    results.append(_rate_limit(settings, run, out))
    verdict = "all three behaved as expected" if all(results) else "something misbehaved"
    out.write(f"\n{verdict}\n")
    return 0 if all(results) else 1
