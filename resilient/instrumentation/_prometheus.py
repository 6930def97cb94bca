"""The Prometheus exporter (``pip install resilient[prometheus]``). Strictly private.

Counts are read at scrape time by a collector (nothing per call); the decision-latency
histogram is a ``prometheus_client.Histogram`` with one child per limiter name, looked up
once per name, so a decision does no label building.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resilient.instrumentation import _hub
from resilient.instrumentation._catalog import (
    DECISION_BUCKETS,
    DECISION_HELP,
    DECISION_SECONDS,
    METRICS,
    PREFIX,
    start_metering,
)

_enabled: dict[int, Any] = {}  # id(registry) -> collector


class ResilientCollector:
    """A ``prometheus_client`` collector of every resilient counter and gauge."""

    def describe(self) -> list[Any]:
        """Nothing to describe ahead: the registry then never collects at registration."""
        return []

    def collect(self) -> Iterator[Any]:
        """One family per metric of the catalog, with the samples of every live object."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families: dict[str, Any] = {}
        for metric, (kind, labels, help_text) in METRICS.items():
            family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            families[metric] = family_type(PREFIX + metric, help_text, labels=list(labels))
        for sample in _hub.samples():
            family = families.get(sample.metric)
            if family is not None:
                family.add_metric([value for _, value in sample.labels], sample.value)
        yield from families.values()


def enable(registry: Any = None) -> Any:
    """Register the collector and the histogram in ``registry`` (default: the global one).

    Idempotent per registry. Returns the collector.
    """
    from prometheus_client import REGISTRY, Histogram

    registry = REGISTRY if registry is None else registry
    existing = _enabled.get(id(registry))
    if existing is not None:
        return existing
    collector = ResilientCollector()
    registry.register(collector)
    histogram = Histogram(
        PREFIX + DECISION_SECONDS,
        DECISION_HELP,
        labelnames=("name",),
        buckets=DECISION_BUCKETS,
        registry=registry,
    )
    children: dict[str, Any] = {}

    def observe(name: str, policy: str, seconds: float) -> None:
        child = children.get(name)
        if child is None:
            child = children[name] = histogram.labels(name)
        child.observe(seconds)

    _hub.add_timer(observe)
    _enabled[id(registry)] = collector
    start_metering()
    return collector
