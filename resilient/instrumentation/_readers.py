"""How the counts of each feature become samples. Strictly private.

Read when an exporter collects, never on a call's path. Attribute names are the
features' own; a test reads every documented metric through these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from resilient.instrumentation import _hub
from resilient.instrumentation._hub import Sample, set_reader
from resilient.instrumentation._meters import DECISION_BUCKETS

_STATES = ("closed", "open", "half-open")


def _cache(core: Any) -> Iterator[Sample]:
    name, counts = str(core.options.name), core.counts
    for result, value in (
        ("hit", counts.hits),
        ("miss", counts.misses),
        ("stale", counts.stale),
        ("error", counts.errors),
    ):
        yield Sample("cache_requests", (("name", name), ("result", result)), value)


def _http_cache(counts: Any) -> Iterator[Sample]:
    for result in ("hit", "miss", "stale", "error"):
        yield Sample("http_cache_requests", (("result", result),), getattr(counts, result))


def limiter_policy(limiter: Any) -> str:
    """The ``policy`` label: the limiter's limits as written (``10/second;500/hour``)."""
    return ";".join(limit.text for limit in limiter.limits)


def limiter_name(limiter: Any) -> str:
    """The ``name`` label: the limiter's name, else its scope."""
    return str(limiter.name or limiter.scope)


def _limiter(limiter: Any) -> Iterator[Sample]:
    name, policy, stats = limiter_name(limiter), limiter_policy(limiter), limiter.stats
    outcomes = [
        ("allowed", stats.allowed),
        ("limited", stats.limited),
        ("shadow", stats.shadow_limited),
    ]
    if limiter.fail_mode in ("open", "closed"):
        # Failed decisions are counted nowhere else; with fail mode local they are
        # decided in memory and counted as allowed or limited.
        outcomes.append((f"failed_{limiter.fail_mode}", stats.backend_errors))
    for outcome, value in outcomes:
        labels = (("name", name), ("policy", policy), ("outcome", outcome))
        yield Sample("ratelimiter_calls", labels, value)


def _breaker(breaker: Any) -> Iterator[Sample]:
    name = str(breaker.name)
    state = breaker.current_state
    for each in _STATES:
        yield Sample(
            "circuitbreaker_state", (("name", name), ("state", each)), float(each == state)
        )
    yield Sample(
        "circuitbreaker_calls",
        (("name", name), ("kind", "not_permitted")),
        breaker._machine.rejected,
    )
    meter = breaker._meter
    if meter is None:
        return
    yield Sample("circuitbreaker_calls", (("name", name), ("kind", "successful")), meter.successful)
    yield Sample("circuitbreaker_calls", (("name", name), ("kind", "failed")), meter.failed)
    for (old, new), value in list(meter.transitions.items()):
        labels = (("name", name), ("from", old), ("to", new))
        yield Sample("circuitbreaker_transitions", labels, value)


def decision_times() -> dict[str, tuple[list[tuple[str, float]], float]]:
    """Per limiter name: cumulative ``(le, count)`` buckets and the sum, of the timed
    decisions (a sample: see ``DecisionTimes``)."""
    merged: dict[str, tuple[list[int], float]] = {}
    for limiter in _hub.tracked("ratelimiter"):
        times = limiter._times
        counts, total = merged.get(limiter._labels[0], ([0] * len(times.counts), 0.0))
        counts = [a + b for a, b in zip(counts, times.counts, strict=True)]
        merged[limiter._labels[0]] = (counts, total + times.sum)
    bounds = [repr(bound) for bound in DECISION_BUCKETS] + ["+Inf"]
    result = {}
    for name, (counts, total) in merged.items():
        running, buckets = 0, []
        for bound, count in zip(bounds, counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        result[name] = (buckets, total)
    return result


def _guard(guard: Any) -> Iterator[Sample]:
    backend = str(guard.name)
    yield Sample("backend_guard_state", (("backend", backend),), float(guard.is_open))
    for kind, value in (("timeout", guard.timeouts), ("error", guard.errors)):
        yield Sample("backend_errors", (("backend", backend), ("kind", kind)), value)


set_reader("cache", _cache)
set_reader("http_cache", _http_cache)
set_reader("ratelimiter", _limiter)
set_reader("circuitbreaker", _breaker)
set_reader("backend", _guard)
