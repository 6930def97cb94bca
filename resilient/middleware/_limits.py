"""The rate-limit step: limits per route and client, counted before the cache.

Everything a route's limit needs is resolved once, when the middleware is built (see
:mod:`._resolve`): the limiter, the key function, and the parts of the rate-limit
fields that never change. A request then
costs one key lookup, one limiter decision and a few string joins; in memory, no flow
suspends. A rejected request gets a 429 with ``Retry-After`` and the configured fields,
and never reaches the cache or the app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from resilient.backends.base import Clock
from resilient.middleware._drivers import Call, Flow
from resilient.middleware._keys import PeerKey
from resilient.middleware._pipeline import Exchange, Stage
from resilient.ratelimit import (
    Decision,
    LimitState,
    RateLimiter,
    rate_limit_headers,
    ratelimit_field,
    ratelimit_policy_field,
)
from resilient.ratelimit.keys import RequestKey, RequestView
from resilient.sansio.http import RequestInfo, Response, ResponseHead
from resilient.sansio.problems import Rejection, problem_response, with_fields, without_body

__all__ = ["LimitKey", "LimitStep", "RejectionFactory", "RouteLimit"]

#: Builds the answer to a refused request; see :class:`~resilient.sansio.problems.Rejection`.
RejectionFactory = Callable[[Rejection], Response]
#: Who a route's requests count against: ``"ip"``, ``"header:<name>"`` or a function.
LimitKey = str | Callable[[RequestView], "str | None"]

_SF_INTEGER_MAX = 999_999_999_999_999  # RFC 9651 §3.3.1, as the header functions cap


def _sf_integer(value: int) -> int:
    return value if value < _SF_INTEGER_MAX else _SF_INTEGER_MAX


def _sf_seconds(value: float) -> int:
    return 0 if value <= 0 else min(_SF_INTEGER_MAX, math.ceil(value))


def _tightest(states: Sequence[LimitState]) -> tuple[int, LimitState, float]:
    """The limit closest to rejecting, as rate_limit_headers picks it, and its reset."""
    index = 0
    if len(states) > 1:
        index = min(range(len(states)), key=lambda i: (
            -states[i].retry_after, states[i].remaining, -states[i].reset_after))  # fmt: skip
    state = states[index]
    retry = state.retry_after
    return index, state, retry if retry > 0 else state.reset_after


class RouteLimit:
    """A route's rate limit, resolved: the limiter, whom requests count against, and
    the fixed parts of its header fields.

    Attributes:
        limiter: the :class:`~resilient.ratelimit.RateLimiter` counting the route.
        key: the key function; requests count against what it returns.
        of_peer: the same key from the socket peer's address alone, when it needs
            nothing else (per client IP, no trusted proxies); else ``None``.
        local: the limiter counts in this process's memory, so asking it never waits.

    .. versionadded:: 0.1
    """

    __slots__ = ("_draft", "_legacy", "_names", "_policy", "_wire_names", "_wire_policy", "key",
                 "limiter", "local", "of_peer")  # fmt: skip

    def __init__(
        self, limiter: RateLimiter, key: RequestKey, of_peer: PeerKey | None = None
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.of_peer = of_peer
        self.local = limiter.counts_locally
        style = limiter.header_style
        self._draft = style in ("draft", "both")
        self._legacy = style in ("legacy", "both")
        blank = [LimitState(limit, 0, 0.0, 0.0) for limit in limiter.limits]
        self._policy = ratelimit_policy_field(blank)
        self._wire_policy = self._policy.encode("latin-1")
        # The structured-field name of each limit as ratelimit_field writes it, in the
        # order of the decision's states.
        self._names = [ratelimit_field([state]).rpartition(";r=")[0] for state in blank]
        self._wire_names = [name.encode("latin-1") for name in self._names]

    def fields(self, decision: Decision, clock: Clock) -> list[tuple[str, str]]:
        """The rate-limit fields of a response to an admitted request.

        The same fields as :func:`~resilient.ratelimit.rate_limit_headers` renders for
        one decision on a 200 (a test holds the two equal), without the work that
        depends only on the limits. ``clock`` (wall seconds) is read for
        ``X-RateLimit-Reset`` only.
        """
        states = decision.states
        if not states or not (self._draft or self._legacy):
            return []
        index, state, reset = _tightest(states)
        fields: list[tuple[str, str]] = []
        if self._draft:
            value = f"{self._names[index]};r={_sf_integer(state.remaining)};t={_sf_seconds(reset)}"
            fields += (("RateLimit-Policy", self._policy), ("RateLimit", value))
        if self._legacy:
            fields += (("X-RateLimit-Limit", str(state.limit.amount)),
                       ("X-RateLimit-Remaining", str(state.remaining)),
                       ("X-RateLimit-Reset", str(math.ceil(clock() + reset))))  # fmt: skip
        return fields

    def wire_fields(self, decision: Decision, clock: Clock) -> list[tuple[bytes, bytes]]:
        """:meth:`fields` as ASGI sends them: lower-case names, bytes."""
        states = decision.states
        if not states or not (self._draft or self._legacy):
            return []
        if len(states) == 1:  # the common case, inlined: this runs on every request
            index, state = 0, states[0]
            reset = state.retry_after if state.retry_after > 0 else state.reset_after
        else:
            index, state, reset = _tightest(states)
        fields: list[tuple[bytes, bytes]] = []
        if self._draft:
            r, t = state.remaining, 0 if reset <= 0 else math.ceil(reset)
            value = b"%s;r=%d;t=%d" % (self._wire_names[index], min(r, _SF_INTEGER_MAX),
                                       min(t, _SF_INTEGER_MAX))  # fmt: skip
            fields += ((b"ratelimit-policy", self._wire_policy), (b"ratelimit", value))
        if self._legacy:
            fields += ((b"x-ratelimit-limit", b"%d" % state.limit.amount),
                       (b"x-ratelimit-remaining", b"%d" % state.remaining),
                       (b"x-ratelimit-reset", b"%d" % math.ceil(clock() + reset)))  # fmt: skip
        return fields

    def rejected_fields(self, decision: Decision, now: float) -> list[tuple[str, str]]:
        """The fields of a 429: the rate-limit fields and ``Retry-After``."""
        fields = rate_limit_headers(decision, style=self.limiter.header_style, status=429,
                                    now=now)  # fmt: skip
        if not any(name == "Retry-After" for name, _ in fields):
            fields.append(("Retry-After", str(max(1, math.ceil(decision.retry_after)))))
        return fields


class LimitStep:
    """Counts requests against their route's limits; answers 429 over them.

    Args:
        asynchronous: the shell awaits backend calls (ASGI).
        clock: wall-clock seconds, for ``X-RateLimit-Reset``.
        on_reject: builds the 429's body; the default is an RFC 9457 problem.
    """

    __slots__ = ("asynchronous", "clock", "on_reject")

    def __init__(
        self, asynchronous: bool, clock: Clock, on_reject: RejectionFactory | None
    ) -> None:
        self.asynchronous = asynchronous
        self.clock = clock
        self.on_reject = on_reject or problem_response

    def begin(self, exchange: Exchange) -> Stage | None:
        """A stage for requests on limited routes; background refreshes are not counted."""
        limit = exchange.route.limit
        if limit is None or exchange.background:
            return None
        return _LimitStage(self, limit, exchange)

    def answer(
        self, limit: RouteLimit, request: RequestInfo, decision: Decision
    ) -> Response | None:
        """The 429 for ``decision``, or ``None`` when the request may go on."""
        if decision.allowed:
            return None
        breached = decision.breached
        policies = (breached.limit.name,) if breached is not None else ()
        rejection = Rejection(429, "rate-limited", decision.retry_after, request,
                              limit=decision.limit, policies=policies)  # fmt: skip
        response = with_fields(
            self.on_reject(rejection), limit.rejected_fields(decision, self.clock())
        )
        return without_body(response) if request.method == "HEAD" else response

    def fields(self, limit: RouteLimit, decision: Decision) -> list[tuple[str, str]]:
        """The rate-limit fields of the response to an admitted request."""
        return limit.fields(decision, self.clock)

    def wire_fields(self, limit: RouteLimit, decision: Decision) -> list[tuple[bytes, bytes]]:
        """:meth:`fields`, encoded for ASGI."""
        return limit.wire_fields(decision, self.clock)


class _LimitStage(Stage):
    __slots__ = ("decision", "exchange", "limit", "step")

    def __init__(self, step: LimitStep, limit: RouteLimit, exchange: Exchange) -> None:
        self.step = step
        self.limit = limit
        self.exchange = exchange
        self.decision: Decision | None = None

    def on_request(self) -> Flow[Response | None]:
        limit = self.limit
        request = self.exchange.request
        key = limit.key(request)
        decision: Decision
        if limit.local:  # memory never blocks: no call for the driver to run
            decision = limit.limiter.hit(key)
        elif self.step.asynchronous:
            decision = yield Call(limit.limiter.ahit, key)
        else:
            decision = yield Call(limit.limiter.hit, key)
        self.decision = decision
        return self.step.answer(limit, request, decision)

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        yield from ()
        if self.decision is not None:
            head.headers += self.step.fields(self.limit, self.decision)
        return head
