"""What every feature reports, and who listens. Strictly private; the public names are
re-exported by :mod:`resilient.instrumentation`.

Two channels, chosen by what each costs on the hot path:

* **Counts** (cache hits, limiter decisions, breaker calls, backend errors) are the
  integers each feature keeps anyway. An exporter reads them when it is scraped or
  collected (:func:`samples`), so a counted call pays nothing more for being exported: a
  push per call (a function call and a locked increment) would cost about as much as the
  in-memory cache hit itself.
* **Events** (a breaker's transition, a backend guard opening or closing, a limiter's
  backend failing or answering again) are rare, and are pushed to listeners as they
  happen (:func:`emit`). Call sites test :data:`listeners`, a tuple, before building an
  event, so with no listener an event costs one truth test.

Features register themselves here when they are built (:func:`track`); the registry
holds them weakly, so it never keeps one alive.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("resilient.instrumentation")

#: The kinds of objects features register, in the order samples are produced.
KINDS = ("cache", "http_cache", "ratelimiter", "circuitbreaker", "backend")


@dataclass(frozen=True, slots=True)
class Event:
    """A state change a feature reports to listeners.

    Attributes:
        feature: ``circuitbreaker``, ``backend`` or ``ratelimiter``.
        name: the name the user gave (a backend's is its URL with secrets masked).
        kind: ``transition`` (a breaker's ``old`` and ``new`` state in ``detail``),
            ``guard_open`` or ``guard_closed`` (backend), ``backend_failing`` or
            ``backend_answering`` (a limiter's backend, ``fail_mode`` in ``detail``).
        detail: more about the change, as strings.

    .. versionadded:: 0.1
    """

    feature: str
    name: str
    kind: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    """One current value of a counter or a gauge (see :func:`samples`).

    Attributes:
        metric: the metric's name without the ``resilient_`` prefix and ``_total``
            suffix: ``cache_requests``, ``circuitbreaker_state``, ...
        labels: label name and value pairs, in a fixed order per metric.
        value: the count so far (counters) or the value now (gauges).

    .. versionadded:: 0.1
    """

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float


Listener = Callable[[Event], None]
#: ``(limiter name, policy, seconds)`` for each rate-limit decision, while an exporter
#: records the decision-latency histogram.
DecisionTimer = Callable[[str, str, float], None]

#: Who hears events; a tuple, so that call sites test it without a lock or a call.
listeners: tuple[Listener, ...] = ()
#: Whether limiters time (a sample of) their decisions: set by exporters.
timing = False
#: Who else hears each timed decision (the OpenTelemetry histogram); empty by default.
timers: tuple[DecisionTimer, ...] = ()

_lock = threading.Lock()
_tracking = threading.Lock()
_tracked: dict[str, weakref.WeakSet[Any]] = {kind: weakref.WeakSet() for kind in KINDS}
_readers: dict[str, Callable[[Any], Iterator[Sample]]] = {}
_failed_listeners: set[int] = set()
_on_track: list[Callable[[str, Any], None]] = []
_configured = False


def _configure() -> None:
    global _configured
    _configured = True  # first: an exporter that fails to start is not retried per object
    from resilient.instrumentation._switch import configure_from_env

    configure_from_env()


def add_listener(listener: Listener) -> None:
    """Call ``listener(event)`` on every state change from now on.

    A listener runs in the thread (or event loop) of the change and should return
    quickly. One that raises never breaks the call that caused the change: the error is
    logged once per listener and ignored.

    .. versionadded:: 0.1
    """
    global listeners
    with _lock:
        listeners = (*listeners, listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener``; unknown listeners are ignored.

    .. versionadded:: 0.1
    """
    global listeners
    with _lock:
        listeners = tuple(item for item in listeners if item is not listener)
        _failed_listeners.discard(id(listener))


def emit(event: Event) -> None:
    """Tell every listener; call sites test :data:`listeners` first."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            # Logged once: a listener that fails on every event must not flood the log.
            if id(listener) not in _failed_listeners:
                _failed_listeners.add(id(listener))
                logger.exception("metrics listener %r failed; its errors are ignored", listener)


def start_timing() -> None:
    """Make limiters time one decision in ``DECISION_SAMPLING`` from now on."""
    global timing
    timing = True


def add_timer(timer: DecisionTimer) -> None:
    """Hand every timed rate-limit decision's latency to ``timer`` too."""
    global timers
    with _lock:
        timers = (*timers, timer)
    start_timing()


def remove_timer(timer: DecisionTimer) -> None:
    """Stop recording decision latency with ``timer``."""
    global timers
    with _lock:
        timers = tuple(item for item in timers if item is not timer)


def time_decision(name: str, policy: str, seconds: float) -> None:
    """Hand one timed decision's latency to every timer (call sites test :data:`timers`)."""
    for timer in timers:
        try:
            timer(name, policy, seconds)
        except Exception:
            if id(timer) not in _failed_listeners:
                _failed_listeners.add(id(timer))
                logger.exception("decision timer %r failed; its errors are ignored", timer)


def track(kind: str, owner: Any) -> None:
    """Register a feature object (held weakly) so that :func:`samples` reads it.

    The first registration starts the exporters ``RESILIENT_METRICS`` names.
    """
    if not _configured:
        _configure()
    with _tracking:
        _tracked[kind].add(owner)
    for hook in _on_track:
        hook(kind, owner)


def tracked(kind: str) -> list[Any]:
    """The live objects of ``kind``."""
    # Under the lock: a WeakSet that grows while it is iterated raises, and a middleware
    # builds its limiters at first use, possibly while an exporter is being scraped.
    with _tracking:
        return list(_tracked[kind])


def on_track(hook: Callable[[str, Any], None]) -> None:
    """Call ``hook(kind, owner)`` for every object registered from now on."""
    _on_track.append(hook)


def set_reader(kind: str, reader: Callable[[Any], Iterator[Sample]]) -> None:
    """How samples are read from objects of ``kind`` (set by each feature's reader)."""
    _readers[kind] = reader


def samples() -> list[Sample]:
    """Every counter and gauge now, summed over objects that share a name.

    Two caches (or limiters, ...) built with one name report as one: label values are
    the names users gave, never keys or client identities, so the number of series is
    bounded by the number of names in the code.
    """
    from resilient.instrumentation import _readers as _  # noqa: F401  (registers readers)

    totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for kind in KINDS:
        reader = _readers.get(kind)
        if reader is None:
            continue
        for owner in tracked(kind):
            for sample in reader(owner):
                key = (sample.metric, sample.labels)
                if sample.metric.endswith(("_state", "_open")):
                    # A state is a gauge: one object of a name is enough, max keeps 1s.
                    totals[key] = max(totals.get(key, 0.0), sample.value)
                else:
                    totals[key] = totals.get(key, 0.0) + sample.value
    return [Sample(metric, labels, value) for (metric, labels), value in totals.items()]
