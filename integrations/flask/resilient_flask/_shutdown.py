"""Closing what the extension opened, when the process ends.

Flask has no shutdown hook, and a WSGI server's workers end by leaving the interpreter:
every app the extension set up in the process is remembered (weakly: an app that is
dropped, as in tests, takes its state with it) and closed at interpreter exit. Servers
with a hook of their own can close earlier: gunicorn's ``worker_exit``, for one, runs
before the worker leaves (see :func:`close_all`).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref

from resilient_flask._state import ResilientState

__all__ = ["close_all", "track"]

logger = logging.getLogger("resilient_flask")
_LIVE: weakref.WeakSet[ResilientState] = weakref.WeakSet()
_LOCK = threading.Lock()
_registered = False


def track(state: ResilientState) -> None:
    """Have ``state`` closed at interpreter exit (the exit handler is registered once,
    at the first app set up, so it runs before handlers registered earlier)."""
    global _registered
    with _LOCK:
        _LIVE.add(state)
        if not _registered:
            atexit.register(close_all)
            _registered = True


def close_all(*_hook_arguments: object) -> None:
    """Close the connections of every app the extension set up in this process.

    Called at interpreter exit; call it sooner from a server's own hook. Its arguments
    are ignored, so it is itself a gunicorn hook::

        # gunicorn.conf.py
        from resilient_flask import close_all

        worker_exit = close_all

    Safe to call more than once: an app serving again reopens what it needs.

    .. versionadded:: 0.1
    """
    with _LOCK:
        states = list(_LIVE)
    for state in states:
        try:
            state.close()
        except Exception as error:  # pragma: no cover - closing sockets hardly fails
            # At exit, a connection that will not close is no error of the app's.
            logger.warning("resilient_flask: closing an app's connections failed: %r", error)
