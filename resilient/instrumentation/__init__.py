"""Metrics and events: what caches, limiters, breakers and backends report.

Every feature reports through one place. Counts (cache results, limiter outcomes,
breaker calls, backend errors) are read from the features when an exporter collects:
:func:`samples`. State changes (a breaker's transition, a backend skipped or answering
again) are pushed to listeners: :func:`add_listener`.

Exporters, as the extras promise::

    from resilient.instrumentation import enable_prometheus
    enable_prometheus()          # resilient_* metrics in prometheus_client's registry

or, with no code, ``RESILIENT_METRICS=prometheus`` (or ``otel``, or ``prometheus,otel``),
read when the first feature is built. Nothing is registered anywhere until one is
enabled. See the Metrics section of the operations guide for every name.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import Any

from resilient.instrumentation._hub import (
    Event,
    Listener,
    Sample,
    add_listener,
    remove_listener,
    samples,
)

__all__ = [
    "Event",
    "Listener",
    "Sample",
    "add_listener",
    "enable_otel",
    "enable_prometheus",
    "remove_listener",
    "samples",
]


def enable_prometheus(registry: Any = None) -> Any:
    """Export every resilient metric to ``prometheus_client`` (default registry if none).

    Registers one collector (counts and states, read at scrape time) and the
    ``resilient_ratelimiter_decision_seconds`` histogram. Idempotent per registry.
    Expose the registry as usual (``prometheus_client.start_http_server``,
    ``make_wsgi_app``, ``make_asgi_app``).

    Raises:
        ImportError: ``prometheus_client`` is missing (``pip install resilient[prometheus]``).

    .. versionadded:: 0.1
    """
    from resilient.instrumentation import _prometheus

    return _prometheus.enable(registry)


def enable_otel(meter_provider: Any = None) -> Any:
    """Export every resilient metric through OpenTelemetry (default: the global provider).

    Creates observable counters and gauges, read at each collection, and the decision
    latency histogram, on a meter named ``resilient``. Idempotent per provider.

    Raises:
        ImportError: ``opentelemetry-api`` is missing (``pip install resilient[otel]``).

    .. versionadded:: 0.1
    """
    from resilient.instrumentation import _otel

    return _otel.enable(meter_provider)
