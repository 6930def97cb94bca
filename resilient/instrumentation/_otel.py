"""The OpenTelemetry exporter (``pip install resilient[otel]``). Strictly private.

Only ``opentelemetry-api`` is used: counts are observable instruments read at each
collection (nothing per call); the decision latency is a histogram. The SDK, readers
and exporters are the application's, as OpenTelemetry intends for libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from resilient.instrumentation import _hub
from resilient.instrumentation._catalog import (
    DECISION_HELP,
    DECISION_SECONDS,
    METRICS,
    PREFIX,
    start_metering,
)

_enabled: dict[int, Any] = {}  # id(meter provider) -> meter


def _callback(metric: str) -> Callable[[Any], Iterable[Any]]:
    from opentelemetry.metrics import Observation

    def observe(options: Any) -> Iterable[Any]:
        return [
            Observation(sample.value, dict(sample.labels))
            for sample in _hub.samples()
            if sample.metric == metric
        ]

    return observe


def enable(meter_provider: Any = None) -> Any:
    """Create resilient's instruments on ``meter_provider`` (default: the global one).

    Idempotent per provider. Returns the meter.
    """
    from opentelemetry import metrics

    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    existing = _enabled.get(id(provider))
    if existing is not None:
        return existing
    meter = provider.get_meter("resilient")
    for metric, (kind, _labels, help_text) in METRICS.items():
        # OpenTelemetry names carry no _total: exporters to Prometheus add it.
        if kind == "counter":
            meter.create_observable_counter(
                PREFIX + metric, callbacks=[_callback(metric)], description=help_text
            )
        else:
            meter.create_observable_gauge(
                PREFIX + metric, callbacks=[_callback(metric)], description=help_text
            )
    histogram = meter.create_histogram(
        PREFIX + DECISION_SECONDS, unit="s", description=DECISION_HELP
    )
    attributes: dict[str, dict[str, str]] = {}

    def record(name: str, policy: str, seconds: float) -> None:
        labels = attributes.get(name)
        if labels is None:
            labels = attributes[name] = {"name": name}
        histogram.record(seconds, labels)

    _hub.add_timer(record)
    _enabled[id(provider)] = meter
    start_metering()
    return meter
