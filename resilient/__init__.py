"""resilient: TTL caching, circuit breakers and rate limiting for Python services.

Decorators for any sync or async function, WSGI and ASGI middleware, over an in-memory
backend (the default) or Redis. Configured through ``RESILIENT_*`` environment variables.
"""

from __future__ import annotations

from resilient.backends import (
    AsyncBackend,
    SyncBackend,
    async_backend_from_url,
    backend_from_url,
    register_backend,
)
from resilient.breaker import CircuitBreaker, circuit_breaker, get_breaker
from resilient.cache import (
    CacheStats,
    JsonSerializer,
    PickleSerializer,
    ainvalidate_tags,
    cached,
    invalidate_tags,
)
from resilient.config import Settings
from resilient.errors import (
    BackendError,
    BackendUnavailable,
    CircuitOpenError,
    ConfigurationError,
    RateLimitExceeded,
    ResilientError,
)
from resilient.middleware import (
    CachePolicy,
    ResilientASGIMiddleware,
    ResilientWSGIMiddleware,
    Rule,
)
from resilient.ratelimit import RateLimiter, rate_limited

__version__ = "0.1.0"

__all__ = [
    "AsyncBackend",
    "BackendError",
    "BackendUnavailable",
    "CachePolicy",
    "CacheStats",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigurationError",
    "JsonSerializer",
    "PickleSerializer",
    "RateLimitExceeded",
    "RateLimiter",
    "ResilientASGIMiddleware",
    "ResilientError",
    "ResilientWSGIMiddleware",
    "Rule",
    "Settings",
    "SyncBackend",
    "__version__",
    "ainvalidate_tags",
    "async_backend_from_url",
    "backend_from_url",
    "cached",
    "circuit_breaker",
    "get_breaker",
    "invalidate_tags",
    "rate_limited",
    "register_backend",
]
