"""Rate-limit response headers, rendered from decisions. Pure functions, no I/O.

Styles (``RESILIENT_RATELIMIT_HEADERS``):

- ``draft``: the IETF fields of draft-ietf-httpapi-ratelimit-headers (draft-08 onwards),
  RFC 9651 structured-field Lists: ``RateLimit-Policy: "10-in-1s";q=10;w=1`` for every
  limit, and ``RateLimit: "10-in-1s";r=3;t=1`` for the limit closest to rejecting
  (the draft asks for the one with the fewest units left);
- ``legacy``: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
  (an integer Unix time, as Flask-Limiter and GitHub send it);
- ``both``, or ``off``.

``Retry-After`` (RFC 9110 §10.2.3: whole seconds, rounded up, never negative) goes only
on 429 and 503 responses, whatever the style.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from resilient.errors import ConfigurationError
from resilient.ratelimit.decision import Decision, LimitState

__all__ = [
    "HEADER_STYLES",
    "RETRY_AFTER_STATUSES",
    "rate_limit_headers",
    "ratelimit_field",
    "ratelimit_policy_field",
    "retry_after_value",
]

HEADER_STYLES = ("off", "legacy", "draft", "both")
RETRY_AFTER_STATUSES = frozenset({429, 503})
_SF_INTEGER_MAX = 999_999_999_999_999  # RFC 9651 §3.3.1: at most 15 digits


def _seconds(value: float) -> int:
    """Whole seconds, rounded up, within the structured-field integer range."""
    if value <= 0:
        return 0
    return min(_SF_INTEGER_MAX, math.ceil(value))


def _sf_string(value: str) -> str:
    """An RFC 9651 sf-string: printable ASCII in quotes, ``\\`` and ``"`` escaped."""
    printable = "".join(char if " " <= char <= "~" else "?" for char in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def retry_after_value(seconds: float) -> str:
    """The ``Retry-After`` value for a wait of ``seconds``: an integer, rounded up.

    .. versionadded:: 0.1
    """
    return str(_seconds(seconds))


def _merged_states(decisions: Iterable[Decision]) -> list[LimitState]:
    # Two limiters may describe the same policy; a field must name a policy once, so keep
    # the state closest to rejecting.
    by_name: dict[str, LimitState] = {}
    for decision in decisions:
        for state in decision.states:
            known = by_name.get(state.limit.name)
            if known is None or _tightness(state) < _tightness(known):
                by_name[state.limit.name] = state
    return list(by_name.values())


def _tightness(state: LimitState) -> tuple[float, int, float]:
    return (-state.retry_after, state.remaining, -state.reset_after)


def _reset(state: LimitState) -> float:
    # On a rejection, t points where Retry-After points (the draft asks for agreement).
    return state.retry_after if state.retry_after > 0 else state.reset_after


def ratelimit_policy_field(states: Iterable[LimitState]) -> str:
    """The ``RateLimit-Policy`` value: every limit's quota ``q`` and window ``w``.

    .. versionadded:: 0.1
    """
    return ", ".join(
        f"{_sf_string(state.limit.name)};q={min(state.limit.amount, _SF_INTEGER_MAX)};"
        f"w={min(state.limit.window, _SF_INTEGER_MAX)}"
        for state in states
    )


def ratelimit_field(states: Iterable[LimitState]) -> str:
    """The ``RateLimit`` value: remaining ``r`` and seconds to reset ``t`` per limit.

    .. versionadded:: 0.1
    """
    return ", ".join(
        f"{_sf_string(state.limit.name)};r={min(state.remaining, _SF_INTEGER_MAX)};"
        f"t={_seconds(_reset(state))}"
        for state in states
    )


def rate_limit_headers(
    decisions: Decision | Iterable[Decision],
    *,
    style: str = "draft",
    status: int = 200,
    now: float | None = None,
    all_limits: bool = False,
) -> list[tuple[str, str]]:
    """The headers describing ``decisions`` on a response with ``status``.

    Args:
        decisions: one decision, or several (a route limiter and an application one);
            decisions without figures (mode off, exempt, fail open) add nothing.
        style: ``off``, ``legacy``, ``draft`` or ``both``.
        status: the response status; ``Retry-After`` is added on 429 and 503 only.
        now: the Unix time for ``X-RateLimit-Reset``; ``time.time()`` by default.
        all_limits: list every limit in ``RateLimit``, not only the closest to rejecting.

    Raises:
        ConfigurationError: ``style`` is not one of :data:`HEADER_STYLES`.

    .. versionadded:: 0.1
    """
    if style not in HEADER_STYLES:
        raise ConfigurationError("style", style, "one of " + ", ".join(HEADER_STYLES))
    decided = [decisions] if isinstance(decisions, Decision) else list(decisions)
    headers: list[tuple[str, str]] = []
    states = _merged_states(decided) if style != "off" else []
    if states:
        tightest = min(states, key=_tightness)
        if style in ("draft", "both"):
            current = sorted(states, key=_tightness) if all_limits else [tightest]
            headers.append(("RateLimit-Policy", ratelimit_policy_field(states)))
            headers.append(("RateLimit", ratelimit_field(current)))
        if style in ("legacy", "both"):
            wall = time.time() if now is None else now
            headers += [
                ("X-RateLimit-Limit", str(tightest.limit.amount)),
                ("X-RateLimit-Remaining", str(tightest.remaining)),
                ("X-RateLimit-Reset", str(math.ceil(wall + _reset(tightest)))),
            ]
    if status in RETRY_AFTER_STATUSES:
        waits = [
            d.retry_after for d in decided if d.retry_after > 0 and (d.limited or not d.allowed)
        ]
        if waits:
            headers.append(("Retry-After", retry_after_value(max(waits))))
    return headers
