"""The cost of metrics: each feature's hot path with an exporter on and off, side by side.

Prometheus is enabled on a registry of its own. With an exporter on, counts are read at
scrape time, so what a call pays is what the feature does differently while metered: a
breaker counts its call, a limiter times one decision in eight into its histogram. The
"off" contender runs with that taken away (a breaker without its meter, limiters not
timing), alternating block by block.
Target: the instrumented path costs at most 1.10 x the plain one.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from benchmarks._common import best_ns
from resilient.instrumentation import _hub, enable_prometheus

TARGET = 1.10


def enable() -> None:
    """Prometheus on, on a registry of its own (idempotent)."""
    enable_prometheus(_REGISTRY)


_REGISTRY = CollectorRegistry()


def untimed(run: Callable[[int], None]) -> Callable[[int], None]:
    """``run`` with limiters not timing their decisions, for its block."""

    def plain(count: int) -> None:
        saved = _hub.timing
        _hub.timing = False
        try:
            run(count)
        finally:
            _hub.timing = saved

    return plain


def compare(
    label: str,
    plain: Callable[[int], None],
    metered: Callable[[int], None],
    block: int,
    blocks: int,
    baseline: Callable[[int], None] | None = None,
) -> bool:
    """Print plain and metered ns per call and their ratio; whether within the target.

    With ``baseline`` (a bare call), the ratio is of the overheads above it.
    """
    contenders = {"plain": plain, "metered": metered}
    if baseline is not None:
        contenders["bare"] = baseline
    best = best_ns(contenders, block, blocks)
    bare = best.get("bare", 0.0)
    off, on = best["plain"] - bare, best["metered"] - bare
    ratio = on / off
    what = "overhead " if baseline is not None else ""
    print(
        f"  {label:34} {what}metrics off {off:7.0f} ns   on {on:7.0f} ns   "
        f"ratio {ratio:.2f} (target <= {TARGET})"
    )
    return ratio <= TARGET
