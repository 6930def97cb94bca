"""The response-cache step: RFC 9111 shared-cache behaviour as a pipeline stage.

Decisions come from :mod:`resilient.sansio`; this module only sequences them around the
store's flows and fails open: a backend error turns a lookup into a miss, and the
response of that request is then not stored (the backend is failing; one timeout per
request is the most it may cost). Concurrent misses of one URL are collapsed (see
:mod:`._collapse`): one goes to the app, the others wait for its response to be stored.
"""

from __future__ import annotations

from contextlib import suppress

from resilient.backends.base import Clock
from resilient.errors import BackendError
from resilient.instrumentation import _hub as _metrics
from resilient.instrumentation._meters import HttpCacheCounts
from resilient.middleware._collapse import Flight, InFlight
from resilient.middleware._drivers import Call, Flow
from resilient.middleware._invalidate import InvalidateStage
from resilient.middleware._pipeline import BodyMode, Exchange, Stage
from resilient.middleware._revalidate import freshen
from resilient.middleware.rules import Routes
from resilient.middleware.store import ResponseStore
from resilient.sansio.caching import (
    CACHEABLE_METHODS,
    PASS_STATUSES,
    SAFE_METHODS,
    decide_store,
    plan_request,
)
from resilient.sansio.decisions import CacheRules, Freshness, RequestPlan, StoreDecision
from resilient.sansio.entry import StoredResponse, build_entry
from resilient.sansio.freshness import assess, storage_ttl
from resilient.sansio.http import Response, ResponseHead
from resilient.sansio.keys import vary_values
from resilient.sansio.revalidation import revalidation_fields
from resilient.sansio.serving import (
    answer_validators,
    gateway_timeout,
    serve_stored,
    serve_stored_as_sent,
)

__all__ = ["ERROR_STATUSES", "CacheStep"]

#: App failures a stale response may stand in for (RFC 5861 §4).
ERROR_STATUSES = frozenset({500, 502, 503, 504})
#: Longest a refresh lease holds when the refresh itself fails.
REFRESH_LEASE = 30.0


