"""The demo's figures: one summary per run, printed side by side. Strictly private.

Every figure is counted, never assumed: statuses and latencies as the clients saw them,
upstream calls as the upstream counted them, trips as the breaker's listener saw them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resilient._demo_load import Record


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (``share`` in [0, 1]); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """What one run did, from the client's side and the upstream's.

    ``served + limited + rejected + failed == sent`` by construction: every request the
    clients sent is in exactly one of these.
    """

    label: str
    sent: int
    served: int  # 2xx
    limited: int  # 429
    rejected: int  # 503: the breaker answered in place of the app
    failed: int  # any other status, or no answer
    hits: int
    p50: float
    p99: float
    upstream_calls: int
    trips: int
    seconds: float
    latencies: tuple[float, ...]

    @classmethod
    def of(cls, label: str, record: Record, upstream_calls: int, trips: int,
           seconds: float) -> Summary:  # fmt: skip
        """Summarize ``record``, taken over ``seconds``."""
        statuses = record.statuses
        served = sum(1 for status in statuses if 200 <= status < 300)
        limited = statuses.count(429)
        rejected = statuses.count(503)
        return cls(
            label=label,
            sent=len(statuses),
            served=served,
            limited=limited,
            rejected=rejected,
            failed=len(statuses) - served - limited - rejected,
            hits=record.hits,
            p50=percentile(record.latencies, 0.50),
            p99=percentile(record.latencies, 0.99),
            upstream_calls=upstream_calls,
            trips=trips,
            seconds=seconds,
            latencies=tuple(sorted(record.latencies)),
        )

    @property
    def hit_ratio(self) -> float:
        """The share of the requests past the rate limit that the cache answered."""
        considered = self.sent - self.limited  # a 429 is decided before the cache is asked
        return self.hits / considered if considered else 0.0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def table(without: Summary, with_: Summary) -> str:
    """The two runs side by side, as text lines."""
    saved = without.upstream_calls - with_.upstream_calls
    rows = [
        ("", without.label, with_.label),
        ("requests sent", f"{without.sent:,}", f"{with_.sent:,}"),
        ("served (2xx)", f"{without.served:,}", f"{with_.served:,}"),
        ("latency p50", _ms(without.p50), _ms(with_.p50)),
        ("latency p99", _ms(without.p99), _ms(with_.p99)),
        ("cache hit ratio", f"{without.hit_ratio:.0%}", f"{with_.hit_ratio:.0%}"),
        ("rate limited (429)", f"{without.limited:,}", f"{with_.limited:,}"),
        ("breaker trips", f"{without.trips:,}", f"{with_.trips:,}"),
        ("breaker rejections (503)", f"{without.rejected:,}", f"{with_.rejected:,}"),
        ("errors (502, no answer)", f"{without.failed:,}", f"{with_.failed:,}"),
        ("upstream calls", f"{without.upstream_calls:,}", f"{with_.upstream_calls:,}"),
        ("upstream calls saved", "", f"{saved:,}"),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        f"  {name:<{widths[0]}}   {left:>{widths[1]}}   {right:>{widths[2]}}".rstrip()
        for name, left, right in rows
    ]
    return "\n".join(lines) + "\n"
