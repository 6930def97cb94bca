"""Counting in this process: bounded, timer-free, exact across threads.

One ordered dict maps a storage key to the state of one limit for one identity, in least
recently used order. A key past ``max_keys`` evicts the least recently used one (as nginx
does with its zones): memory stays bounded whatever the number of clients, and no
thread sweeps expired entries; an expired state is simply replaced when next touched.

Every decision runs under one lock and checks all the limits of a call before counting
any (all or nothing), the same semantics the Redis scripts have. The window rules are
those of ``limits``:

- fixed window: a count per window; the window starts at the first hit;
- sliding-window counter: the previous window's count weighted by how much of it still
  overlaps, plus the current count (``floor(prev * (W - elapsed) / W) + cur``);
- moving window: one timestamp per admitted unit, the exact count of the last ``W`` s.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from resilient.backends.base import Clock, monotonic
from resilient.ratelimit.policy import Limit

__all__ = ["EPSILON", "Figures", "MemoryStore"]

#: (remaining, reset_after, retry_after) for one limit; seconds.
Figures = tuple[int, float, float]
#: Added to every ``retry_after``: a count drops at (or strictly after) an instant, and
#: float rounding must not make waiting ``retry_after`` fall short of it.
EPSILON = 0.001

_Decider = Callable[
    ["MemoryStore", Sequence[str], Sequence[Limit], int, bool, float],
    tuple[bool, list[Figures]],
]


class MemoryStore:
    """Rate-limit counters for this process, at most ``max_keys`` of them.

    Args:
        max_keys: most counters held (one per limit and identity); the least recently
            used are evicted first.
        clock: monotonic seconds; inject a fake one in tests.

    .. versionadded:: 0.1
    """

    def __init__(self, max_keys: int = 100_000, clock: Clock = monotonic) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def decide(
        self,
        strategy: str,
        keys: Sequence[str],
        limits: Sequence[Limit],
        cost: int,
        consume: bool,
    ) -> tuple[bool, list[Figures]]:
        """Check every limit for ``cost`` units and, if all pass and ``consume``, count them.

        Returns:
            whether the call passes, and the figures of each limit (after counting).
        """
        now = self.clock()
        if len(keys) == 1:  # the common case: one limit, without the bookkeeping of several
            single = _SINGLE.get(strategy)
            if single is not None:
                with self._lock:
                    return single(self, keys[0], limits[0], cost, consume, now)
        decider = _DECIDERS[strategy]
        with self._lock:
            return decider(self, keys, limits, cost, consume, now)

    def clear(self, keys: Sequence[str]) -> None:
        """Forget the counters under ``keys``."""
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def _touch(self, key: str) -> None:
        self._entries.move_to_end(key)

    def _insert(self, key: str, state: Any) -> None:
        entries = self._entries
        entries[key] = state
        entries.move_to_end(key)
        if len(entries) > self.max_keys:
            entries.popitem(last=False)


def _fixed(
    store: MemoryStore,
    keys: Sequence[str],
    limits: Sequence[Limit],
    cost: int,
    consume: bool,
    now: float,
) -> tuple[bool, list[Figures]]:
    entries = store._entries
    if len(keys) == 1:  # the common case, without the bookkeeping of several limits
        return _fixed_one(store, keys[0], limits[0], cost, consume, now)
    found: list[tuple[list[float] | None, float, int]] = []
    allowed = True
    for key, limit in zip(keys, limits, strict=True):
        state = entries.get(key)
        if state is not None and now < state[0] + limit.window:
            start, count = state[0], state[1]
        else:
            state, start, count = None, now, 0
        if count + cost > limit.amount:
            allowed = False
        found.append((state, start, count))
    figures: list[Figures] = []
    for key, limit, (state, start, count) in zip(keys, limits, found, strict=True):
        if allowed and consume:
            count += cost
            if state is None:
                store._insert(key, [start, count])
            else:
                state[1] = count
                store._touch(key)
        elif state is not None:
            store._touch(key)
        ends_in = start + limit.window - now
        reset = ends_in if count else 0.0
        retry = 0.0 if allowed or count + cost <= limit.amount else ends_in + EPSILON
        figures.append((max(0, limit.amount - count), reset, retry))
    return allowed, figures


def _fixed_one(
    store: MemoryStore, key: str, limit: Limit, cost: int, consume: bool, now: float
) -> tuple[bool, list[Figures]]:
    state = store._entries.get(key)
    window, amount = limit.window, limit.amount
    if state is not None and now < state[0] + window:
        start, count = state[0], state[1]
        store._entries.move_to_end(key)
    else:
        state, start, count = None, now, 0
    if count + cost > amount:
        ends_in = start + window - now
        return False, [(max(0, amount - count), ends_in if count else 0.0, ends_in + EPSILON)]
    if consume:
        count += cost
        if state is None:
            store._insert(key, [start, count])
        else:
            state[1] = count
    return True, [(amount - count, start + window - now if count else 0.0, 0.0)]


def _weighted(prev: int, cur: int, elapsed: float, window: int) -> int:
    return int(prev * (window - elapsed) // window) + cur


def _sliding_reset(prev: int, cur: int, elapsed: float, window: int) -> float:
    """Seconds until the weighted count drops by one (0 when nothing is counted)."""
    best = 0.0
    carried = int(prev * (window - elapsed) // window)
    if carried >= 1:
        best = max(0.0, window - carried * window / prev - elapsed) + EPSILON
    if cur >= 1:
        rolls = window - elapsed + EPSILON
        best = rolls if best == 0.0 else min(best, rolls)
    return best


def _sliding_retry(
    prev: int, cur: int, elapsed: float, window: int, amount: int, cost: int
) -> float:
    """Seconds until ``cost`` more units fit, if nothing else is counted meanwhile."""
    spare = amount - cost - cur
    if spare >= 0:  # the previous window's share decays enough within this window
        return max(0.0, window - elapsed - (spare + 1) * window / prev) + EPSILON
    # Only after the window rolls, as the current count (then previous) decays.
    after_roll = window - (amount - cost + 1) * window / cur
    rolls = window - elapsed
    return rolls + EPSILON if after_roll < 0 else rolls + after_roll + EPSILON


def _sliding(
    store: MemoryStore,
    keys: Sequence[str],
    limits: Sequence[Limit],
    cost: int,
    consume: bool,
    now: float,
) -> tuple[bool, list[Figures]]:
    entries = store._entries
    found: list[tuple[list[float] | None, float, int, int]] = []
    allowed = True
    for key, limit in zip(keys, limits, strict=True):
        window = limit.window
        state = entries.get(key)
        start, prev, cur = now, 0, 0
        if state is not None:
            rolled = int((now - state[0]) // window)
            if rolled <= 0:
                start, prev, cur = state[0], state[1], state[2]
            elif rolled == 1:
                start, prev, cur = state[0] + window, state[2], 0
        if _weighted(prev, cur, max(0.0, now - start), window) + cost > limit.amount:
            allowed = False
        found.append((state, start, prev, cur))
    figures: list[Figures] = []
    for key, limit, (state, start, prev, cur) in zip(keys, limits, found, strict=True):
        window, amount = limit.window, limit.amount
        elapsed = max(0.0, now - start)
        if allowed and consume:
            cur += cost
            if state is None:
                store._insert(key, [start, prev, cur])
            else:
                state[0], state[1], state[2] = start, prev, cur
                store._touch(key)
        elif state is not None:
            store._touch(key)
        weighted = _weighted(prev, cur, elapsed, window)
        retry = 0.0
        if not allowed and weighted + cost > amount:
            retry = _sliding_retry(prev, cur, elapsed, window, amount, cost)
        reset = _sliding_reset(prev, cur, elapsed, window)
        figures.append((max(0, amount - weighted), reset, retry))
    return allowed, figures


def _sliding_one(
    store: MemoryStore, key: str, limit: Limit, cost: int, consume: bool, now: float
) -> tuple[bool, list[Figures]]:
    # _sliding for one limit, with _weighted and _sliding_reset inlined: the hot path of
    # the default strategy.
    window, amount = limit.window, limit.amount
    state = store._entries.get(key)
    start, prev, cur = now, 0, 0
    if state is not None:
        rolled = int((now - state[0]) // window)
        if rolled <= 0:
            start, prev, cur = state[0], state[1], state[2]
        elif rolled == 1:
            start, prev, cur = state[0] + window, state[2], 0
    elapsed = max(0.0, now - start)
    carried = int(prev * (window - elapsed) // window)
    allowed = carried + cur + cost <= amount
    if allowed and consume:
        cur += cost
        if state is None:
            store._insert(key, [start, prev, cur])
        else:
            state[0], state[1], state[2] = start, prev, cur
            store._entries.move_to_end(key)
    elif state is not None:
        store._entries.move_to_end(key)
    retry = 0.0 if allowed else _sliding_retry(prev, cur, elapsed, window, amount, cost)
    reset = 0.0
    if carried >= 1:
        reset = max(0.0, window - carried * window / prev - elapsed) + EPSILON
    if cur >= 1:
        rolls = window - elapsed + EPSILON
        reset = rolls if reset == 0.0 else min(reset, rolls)
    return allowed, [(max(0, amount - carried - cur), reset, retry)]


def _moving(
    store: MemoryStore,
    keys: Sequence[str],
    limits: Sequence[Limit],
    cost: int,
    consume: bool,
    now: float,
) -> tuple[bool, list[Figures]]:
    entries = store._entries
    found: list[deque[float] | None] = []
    allowed = True
    for key, limit in zip(keys, limits, strict=True):
        hits: deque[float] | None = entries.get(key)
        if hits is not None:
            oldest_live = now - limit.window
            while hits and hits[0] <= oldest_live:
                hits.popleft()
        if (len(hits) if hits is not None else 0) + cost > limit.amount:
            allowed = False
        found.append(hits)
    figures: list[Figures] = []
    for key, limit, hits in zip(keys, limits, found, strict=True):
        window, amount = limit.window, limit.amount
        if allowed and consume:
            if hits is None:
                hits = deque()
                store._insert(key, hits)
            else:
                store._touch(key)
            hits.extend(repeat(now, cost))
        elif hits is not None:
            store._touch(key)
        count = len(hits) if hits is not None else 0
        retry = 0.0
        if hits is not None and not allowed and count + cost > amount:
            # The newest of the hits that must leave the window before cost more fit.
            retry = hits[count - 1 - (amount - cost)] + window - now + EPSILON
        reset = hits[0] + window - now if hits else 0.0
        figures.append((max(0, amount - count), reset, retry))
    return allowed, figures


_Single = Callable[["MemoryStore", str, Limit, int, bool, float], tuple[bool, list[Figures]]]
_SINGLE: dict[str, _Single] = {"fixed-window": _fixed_one, "sliding-window-counter": _sliding_one}
_DECIDERS: dict[str, _Decider] = {
    "fixed-window": _fixed,
    "sliding-window-counter": _sliding,
    "moving-window": _moving,
}
