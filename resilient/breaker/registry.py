"""Named breakers: one breaker per name in a process, and the ``@circuit_breaker`` decorator.

.. versionadded:: 0.1
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from resilient.breaker.breaker import CircuitBreaker
from resilient.breaker.calls import MISSING, Source, wrap
from resilient.breaker.options import check, check_names
from resilient.errors import ConfigurationError

__all__ = [
    "BreakerRegistry",
    "all_breakers",
    "circuit_breaker",
    "get_breaker",
    "remove_breaker",
    "reset_breakers",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class BreakerRegistry:
    """Breakers by name, each built with its options at first use.

    Asking again with other options is refused: two call sites silently disagreeing
    about a breaker is a bug. The process's named breakers (:func:`get_breaker`) are one
    registry; the Flask and FastAPI adapters keep one per app.

    Args:
        **defaults: :class:`CircuitBreaker` keyword arguments for every breaker built
            here (an app's ``settings``), under each breaker's own options.

    .. versionadded:: 0.1
    """

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._breakers: dict[str, tuple[CircuitBreaker, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, options: dict[str, Any], *, strict: bool = True) -> CircuitBreaker:
        """The breaker ``name``, built with ``options`` if it is new.

        Args:
            strict: options given again must equal the first ones even when empty;
                otherwise no options at all means "whatever it was built with".

        Raises:
            ConfigurationError: options differ from the existing breaker's, or are invalid.
        """
        with self._lock:
            known = self._breakers.get(name)
            if known is None:
                breaker = CircuitBreaker(name, **self._defaults, **options)
                self._breakers[name] = (breaker, dict(options))
                return breaker
        breaker, given = known
        if (options or strict) and options != given:
            raise ConfigurationError(
                f"options of breaker {name!r}", options, f"the options it was built with, {given!r}"
            )
        return breaker

    def all(self) -> dict[str, CircuitBreaker]:
        """Every breaker built here, by name."""
        with self._lock:
            return {name: breaker for name, (breaker, _) in self._breakers.items()}

    def pop(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker ``name``; returns it (not shut down), if it existed."""
        with self._lock:
            known = self._breakers.pop(name, None)
        return None if known is None else known[0]

    def clear(self) -> list[CircuitBreaker]:
        """Forget every breaker; returns them for their owner to shut down."""
        with self._lock:
            breakers = [breaker for breaker, _ in self._breakers.values()]
            self._breakers.clear()
        return breakers


_REGISTRY = BreakerRegistry()
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
    return _REGISTRY.get(name, options, strict=False)


def all_breakers() -> dict[str, CircuitBreaker]:
    """Every named breaker of this process, by name.

    .. versionadded:: 0.1
    """
    return _REGISTRY.all()


def remove_breaker(name: str) -> CircuitBreaker | None:
    """Forget the breaker ``name`` and release its connections; returns it, if it existed.

    .. versionadded:: 0.1
    """
    breaker = _REGISTRY.pop(name)
    if breaker is not None:
        breaker.shutdown()
    return breaker


def reset_breakers() -> None:
    """Forget every named breaker (for tests), releasing their connections.

    .. versionadded:: 0.1
    """
    for breaker in _REGISTRY.clear():
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
        ConfigurationError: an option is unknown or has a value that cannot be used.

    .. versionadded:: 0.1
    """
    check_names(options)
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
