"""A small circuit breaker in front of a remote backend. Strictly private.

After ``failures`` consecutive failed operations the backend is skipped at once
(:class:`BackendUnavailable`) for ``cooldown`` seconds; then one operation probes it.
This is what keeps a dead Redis from costing a timeout per request. It logs once per
state change, never per operation.
"""

from __future__ import annotations

import logging
import threading

from resilient.backends.base import Clock
from resilient.errors import BackendUnavailable

logger = logging.getLogger("resilient.backends")


class BackendGuard:
    """Consecutive-failure guard with one probe per cooldown."""

    __slots__ = (
        "_clock",
        "_cooldown",
        "_failures",
        "_limit",
        "_lock",
        "_open_until",
        "name",
    )

    def __init__(self, name: str, failures: int, cooldown: float, clock: Clock) -> None:
        self.name = name
        self._limit = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """True while the backend is being skipped."""
        return self._open_until is not None

    def before(self) -> None:
        """Raise :class:`BackendUnavailable` unless an operation may go ahead."""
        if self._open_until is None:  # the hot path: no lock, no clock
            return
        now = self._clock()
        with self._lock:
            if self._open_until is not None and now < self._open_until:
                raise BackendUnavailable(
                    f"backend {self.name} is failing; skipped for {self._open_until - now:.3f}s"
                )
            if self._open_until is not None:
                # This caller probes; the others keep skipping for another cooldown.
                self._open_until = now + self._cooldown

    def success(self) -> None:
        """Record a successful operation; closes the guard."""
        if self._failures == 0 and self._open_until is None:
            return
        with self._lock:
            was_open = self._open_until is not None
            self._failures = 0
            self._open_until = None
        if was_open:
            logger.info("backend %s is answering again", self.name)

    def failure(self) -> None:
        """Record a failed operation; opens the guard at the threshold."""
        with self._lock:
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
