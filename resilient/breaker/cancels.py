"""Whether a cancelled call was cancelled by a timeout. Strictly private.

A breaker counts a cancellation as nothing when the caller went away (a client hung up,
a task group was torn down) but as a failure when a timeout around the call gave up on
it: otherwise a dependency that hangs, with every caller wrapped in ``asyncio.wait_for``,
never opens the circuit. asyncio does not say which it was, so it is read from what the
timeout does:

- ``asyncio.timeout()`` (and ``asyncio.wait_for`` from Python 3.12, built on it) cancels
  the task running the call, then takes the cancellation back (``Task.uncancel``) once it
  reaches the ``async with``. So one loop turn after the call saw ``CancelledError``, a
  task that timed out is no longer being cancelled, while one whose caller went away
  still is (or has ended cancelled). :func:`absorbed` reads that.
- ``asyncio.wait_for`` up to Python 3.11 runs the call in a task of its own and cancels
  it from the outer task, waiting on it through a future; that outer task is being
  cancelled itself only when its own caller went away. :func:`wait_for_verdict` finds it
  through the callbacks ``wait_for`` registered (private attributes, read defensively:
  when they are not there the answer is "unknown").

Python 3.10 has no ``Task.cancelling()``: every cancellation counts as nothing there.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
from typing import Any

__all__ = ["absorbed", "can_judge_later", "wait_for_verdict"]

_RELEASE_WAITER: Any = getattr(asyncio.tasks, "_release_waiter", None)


def can_judge_later(task: asyncio.Task[Any]) -> bool:
    """Whether :func:`absorbed` can tell, on this Python, one loop turn from now."""
    return hasattr(task, "cancelling")


def absorbed(task: asyncio.Task[Any]) -> bool:
    """Read one loop turn after the call was cancelled: True when a timeout took the
    cancellation back (the task goes on, or ended otherwise than cancelled)."""
    if task.done():
        return not task.cancelled()
    return bool(task.cancelling() == 0)  # type: ignore[attr-defined,unused-ignore]


def wait_for_verdict(task: asyncio.Task[Any]) -> bool | None:
    """For a task cancelled by ``asyncio.wait_for`` (Python <= 3.11): True when it timed
    out, False when its caller was cancelled; None when ``wait_for`` did not cancel it."""
    if _RELEASE_WAITER is None:
        return None
    for callback, _ in getattr(task, "_callbacks", None) or ():
        if getattr(callback, "func", None) is not _RELEASE_WAITER:
            continue
        waiter = callback.args[0] if getattr(callback, "args", None) else None
        for wakeup, _ in getattr(waiter, "_callbacks", None) or ():
            outer = getattr(wakeup, "__self__", None)
            if isinstance(outer, asyncio.Task) and hasattr(outer, "cancelling"):
                return bool(outer.cancelling() == 0)  # type: ignore[attr-defined,unused-ignore]
    return None
