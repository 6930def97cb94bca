"""The request pipeline: steps, their per-request stages, and the phases a shell runs.

A **step** is one feature of the middleware: rate limiting, response caching and
circuit breakers, in that order. For each request, each step may start a
**stage**: a per-request object holding that request's state, so nothing lives on the
middleware between requests (the rule behind starlette's ``GZipMiddleware`` responders).

Stages run like an onion, in step order on the way in and in reverse on the way out:

- :meth:`Stage.on_request` may answer at once (a cache hit, a 429, a 503); the stages
  before it then see that answer in :meth:`Stage.on_head`, the app is not called;
- :meth:`Stage.on_head` sees the app's status and fields before they are sent: it may
  edit them, or replace the whole response (a stale copy for a 503);
- :meth:`Stage.on_error` sees an exception the app raised before its head, and may
  answer in its place;
- :meth:`Stage.on_body` edits a response whose body a stage asked to hold
  (:meth:`Exchange.want_body` with :attr:`BodyMode.BUFFER`);
- :meth:`Stage.on_complete` runs once the body went out (or failed), with the copy of
  the body a stage asked for.

Every hook but ``on_body`` is a flow (see :mod:`._drivers`), so a stage may do I/O through
its backend and the same code serves the WSGI and the ASGI shell.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from resilient.middleware._drivers import Flow
from resilient.sansio.caching import SAFE_METHODS
from resilient.sansio.entry import StoredResponse
from resilient.sansio.http import RequestInfo, Response, ResponseHead

if TYPE_CHECKING:
    from resilient.middleware._limits import LimitStep, RouteLimit
    from resilient.middleware.rules import Route, Routes

__all__ = ["BodyMode", "Exchange", "Pipeline", "Stage", "Step"]


class BodyMode(enum.IntEnum):
    """How much of the app's body the stages need; the shell honours the largest asked."""

    #: Nothing after the head: the app's body goes to the server untouched.
    PASS = 0
    #: Call :meth:`Stage.on_complete` when the body ends; no copy.
    WATCH = 1
    #: Stream the body and keep a copy up to the limit (dropped beyond it).
    TEE = 2
    #: Hold the body up to the limit and run :meth:`Stage.on_body` before sending the
    #: head; past the limit, send what is held and stream the rest without a copy.
    BUFFER = 3


class Exchange:
    """One request's passage through the pipeline; created per request, never shared.

    Attributes:
        request: the request.
        route: the route it matched.
        background: ``True`` for a refresh the middleware makes itself after serving a
            stale response: stages for clients (rate limits) should stand aside.
        stages: the stages started for it, in step order.
        body_mode: what the stages asked of the body.
        body_limit: the largest copy asked for, in bytes.
        unconditional: forward the request without ``If-None-Match`` and
            ``If-Modified-Since`` (the cache wants a full response it can store).
        validators: fields to forward in their place, when ``unconditional``: the
            stored response's own validators, so that the app may answer 304 to a
            revalidation (RFC 9111 §4.3.1).
        revalidate: after the response is sent, run the request again in the
            background to refresh a stale cached copy.
        stale: a stored response that may stand in if the app fails (within its
            ``stale-if-error`` window); render it with
            :func:`resilient.sansio.serving.serve_stored`.
        stored: the stored response the cache found but did not serve, whatever its
            age: an open circuit breaker may have it stand in (by making it ``stale``).
    """

    __slots__ = ("background", "body_limit", "body_mode", "request", "revalidate", "route",
                 "stages", "stale", "started", "stored", "unconditional",
                 "validators")  # fmt: skip

    def __init__(self, request: RequestInfo, route: Route, *, background: bool = False) -> None:
        self.request = request
        self.route = route
        self.background = background
        self.stages: list[Stage] = []
        self.started = 0
        self.body_mode = BodyMode.PASS
        self.body_limit = 0
        self.unconditional = False
        self.validators: tuple[tuple[str, str], ...] = ()
        self.revalidate = False
        self.stale: StoredResponse | None = None
        self.stored: StoredResponse | None = None

    def counting_only(self) -> RouteLimit | None:
        """The route's limit when counting it is all this exchange does (the cache stood
        aside: the request bypasses it, or its URL is passing), so the shell may count it
        inline as it does for a limits-only route; else ``None``."""
        limit = self.route.limit
        # A client's request on a limited route always has the limit's stage: a single
        # stage is that one.
        if limit is None or self.background or len(self.stages) != 1:
            return None
        return limit

    def want_body(self, mode: BodyMode, limit: int = 0) -> None:
        """Ask the shell for ``mode`` (the largest mode and limit asked for win)."""
        self.body_mode = max(self.body_mode, mode)
        self.body_limit = max(self.body_limit, limit)


