"""Circuit breakers: async-native, never serializing calls, exact half-open, shared via Redis.

::

    from resilient.breaker import circuit_breaker

    @circuit_breaker("payments", fail_max=5, reset_timeout=30)
    async def charge(order): ...

The vocabulary is pybreaker's (``fail_max``, ``reset_timeout``, ``success_threshold``,
``exclude``, listeners, ``STATE_*``); see :class:`CircuitBreaker` for every option and
``docs/circuit-breakers.md`` for the guide.

.. versionadded:: 0.1
"""

from __future__ import annotations

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreakerListener

from resilient.breaker.breaker import CircuitBreaker
from resilient.breaker.calls import Guard
from resilient.breaker.engine import IGNORED
from resilient.breaker.events import ResultFailure
from resilient.breaker.policies import ConsecutiveFailures, CountWindow, TimeWindow, TripPolicy
from resilient.breaker.registry import (
    BreakerRegistry,
    all_breakers,
    circuit_breaker,
    get_breaker,
    remove_breaker,
    reset_breakers,
)
from resilient.breaker.state import Permit

# Plain sorted() order (checked by tests/test_public_api.py), capitals first.
__all__ = [  # noqa: RUF022
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitBreakerListener",
    "ConsecutiveFailures",
    "CountWindow",
    "Guard",
    "IGNORED",
    "Permit",
    "ResultFailure",
    "STATE_CLOSED",
    "STATE_HALF_OPEN",
    "STATE_OPEN",
    "TimeWindow",
    "TripPolicy",
    "all_breakers",
    "circuit_breaker",
    "get_breaker",
    "remove_breaker",
    "reset_breakers",
]
