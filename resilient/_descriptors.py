"""Decorating through ``classmethod`` and ``staticmethod``, whichever order they stack in.

``@circuit_breaker(...)`` written above ``@classmethod`` receives a descriptor, not a
function. We decorate the function inside and wrap the result in the same descriptor, so
binding works as before. We do this rather than proxy through ``wrapt``: its
pass-through wrapper costs about 0.5 µs a call, more than three times a whole in-memory
cache hit, and ``functools.update_wrapper`` already keeps the name, the signature and
what ``inspect`` reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def through_descriptor(decorate: Callable[[Any], Any], target: Any) -> Any:
    """``decorate(target)``, or for a classmethod/staticmethod, the same kind around it."""
    if isinstance(target, (classmethod, staticmethod)):
        return type(target)(decorate(target.__func__))
    return decorate(target)