class Stage:
    """One step's work for one request. Every hook is optional; the defaults do nothing."""

    __slots__ = ()

    def on_request(self) -> Flow[Response | None]:
        """Before the app: return a response to answer without calling the app."""
        yield from ()
        return None

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        """Status and fields on their way out: edit ``head``, or return a replacement."""
        yield from ()
        return head

    def on_error(self, error: Exception) -> Flow[Response | None]:
        """The app raised before sending a head: return a response to send instead."""
        yield from ()
        return None

    def on_body(self, response: Response) -> Response:
        """A held response (``BodyMode.BUFFER``) just before it is sent."""
        return response

    def on_complete(self, body: bytes | None, error: BaseException | None) -> Flow[None]:
        """The response ended: ``body`` is the copy asked for, ``None`` when there is none
        (not asked, over the limit, or the body failed with ``error``)."""
        yield from ()


class Step(Protocol):
    """A feature of the middleware; builds in ``__init__`` whatever its stages share."""

    def begin(self, exchange: Exchange) -> Stage | None:
        """The stage for this request, or ``None`` when the step has nothing to do."""


class Pipeline:
    """The steps of one middleware, in order, and the route table they read.

    Args:
        routes: the route table.
        steps: the steps, in onion order.
        gate: the rate-limit step, if any route has limits. A request whose route only
            counts a limit (no cache, no breaker) is then *lean*: the shells count it
            and add its fields themselves, without an exchange, stages or flows (see
            :meth:`lean`), since that is all the stages would do.
    """

    __slots__ = ("gate", "routes", "steps")

    def __init__(
        self, routes: Routes, steps: Sequence[Step], gate: LimitStep | None = None
    ) -> None:
        self.routes = routes
        self.steps = tuple(steps)
        self.gate = gate

    def lean(self, method: str, path: str) -> tuple[Route, RouteLimit | None]:
        """The route of ``method`` on ``path``, and its limit when the request is lean
        (else ``None``)."""
        route = self.routes.match(method, path)
        limit = route.lean
        # An unsafe method invalidates the cached copies of its URL, if it has any.
        unsafe = limit is not None and method not in SAFE_METHODS
        if unsafe and self.routes.match("GET", path).cache is not None:
            return route, None
        return route, limit

    def begin(
        self, request: RequestInfo, *, background: bool = False, route: Route | None = None
    ) -> Exchange | None:
        """The exchange for ``request``, or ``None`` when no step takes part (pass through).

        ``route`` is the request's route when the caller matched it already.
        """
        if route is None:
            route = self.routes.match(request.method, request.path)
        exchange = Exchange(request, route, background=background)
        for step in self.steps:
            stage = step.begin(exchange)
            if stage is not None:
                exchange.stages.append(stage)
        return exchange if exchange.stages else None


def _outwards(
    stages: Sequence[Stage], head: ResponseHead, body: bytes | None
) -> Flow[tuple[ResponseHead, bytes | None]]:
    for stage in reversed(stages):
        result = yield from stage.on_head(head)
        if isinstance(result, Response):
            head, body = result.head(), result.body
        else:
            head = result
    return head, body


def request_phase(exchange: Exchange) -> Flow[Response | None]:
    """Run ``on_request`` in step order; the first answer goes back out through the rest."""
    for stage in exchange.stages:
        exchange.started += 1
        answer = yield from stage.on_request()
        if answer is not None:
            earlier = exchange.stages[: exchange.started - 1]
            head, body = yield from _outwards(earlier, answer.head(), answer.body)
            return Response(head.status, tuple(head.headers), body or b"")
    return None


def head_phase(exchange: Exchange, head: ResponseHead) -> Flow[tuple[ResponseHead, bytes | None]]:
    """The app's head through ``on_head``, last stage first.

    Returns the head to send and ``None``, or a replacement's head and its body (the shell
    then drops the app's body).
    """
    return (yield from _outwards(exchange.stages[: exchange.started], head, None))


def error_phase(exchange: Exchange, error: Exception) -> Flow[Response | None]:
    """Offer ``error`` to ``on_error``, last stage first; ``None`` means re-raise it."""
    started = exchange.stages[: exchange.started]
    for index in range(len(started) - 1, -1, -1):
        answer = yield from started[index].on_error(error)
        if answer is not None:
            head, body = yield from _outwards(started[:index], answer.head(), answer.body)
            return Response(head.status, tuple(head.headers), body or b"")
    return None


def body_phase(exchange: Exchange, response: Response) -> Response:
    """A held response through ``on_body``, last stage first."""
    for stage in reversed(exchange.stages[: exchange.started]):
        response = stage.on_body(response)
    return response


def complete_phase(
    exchange: Exchange, body: bytes | None, error: BaseException | None
) -> Flow[None]:
    """Tell every started stage the response ended, last stage first."""
    for stage in reversed(exchange.stages[: exchange.started]):
        yield from stage.on_complete(body, error)
