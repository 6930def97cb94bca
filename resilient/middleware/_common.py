"""What the WSGI and the ASGI shell build alike: the pipeline, and a few HTTP details.

The order of the steps is the order of the onion: a step sees requests before the steps
after it and responses after them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from http import HTTPStatus

from resilient.backends.base import AsyncBackend, Clock, SyncBackend
from resilient.config import Settings
from resilient.middleware._breakers import BreakerStep
from resilient.middleware._cache import CacheStep
from resilient.middleware._collapse import InFlight
from resilient.middleware._limits import LimitStep, RejectionFactory
from resilient.middleware._pipeline import Pipeline, Step
from resilient.middleware.rules import Routes, Rule
from resilient.middleware.store import ResponseStore

__all__ = ["CONDITIONAL_FIELDS", "build_pipeline", "reason_phrase"]

#: Request fields dropped when the cache wants a full response it can store; the cache
#: then answers the client's validators itself.
CONDITIONAL_FIELDS = ("if-none-match", "if-modified-since")


def build_pipeline(
    rules: Sequence[Rule],
    settings: Settings,
    backend: SyncBackend | AsyncBackend,
    clock: Clock,
    *,
    asynchronous: bool,
    given: bool,
    on_reject: RejectionFactory | None = None,
    hmac_key: str | bytes | None = None,
    exclude: Sequence[str] | None = None,
) -> Pipeline:
    """The steps of a middleware, configured once.

    Rate limiting belongs before the cache step (a rejected request costs no lookup and
    a hit still counts against its client); a circuit breaker after it (a fresh hit never
    reaches the upstream, and a stale copy from the cache can stand in while it is open).
    Steps no route needs are left out, so they cost nothing.

    Args:
        rules: the rules per route.
        settings: the settings.
        backend: the response store's backend.
        clock: the middleware's wall clock.
        asynchronous: ``backend`` is an asyncio backend (the ASGI shell).
        given: ``backend`` was injected: rate limits count there too (otherwise where
            their own settings say).
        on_reject: builds the body of 429 and 503 answers.
        hmac_key: signs stored responses; ``None`` for ``RESILIENT_HTTP_CACHE_HMAC_KEY``,
            else ``RESILIENT_CACHE_HMAC_KEY`` (neither: unsigned).
        exclude: path patterns no step touches; ``None`` for
            ``RESILIENT_HTTP_EXCLUDE_PATHS``.
    """
    # An injected clock moves everything in tests; the default wall clock is not for
    # counting windows and timeouts (limiters and breakers then use their monotonic one).
    timer = None if clock is time.time else clock
    routes = Routes(rules, settings, backend=backend if given else None,
                    asynchronous=asynchronous, clock=timer, exclude=exclude)  # fmt: skip
    if hmac_key is None:
        hmac_key = settings.http.cache_hmac_key or settings.cache.hmac_key
    store = ResponseStore(backend, prefix=settings.http.key_prefix, hmac_key=hmac_key,
                          hmac_algorithm=settings.cache.hmac_algorithm)  # fmt: skip
    steps: list[Step] = []
    gate = LimitStep(asynchronous, clock, on_reject) if routes.has_limits else None
    if gate is not None:
        steps.append(gate)
    # Concurrent misses wait for one leader at most as long as a cache lease holds.
    lease = settings.cache.lock_ttl
    inflight = InFlight(asynchronous, lease, clock) if lease > 0 else None
    steps.append(CacheStep(store, clock, routes, inflight))
    if routes.has_breakers:
        steps.append(BreakerStep(asynchronous, on_reject))
    return Pipeline(routes, steps, gate)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status``, or ``"Unknown"``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
