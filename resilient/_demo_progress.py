"""The demo's live display, and the breaker's transitions shown in it. Strictly private.

On a terminal the figures rewrite one line; elsewhere (CI logs) a plain line comes about
once a second. The breaker's state changes, which it logs, are shown as lines of the
display while a run lasts, in order with the figures, rather than left to Python's
last-resort handler (which would write them into the middle of the updating line).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from resilient._demo_load import Record

_CLEAR = "\r\x1b[K"  # back to the start of the line, and erase it


class Progress:
    """One updating line on a terminal; elsewhere a plain line about once a second."""

    def __init__(self, out: TextIO, label: str, duration: float, tty: bool) -> None:
        self._out, self._label, self._duration, self._tty = out, label, duration, tty
        self._next_line = 1.0
        self._text = ""
        self._started = time.monotonic()
        self._lock = threading.Lock()  # notes come from the server's threads

    def __call__(self, elapsed: float, record: Record) -> None:
        statuses = list(record.statuses)
        text = (
            f"  {self._label:<18} {elapsed:4.1f}/{self._duration:.1f} s  "
            f"{len(statuses):6,} requests  {sum(1 for s in statuses if 200 <= s < 300):6,} "
            f"served  {statuses.count(429):5,} x 429  {statuses.count(503):5,} x 503"
        )
        with self._lock:
            self._text = text
            if self._tty:
                self._out.write(f"{_CLEAR}{text}")
            elif self._next_line <= elapsed < self._duration:
                self._out.write(f"{text}\n")
                self._next_line += 1.0
            else:
                return  # the last line is written once, by done()
            self._out.flush()

    def note(self, message: str) -> None:
        """A line of its own (a breaker transition), above the updating figures."""
        line = f"  {time.monotonic() - self._started:4.1f} s  {message}"
        with self._lock:
            if self._tty:
                self._out.write(f"{_CLEAR}{line}\n{self._text}")
            else:
                self._out.write(f"{line}\n")
            self._out.flush()

    def done(self) -> None:
        """End the display: the terminal's line stays; elsewhere the final figures."""
        self._out.write("\n" if self._tty else f"{self._text}\n")


class _Notes(logging.Handler):
    def __init__(self, note: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self._note = note

    def emit(self, record: logging.LogRecord) -> None:
        self._note(record.getMessage())


@contextmanager
def breaker_notes(note: Callable[[str], None]) -> Iterator[None]:
    """While it lasts, this process's breaker log lines go to ``note`` only (a
    :meth:`Progress.note`, or in a worker process the queue to the parent's)."""
    logger = logging.getLogger("resilient.breaker")
    handler = _Notes(note)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
