"""A stale stored response freshened by the app's 304 (RFC 9111 §4.3.3, §4.3.4).

The cache step asked the app with the stored response's validators (see
:func:`resilient.sansio.revalidation.revalidation_fields`); the app answered ``304 Not
Modified``. The stored response, its fields updated from the 304, is then stored again
(a new lifetime, counted from now) and served: the client gets a full response, or its
own 304 when its validators match, as from any hit.
"""

from __future__ import annotations

from resilient.errors import BackendError
from resilient.middleware._drivers import Flow
from resilient.middleware.store import ResponseStore
from resilient.sansio.caching import decide_store
from resilient.sansio.decisions import CacheRules, RequestPlan, StoreDecision
from resilient.sansio.entry import StoredResponse, build_entry
from resilient.sansio.freshness import storage_ttl
from resilient.sansio.http import RequestInfo, Response, ResponseHead
from resilient.sansio.revalidation import freshen_headers, selects
from resilient.sansio.serving import serve_stored

__all__ = ["freshen"]

_NOT_STORED = StoreDecision(False, "not stored")


def freshen(
    store: ResponseStore,
    request: RequestInfo,
    rules: CacheRules,
    plan: RequestPlan,
    entry: StoredResponse,
    head: ResponseHead,
    request_time: float,
    now: float,
) -> Flow[tuple[Response, bool]]:
    """The answer to ``request`` from ``entry`` freshened by the 304 ``head``, and
    whether the freshened response was stored.

    Args:
        store: where the freshened response goes.
        request: the client's request (its own validators are answered here).
        rules: the route's cache rules.
        plan: what the cache may do for the request.
        entry: the stale stored response whose validators were sent.
        head: the app's 304.
        request_time: when the request went to the app.
        now: when the 304 arrived.
    """
    if not selects(entry, head):
        # The 304 names another representation than the stored one: the stored body is
        # what the app vouched for (its validator was the one sent), but its fields
        # cannot be updated from this answer.
        return serve_stored(entry, request.method, request.headers, now), False
    fresh = ResponseHead(entry.status, freshen_headers(entry.headers, head.headers))
    decision = decide_store(request, fresh, rules, plan, now)
    fields = tuple(name for name, _ in entry.vary)
    storable = decision.store and decision.vary == fields and not decision.add_vary
    if storable and decision.cache_control is not None:
        fresh.set("Cache-Control", decision.cache_control)
    updated = build_entry(entry.url, fresh, entry.body, decision if storable else _NOT_STORED,
                          entry.vary, request_time, now)  # fmt: skip
    answer = serve_stored(updated, request.method, request.headers, now)
    if not storable:
        # No longer storable as it was (now private, no-store, another Vary): served
        # once, as the app's full answer would have been, and not stored.
        return answer, False
    ttl = storage_ttl(updated, rules)
    if ttl <= 0:
        return answer, False
    try:
        yield from store.save(updated, fields, ttl)
    except BackendError:
        return answer, False  # fail open: answered all the same
    return answer, True
