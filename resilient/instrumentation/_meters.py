"""Counters that features keep only for metrics. Strictly private.

A breaker counts its calls by outcome only while an exporter is on
(:class:`BreakerMeter`, ``None`` otherwise): its fast path pays one test of that
attribute with metrics off, and one increment with them on.
"""

from __future__ import annotations

from bisect import bisect_left

#: Upper bounds of the decision-latency buckets, seconds: from an in-memory decision
#: (microseconds) to a backend timeout (100 ms) and beyond.
DECISION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
)  # fmt: skip
#: One decision in this many is timed (a power of two: the test is a mask).
DECISION_SAMPLING = 8


class BreakerMeter:
    """One breaker's calls by outcome and its transitions."""

    __slots__ = ("failed", "successful", "transitions")

    def __init__(self) -> None:
        self.successful = 0
        self.failed = 0
        self.transitions: dict[tuple[str, str], int] = {}

    def transition(self, old: str, new: str) -> None:
        """Count a transition (breakers notify each change once)."""
        key = (old, new)
        self.transitions[key] = self.transitions.get(key, 0) + 1


class DecisionTimes:
    """A limiter's decision-latency histogram, kept as plain counts.

    ``prometheus_client``'s ``Histogram.observe`` took 1.4 µs, as long as half an
    in-memory decision; counting into a list takes a tenth of that, and timing one
    decision in :data:`DECISION_SAMPLING` divides it again. The buckets therefore hold
    a sample of the decisions; ``ratelimiter_calls_total`` has the exact number.
    """

    __slots__ = ("counts", "sum", "tick")

    def __init__(self) -> None:
        self.tick = 0
        self.sum = 0.0
        self.counts = [0] * (len(DECISION_BUCKETS) + 1)  # the last one: above every bound

    def record(self, seconds: float) -> None:
        """Count one timed decision."""
        self.counts[bisect_left(DECISION_BUCKETS, seconds)] += 1
        self.sum += seconds


class HttpCacheCounts:
    """What the HTTP response cache of one middleware answered: lookups by result."""

    __slots__ = ("__weakref__", "error", "hit", "miss", "stale")

    def __init__(self) -> None:
        self.hit = 0
        self.miss = 0
        self.stale = 0
        self.error = 0
