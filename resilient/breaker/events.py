"""Telling listeners and logs what happened. Strictly private.

pybreaker listeners are called with pybreaker's arguments (the breaker, and pybreaker
state objects for ``state_change``), always outside the state machine's lock, so a
listener may call back into the breaker. A state change is logged once: at WARNING when
the circuit opens and when it closes again (the recovery at the failure's level, so a
log filtered at WARNING shows both), at INFO for half-open; nothing is logged per call
or per rejection.
"""

from __future__ import annotations

import logging
from typing import Any

import pybreaker
from pybreaker import STATE_HALF_OPEN

from resilient.breaker.state import StateMachine, Transition
from resilient.instrumentation import _hub as _metrics
from resilient.instrumentation._meters import BreakerMeter

logger = logging.getLogger("resilient.breaker")

StateView = (
    pybreaker.CircuitClosedState | pybreaker.CircuitOpenState | pybreaker.CircuitHalfOpenState
)


class ResultFailure(Exception):
    """Stands for a returned value that ``failure_predicate`` judged a failure.

    Listeners' ``failure(cb, exc)`` receive it; it is never raised to the caller.

    Attributes:
        result: the value the guarded function returned.

    .. versionadded:: 0.1
    """

    def __init__(self, result: object) -> None:
        self.result = result
        super().__init__(f"result counted as a failure: {result!r:.200}")


class Notifier:
    """Listener and log notifications, mixed into the breaker."""

    _machine: StateMachine
    _listeners: list[Any]  # pybreaker.CircuitBreakerListener or look-alikes
    _meter: BreakerMeter | None  # metrics' counts, while an exporter is on
    _state_views: dict[str, StateView]

    name: str  # the breaker's (a read-only property there)

    # -- listeners and logs --------------------------------------------------------------

    def _tell_success(self) -> None:
        for listener in self._listeners:
            listener.success(self)

    def _tell_outcome(self, failed: bool, exc: BaseException | None) -> None:
        meter = self._meter
        if meter is not None:
            if failed:
                meter.failed += 1
            else:
                meter.successful += 1
        if not self._listeners:
            return
        if not failed:
            self._tell_success()
            return
        error = exc if exc is not None else ResultFailure(None)
        for listener in self._listeners:
            listener.failure(self, error)

    def _notify(self, transition: Transition) -> None:
        """Log the change once and tell the listeners (outside every lock)."""
        level = logging.INFO if transition.new == STATE_HALF_OPEN else logging.WARNING
        logger.log(level, "breaker %r: %s -> %s", self.name, transition.old, transition.new)
        meter = self._meter
        if meter is not None:
            meter.transition(transition.old, transition.new)
        if _metrics.listeners:
            detail = {"old": transition.old, "new": transition.new}
            _metrics.emit(_metrics.Event("circuitbreaker", self.name, "transition", detail))
        if self._listeners:
            views = self._state_views
            old, new = views[transition.old], views[transition.new]
            for listener in list(self._listeners):
                listener.state_change(self, old, new)

    def _notify_quietly(self, transition: Transition) -> None:
        # Background threads (pub/sub, resync) must survive a listener that raises.
        try:
            self._notify(transition)
        except Exception:
            logger.exception("breaker %r: a listener failed on a state change", self.name)