class CacheStep:
    """Serves stored responses, stores new ones, invalidates after unsafe methods.

    Args:
        store: the response store.
        clock: wall-clock seconds (``Date``, ``Age`` and freshness are counted with it).
        routes: the route table, to know whether an unsafe request's URL is cached.
        inflight: the misses under way, to collapse concurrent ones (``None``: never).
    """

    __slots__ = ("clock", "counts", "inflight", "routes", "store")

    def __init__(
        self, store: ResponseStore, clock: Clock, routes: Routes, inflight: InFlight | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.routes = routes
        self.inflight = inflight
        # Lookups by result, read by metrics exporters when they collect.
        self.counts = HttpCacheCounts()
        _metrics.track("http_cache", self.counts)

    def begin(self, exchange: Exchange) -> Stage | None:
        """A stage for GET/HEAD on a caching route, or for an unsafe method on a cached URL."""
        request = exchange.request
        if request.method in CACHEABLE_METHODS:
            rules = exchange.route.cache
            if rules is None:
                return None
            plan = plan_request(request, rules)
            if not (plan.lookup or plan.store) or "\ufffd" in request.path:
                # U+FFFD: the server replaced undecodable bytes, so distinct paths may
                # read alike here; they must not share a cache entry.
                return None
            key = ""
            if self.inflight is not None:
                key = self.store.primary_key(request.url)
                if self.inflight.passing(key):
                    # Its response was just found unstorable (no freshness, private, ...):
                    # straight to the app for a few seconds, as Varnish's hit-for-pass
                    # does, rather than a lookup and a storability check per request.
                    return None
            return _CacheStage(self, exchange, rules, plan, key)
        if request.method in SAFE_METHODS or self.routes.match("GET", request.path).cache is None:
            return None
        return InvalidateStage(self.store, request)


class _CacheStage(Stage):
    __slots__ = ("decision", "entry", "exchange", "flight", "key", "plan", "request_time",
                 "response_time", "revalidating", "rules", "skip_store", "step",
                 "stored_head")  # fmt: skip

    def __init__(
        self, step: CacheStep, exchange: Exchange, rules: CacheRules, plan: RequestPlan, key: str
    ) -> None:
        self.step = step
        self.exchange = exchange
        self.rules = rules
        self.plan = plan
        self.skip_store = False
        self.decision: StoreDecision | None = None
        self.stored_head: ResponseHead | None = None
        self.entry: StoredResponse | None = None
        self.request_time = 0.0
        self.response_time = 0.0
        self.flight: Flight | None = None  # set while this request leads a collapsed miss
        self.key = key  # the primary key, when misses are collapsed
        self.revalidating: StoredResponse | None = None  # its validators went to the app

    def on_request(self) -> Flow[Response | None]:
        exchange, request = self.exchange, self.exchange.request
        if self.plan.lookup and not exchange.background:
            # Inline, not through _lookup: a hit pays for no extra generator.
            try:
                entry = yield from self.step.store.lookup(
                    request.url, request.headers, self.rules.vary_cookies
                )
            except BackendError:
                self.skip_store = True  # fail open: the app answers, nothing is stored
                entry = None
                self.step.counts.error += 1
            answer = yield from self._answer(entry, counted=not self.skip_store)
            if answer is not None:
                return answer
            # Only a GET that could be answered and stored waits for a leader: a HEAD's
            # response is never worth waiting for.
            collapse = self.plan.store and not self.skip_store and self.step.inflight
            if collapse and request.method == "GET":
                answer = yield from self._follow()
                if answer is not None:
                    return answer
        exchange.unconditional = self.plan.store and not self.skip_store
        stale = exchange.stored
        if exchange.unconditional and stale is not None and request.method == "GET":
            # Ask the app whether the stale copy is still current (RFC 9111 §4.3.1): a
            # 304 then costs it no body, and the copy is stored again, freshened.
            exchange.validators = revalidation_fields(stale)
            self.revalidating = stale if exchange.validators else None
        self.request_time = self.step.clock()
        return None

    def _lookup(self) -> Flow[StoredResponse | None]:
        request = self.exchange.request
        try:
            return (
                yield from self.step.store.lookup(
                    request.url, request.headers, self.rules.vary_cookies
                )
            )
        except BackendError:
            self.skip_store = True
            return None

    def _follow(self) -> Flow[Response | None]:
        """Lead this miss, or wait for the request leading it and answer from the store."""
        inflight = self.step.inflight
        assert inflight is not None
        joined = inflight.enter(self.key)
        if joined is None:
            return None
        flight, leading = joined
        if leading:
            self.flight = flight
            return None
        landed = yield Call(inflight.wait, flight)
        if not (landed and flight.stored):
            return None  # timed out, or nothing was stored: to the app
        # What the store gives this request, as for any other: Vary still applies.
        return (yield from self._answer((yield from self._lookup())))

    def _land(self, *, stored: bool, remember: bool = False) -> None:
        """Release the followers of the miss this request leads (at most once)."""
        flight, self.flight = self.flight, None
        if flight is not None:
            inflight = self.step.inflight
            assert inflight is not None
            inflight.land(self.key, flight, stored=stored, remember=remember)

    def _answer(self, entry: StoredResponse | None, counted: bool = False) -> Flow[Response | None]:
        """The stored answer, if usable; ``counted``: count the lookup's result (once
        per request: a collapsed miss answered after waiting is counted as a miss)."""
        directives = self.plan.directives
        request = self.exchange.request
        counts = self.step.counts
        if entry is None:
            if counted:
                counts.miss += 1
            return gateway_timeout() if directives.only_if_cached else None
        now = self.step.clock()
        usable = assess(entry, now, directives)
        if usable is Freshness.FRESH:
            if counted:
                counts.hit += 1
            return serve_stored(entry, request.method, request.headers, now)
        if counted:
            # Served stale, or to the app: a stale-if-error copy served after the app
            # failed is counted when it is served (on_error, on_head).
            if usable is Freshness.STALE_ACCEPTED or usable is Freshness.STALE_REVALIDATE:
                counts.stale += 1
            else:
                counts.miss += 1
        if usable is Freshness.STALE_ACCEPTED:
            return serve_stored(entry, request.method, request.headers, now)
        if usable is Freshness.STALE_REVALIDATE:
            lease = min(REFRESH_LEASE, max(1.0, entry.stale_while_revalidate))
            with suppress(BackendError):  # no refresh then: it could not be stored anyway
                self.exchange.revalidate = yield from self.step.store.claim_refresh(
                    request.url, lease
                )
            return serve_stored(entry, request.method, request.headers, now)
        if directives.only_if_cached:
            return gateway_timeout()
        if usable is Freshness.STALE_IF_ERROR:
            self.exchange.stale = entry
        self.exchange.stored = entry
        return None

    def _stale_answer(self) -> Response | None:
        stale = self.exchange.stale
        if stale is None:
            return None
        self.step.counts.stale += 1
        request = self.exchange.request
        return serve_stored(stale, request.method, request.headers, self.step.clock())

    def on_error(self, error: Exception) -> Flow[Response | None]:
        yield from ()
        return self._stale_answer()

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        yield from ()
        if head.status in ERROR_STATUSES:
            stale = self._stale_answer()
            if stale is not None:
                self._land(stored=False)
                return stale
        if head.status == 304 and self.revalidating is not None:
            request, now = self.exchange.request, self.step.clock()
            answer, stored = yield from freshen(self.step.store, request, self.rules, self.plan,
                                                self.revalidating, head, self.request_time,
                                                now)  # fmt: skip
            self._land(stored=stored)
            return answer
        if self.skip_store:
            return head
        self.response_time = self.step.clock()
        decision = decide_store(
            self.exchange.request, head, self.rules, self.plan, self.response_time
        )
        if not decision.store:
            # Followers need not wait for the body. A deliberate "not storable" about
            # the resource is remembered, so the next burst does not wait at all; not
            # one about this client (its 403, its 429), which would turn caching off
            # for everyone, nor an error.
            self._land(stored=False, remember=head.status in PASS_STATUSES)
            return self._validated(head)
        if decision.cache_control is not None:
            head.set("Cache-Control", decision.cache_control)
        if decision.add_vary:
            fields = [*(head.get_all("vary")), *decision.add_vary]
            head.set("Vary", ", ".join(fields))
        length = _content_length(head)
        if length is not None and length > self.rules.max_body:
            self._land(stored=False, remember=True)
            return self._validated(head)
        self.decision = decision
        self.stored_head = ResponseHead(head.status, list(head.headers))
        mode = BodyMode.BUFFER if length is not None else BodyMode.TEE
        self.exchange.want_body(mode, self.rules.max_body)
        return head

    def _validated(self, head: ResponseHead) -> ResponseHead | Response:
        # The client's validators were held back from the app so that a full response
        # could be stored. This one is not stored: answer them as the app would have.
        if not self.exchange.unconditional:
            return head
        request = self.exchange.request
        return answer_validators(request.method, request.headers, head)

    def _entry(self, body: bytes) -> StoredResponse | None:
        if self.entry is None and self.decision is not None and self.stored_head is not None:
            request = self.exchange.request
            values = vary_values(request.headers, self.decision.vary, self.rules.vary_cookies)
            self.entry = build_entry(request.url, self.stored_head, body, self.decision, values,
                                     self.request_time, self.response_time)  # fmt: skip
        return self.entry

    def on_body(self, response: Response) -> Response:
        entry = self._entry(response.body)
        if entry is None:
            return response
        request = self.exchange.request
        return serve_stored_as_sent(entry, request.method, request.headers, response)

    def on_complete(self, body: bytes | None, error: BaseException | None) -> Flow[None]:
        stored: bool | None = False
        try:
            if body is not None and error is None:
                stored = yield from self._save(body)
        finally:
            if self.flight is not None:
                # Whatever happened (an error, a cancelled leader), followers go now. A
                # body over the limit (no copy, no error) or one stale on arrival is as
                # unstorable as a private response, and remembered as such.
                over = body is None and error is None and self.decision is not None
                self._land(stored=bool(stored), remember=over or stored is None)

    def _save(self, body: bytes) -> Flow[bool | None]:
        """Store the response: whether it was, ``None`` when it never could be."""
        entry = self._entry(body)
        if entry is None or self.decision is None:
            return None
        ttl = storage_ttl(entry, self.rules)
        if ttl <= 0:
            return None
        try:
            yield from self.step.store.save(entry, self.decision.vary, ttl)
        except BackendError:
            return False  # fail open: the response went out; it is just not cached
        return True


def _content_length(head: ResponseHead) -> int | None:
    value = head.get("content-length")
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isascii() and text.isdigit() else None
