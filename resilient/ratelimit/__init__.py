"""Rate limiting: ``@rate_limited`` and :class:`RateLimiter`, in memory or on Redis.

Limits are written in ``limits``' syntax (``"10/second;500/hour"``) and parsed by it;
the counting is ours: bounded and timer-free in memory, one Lua script per decision on
Redis (with the figures the ``RateLimit`` headers need), exact across processes.

Example::

    from resilient import rate_limited

    @rate_limited("10/second;500/hour", key=lambda user, *_: user.id)
    def search(user, query): ...
"""

from __future__ import annotations

from resilient.ratelimit.decision import Decision, LimitState, RateLimiterStats
from resilient.ratelimit.decorator import rate_limited
from resilient.ratelimit.headers import (
    rate_limit_headers,
    ratelimit_field,
    ratelimit_policy_field,
    retry_after_value,
)
from resilient.ratelimit.keys import (
    RequestKey,
    RequestView,
    by_api_key,
    by_callback,
    by_client_ip,
    by_header,
    client_in,
    client_ip,
    storage_identity,
)
from resilient.ratelimit.limiter import RateLimiter
from resilient.ratelimit.memory import MemoryStore
from resilient.ratelimit.policy import LargeMovingWindowWarning, Limit, parse_limits

__all__ = [
    "Decision",
    "LargeMovingWindowWarning",
    "Limit",
    "LimitState",
    "MemoryStore",
    "RateLimiter",
    "RateLimiterStats",
    "RequestKey",
    "RequestView",
    "by_api_key",
    "by_callback",
    "by_client_ip",
    "by_header",
    "client_in",
    "client_ip",
    "parse_limits",
    "rate_limit_headers",
    "rate_limited",
    "ratelimit_field",
    "ratelimit_policy_field",
    "retry_after_value",
    "storage_identity",
]
