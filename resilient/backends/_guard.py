"""A small circuit breaker in front of a remote backend. Strictly private.

After ``failures`` consecutive failed operations the backend is skipped at once
(:class:`BackendUnavailable`) for ``cooldown`` seconds; then it is probed. This is what
keeps a dead Redis from costing a timeout per request. It logs once per state change,
never per operation, both changes at WARNING: whoever saw the server fail in the log
must see it answer again at the same level.

Why probes run beside the callers, not in them: a caller that probes a hung server waits
out a whole operation timeout, so while Redis is down one request per cooldown and per
backend paid 100 ms (measured under load: p99 added latency 99 ms). With a ``probe``
given, the first caller after the cooldown starts it off the request path and is skipped
like the others; the probe's outcome closes the guard or starts another cooldown.

Why backends built from one URL share a guard (:func:`shared_guard`): a process holds a
backend per feature (a limiter, a cache, a breaker, the HTTP cache), and each guard of
its own learnt that the server was down by failing ``failures`` operations, each a
timeout in some request, including a feature first used minutes into an outage. One
guard per server and process pays that once.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

from resilient.backends.base import Clock
from resilient.errors import BackendUnavailable
from resilient.instrumentation import _hub as _metrics

logger = logging.getLogger("resilient.backends")


class BackendGuard:
    """Consecutive-failure guard with one probe per cooldown."""

    __slots__ = (
        "__weakref__",
        "_clock",
        "_cooldown",
        "_failures",
        "_limit",
        "_lock",
        "_open_until",
        "errors",
        "name",
        "timeouts",
    )

    def __init__(self, name: str, failures: int, cooldown: float, clock: Clock) -> None:
        self.name = name
        self._limit = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._lock = threading.Lock()
        # Failed operations by kind, for metrics (the failure path only: no cost on success).
        self.timeouts = 0
        self.errors = 0
        _metrics.track("backend", self)

    @property
    def is_open(self) -> bool:
        """True while the backend is being skipped."""
        return self._open_until is not None

    def before(self, probe: Callable[[], None] | None = None) -> None:
        """Raise :class:`BackendUnavailable` unless an operation may go ahead.

        ``probe`` starts a check of the backend off the caller's path (a thread or a
        task) that reports through :meth:`success` or :meth:`failure`; without it the
        first caller after a cooldown is the probe.
        """
        if self._open_until is None:  # the hot path: no lock, no clock
            return
        now = self._clock()
        with self._lock:
            open_until = self._open_until
            if open_until is None:
                return
            if now < open_until:
                raise BackendUnavailable(
                    f"backend {self.name} is failing; skipped for {open_until - now:.3f}s"
                )
            # One probe per cooldown: the others keep skipping meanwhile.
            self._open_until = now + self._cooldown
        if probe is None:
            return  # this caller probes
        probe()
        raise BackendUnavailable(f"backend {self.name} is failing; probing it")

    def success(self) -> None:
        """Record a successful operation; closes the guard."""
        if self._failures == 0 and self._open_until is None:
            return
        with self._lock:
            was_open = self._open_until is not None
            self._failures = 0
            self._open_until = None
        if was_open:
            logger.warning("backend %s is answering again", self.name)
            if _metrics.listeners:
                _metrics.emit(_metrics.Event("backend", self.name, "guard_closed"))

    def failure(self, error: BaseException | None = None) -> None:
        """Record a failed operation (``error``, when known, tells a timeout from other
        errors in metrics); opens the guard at the threshold."""
        with self._lock:
            if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
                self.timeouts += 1  # builtin, socket and redis-py timeouts alike
            else:
                self.errors += 1
            self._failures += 1
            opening = self._failures >= self._limit and self._open_until is None
            if self._failures >= self._limit:
                self._open_until = self._clock() + self._cooldown
        if opening:
            logger.warning(
                "backend %s failed %d times in a row; skipping it for %.3fs",
                self.name,
                self._limit,
                self._cooldown,
            )
            if _metrics.listeners:
                _metrics.emit(_metrics.Event("backend", self.name, "guard_open"))


_SHARED: weakref.WeakValueDictionary[tuple[str, int, float, Clock], BackendGuard] = (
    weakref.WeakValueDictionary()
)
_SHARED_LOCK = threading.Lock()


def shared_guard(name: str, failures: int, cooldown: float, clock: Clock) -> BackendGuard:
    """The guard of every live backend of this process built for server ``name`` (its
    URL without secrets) with the same settings; a new one when there is none."""
    key = (name, failures, cooldown, clock)
    with _SHARED_LOCK:
        guard = _SHARED.get(key)
        if guard is None:
            guard = _SHARED[key] = BackendGuard(name, failures, cooldown, clock)
        return guard
