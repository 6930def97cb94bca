"""The answer a rate limiter gives: admitted or not, with the figures headers need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from resilient.errors import RateLimitExceeded
from resilient.ratelimit.policy import Limit

__all__ = ["SOURCES", "Decision", "LimitState", "RateLimiterStats"]

#: Where a decision came from.
SOURCES = (
    "memory",  # counted in this process (the memory backend)
    "redis",  # counted by one script on Redis
    "cache",  # a rejection repeated from the local negative cache: no round trip
    "local",  # the backend failed; counted in memory (fail mode local)
    "open",  # the backend failed; admitted uncounted (fail mode open)
    "closed",  # the backend failed; rejected (fail mode closed)
    "off",  # the limiter's mode is off: nothing counted
    "exempt",  # an exempt predicate matched: nothing counted
    "oversized",  # the cost exceeds a limit's whole amount: it can never be admitted
)


class LimitState(NamedTuple):
    """The figures of one limit after a decision.

    Attributes:
        limit: the limit.
        remaining: units still available in its window (after this hit, if admitted).
        reset_after: seconds until the count next goes down (fixed window: the window
            ends; moving window: the oldest hit leaves it; sliding window: the weighted
            count drops by one), 0 when nothing is counted.
        retry_after: seconds until a call of the same cost would pass this limit,
            0 when it passes now.

    .. versionadded:: 0.1
    """

    limit: Limit
    remaining: int
    reset_after: float
    retry_after: float

    @property
    def breached(self) -> bool:
        """True when this limit rejected (or would reject) the call."""
        return self.retry_after > 0


class Decision:
    """The outcome of :meth:`RateLimiter.hit` (or ``test``): go ahead or not, and why.

    Attributes:
        allowed: the caller may go ahead. Always true in ``shadow`` and ``off`` modes.
        limited: a limit was exceeded (in ``shadow`` mode: the call *would* have been
            rejected). ``allowed and limited`` is a shadow-mode would-be rejection.
        key: the identity the limits were counted for.
        states: per-limit figures, in the order the limits were given; empty when nothing
            was counted (mode off, exempt, fail mode open or closed).
        source: where the answer came from, one of :data:`SOURCES`.
        retry_after: seconds until the call could pass (0 when it passes); the largest
            ``retry_after`` of the breached limits, since every limit must pass.
        limit: the limit to name when there are no figures (fail mode closed, or a cost
            larger than a limit's amount).

    .. versionadded:: 0.1
    """

    __slots__ = ("_limit", "allowed", "key", "limited", "retry_after", "source", "states")

    def __init__(
        self,
        allowed: bool,
        limited: bool,
        key: str,
        states: tuple[LimitState, ...],
        source: str,
        retry_after: float = 0.0,
        limit: str = "",
    ) -> None:
        self.allowed = allowed
        self.limited = limited
        self.key = key
        self.states = states
        self.source = source
        self.retry_after = retry_after
        self._limit = limit

    @property
    def breached(self) -> LimitState | None:
        """The breached limit that takes longest to admit the call, or ``None``."""
        worst: LimitState | None = None
        for state in self.states:
            if state.retry_after > 0 and (worst is None or state.retry_after > worst.retry_after):
                worst = state
        return worst

    @property
    def limit(self) -> str:
        """The breached limit in ``limits``' syntax, else the most constrained one."""
        breached = self.breached
        if breached is not None:
            return breached.limit.text
        if self._limit:
            return self._limit
        tightest = self.tightest
        return tightest.limit.text if tightest is not None else ""

    @property
    def tightest(self) -> LimitState | None:
        """The limit closest to rejecting: fewest units left, then longest to reset.

        This is the limit single-valued headers (``X-RateLimit-*``, ``RateLimit``)
        describe.
        """
        breached = self.breached
        if breached is not None:
            return breached
        if not self.states:
            return None
        return min(self.states, key=lambda state: (state.remaining, -state.reset_after))

    def raise_for_limit(self) -> None:
        """Raise :class:`~resilient.errors.RateLimitExceeded` unless the call is allowed."""
        if not self.allowed:
            raise RateLimitExceeded(self.limit, self.retry_after)

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, limited={self.limited}, key={self.key!r}, "
            f"source={self.source!r}, retry_after={self.retry_after:.3f}, states={self.states})"
        )


@dataclass(slots=True)
class RateLimiterStats:
    """Counters of one limiter's decisions (plain integers; approximate across threads).

    .. versionadded:: 0.1
    """

    allowed: int = 0
    limited: int = 0
    shadow_limited: int = 0
    cached_rejections: int = 0
    backend_errors: int = 0
