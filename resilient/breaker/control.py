"""pybreaker's surface: manual control and the properties its users read and set.

Strictly private; :class:`~resilient.breaker.CircuitBreaker` inherits it. Manual moves
of a shared breaker go through Redis (one round trip) so that every process follows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from resilient.breaker.engine import BreakerEngine, Exclusion
from resilient.breaker.events import StateView
from resilient.breaker.options import BreakerOptions, check
from resilient.errors import BackendError


class PybreakerSurface(BreakerEngine):
    """Manual control and pybreaker's properties, mixed into the breaker."""

    options: BreakerOptions

    # -- manual control --------------------------------------------------------------------

    def open(self) -> bool:
        """Open the circuit now, for ``reset_timeout`` seconds (everywhere, if shared).

        Returns ``throw_new_error_on_trip``, as pybreaker does.
        """
        self._move(STATE_OPEN, "open")
        return self._throw_new_error_on_trip

    def half_open(self) -> None:
        """Admit probes now."""
        self._move(STATE_HALF_OPEN, "half")

    def close(self) -> None:
        """Close the circuit now and forget failures; also ends ``force_open``/``disable``."""
        self._machine.set_forced(None)
        self._move(STATE_CLOSED, "close")

    def force_open(self) -> None:
        """Reject every call until :meth:`close` (this process only)."""
        self._machine.set_forced("open")

    def disable(self) -> None:
        """Let every call through, recording nothing, until :meth:`close` (this process)."""
        self._machine.set_forced("disabled")

    @property
    def forced(self) -> str | None:
        """``"open"`` (forced open), ``"disabled"``, or None."""
        return self._machine.forced

    def _move(self, state: str, op: str) -> None:
        machine = self._machine
        store = self._store
        now = self._clock()
        if store is not None and not machine.authoritative:
            try:
                snapshot, _ = store.run(op, machine.generation)
            except BackendError:
                self._degrade()
            else:
                self._after(machine.apply(snapshot, now))
                return
        self._after(machine.enter(state, now))

    # -- pybreaker's properties --------------------------------------------------------------

    @property
    def current_state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (forced open reads ``"open"``)."""
        if self._machine.forced == "open":
            return STATE_OPEN
        return self._machine.state

    @property
    def effective_state(self) -> str:
        """:attr:`current_state`, but ``"half-open"`` once an open circuit's timeout is over.

        The circuit moves to half-open on the next call; until one comes,
        ``current_state`` still reads ``"open"``. Dashboards and health checks want what
        the next call would meet (pybreaker #15).
        """
        state = self.current_state
        if state == STATE_OPEN and self._machine.forced is None and self.retry_after <= 0:
            return STATE_HALF_OPEN
        return state

    @property
    def state(self) -> StateView:
        """The pybreaker state object of :attr:`current_state` (it has a ``name``)."""
        return self._state_views[self.current_state]

    @state.setter
    def state(self, state_str: str) -> None:
        self._move(state_str, {STATE_OPEN: "open", STATE_CLOSED: "close"}.get(state_str, "half"))

    @property
    def retry_after(self) -> float:
        """Seconds until the circuit admits probes (0 when calls are admitted)."""
        return self._machine.retry_after(self._clock())

    @property
    def fail_counter(self) -> int:
        """Failures counted now: consecutive ones, or those in the rate window."""
        return self._machine.policy.failures

    @property
    def success_counter(self) -> int:
        """Successful probes since the circuit became half-open."""
        return self._machine.successes

    @property
    def fail_max(self) -> int:
        """Consecutive failures that open the circuit."""
        return self.options.fail_max

    @fail_max.setter
    def fail_max(self, number: int) -> None:
        self.options = _replace(self.options, fail_max=number)
        if self._counting is not None:
            self._counting.fail_max = number

    @property
    def reset_timeout(self) -> float:
        """Seconds the circuit stays open."""
        return self._machine.reset_timeout

    @reset_timeout.setter
    def reset_timeout(self, timeout: float) -> None:
        self.options = _replace(self.options, reset_timeout=timeout)
        self._machine.reset_timeout = self.options.reset_timeout

    @property
    def success_threshold(self) -> int:
        """Successful probes that close the circuit."""
        return self._machine.success_threshold

    @success_threshold.setter
    def success_threshold(self, threshold: int) -> None:
        self.options = _replace(self.options, success_threshold=threshold)
        self._machine.success_threshold = threshold

    @property
    def excluded_exceptions(self) -> tuple[Any, ...]:
        """The ``exclude`` list: types and predicates whose exceptions count as nothing."""
        return tuple(self._excluded)

    def add_excluded_exception(self, exception: Exclusion) -> None:
        """Exclude one more exception type (or predicate)."""
        self._excluded = [*self._excluded, exception]

    def add_excluded_exceptions(self, *exceptions: Exclusion) -> None:
        """Exclude more exception types (or predicates)."""
        self._excluded = [*self._excluded, *exceptions]

    def remove_excluded_exception(self, exception: Exclusion) -> None:
        """Stop excluding ``exception``."""
        self._excluded = [item for item in self._excluded if item != exception]

    def is_system_error(self, exception: BaseException) -> bool:
        """Whether ``exception`` counts as a failure (pybreaker's name)."""
        return not self.is_ignored(exception)

    @property
    def listeners(self) -> tuple[Any, ...]:
        """The registered listeners."""
        return tuple(self._listeners)

    def add_listener(self, listener: Any) -> None:
        """Register a ``pybreaker.CircuitBreakerListener``."""
        self._listeners = [*self._listeners, listener]

    def add_listeners(self, *listeners: Any) -> None:
        """Register several listeners."""
        self._listeners = [*self._listeners, *listeners]

    def remove_listener(self, listener: Any) -> None:
        """Unregister a listener."""
        self._listeners = [item for item in self._listeners if item is not listener]


def _replace(options: BreakerOptions, **changes: Any) -> BreakerOptions:
    # Setters validate like the constructor does.
    checked = {name: check(name, value) for name, value in changes.items()}
    return dataclasses.replace(options, **checked)
