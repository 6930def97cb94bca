"""Cache entries: the value with its lifetimes, the counters, and the XFetch rule.

An entry is fresh until ``fresh_until``; after that it may still be served for
``stale_while_revalidate`` seconds (while one caller refreshes it) or, when the function
raises, for ``stale_if_error`` seconds. ``check_at`` is the one number the hit path
compares with the clock: before it, a hit needs no further thought.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = [
    "EARLY_WINDOW",
    "CacheStats",
    "Counters",
    "Entry",
    "should_refresh_early",
]

#: XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015) refreshes when
#: ``now - delta * beta * ln(u) >= expiry`` for a uniform ``u`` in (0, 1]. The chance of
#: that earlier than ``EARLY_WINDOW * delta * beta`` before expiry is below
#: ``exp(-EARLY_WINDOW)`` (3e-7) per call, so the hit path skips the draw until then.
EARLY_WINDOW = 15.0


class Entry:
    """One cached value in memory (the memory cache or the L1 tier).

    The value is stored as the object itself, never copied: callers must not mutate what
    a cached function returns.
    """

    __slots__ = (
        "check_at",
        "delta",
        "expires",
        "fresh_until",
        "key",
        "l2key",
        "stale_until",
        "tags",
        "touched",
        "value",
        "version",
    )

    def __init__(
        self,
        value: object,
        *,
        fresh_until: float,
        delta: float,
        beta: float,
        stale_for: float,
        local_until: float | None = None,
        version: int = 0,
        tags: tuple[str, ...] = (),
        l2key: str | None = None,
    ) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.delta = delta
        #: End of freshness here: an L1 copy may end before the Redis entry does.
        self.expires = fresh_until if local_until is None else min(fresh_until, local_until)
        self.check_at = min(self.expires, fresh_until - EARLY_WINDOW * delta * beta)
        self.stale_until = fresh_until + stale_for
        self.version = version
        self.tags = tags
        self.l2key = l2key
        self.key: Hashable = None
        self.touched = False


def should_refresh_early(entry: Entry, now: float, beta: float) -> bool:
    """The XFetch draw: True when this caller should refresh ``entry`` before it expires."""
    if beta <= 0 or entry.delta <= 0:
        return False
    # 1 - random() lies in (0, 1], so the logarithm is defined.
    return now - entry.delta * beta * math.log(1.0 - random.random()) >= entry.fresh_until


class Counters:
    """Mutable counters behind :meth:`stats`.

    The hit path adds to them without a lock: under CPython's GIL ``+= 1`` on an attribute
    does not interleave, and a lost increment would only make a statistic slightly low.
    """

    __slots__ = ("errors", "hits", "misses", "refreshes", "remote_hits", "stale")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.stale = 0
        self.errors = 0
        self.refreshes = 0
        self.remote_hits = 0

    def snapshot(self, size: int = 0) -> CacheStats:
        """The counters now, as an immutable record; ``size`` is the entries in memory."""
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            stale=self.stale,
            errors=self.errors,
            refreshes=self.refreshes,
            remote_hits=self.remote_hits,
            size=size,
        )


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What one cached function has done since it was decorated.

    Attributes:
        hits: calls answered from the cache, fresh (memory, L1 or Redis), including
            callers that waited for another caller's computation.
        misses: calls that ran the function because nothing usable was cached.
        stale: calls answered with a stale value (stale-while-revalidate or
            stale-if-error).
        errors: entries that failed verification or decoding, values that could not be
            serialized, backend operations that failed and background refreshes that
            raised. None of them reaches the caller.
        refreshes: computations that replaced a value still being served (XFetch,
            stale-while-revalidate, :meth:`refresh`).
        remote_hits: the part of ``hits`` read from the remote backend (one round trip).
        size: entries held in this process's memory (the memory cache or the L1 tier).

    .. versionadded:: 0.1
    """

    hits: int
    misses: int
    stale: int
    errors: int
    refreshes: int
    remote_hits: int
    size: int

    @property
    def hit_ratio(self) -> float:
        """``(hits + stale) / calls``, or 0.0 before the first call."""
        calls = self.hits + self.misses + self.stale
        return (self.hits + self.stale) / calls if calls else 0.0
