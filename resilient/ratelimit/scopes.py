"""Default counter scopes: one per limit, even when limits are stacked on one function.

A limit's counters are keyed by its scope, the identity and the window. Two limits
stacked on one function (``@rate_limited("5/minute")`` over
``@rate_limited("100/minute")``) would both default to the function's name and, having
the same window, share one counter that every call then bumps twice: Flask-Limiter #108
and slowapi #33. The first limit applied keeps the plain name, so a lone limit's keys do
not change; each further one stacked on it gets ``#2``, ``#3``, ... which is the same in
every process.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["default_scope", "mark_limited"]

# On a wrapper: how many limits stand on the function inside it, this one included.
# functools.wraps copies it outward with the rest of __dict__; mark_limited then adds one.
_STACKED = "__resilient_rate_limits__"


def default_scope(function: Callable[..., Any], base: str | None = None) -> str:
    """The scope a limit applied to ``function`` counts in when none is given.

    Args:
        function: what the limit wraps (possibly already a limited wrapper).
        base: the name to start from; default ``module.qualname`` of ``function``.
    """
    below = getattr(function, _STACKED, 0)
    name = base or f"{function.__module__}.{function.__qualname__}"
    return name if below == 0 else f"{name}#{below + 1}"


def mark_limited(wrapper: Callable[..., Any], function: Callable[..., Any]) -> None:
    """Record on ``wrapper`` that it adds one limit to those on ``function``."""
    setattr(wrapper, _STACKED, getattr(function, _STACKED, 0) + 1)
