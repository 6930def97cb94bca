"""Named breakers: one breaker per name in a process, and the ``@circuit_breaker`` decorator.

.. versionadded:: 0.1
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from resilient.breaker.breaker import CircuitBreaker
from resilient.breaker.calls import MISSING, Source, wrap
from resilient.breaker.options import check
from resilient.errors import ConfigurationError

__all__ = ["all_breakers", "circuit_breaker", "get_breaker", "remove_breaker", "reset_breakers"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_breakers: dict[str, CircuitBreaker] = {}
_given: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()
# Options validated when decorating; the rest (objects, callables) are taken as they are.
_CHECKED = frozenset({
    "fail_max", "reset_timeout", "success_threshold", "permitted_calls", "probe_timeout",
    "policy", "failure_rate", "slow_call_rate", "slow_call_duration", "window_type",
    "window_size", "minimum_calls", "force_open", "disabled", "shared", "url",
    "resync_interval",
})  # fmt: skip


def get_breaker(name: str, **options: Any) -> CircuitBreaker:
    """The breaker called ``name``, built with ``options`` on first use.

    The same name returns the same breaker. Options given again must match those it was
    built with: two call sites silently disagreeing about a breaker is a bug.

    Args:
        name: the breaker's name.
        **options: :class:`CircuitBreaker` keyword arguments.

    Raises:
        ConfigurationError: options differ from the existing breaker's, or are invalid.

    .. versionadded:: 0.1
    """
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, **options)
            _breakers[name] = breaker
            _given[name] = dict(options)
            return breaker
        given = _given[name]
    if options and options != given:
        raise ConfigurationError(
            f"options of breaker {name!r}", options, f"the options it was built with, {given!r}"
        )
    return breaker


def all_breakers() -> dict[str, CircuitBreaker]:
    """Every named breaker of this process, by name.

    .. versionadded:: 0.1
    """
    with _lock:
        return dict(_breakers)


def remove_breaker(name: str) -> CircuitBreaker | None:
    """Forget the breaker ``name`` and release its connections; returns it, if it existed.

    .. versionadded:: 0.1
    """
    with _lock:
        breaker = _breakers.pop(name, None)
        _given.pop(name, None)
    if breaker is not None:
        breaker.shutdown()
    return breaker


def reset_breakers() -> None:
    """Forget every named breaker (for tests), releasing their connections.

    .. versionadded:: 0.1
    """
    with _lock:
        breakers = list(_breakers.values())
        _breakers.clear()
        _given.clear()
    for breaker in breakers:
        breaker.shutdown()


@overload
def circuit_breaker(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def circuit_breaker(
    name: str | None = None, /, *, fallback: object = ..., **options: Any
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def circuit_breaker(target: Any = None, /, *, fallback: object = MISSING, **options: Any) -> Any:
    """Guard a function with the named breaker (sync, async, generator or async generator).

    ``@circuit_breaker``, ``@circuit_breaker("payments")`` and
    ``@circuit_breaker("payments", fail_max=3, fallback=None)`` all work. Without a name
    the breaker is named after the function (``module.qualname``). The breaker is built
    on the first call, so decorating at import time reads no settings; option values are
    checked at once.

    Args:
        target: the breaker's name (or the function, used bare).
        fallback: returned for rejected calls of this function: a callable (called with
            the call's arguments) or a value.
        **options: :class:`CircuitBreaker` keyword arguments, for :func:`get_breaker`.

    Raises:
        ConfigurationError: an option has a value that cannot be used.

    .. versionadded:: 0.1
    """
    for key, value in options.items():
        if key in _CHECKED and value is not None:
            check(key, value)

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        name = target if isinstance(target, str) else f"{func.__module__}.{func.__qualname__}"
        return wrap(func, Source(build=lambda: get_breaker(name, **options)), fallback)

    if callable(target):
        return decorate(target)
    if target is not None and not isinstance(target, str):
        raise ConfigurationError("name", target, "a string")
    return decorate
