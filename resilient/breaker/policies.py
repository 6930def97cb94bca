"""Trip policies: when a closed circuit opens.

Two families, both O(1) per recorded call:

* :class:`ConsecutiveFailures` opens after ``fail_max`` failures in a row; any success
  resets the count (pybreaker's ``fail_max``, and the simplest breaker to reason about).
* :class:`CountWindow` and :class:`TimeWindow` open when the failure rate or the slow-call
  rate over a sliding window reaches its threshold, once the window holds at least
  ``minimum_calls`` calls (resilience4j's ``COUNT_BASED`` and ``TIME_BASED`` windows).
  Totals are kept alongside the window and corrected when an outcome leaves it
  (subtract-on-evict), so judging the rate never walks the window.

Policies are not thread-safe: the state machine calls them under its lock.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = [
    "ConsecutiveFailures",
    "CountWindow",
    "TimeWindow",
    "TripPolicy",
]

_FAILED = 1
_SLOW = 2


class TripPolicy(Protocol):
    """What the state machine asks of a policy.

    .. versionadded:: 0.1
    """

    #: Whether outcomes need their duration (the policy judges slow calls).
    timed: bool

    @property
    def failures(self) -> int:
        """Failures currently counted (consecutive, or in the window)."""

    def record(self, failed: bool, slow: bool, now: float) -> bool:
        """Count one outcome; True when the circuit should open."""

    def reset(self) -> None:
        """Forget every outcome (the circuit closed or opened)."""


class ConsecutiveFailures:
    """Open after ``fail_max`` consecutive failures.

    Args:
        fail_max: failures in a row that open the circuit.

    .. versionadded:: 0.1
    """

    timed = False
    __slots__ = ("count", "fail_max")

    def __init__(self, fail_max: int) -> None:
        self.fail_max = fail_max
        self.count = 0

    @property
    def failures(self) -> int:
        """Consecutive failures so far."""
        return self.count

    def record(self, failed: bool, slow: bool, now: float) -> bool:
        """A failure adds one; a success starts over."""
        if not failed:
            self.count = 0
            return False
        self.count += 1
        return self.count >= self.fail_max

    def reset(self) -> None:
        """Start counting from zero."""
        self.count = 0


class _Rates:
    """Running totals of a window and the threshold test shared by both windows."""

    __slots__ = ("calls", "failed", "failure_rate", "minimum_calls", "slow", "slow_call_rate")

    def __init__(self, failure_rate: float, slow_call_rate: float, minimum_calls: int) -> None:
        self.failure_rate = failure_rate
        self.slow_call_rate = slow_call_rate
        self.minimum_calls = minimum_calls
        self.calls = 0
        self.failed = 0
        self.slow = 0

    def tripped(self) -> bool:
        calls = self.calls
        if calls < self.minimum_calls:
            return False
        # Compare in integers scaled by 100 so that 50 % of 10 calls is exactly 5 calls.
        return (
            self.failed * 100 >= self.failure_rate * calls
            or self.slow * 100 >= self.slow_call_rate * calls
        )

    def clear(self) -> None:
        self.calls = self.failed = self.slow = 0


class CountWindow:
    """Failure and slow-call rates over the last ``size`` calls.

    Args:
        size: calls in the window.
        minimum_calls: calls needed before a rate is judged (at most ``size``).
        failure_rate: percentage of failed calls that opens the circuit.
        slow_call_rate: percentage of slow calls that opens the circuit.

    .. versionadded:: 0.1
    """

    timed = True
    __slots__ = ("_index", "_outcomes", "_rates", "size")

    def __init__(
        self, size: int, minimum_calls: int, failure_rate: float, slow_call_rate: float
    ) -> None:
        self.size = size
        self._rates = _Rates(failure_rate, slow_call_rate, minimum_calls)
        self._outcomes = bytearray(size)  # a ring of bit sets: _FAILED | _SLOW
        self._index = 0

    @property
    def failures(self) -> int:
        """Failed calls among the last ``size``."""
        return self._rates.failed

    @property
    def calls(self) -> int:
        """Calls in the window."""
        return self._rates.calls

    def record(self, failed: bool, slow: bool, now: float) -> bool:
        """Push one outcome, evicting the oldest once the window is full."""
        rates = self._rates
        index = self._index
        if rates.calls == self.size:
            evicted = self._outcomes[index]
            rates.failed -= evicted & _FAILED
            rates.slow -= (evicted & _SLOW) >> 1
        else:
            rates.calls += 1
        self._outcomes[index] = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        rates.failed += failed
        rates.slow += slow
        self._index = index + 1 if index + 1 < self.size else 0
        return rates.tripped()

    def reset(self) -> None:
        """Empty the window."""
        self._rates.clear()
        self._index = 0


class TimeWindow:
    """Failure and slow-call rates over the last ``seconds`` seconds.

    The window is ``seconds`` one-second buckets in a ring. Moving into a new second
    clears the buckets that fell out of the window; after a long quiet spell that is at
    most ``seconds`` buckets once, so the cost stays O(1) amortised per call.

    Args:
        seconds: window length, in whole seconds.
        minimum_calls: calls needed in the window before a rate is judged.
        failure_rate: percentage of failed calls that opens the circuit.
        slow_call_rate: percentage of slow calls that opens the circuit.

    .. versionadded:: 0.1
    """

    timed = True
    __slots__ = ("_calls", "_failed", "_head", "_rates", "_slow", "seconds")

    def __init__(
        self, seconds: int, minimum_calls: int, failure_rate: float, slow_call_rate: float
    ) -> None:
        self.seconds = seconds
        self._rates = _Rates(failure_rate, slow_call_rate, minimum_calls)
        self._calls = [0] * seconds
        self._failed = [0] * seconds
        self._slow = [0] * seconds
        self._head: int | None = None  # the newest second that has a bucket

    @property
    def failures(self) -> int:
        """Failed calls in the window."""
        return self._rates.failed

    @property
    def calls(self) -> int:
        """Calls in the window."""
        return self._rates.calls

    def _advance(self, second: int) -> None:
        head = self._head
        if head is not None and second <= head:
            return  # same second (or a clock that stepped back: keep counting in head)
        oldest = second - self.seconds + 1
        start = oldest if head is None else max(head + 1, oldest)
        rates = self._rates
        for stale in range(start, second + 1):
            slot = stale % self.seconds
            rates.calls -= self._calls[slot]
            rates.failed -= self._failed[slot]
            rates.slow -= self._slow[slot]
            self._calls[slot] = self._failed[slot] = self._slow[slot] = 0
        self._head = second

    def record(self, failed: bool, slow: bool, now: float) -> bool:
        """Count one outcome in the bucket of the current second."""
        second = math.floor(now)
        self._advance(second)
        # After _advance the head is the newest second; a clock that stepped back counts
        # in it rather than in a bucket that may already have left the window.
        slot = (second if self._head is None else self._head) % self.seconds
        rates = self._rates
        self._calls[slot] += 1
        self._failed[slot] += failed
        self._slow[slot] += slow
        rates.calls += 1
        rates.failed += failed
        rates.slow += slow
        return rates.tripped()

    def reset(self) -> None:
        """Empty every bucket."""
        self._rates.clear()
        for buckets in (self._calls, self._failed, self._slow):
            buckets[:] = [0] * self.seconds
        self._head = None
