"""Resolving a decorator's options: explicit arguments over settings, checked once.

Settings are read when the decorator is built (``Settings.from_env()`` unless a
``settings=`` object is given), with the per-name overrides of the cache's name
(``RESILIENT_CACHE__USERS__TTL``). Explicit arguments win. Every bad value raises
:class:`~resilient.errors.ConfigurationError` here, at decoration time.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from resilient.backends import AsyncMemoryBackend, MemoryBackend
from resilient.backends.base import Clock
from resilient.cache.serializers import JsonSerializer, PickleSerializer, Serializer
from resilient.cache.wire import ALGORITHMS, EntryCodec
from resilient.config import CacheSettings, Settings
from resilient.errors import ConfigurationError

__all__ = ["CacheOptions", "RemoteSpec", "TagSpec", "resolve_options"]

#: A tag: a fixed string, a template formatted with the arguments (``"user:{user_id}"``),
#: or a function of the arguments returning tags.
TagSpec = str | Callable[..., Iterable[str]]
Duration = float | int | timedelta


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """Where the remote (Redis) tier is: a URL to build from, or a backend object."""

    url: str | None
    backend: Any
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheOptions:
    """The effective options of one cached function."""

    name: str
    enabled: bool
    ttl: float
    namespace: str
    version: str
    max_entries: int
    cache_none: bool
    two_tier: bool
    l1_ttl: float
    lock: bool
    lock_ttl: float
    xfetch_beta: float
    stale_while_revalidate: float
    stale_if_error: float
    tags: tuple[TagSpec, ...]
    codec: EntryCodec
    remote: RemoteSpec | None
    clock: Clock


def _seconds(name: str, value: object, *, positive: bool) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        number = float(seconds)
        if math.isfinite(number) and (number > 0 or (not positive and number == 0)):
            return number
    expected = "a positive number of seconds" if positive else "a number of seconds >= 0"
    raise ConfigurationError(name, value, expected + " (or a timedelta)")


def _pick(explicit: Any, configured: Any) -> Any:
    return configured if explicit is None else explicit


def _serializer(choice: str | Serializer) -> Serializer:
    if isinstance(choice, str):
        if choice == "json":
            return JsonSerializer()
        if choice == "pickle":
            return PickleSerializer()
        raise ConfigurationError("serializer", choice, "json, pickle or a Serializer object")
    if not isinstance(choice, Serializer):
        raise ConfigurationError("serializer", choice, "json, pickle or a Serializer object")
    return choice


#: What a backend object must be, by the flavour of the decorated function.
_FLAVOUR = {
    False: "a SyncBackend for a sync function (an AsyncBackend serves async def "
    "functions), or a URL, which builds the right one",
    True: "an AsyncBackend for an async def function (a SyncBackend's methods cannot be "
    "awaited), or a URL, which builds the right one",
}


def _remote(backend: Any, settings: Settings, is_async: bool) -> RemoteSpec | None:
    if isinstance(backend, (MemoryBackend, AsyncMemoryBackend)):
        return None  # memory is the object store itself; values are never encoded
    options = {
        "timeout": settings.op_timeout,
        "connect_timeout": settings.connect_timeout,
        "guard_failures": settings.guard_failures,
        "guard_cooldown": settings.guard_cooldown,
    }
    if backend is None or isinstance(backend, str):
        url = backend if isinstance(backend, str) else settings.url_for("cache")
        if urlsplit(url).scheme == "memory":
            return None
        from resilient.backends import _REGISTRY

        if urlsplit(url).scheme not in _REGISTRY or "://" not in url:
            expected = "a backend URL with a scheme among " + ", ".join(sorted(_REGISTRY))
            raise ConfigurationError("backend", url, expected)
        return RemoteSpec(url, None, options)
    if not callable(getattr(backend, "get", None)) or not callable(getattr(backend, "set", None)):
        raise ConfigurationError("backend", backend, "a URL, a SyncBackend or an AsyncBackend")
    if inspect.iscoroutinefunction(backend.get) is not is_async:
        # Both protocols have the same method names, so isinstance() cannot tell them
        # apart. Unchecked, a sync function got coroutines instead of bytes (every call a
        # miss and an error) and a coroutine function failed at its first call.
        raise ConfigurationError("backend", backend, _FLAVOUR[is_async])
    return RemoteSpec(None, backend, options)


def resolve_options(
    name: str,
    arguments: dict[str, Any],
    settings: Settings | None,
    *,
    is_async: bool = False,
) -> CacheOptions:
    """Merge explicit ``arguments`` (None = not given) with the settings for ``name``.

    ``is_async`` tells whether the function is a coroutine function: a backend object
    must be of the matching flavour.
    """
    settings = settings if settings is not None else Settings.from_env()
    section: CacheSettings = settings.cache_for(name)
    get = arguments.get
    ttl = _seconds("ttl", _pick(get("ttl"), section.ttl), positive=True)
    max_entries = _pick(get("max_entries"), section.max_entries)
    if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
        raise ConfigurationError("max_entries", max_entries, "a whole number of at least 1")
    beta = _pick(get("xfetch_beta"), section.xfetch_beta)
    if not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
        raise ConfigurationError("xfetch_beta", beta, "a number of at least 0")
    algorithm = _pick(get("hmac_algorithm"), section.hmac_algorithm)
    if algorithm not in ALGORITHMS:
        raise ConfigurationError("hmac_algorithm", algorithm, "one of " + ", ".join(ALGORITHMS))
    serializer = _serializer(_pick(get("serializer"), section.serializer))
    codec = EntryCodec(serializer, _pick(get("hmac_key"), section.hmac_key), algorithm)
    remote = _remote(get("backend"), settings, is_async)
    clock = get("clock") or (time.time if remote is not None else time.monotonic)
    tags = tuple(get("tags") or ())
    for tag in tags:
        if not (isinstance(tag, str) or callable(tag)):
            raise ConfigurationError("tags", tag, "strings, templates or functions")
    return CacheOptions(
        name=name,
        enabled=bool(_pick(get("enabled"), section.enabled)),
        ttl=ttl,
        namespace=str(_pick(get("namespace"), section.namespace)),
        version=str(_pick(get("version"), section.version)),
        max_entries=max_entries,
        cache_none=bool(_pick(get("cache_none"), section.cache_none)),
        two_tier=bool(_pick(get("two_tier"), section.two_tier)) and remote is not None,
        l1_ttl=_seconds("l1_ttl", _pick(get("l1_ttl"), section.l1_ttl), positive=True),
        lock=bool(_pick(get("lock"), section.lock)),
        lock_ttl=_seconds("lock_ttl", _pick(get("lock_ttl"), section.lock_ttl), positive=True),
        xfetch_beta=float(beta),
        stale_while_revalidate=_seconds(
            "stale_while_revalidate",
            _pick(get("stale_while_revalidate"), section.stale_while_revalidate),
            positive=False,
        ),
        stale_if_error=_seconds(
            "stale_if_error",
            _pick(get("stale_if_error"), section.stale_if_error),
            positive=False,
        ),
        tags=tags,
        codec=codec,
        remote=remote,
        clock=clock,
    )
