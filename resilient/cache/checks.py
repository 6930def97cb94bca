"""Decoration-time checks of what ``@cached`` is applied to and of the name it keys under.

Each raises :class:`~resilient.errors.ConfigurationError` when the decorator is applied,
so a mistake shows at import rather than as entries silently shared or never reused.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from resilient.cache.options import CacheOptions
from resilient.errors import ConfigurationError

__all__ = ["cache_name", "check_shared_name", "check_target", "is_coroutine_callable"]

#: Parts of a ``__qualname__`` that many distinct functions share.
_NOT_UNIQUE = ("<locals>", "<lambda>")


def check_target(func: object) -> None:
    """Refuse what cannot be cached: non-callables and generator functions."""
    if not callable(func):
        raise ConfigurationError("cached", func, "a function, classmethod or staticmethod")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise ConfigurationError("cached", func, "a function returning a value, not a generator")


def is_coroutine_callable(func: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, partials of them and objects with ``async __call__``."""
    if inspect.iscoroutinefunction(func):
        return True
    # inspect looks through functions, methods and partials, not through the __call__ of
    # an instance; a class is left out since calling it constructs, whatever __call__ is.
    if inspect.isroutine(func) or isinstance(func, (type, functools.partial)):
        return False
    return inspect.iscoroutinefunction(type(func).__call__)


def cache_name(func: Callable[..., Any], explicit: str | None) -> str:
    """``explicit``, else ``module.qualname`` of ``func``.

    Raises:
        ConfigurationError: ``func`` has no ``__qualname__`` (a ``functools.partial``, a
            callable object): the name would have to come from its type, shared by every
            instance however differently each is configured.
    """
    if explicit:
        return explicit
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(qualname, str):
        what = (
            "a functools.partial"
            if isinstance(func, functools.partial)
            else f"a callable {type(func).__qualname__} object"
        )
        raise ConfigurationError(
            "name", None, f"name='...' for {what}, which has no __qualname__ to name the cache"
        )
    return f"{getattr(func, '__module__', None) or '__main__'}.{qualname}"


def check_shared_name(name: str, explicit: str | None, options: CacheOptions) -> None:
    """Refuse a default name that other functions share when entries are shared too.

    Closures made by one factory, and lambdas, all get the same ``__qualname__``
    (``make.<locals>.fetch``). In memory that is harmless: each decorated function has
    its own store. In Redis the name is the key prefix, so closure B would read the
    entries closure A stored, although A and B compute different things.
    """
    if explicit or options.remote is None:
        return
    if any(part in name for part in _NOT_UNIQUE):
        raise ConfigurationError(
            "name",
            None,
            f"name='...' distinct per function: the default {name!r} is the same for "
            "every closure (or lambda) this code makes, and they would read each other's "
            "entries in the shared backend; for example name=f'fetch:{base}'",
        )
