"""The circuit-breaker step: a breaker per route (or per upstream), after the cache.

Each request the cache does not answer asks the route's breaker for a permit. The app's
status decides the outcome when its head arrives: 5xx is a failure, anything else a
success; an exception before the head is a failure unless the breaker ignores its kind
(cancellation, a client that went away). A permit is always handed back exactly once,
so a half-open circuit admits exactly its probes: a request that ends without an
outcome (the app sent nothing, the task was cancelled) releases it. No lock is held
while the app runs: admission and recording each take the breaker's short lock.

While the circuit is open the route answers 503 with ``Retry-After``; when the cache
holds a copy of the response, however stale, that copy answers instead (the cache
stage swaps it in for the 503, as it does for ``stale-if-error``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resilient.breaker import CircuitBreaker, Permit
from resilient.errors import CircuitOpenError
from resilient.middleware._drivers import Call, Flow
from resilient.middleware._pipeline import Exchange, Stage
from resilient.sansio.http import Response, ResponseHead
from resilient.sansio.problems import (
    Rejection,
    is_failure,
    problem_response,
    with_fields,
    without_body,
)

if TYPE_CHECKING:
    from resilient.middleware._limits import RejectionFactory

__all__ = ["BreakerStep"]


class BreakerStep:
    """Guards each route's app calls with its breaker; answers 503 while it is open.

    Args:
        asynchronous: the shell awaits backend calls (ASGI): shared breakers then
            report through their asyncio methods.
        on_reject: builds the 503's body; the default is an RFC 9457 problem.
    """

    __slots__ = ("asynchronous", "on_reject")

    def __init__(self, asynchronous: bool, on_reject: RejectionFactory | None) -> None:
        self.asynchronous = asynchronous
        self.on_reject = on_reject or problem_response

    def begin(self, exchange: Exchange) -> Stage | None:
        """A stage for requests on routes with a breaker."""
        breaker = exchange.route.breaker
        if breaker is None:
            return None
        return _BreakerStage(self, breaker, exchange)

    def reject(self, exchange: Exchange, error: CircuitOpenError) -> Response:
        """The 503 for an open circuit; a stored copy of the response may replace it."""
        stored = exchange.stored
        if stored is not None and stored.may_serve_stale:
            exchange.stale = stored  # the cache stage answers with it, whatever its age
        rejection = Rejection(503, "circuit-open", error.retry_after, exchange.request,
                              breaker=error.name)  # fmt: skip
        retry_after = str(max(1, math.ceil(error.retry_after)))
        response = with_fields(self.on_reject(rejection), [("Retry-After", retry_after)])
        return without_body(response) if exchange.request.method == "HEAD" else response


class _BreakerStage(Stage):
    __slots__ = ("breaker", "exchange", "permit", "shared", "step")

    def __init__(self, step: BreakerStep, breaker: CircuitBreaker, exchange: Exchange) -> None:
        self.step = step
        self.breaker = breaker
        self.exchange = exchange
        # Only shared breakers do I/O; the others are asked directly, in both shells.
        self.shared = step.asynchronous and breaker.options.shared
        self.permit: Permit | None = None

    def on_request(self) -> Flow[Response | None]:
        breaker = self.breaker
        try:
            if self.shared:
                self.permit = yield Call(breaker.aadmit)
            else:
                self.permit = breaker.admit()
        except CircuitOpenError as error:
            return self.step.reject(self.exchange, error)
        return None

    def _report(self, sync: Callable[..., None], asynchronous: Callable[..., Any],
                *args: object) -> Flow[None]:  # fmt: skip
        if self.shared:
            yield Call(asynchronous, *args)
        else:
            sync(*args)

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        permit, self.permit = self.permit, None
        if permit is not None:
            breaker = self.breaker
            if is_failure(head.status):
                yield from self._report(breaker.record_failure, breaker.arecord_failure, permit)
            else:
                yield from self._report(breaker.record_success, breaker.arecord_success, permit)
        return head

    def on_error(self, error: Exception) -> Flow[Response | None]:
        permit, self.permit = self.permit, None
        if permit is not None:
            breaker = self.breaker
            yield from self._report(breaker.record_failure, breaker.arecord_failure, permit,
                                    error)  # fmt: skip
        return None

    def on_complete(self, body: bytes | None, error: BaseException | None) -> Flow[None]:
        # Still held: the request ended without a head or an exception the shell could
        # offer (the app sent nothing, or was cancelled). Cancellation and exits count
        # as nothing; the permit goes back either way.
        permit, self.permit = self.permit, None
        if permit is not None:
            breaker = self.breaker
            if error is None:
                yield from self._report(breaker.release, breaker.arelease, permit)
            else:
                yield from self._report(breaker.record_failure, breaker.arecord_failure,
                                        permit, error)  # fmt: skip
