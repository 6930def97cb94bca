"""The negative cache: rejections remembered until the limit can admit again.

A client over its limit keeps calling; asking Redis each time only to hear "no" again
is the hot path under abuse. After a rejection for ``cost`` units with ``retry_after``
seconds, no call of ``cost`` units or more can pass before then: other callers only add
counts, and counts leave the window no earlier than the script computed. So repeating
the rejection locally until that instant is exact, and costs no round trip. A smaller
call may still fit, so it goes to the backend.
"""

from __future__ import annotations

import threading

from resilient.ratelimit.decision import Decision, LimitState

__all__ = ["NegativeCache"]

# Our clock and Redis' TIME tick apart; forgetting a rejection one tick early keeps the
# cache from ever rejecting a call Redis would admit.
_MARGIN = 0.001


class NegativeCache:
    """Recent rejections per identity, at most ``max_keys`` of them (oldest go first).

    Every change of the dict (remembering, dropping an expired entry, forgetting) holds
    one lock: eviction iterates the dict, and an insertion or removal by another thread
    in between raises ``RuntimeError`` (dictionary changed size during iteration). The
    hot path under abuse, a rejection recalled while it still holds, is one ``dict.get``
    and takes no lock.
    """

    __slots__ = ("_blocked", "_lock", "max_keys")

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._blocked: dict[str, tuple[float, int, float, Decision]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._blocked)

    def remember(self, identity: str, cost: int, sent: float, decision: Decision) -> None:
        """Remember a rejection; ``sent`` is our clock *before* the request left.

        Redis decided after ``sent``, so ``sent + retry_after`` is no later than the
        instant the limit admits ``cost`` units again.
        """
        entry = (sent + decision.retry_after - _MARGIN, cost, sent, decision)
        blocked = self._blocked
        with self._lock:
            blocked.pop(identity, None)  # re-inserted last: the newest entry
            blocked[identity] = entry
            while len(blocked) > self.max_keys:
                del blocked[next(iter(blocked))]

    def recall(self, identity: str, cost: int, now: float) -> Decision | None:
        """The remembered rejection, counted down to ``now``, if it still holds for ``cost``."""
        entry = self._blocked.get(identity)
        if entry is None:
            return None
        until, blocked_cost, sent, decision = entry
        if now >= until:
            with self._lock:
                # Only this entry: another thread may have remembered a newer one since.
                if self._blocked.get(identity) is entry:
                    del self._blocked[identity]
            return None
        if cost < blocked_cost:
            return None
        elapsed = now - sent
        states = tuple(
            LimitState(
                state.limit,
                state.remaining,
                max(0.0, state.reset_after - elapsed),
                max(0.0, state.retry_after - elapsed),
            )
            for state in decision.states
        )
        wait = max(0.0, decision.retry_after - elapsed)
        return Decision(decision.allowed, True, identity, states, "cache", wait)

    def forget(self, identity: str) -> None:
        """Drop what is remembered of ``identity``."""
        with self._lock:
            self._blocked.pop(identity, None)
