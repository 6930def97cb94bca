"""Parsed rate limits and the names of strategies, modes and fail modes.

Limit strings use ``limits``' syntax (``"10/second;500/hour"``) and are parsed by
``limits.parse_many``; each becomes a :class:`Limit` holding the ``limits`` item, its
amount and its window in seconds.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse_many

from resilient._variables import BY_KEY
from resilient.errors import ConfigurationError

__all__ = [
    "FAIL_MODES",
    "MODES",
    "MOVING_WINDOW_WARN_AMOUNT",
    "STRATEGIES",
    "LargeMovingWindowWarning",
    "Limit",
    "check_choice",
    "parse_limits",
    "warn_if_large",
]

# The choices are those of the settings table, so that an argument and its variable
# (RESILIENT_RATELIMIT_STRATEGY, ...) accept the same names.
#: Counting strategies, as ``limits`` names them; the first is the default.
STRATEGIES = BY_KEY["RATELIMIT_STRATEGY"].parser.choices
#: ``enforce`` rejects, ``shadow`` counts and reports would-be rejections, ``off`` skips.
MODES = BY_KEY["RATELIMIT_MODE"].parser.choices
#: What a decision is when the backend fails: admit, reject, or count in memory meanwhile.
FAIL_MODES = BY_KEY["RATELIMIT_FAIL_MODE"].parser.choices
#: A moving window stores one entry per unit of cost; above this amount we warn.
MOVING_WINDOW_WARN_AMOUNT = 1000


class LargeMovingWindowWarning(UserWarning):
    """A moving-window limit is large: it stores one entry per admitted unit per key.

    .. versionadded:: 0.1
    """


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit: ``amount`` units per ``window`` seconds.

    Attributes:
        item: the ``limits`` item it was parsed into.
        amount: units admitted per window.
        window: the window length in seconds.
        text: the limit in ``limits``' syntax (``"10/second"``, ``"5/2 minutes"``).
        name: the policy name used in ``RateLimit`` headers (``"10-in-1s"``).

    .. versionadded:: 0.1
    """

    item: RateLimitItem
    amount: int
    window: int
    text: str
    name: str

    @classmethod
    def from_item(cls, item: RateLimitItem) -> Limit:
        """Wrap a ``limits`` item."""
        granularity = item.GRANULARITY.name
        if item.multiples == 1:
            text = f"{item.amount}/{granularity}"
        else:
            text = f"{item.amount}/{item.multiples} {granularity}s"
        window = item.get_expiry()
        return cls(item, item.amount, window, text, f"{item.amount}-in-{window}s")

    def __str__(self) -> str:
        return self.text


def parse_limits(
    value: str | RateLimitItem | Sequence[str | RateLimitItem],
    *,
    argument: str = "limits",
) -> tuple[Limit, ...]:
    """Parse limit strings (``"10/second;500/hour"``) or ``limits`` items.

    Raises:
        ConfigurationError: a string does not parse, there is no limit at all, an amount
            is below 1, or two limits share a window (they would share a counter).
    """
    pieces: list[str | RateLimitItem] = (
        [value] if isinstance(value, (str, RateLimitItem)) else list(value)
    )
    items: list[RateLimitItem] = []
    for piece in pieces:
        if isinstance(piece, RateLimitItem):
            items.append(piece)
            continue
        if not isinstance(piece, str) or not piece.strip():
            continue
        try:
            items.extend(parse_many(piece))
        except ValueError:
            raise ConfigurationError(
                argument, piece, "rate limits in limits' syntax (10/second;500/hour)"
            ) from None
    if not items:
        raise ConfigurationError(argument, value, "at least one rate limit (10/second)")
    limits = tuple(Limit.from_item(item) for item in items)
    windows: set[int] = set()
    for limit in limits:
        if limit.amount < 1:
            raise ConfigurationError(argument, limit.text, "an amount of at least 1")
        if limit.window in windows:
            raise ConfigurationError(
                argument, value, "limits with distinct windows (one counter per window)"
            )
        windows.add(limit.window)
    return limits


def check_choice(argument: str, value: str, options: Sequence[str]) -> str:
    """``value`` lower-cased if it is one of ``options``, else a ConfigurationError."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in options:
        raise ConfigurationError(argument, value, "one of " + ", ".join(options))
    return text


def warn_if_large(strategy: str, limits: Sequence[Limit], stacklevel: int = 3) -> None:
    """Warn when a moving-window limit would store many entries per key."""
    if strategy != "moving-window":
        return
    for limit in limits:
        if limit.amount > MOVING_WINDOW_WARN_AMOUNT:
            warnings.warn(
                f"moving-window limit {limit.text} stores up to {limit.amount} entries per "
                "key (about 20 bytes each); prefer sliding-window-counter for large amounts",
                LargeMovingWindowWarning,
                stacklevel=stacklevel,
            )
