"""Every metric resilient exports: name, type, labels, help. Strictly private.

Names follow resilience4j's Micrometer ones (``resilience4j_circuitbreaker_calls``
becomes ``resilient_circuitbreaker_calls_total``), so dashboards built for one read
the other with a prefix changed. The docs' table is checked against this one.
"""

from __future__ import annotations

import threading
from typing import Any

from resilient.instrumentation import _hub
from resilient.instrumentation._meters import BreakerMeter

PREFIX = "resilient_"

#: metric -> (type, label names, help). ``counter`` names get ``_total`` on export.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "cache_requests": ("counter", ("name", "result"),
                       "Calls of a cached function by result: hit, miss, stale, error."),
    "http_cache_requests": ("counter", ("result",),
                            "HTTP cache lookups by result: hit, miss, stale, error."),
    "ratelimiter_calls": ("counter", ("name", "policy", "outcome"),
                          "Rate-limit decisions by outcome: allowed, limited, shadow, "
                          "failed_open, failed_closed."),
    "circuitbreaker_calls": ("counter", ("name", "kind"),
                             "Calls through a breaker: successful, failed, not_permitted."),
    "circuitbreaker_state": ("gauge", ("name", "state"),
                             "1 for a breaker's current state, 0 for the others."),
    "circuitbreaker_transitions": ("counter", ("name", "from", "to"),
                                   "State transitions of a breaker."),
    "backend_guard_state": ("gauge", ("backend",),
                            "1 while a failing backend is skipped (its guard is open)."),
    "backend_errors": ("counter", ("backend", "kind"),
                       "Failed backend operations: timeout, error."),
}  # fmt: skip

#: The decision-latency histogram (pushed per decision, not read from counts).
DECISION_SECONDS = "ratelimiter_decision_seconds"
DECISION_HELP = "Time one rate-limit decision took, backend round trip included."

_metering_lock = threading.Lock()
_metering = False


def _attach(kind: str, owner: Any) -> None:
    if kind == "circuitbreaker" and owner._meter is None:
        owner._meter = BreakerMeter()


def start_metering() -> None:
    """Count breaker calls by outcome and time a sample of rate-limit decisions from
    now on, in every breaker and limiter, present and future.

    Idempotent; exporters call it when they start.
    """
    global _metering
    with _metering_lock:
        if _metering:
            return
        _metering = True
        _hub.on_track(_attach)
        _hub.start_timing()
    for breaker in _hub.tracked("circuitbreaker"):
        _attach("circuitbreaker", breaker)


def exported_name(metric: str) -> str:
    """The name a metric is exported under: prefix, and ``_total`` for counters."""
    kind = METRICS[metric][0]
    return PREFIX + metric + ("_total" if kind == "counter" else "")
