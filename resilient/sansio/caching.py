"""Shared-cache rules: which requests may use the cache, which responses may be stored.

RFC 9111 §3 and §4 as a shared cache, with the safe defaults of Varnish and nginx on top:
requests with ``Authorization``, ``Proxy-Authorization``, a credential header such as
``X-Api-Key`` (or ``Cookie``, unless the route names the cookies it varies on) neither
read nor fill the cache; responses with ``Set-Cookie``, ``private``,
``no-store``, ``no-cache`` or ``Vary: *`` are never stored.
"""

from __future__ import annotations

import math

from resilient.sansio.cache_control import CacheControl, parse_cache_control, parse_targeted
from resilient.sansio.decisions import CacheRules, RequestPlan, StoreDecision
from resilient.sansio.http import RequestInfo, ResponseHead, parse_http_date, split_list
from resilient.sansio.keys import ambiguous_cookies

__all__ = [
    "APP_MODE_STATUSES",
    "CACHEABLE_METHODS",
    "HOP_BY_HOP",
    "PASS_STATUSES",
    "SAFE_METHODS",
    "STORABLE_STATUSES",
    "decide_store",
    "explicit_lifetime",
    "parse_vary",
    "plan_request",
]

#: Methods whose responses a cache may store and reuse.
CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
#: Methods that change nothing (RFC 9110 §9.2.1); the others invalidate (RFC 9111 §4.4).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Statuses stored when the response carries explicit freshness: the heuristically
#: cacheable ones of RFC 9110 §15.1 (without 206: ranges are not cached) and three
#: redirects that may be stored when told so.
STORABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 302, 303, 307, 308,
                               404, 405, 410, 414, 501})  # fmt: skip
#: Statuses app mode gives a lifetime to: successes, permanent redirects, lasting 4xx.
APP_MODE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414})
#: Statuses that say something about the resource whoever asks: an unstorable response
#: with one of them may send the URL's next requests straight to the app for a while
#: (hit-for-pass). Not those about the client or its request, which one client can
#: provoke for everyone: 400, 401, 403, 406 (its Accept), 407, 408, 409, 411-413,
#: 415-417, 421, 422, 425, 426, 428, 429 (its own rate), 431, 451 (its location);
#: not 206 (its Range), 304 (its validators) nor the other 5xx (the app's failures).
PASS_STATUSES = (frozenset(range(200, 400)) - {206, 304}) | {404, 405, 410, 414, 501}
#: Fields that describe one connection, never stored (RFC 9110 §7.6.1, RFC 9111 §3.1).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate",
                        "proxy-authorization"})  # fmt: skip

# Request fields that make a lookup wrong or unsafe: personal credentials (a proxy's
# too: a gateway app may act on them), a protocol switch, partial content and
# preconditions the app must judge itself.
_BYPASS_FIELDS = ("authorization", "proxy-authorization", "upgrade", "range", "if-range",
                  "if-match", "if-unmodified-since")  # fmt: skip
_BYPASS = frozenset(_BYPASS_FIELDS)
_NOT_HONOURED = CacheControl({})


def plan_request(request: RequestInfo, rules: CacheRules) -> RequestPlan:
    """May this request be answered from the cache, and may its response be stored?

    .. versionadded:: 0.1
    """
    if request.method not in CACHEABLE_METHODS:
        return RequestPlan(False, False, "method", _NOT_HONOURED)
    headers = request.headers
    if not _BYPASS.isdisjoint(headers):
        name = next(name for name in _BYPASS_FIELDS if name in headers)
        return RequestPlan(False, False, name, _NOT_HONOURED)
    if not rules.credential_headers.isdisjoint(headers):
        # An API key identifies a client as Authorization does: its responses (app mode
        # stores them without being told) are nobody else's.
        return RequestPlan(False, False, "credentials", _NOT_HONOURED)
    if "cookie" in headers:
        if not rules.vary_cookies:
            return RequestPlan(False, False, "cookie", _NOT_HONOURED)
        if ambiguous_cookies(headers.get("cookie"), rules.vary_cookies):
            return RequestPlan(False, False, "ambiguous cookie", _NOT_HONOURED)
    if not rules.respect_request_cache_control:
        return RequestPlan(True, True, "", _NOT_HONOURED)
    directives = parse_cache_control(headers.get("cache-control"))
    if directives.no_store:
        return RequestPlan(False, False, "request no-store", directives)
    if directives.no_cache:
        return RequestPlan(False, True, "request no-cache", directives)
    return RequestPlan(True, True, "", directives)


