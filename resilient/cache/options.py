"""Resolving a decorator's options: explicit arguments over settings, checked once.

Settings are read when the decorator is built (``Settings.from_env()`` unless a
``settings=`` object is given), with the per-name overrides of the cache's name
(``RESILIENT_CACHE__USERS__TTL``). Explicit arguments win. Every bad value raises
:class:`~resilient.errors.ConfigurationError` here, at decoration time.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from resilient._secrets import mask_url
from resilient.backends import AsyncMemoryBackend, MemoryBackend
from resilient.backends.base import Clock
from resilient.cache.serializers import JsonSerializer, PickleSerializer, Serializer
from resilient.cache.wire import EntryCodec
from resilient.config import CacheSettings, Settings, check_option
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

    def __repr__(self) -> str:
        # The generated repr would show the URL's password.
        url = None if self.url is None else mask_url(self.url)
        return f"RemoteSpec(url={url!r}, backend={self.backend!r}, options={self.options!r})"


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


#: Options that are settings too (``RESILIENT_CACHE_<FIELD>``), checked by the same parser.
_CHECKED = ("enabled", "ttl", "namespace", "version", "max_entries", "hmac_algorithm",
            "cache_none", "two_tier", "l1_ttl", "lock", "lock_ttl", "xfetch_beta",
            "stale_while_revalidate", "stale_if_error")  # fmt: skip


def _pick(explicit: Any, configured: Any) -> Any:
    return configured if explicit is None else explicit


def _explicit(arguments: dict[str, Any], field: str) -> Any:
    # Keywords are checked by the parser of their variable: both accept the same values.
    value = arguments.get(field)
    return None if value is None else check_option("cache", field, value)


def _serializer(choice: str | Serializer) -> Serializer:
    if isinstance(choice, str):
        name = check_option("cache", "serializer", choice)
        return JsonSerializer() if name == "json" else PickleSerializer()
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
            raise ConfigurationError(_url_origin(backend, settings), url, expected)
        return RemoteSpec(url, None, options)
    if not callable(getattr(backend, "get", None)) or not callable(getattr(backend, "set", None)):
        raise ConfigurationError("backend", backend, "a URL, a SyncBackend or an AsyncBackend")
    if inspect.iscoroutinefunction(backend.get) is not is_async:
        # Both protocols have the same method names, so isinstance() cannot tell them
        # apart. Unchecked, a sync function got coroutines instead of bytes (every call a
        # miss and an error) and a coroutine function failed at its first call.
        raise ConfigurationError("backend", backend, _FLAVOUR[is_async])
    return RemoteSpec(None, backend, options)


def _url_origin(backend: str | None, settings: Settings) -> str:
    if backend is not None:
        return "backend"
    if settings.cache.url:
        return settings.origin_of("cache", "url")
    return settings.origin_of("", "backend_url")


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
    values = {
        field: _pick(_explicit(arguments, field), getattr(section, field)) for field in _CHECKED
    }
    if values["lock"] and values["lock_ttl"] == 0:
        # 0 alone is valid (nobody waits: for the HTTP middleware, no collapsing), but a
        # lease cannot expire after 0 seconds. The error names where the 0 came from.
        explicit = get("lock_ttl") is not None
        origin = "lock_ttl" if explicit else settings.origin_of("cache", "lock_ttl", name)
        expected = "more than 0 seconds when lock is on (a lease needs an expiry)"
        raise ConfigurationError(origin, values["lock_ttl"], expected)
    algorithm = values.pop("hmac_algorithm")
    two_tier = values.pop("two_tier")
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
        **values,
        two_tier=two_tier and remote is not None,
        tags=tags,
        codec=codec,
        remote=remote,
        clock=clock,
    )
