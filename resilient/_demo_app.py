"""The demo's service: a slow, flaky upstream behind a small ``/items`` app. Strictly private.

Everything here runs on the standard library alone (the core never imports a web
framework): the app is hand-written WSGI, served by ``wsgiref`` with a thread per
connection on a free loopback port. :func:`serve_in_worker` runs the same in a process
of its own for ``resilient demo --workers N``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pybreaker

from resilient.breaker import CircuitBreaker
from resilient.config import Settings
from resilient.middleware import CachePolicy, ResilientWSGIMiddleware, Rule

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_ITEM = re.compile(r"^/items/([0-9]{1,6})$")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one phase of the demo serves; picklable, so workers get the same.

    Attributes:
        outage: ``(start, end)``, seconds after the phase's start (its epoch) during
            which every upstream call fails.
        slow: the upstream's latency range in seconds.
        failure_rate: the share of upstream calls that fail outside the outage.
        cache_ttl: seconds a fetched item stays fresh in the middleware's cache.
        limits: the rate limit per client (the ``X-Client`` header).
        fail_max: consecutive failures that open the breaker.
        reset_timeout: seconds the breaker stays open before one probe.
        run: unique per run, so that runs on a shared Redis do not see each other.
        environ: the ``RESILIENT_*`` variables the middleware reads.
        shared: whether the breaker keeps its state in the backend (several workers).
    """

    outage: tuple[float, float]
    slow: tuple[float, float] = (0.02, 0.05)
    failure_rate: float = 0.05
    cache_ttl: float = 1.0
    limits: str = "30/second"
    fail_max: int = 5
    reset_timeout: float = 0.5
    run: str = "0"
    environ: Mapping[str, str] | None = None
    shared: bool = False


class Upstream:
    """The service the app depends on: it sleeps, fails some calls, and counts them all."""

    def __init__(self, plan: Plan, epoch: Any, seed: int = 0) -> None:
        self._plan = plan
        self._epoch = epoch  # a shared ``Value('d')``: the wall-clock start of the traffic
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0

    def fetch(self, item: int) -> dict[str, object]:
        """The item, after a delay; raises ``ConnectionError`` when the call fails."""
        with self._lock:
            self.calls += 1
            delay = self._random.uniform(*self._plan.slow)
            unlucky = self._random.random() < self._plan.failure_rate
        time.sleep(delay)
        elapsed = time.time() - self._epoch.value
        if unlucky or self._plan.outage[0] <= elapsed < self._plan.outage[1]:
            raise ConnectionError("upstream unavailable")
        return {"id": item, "name": f"item {item}", "price": round(1 + item * 0.25, 2)}


def items_app(upstream: Upstream) -> WSGIApplication:
    """The bare service: ``GET /items/{id}`` from the upstream, 502 when the upstream fails."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        match = _ITEM.match(str(environ.get("PATH_INFO", "")))
        if match is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("404 Not Found", [("Content-Type", "text/plain"),
                                              ("Content-Length", "9")])  # fmt: skip
            return [b"not found"]
        try:
            body = json.dumps(upstream.fetch(int(match.group(1)))).encode()
        except ConnectionError:
            start_response("502 Bad Gateway", [("Content-Type", "text/plain"),
                                               ("Content-Length", "20")])  # fmt: skip
            return [b"upstream unavailable"]
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])  # fmt: skip
        return [body]

    return app


class ShownNames(logging.Filter):
    """Rewrites the demo's breaker name, unique per run, to the name a user would give.

    The breaker logs its transitions under its full name (``demo.<run>.upstream``); the
    run's part keeps runs on a shared Redis apart, and has no business in a log line.
    """

    def __init__(self, full: str, shown: str) -> None:
        super().__init__()
        self._full, self._shown = full, shown

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self._full in record.args:
            record.args = tuple(self._shown if arg == self._full else arg for arg in record.args)
        return True


class TripCounter(pybreaker.CircuitBreakerListener):
    """Counts the breaker's trips (transitions to open), as a pybreaker listener."""

    def __init__(self) -> None:
        self.trips = 0

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if getattr(new_state, "name", None) == "open":
            self.trips += 1


def breaker_name(plan: Plan) -> str:
    """The breaker's name: unique to the run, so that its state in Redis is the run's."""
    return f"demo.{plan.run}.upstream"


def protected(app: WSGIApplication, plan: Plan, trips: TripCounter) -> WSGIApplication:
    """``app`` behind the middleware: a cached item route, a limit per client, a breaker."""
    settings = Settings.from_env(environ=plan.environ)
    breaker = CircuitBreaker(
        breaker_name(plan),
        fail_max=plan.fail_max,
        reset_timeout=plan.reset_timeout,
        listeners=[trips],
        shared=plan.shared,
        settings=settings,
    )
    rule = Rule(
        "/items/{id}",
        methods=["GET"],
        name="items",
        cache=CachePolicy(ttl=plan.cache_ttl, stale_if_error=plan.cache_ttl),
        limits=plan.limits,
        limit_key="header:X-Client",
        breaker=breaker,
    )
    return ResilientWSGIMiddleware(app, [rule], settings=settings)


class _Server(ThreadingMixIn, WSGIServer):
    # server_close() joins every connection's thread: the demo leaves none behind. The
    # clients have stopped by then, and each connection serves one request (HTTP/1.0).
    daemon_threads = False
    block_on_close = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the progress display


class Served:
    """One app served on 127.0.0.1 on a free port, from a thread; :meth:`stop` ends it."""

    def __init__(self, plan: Plan, epoch: Any, *, resilient: bool, seed: int = 0) -> None:
        self.upstream = Upstream(plan, epoch, seed)
        self.trips = TripCounter()
        app = items_app(self.upstream)
        self.app = protected(app, plan, self.trips) if resilient else app
        self._server = make_server("127.0.0.1", 0, self.app, _Server, _Handler)
        self._names = ShownNames(breaker_name(plan), "upstream")
        logging.getLogger("resilient.breaker").addFilter(self._names)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="resilient-demo-server", daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and the middleware's backend."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        if isinstance(self.app, ResilientWSGIMiddleware):
            self.app.backend.close()
        logging.getLogger("resilient.breaker").removeFilter(self._names)


def serve_in_worker(plan: Plan, epoch: Any, resilient: bool, seed: int, reports: Any,
                    notes: Any, stop: Any) -> None:  # fmt: skip
    """A worker process's body: serve, report the port, then the counts once told to stop.

    The breaker's transitions go to ``notes``, for the parent's display.
    """
    from resilient._demo_progress import breaker_notes

    with breaker_notes(lambda message: notes.put(f"worker {seed + 1}: {message}")):
        try:
            served = Served(plan, epoch, resilient=resilient, seed=seed)
        except Exception as exc:  # the parent prints it in one line
            reports.put(("error", f"{type(exc).__name__}: {exc}"))
            return
        reports.put(("port", served.port))
        stop.wait()
        served.stop()
    reports.put(("counts", served.upstream.calls, served.trips.trips))