def parse_vary(value: str | None) -> tuple[str, ...] | None:
    """The lower-case field names of a ``Vary`` value, sorted; ``None`` for ``*``."""
    if not value:
        return ()
    names = {name.lower() for name in split_list(value)}
    if "*" in names:
        return None
    return tuple(sorted(names))


def explicit_lifetime(
    directives: CacheControl, date: str | None, expires: str | None, received: float
) -> float | None:
    """The freshness lifetime a response gives itself, or ``None`` (RFC 9111 §4.2.1).

    ``s-maxage`` wins over ``max-age``, which wins over ``Expires`` minus ``Date``. An
    ``Expires`` that is not a valid date (``0`` included) means "already expired".
    """
    if directives.s_maxage is not None:
        return float(directives.s_maxage)
    if directives.max_age is not None:
        return float(directives.max_age)
    if expires is None:
        return None
    expires_at = parse_http_date(expires)
    if expires_at is None:
        return 0.0
    date_value = parse_http_date(date) if date is not None else None
    return max(0.0, expires_at - (received if date_value is None else date_value))


def decide_store(
    request: RequestInfo,
    head: ResponseHead,
    rules: CacheRules,
    plan: RequestPlan,
    received: float,
) -> StoreDecision:
    """Whether the response to ``request`` may be stored, and with what lifetime.

    Args:
        request: the request the response answers.
        head: status and fields of the response.
        rules: the route's cache rules.
        plan: what :func:`plan_request` said about the request.
        received: when the response arrived (for ``Expires`` without ``Date``).

    .. versionadded:: 0.1
    """
    if not plan.store:
        return StoreDecision(False, plan.reason)
    if request.method != "GET":
        return StoreDecision(False, "method")  # a HEAD response has no body to store
    if head.status not in STORABLE_STATUSES:
        return StoreDecision(False, "status")
    directives = parse_cache_control(head.get("cache-control"))
    expires = head.get("expires")
    if rules.cdn_cache_control:
        # RFC 9213 §2.1: a usable CDN-Cache-Control replaces Cache-Control and Expires.
        targeted = parse_targeted(head.get("cdn-cache-control"))
        if targeted is not None:
            directives, expires = targeted, None
    for flag, reason in ((directives.no_store, "no-store"), (directives.private, "private"),
                         (directives.no_cache, "no-cache")):  # fmt: skip
        if flag:
            return StoreDecision(False, reason)
    if head.has("set-cookie"):
        return StoreDecision(False, "set-cookie")
    vary = parse_vary(head.get("vary"))
    if vary is None:
        return StoreDecision(False, "vary *")
    add_vary: tuple[str, ...] = ()
    if rules.vary_cookies and "cookie" not in vary:
        add_vary = ("Cookie",)
        vary = tuple(sorted((*vary, "cookie")))
    lifetime = explicit_lifetime(directives, head.get("date"), expires, received)
    may_serve_stale = not (
        directives.must_revalidate or directives.proxy_revalidate or directives.no_cache
    )
    if lifetime is not None:
        swr = float(directives.stale_while_revalidate or 0)
        sie = float(directives.stale_if_error or 0)
        cache_control = None
    elif rules.ttl is not None and rules.ttl > 0 and head.status in APP_MODE_STATUSES:
        lifetime, swr, sie = rules.ttl, rules.stale_while_revalidate, rules.stale_if_error
        cache_control = _app_mode_header(head.get("cache-control"), lifetime, swr, sie)
    else:
        return StoreDecision(False, "no freshness")
    if not may_serve_stale:
        swr = sie = 0.0
    if lifetime + max(swr, sie) <= 0:
        return StoreDecision(False, "stale on arrival")
    return StoreDecision(True, "", lifetime, swr, sie, may_serve_stale, cache_control, vary,
                         add_vary)  # fmt: skip


def _app_mode_header(existing: str | None, ttl: float, swr: float, sie: float) -> str:
    # What the route decided, said to browsers and CDNs too, after whatever the app sent
    # (public, no-transform, ...): they keep the same copy for the same time.
    parts = [existing] if existing else []
    parts.append(f"max-age={math.ceil(ttl)}")
    if swr > 0:
        parts.append(f"stale-while-revalidate={math.ceil(swr)}")
    if sie > 0:
        parts.append(f"stale-if-error={math.ceil(sie)}")
    return ", ".join(parts)
