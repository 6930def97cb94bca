"""The values cache decisions are made of: the rules a route caches by, and the verdicts.

Each verdict carries a short ``reason`` (``"authorization"``, ``"set-cookie"``, ...) so
a bypass can be explained, counted and tested without reading code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from resilient.sansio.cache_control import CacheControl

__all__ = ["CacheRules", "Freshness", "RequestPlan", "StoreDecision"]


@dataclass(frozen=True, slots=True)
class CacheRules:
    """How one route caches, every setting resolved.

    Attributes:
        ttl: app mode: the freshness lifetime given to a storable response that carries
            none (``None``: such responses are not stored).
        stale_while_revalidate: app mode: seconds a stale response may be served while
            one request refreshes it.
        stale_if_error: app mode: seconds a stale response may stand in for a failure.
        vary_cookies: cookies the route varies on; empty means requests that carry a
            ``Cookie`` header bypass the cache.
        max_body: the largest body stored, in bytes.
        respect_request_cache_control: honour the client's ``Cache-Control``.
        keep_stale: seconds past every window a stored response is kept anyway, to
            answer while the route's circuit breaker is open.
        keep: seconds past every window a stored 200 is kept anyway, to be revalidated
            with the app (RFC 9111 §4.3) rather than fetched again in full.
        cdn_cache_control: act as a CDN: a response's ``CDN-Cache-Control`` (RFC 9213),
            when usable, decides instead of its ``Cache-Control`` and ``Expires``.
        credential_headers: lower-case request fields that carry credentials (an API
            key): requests with any of them bypass the cache, as with ``Authorization``.

    .. versionadded:: 0.1
    """

    ttl: float | None = None
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    vary_cookies: frozenset[str] = frozenset()
    max_body: int = 1024 * 1024
    respect_request_cache_control: bool = False
    keep_stale: float = 0.0
    keep: float = 0.0
    cdn_cache_control: bool = False
    credential_headers: frozenset[str] = frozenset({"x-api-key"})


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """What the cache may do for one request.

    Attributes:
        lookup: a stored response may answer it.
        store: its response may be stored.
        reason: why not, when either is ``False`` (``""`` otherwise).
        directives: the request's ``Cache-Control`` when honoured, else empty.

    .. versionadded:: 0.1
    """

    lookup: bool
    store: bool
    reason: str
    directives: CacheControl


@dataclass(frozen=True, slots=True)
class StoreDecision:
    """Whether a response may be stored, and for how long.

    Attributes:
        store: it may be stored.
        reason: why not (``""`` when it may).
        lifetime: freshness lifetime in seconds, counted from when it was generated.
        stale_while_revalidate: seconds after expiry it may be served while refreshed.
        stale_if_error: seconds after expiry it may stand in for a failure.
        may_serve_stale: ``False`` when ``must-revalidate``, ``proxy-revalidate`` or
            ``no-cache`` forbid serving it stale at all.
        cache_control: app mode: the ``Cache-Control`` value to send and store in place
            of the app's (``None``: keep the app's).
        vary: lower-case request fields the stored response is selected by.
        add_vary: fields to append to the response's ``Vary`` (the route's cookies).

    .. versionadded:: 0.1
    """

    store: bool
    reason: str = ""
    lifetime: float = 0.0
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    may_serve_stale: bool = True
    cache_control: str | None = None
    vary: tuple[str, ...] = ()
    add_vary: tuple[str, ...] = ()


class Freshness(enum.Enum):
    """How a stored response may be used for a request, now.

    .. versionadded:: 0.1
    """

    #: Serve it.
    FRESH = "fresh"
    #: Stale, but the client accepts that (request ``max-stale``): serve it.
    STALE_ACCEPTED = "stale-accepted"
    #: Stale within ``stale-while-revalidate``: serve it and refresh it after.
    STALE_REVALIDATE = "stale-revalidate"
    #: Stale within ``stale-if-error``: ask the app; serve it only if the app fails.
    STALE_IF_ERROR = "stale-if-error"
    #: Not usable for this request.
    UNUSABLE = "unusable"
