"""An injectable clock: tests move time forward instead of sleeping through it."""

from __future__ import annotations

import threading


class FakeClock:
    """A monotonic clock that only moves when a test calls :meth:`advance`."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
