"""Concurrency in the middleware suite, made deterministic: an app that holds calls at a
gate, requests started in threads, and the middleware's own count of waiting requests.

A thread-started request reaches either shell: the WSGI middleware runs in its thread,
the ASGI one as a task on the harness's event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from resilient.middleware import ResilientASGIMiddleware, ResilientWSGIMiddleware
from resilient.middleware._cache import CacheStep
from resilient.middleware._collapse import InFlight
from resilient.middleware._types import Receive, Scope, Send
from tests.middleware.support import Handler, Origin, Reply

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Gate", "GatedOrigin", "inflight", "started", "until"]


class Gate:
    """Holds calls inside the app until :meth:`open`: concurrency made deterministic.

    ``hold(index)`` says whether the call numbered ``index`` (from 0, in order of
    arrival) waits; by default every call does.
    """

    def __init__(self, hold: Callable[[int], bool] = lambda index: True) -> None:
        self.hold = hold
        self.entered = 0
        self.opened = threading.Event()
        self._lock = threading.Lock()

    def enter(self) -> bool:
        """Count a call in; whether it must wait."""
        with self._lock:
            index, self.entered = self.entered, self.entered + 1
        return self.hold(index)

    def open(self) -> None:
        self.opened.set()


class GatedOrigin(Origin):
    """An origin whose calls wait at a :class:`Gate` before answering (a thread under
    WSGI; under ASGI the wait runs in a worker thread, so the event loop goes on)."""

    def __init__(self, handler: Handler | Reply | None = None, gate: Gate | None = None) -> None:
        super().__init__(handler)
        self.gate = Gate() if gate is None else gate

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.gate.enter():
            self.gate.opened.wait(10)
        return super().wsgi(environ, start_response)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.gate.enter():
            await anyio.to_thread.run_sync(self.gate.opened.wait, 10)
        await super().asgi(scope, receive, send)


def inflight(app: ResilientWSGIMiddleware | ResilientASGIMiddleware) -> InFlight:
    """The misses under way in ``app`` (their counters tell who waited)."""
    for step in app._pipeline.steps:
        if isinstance(step, CacheStep) and step.inflight is not None:
            return step.inflight
    raise AssertionError("this middleware collapses no misses")


def started(calls: Sequence[Callable[[], Any]]) -> Callable[[], list[Any]]:
    """Start each of ``calls`` in a thread of its own; the returned function joins them and
    gives back their results in order (an exception stands for a failed call)."""
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc

    threads = [
        threading.Thread(target=run, args=(index,), daemon=True) for index in range(len(calls))
    ]
    for thread in threads:
        thread.start()

    def join() -> list[Any]:
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive(), "a request hung"
        return results

    return join


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (another thread or the event loop makes it so)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.001)
