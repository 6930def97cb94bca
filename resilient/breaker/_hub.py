"""Pub/sub and periodic resync for shared breakers, one of each per process. Strictly private.

Every shared breaker publishes its transitions on one channel; a :class:`_Hub` holds one
subscription per backend, whatever the number of breakers, and hands each message to the
breakers of that name. A daemon thread re-reads each breaker every ``resync_interval`` in
case a message was lost, and a subscription that reconnects triggers a resync at once.

Threads do not survive ``fork``: a worker forked from a parent that built shared
breakers (gunicorn ``--preload``) would hear no transition and never resync. In a forked
child both are started again: the resync thread at once, and it subscribes again (on
connections of the child's own) and re-reads every breaker before anything else.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Protocol

from resilient.backends.base import Subscription, SyncBackend
from resilient.breaker.shared import CHANNEL, STATES

__all__ = ["parse_message", "resyncer", "subscribe", "unsubscribe"]

logger = logging.getLogger("resilient.breaker")


class _Owner(Protocol):
    """What a store calls back into (the breaker)."""

    def _on_shared_message(self, fields: tuple[int, ...]) -> None: ...

    def _on_shared_reset(self) -> None: ...

    def resync(self) -> None: ...


def parse_message(data: bytes) -> tuple[str, tuple[int, ...]] | None:
    """A published message: the name, a newline, six integers (see ``_script``); or None."""
    name, _, body = data.decode(errors="replace").rpartition("\n")
    try:
        fields = tuple(int(value) for value in body.split())
        if len(fields) != 6 or not 0 <= fields[0] < len(STATES):
            return None
    except ValueError:
        return None  # not ours; a foreign publisher on our channel must not break us
    return name, fields


class _Hub:
    """One subscription per backend, dispatching messages to breakers by name."""

    def __init__(
        self, backend: SyncBackend, owners: dict[str, weakref.WeakSet[_Owner]] | None = None
    ) -> None:
        self.backend = backend
        self.owners: dict[str, weakref.WeakSet[_Owner]] = owners if owners is not None else {}
        self.subscription: Subscription = backend.subscribe(
            CHANNEL, self._on_message, self._on_reset
        )

    def _on_message(self, data: bytes) -> None:
        parsed = parse_message(data)
        if parsed is None:
            return
        for owner in list(self.owners.get(parsed[0], ())):
            try:
                owner._on_shared_message(parsed[1])
            except Exception:  # one breaker's trouble must not drop the others' messages
                logger.exception("breaker %r: a shared-state message failed", parsed[0])

    def _on_reset(self) -> None:
        for owners in list(self.owners.values()):
            for owner in list(owners):
                owner._on_shared_reset()


_hubs: dict[int, _Hub] = {}
_hubs_lock = threading.Lock()
# Hubs inherited through fork, to subscribe again from the child's resync thread.
_inherited: list[_Hub] = []


def subscribe(backend: SyncBackend, name: str, owner: _Owner, wait: float = 0.0) -> bool:
    """Deliver the transitions of breaker ``name`` to ``owner`` (weakly referenced).

    Waits up to ``wait`` seconds for the subscription to be live, so that a state read
    next cannot miss a transition published in between; returns whether it is live.
    """
    with _hubs_lock:
        hub = _hubs.get(id(backend))
        if hub is None:
            hub = _hubs[id(backend)] = _Hub(backend)
        hub.owners.setdefault(name, weakref.WeakSet()).add(owner)
    ready: threading.Event | None = getattr(hub.subscription, "ready", None)
    return True if ready is None else ready.wait(wait)


def unsubscribe(backend: SyncBackend, name: str, owner: _Owner) -> None:
    """Stop delivering to ``owner``; the last owner of a backend ends its subscription."""
    with _hubs_lock:
        hub = _hubs.get(id(backend))
        if hub is None:
            return
        owners = hub.owners.get(name)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del hub.owners[name]
        if not hub.owners:
            del _hubs[id(backend)]
            hub.subscription.close()


class _Resyncer:
    """A daemon thread re-reading shared breakers on their ``resync_interval``."""

    def __init__(self) -> None:
        self.owners: weakref.WeakKeyDictionary[_Owner, float] = weakref.WeakKeyDictionary()
        self.intervals: weakref.WeakKeyDictionary[_Owner, float] = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, owner: _Owner, interval: float, first: float | None = None) -> None:
        """Resync ``owner`` every ``interval`` seconds (never again when 0), first after
        ``first`` seconds (default: one interval)."""
        with self.lock:
            self.intervals[owner] = interval
            self.owners[owner] = time.monotonic() + (interval if first is None else first)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="resilient-breaker-resync", daemon=True
                )
                self.thread.start()
        self.wake.set()

    def remove(self, owner: _Owner) -> None:
        with self.lock:
            self.owners.pop(owner, None)
            self.intervals.pop(owner, None)

    def _run(self) -> None:
        _resubscribe()
        while True:
            now = time.monotonic()
            with self.lock:
                due = [owner for owner, at in self.owners.items() if at <= now]
                for owner in due:
                    if self.intervals[owner] > 0:
                        self.owners[owner] = now + self.intervals[owner]
                    else:  # a one-off first read
                        del self.owners[owner], self.intervals[owner]
                upcoming = min(self.owners.values(), default=now + 1.0)
            for owner in due:
                try:
                    owner.resync()
                except Exception:  # a resync must never kill the thread
                    logger.debug("resync failed", exc_info=True)
            self.wake.wait(max(0.01, min(1.0, upcoming - time.monotonic())))
            self.wake.clear()

    def restart_in_child(self) -> None:
        """After fork: fresh lock and thread, every breaker re-read at once."""
        self.lock = threading.Lock()  # another thread may have held it at the fork
        self.wake = threading.Event()
        self.thread = None
        with self.lock:
            for owner in list(self.owners):
                self.owners[owner] = 0.0
            inherited = bool(self.owners) or bool(_inherited)
        if inherited:
            self.thread = threading.Thread(
                target=self._run, name="resilient-breaker-resync", daemon=True
            )
            self.thread.start()


def _resubscribe() -> None:
    """Subscribe again for the hubs inherited through fork (run by the resync thread)."""
    while _inherited:
        old = _inherited.pop()
        try:
            hub = _Hub(old.backend, old.owners)
        except Exception:  # the next resync still reads the state; log and go on
            logger.warning("breakers: subscribing again after fork failed", exc_info=True)
            continue
        with _hubs_lock:
            _hubs[id(old.backend)] = hub
        ready: threading.Event | None = getattr(hub.subscription, "ready", None)
        if ready is not None:
            ready.wait(1.0)
        # A transition published before the subscription was live is read now.
        for owners in list(hub.owners.values()):
            for owner in list(owners):
                try:
                    owner.resync()
                except Exception:  # a resync must never kill the thread
                    logger.debug("resync failed", exc_info=True)


def _after_fork_in_child() -> None:
    global _hubs_lock
    _hubs_lock = threading.Lock()
    # The parent's subscription threads are gone and their sockets are the parent's:
    # leave them alone, subscribe again on the child's own connections.
    _inherited.extend(_hubs.values())
    _hubs.clear()
    resyncer.restart_in_child()


resyncer = _Resyncer()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_after_fork_in_child)
