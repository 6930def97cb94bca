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

- anyio's cancel scopes (Starlette, FastAPI, httpx) also take their cancellations
  back, whether a deadline (``anyio.fail_after``) or a plain ``cancel()`` (a client that
  disconnected) fired them, so the first rule would count both as timeouts. anyio's
  cancellations carry its message; for them :func:`anyio_verdict` asks the scope that
  was cancelled whether its deadline had passed.

Python 3.10 has no ``Task.cancelling()``: every cancellation counts as nothing there.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import sys
from typing import Any

__all__ = ["absorbed", "anyio_verdict", "can_judge_later", "wait_for_verdict"]

_ANYIO_MESSAGE = "Cancelled via cancel scope "

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


def anyio_verdict(exc: asyncio.CancelledError, task: asyncio.Task[Any]) -> bool | None:
    """For a cancellation by an anyio cancel scope: True when the scope's deadline had
    passed (a timeout), False otherwise or when the scope cannot be found; None when
    anyio did not cancel the task."""
    message = exc.args[0] if exc.args else None
    if not (isinstance(message, str) and message.startswith(_ANYIO_MESSAGE)):
        return None
    backend = sys.modules.get("anyio._backends._asyncio")
    states = getattr(backend, "_task_states", None)
    try:
        scope = states[task].cancel_scope if states is not None else None
        while scope is not None:
            if scope.cancel_called:
                return bool(scope.deadline <= asyncio.get_running_loop().time())
            scope = scope._parent_scope
    except (KeyError, AttributeError, TypeError):
        pass  # another anyio than the one read here: count nothing rather than guess
    return False
