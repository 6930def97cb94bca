"""Counters that features keep only for metrics. Strictly private.

A breaker counts its calls by outcome only while an exporter is on: the count is a
listener (:class:`BreakerMeter`) in the breaker's listener list, whose fast path already
tests that list, so with metrics off a breaker's call pays nothing for it.
"""

from __future__ import annotations

from typing import Any


class BreakerMeter:
    """A pybreaker-style listener counting one breaker's calls and transitions."""

    __slots__ = ("failed", "successful", "transitions")

    def __init__(self) -> None:
        self.successful = 0
        self.failed = 0
        self.transitions: dict[tuple[str, str], int] = {}

    def before_call(self, cb: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: calls are counted by their outcome."""

    def success(self, cb: Any) -> None:
        """Count a successful call."""
        self.successful += 1

    def failure(self, cb: Any, exc: BaseException) -> None:
        """Count a failed call (an exception that counts, or a result judged a failure)."""
        self.failed += 1

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        """Count a transition (once: breakers notify each change once)."""
        key = (
            str(getattr(old_state, "name", old_state)),
            str(getattr(new_state, "name", new_state)),
        )
        self.transitions[key] = self.transitions.get(key, 0) + 1


class HttpCacheCounts:
    """What the HTTP response cache of one middleware answered: lookups by result."""

    __slots__ = ("__weakref__", "error", "hit", "miss", "stale")

    def __init__(self) -> None:
        self.hit = 0
        self.miss = 0
        self.stale = 0
        self.error = 0
