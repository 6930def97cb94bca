"""How old a stored response is, and whether a request may have it (RFC 9111 §4.2, RFC 5861).

A stored response is fresh while its age is below its lifetime. Past that, it is served
only where an explicit directive allows it: the client's ``max-stale`` (when request
directives are honoured), or the response's ``stale-while-revalidate`` and
``stale-if-error`` windows; ``must-revalidate``, ``proxy-revalidate`` and ``no-cache``
forbid all of these.
"""

from __future__ import annotations

from resilient.sansio.cache_control import CacheControl
from resilient.sansio.decisions import CacheRules, Freshness
from resilient.sansio.entry import StoredResponse

__all__ = ["assess", "current_age", "storage_ttl"]


def current_age(entry: StoredResponse, now: float) -> float:
    """Seconds since the response was generated, as RFC 9111 §4.2.3 counts them.

    .. versionadded:: 0.1
    """
    return entry.initial_age + max(0.0, now - entry.response_time)


def assess(entry: StoredResponse, now: float, directives: CacheControl) -> Freshness:
    """How ``entry`` may serve a request now.

    Args:
        entry: the stored response.
        now: the current time, by the clock the entry was stored with.
        directives: the request's ``Cache-Control`` when honoured (else empty).

    .. versionadded:: 0.1
    """
    age = current_age(entry, now)
    if directives.max_age is not None and age > directives.max_age:
        return Freshness.UNUSABLE
    left = entry.lifetime - age
    if directives.min_fresh is not None and left < directives.min_fresh:
        return Freshness.UNUSABLE
    if left > 0:
        return Freshness.FRESH
    if not entry.may_serve_stale:
        return Freshness.UNUSABLE
    staleness = -left
    if directives.max_stale is not None and staleness <= directives.max_stale:
        return Freshness.STALE_ACCEPTED
    if staleness < entry.stale_while_revalidate:
        return Freshness.STALE_REVALIDATE
    if staleness < entry.stale_if_error:
        return Freshness.STALE_IF_ERROR
    return Freshness.UNUSABLE


def storage_ttl(entry: StoredResponse, rules: CacheRules) -> float:
    """How long the store keeps ``entry``, in seconds from now (``<= 0``: not at all).

    Its lifetime and stale windows, or longer: the route's ``keep_stale`` while it may be
    served stale (for an open breaker), the route's ``keep`` for a 200 (to revalidate
    it); less the age it arrived with.

    .. versionadded:: 0.1
    """
    keep = rules.keep_stale if entry.may_serve_stale else 0.0
    if entry.status == 200:
        keep = max(keep, rules.keep)
    windows = max(entry.stale_while_revalidate, entry.stale_if_error, keep)
    return entry.lifetime + windows - entry.initial_age
