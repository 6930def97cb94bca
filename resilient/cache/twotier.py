"""Keeping a memory L1 coherent with Redis (L2) across processes.

Every write and invalidation publishes ``[version, [key, ...]]`` on the namespace's
channel. A process receiving it drops its L1 copies of those keys, unless the copy has
that very version (its own write coming back). Two races are closed:

* a read that fetched the old value from Redis just before another process wrote the
  new one must not put the old value into L1 after the invalidation went by: each read
  takes a :meth:`stamp` of the key's change counter before the ``GET`` and fills L1 only
  if no message about that key arrived meanwhile;
* messages lost while the subscription was down: the subscription calls ``on_reset`` when
  it drops and again when it is back, and L1 is flushed both times. Until the first
  subscription is up, and while it is down, L1 is not filled at all.

What L1 held when the subscription dropped is kept aside in :attr:`L1Coherence.reserve`:
the hit path no longer sees it, but when Redis itself cannot be reached those entries may
still answer (while fresh by their own expiry, or as stale-if-error values). The reserve
is dropped as soon as the subscription is back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Hashable
from typing import Any

from resilient.cache.entries import Entry
from resilient.cache.memory import MemoryStore

__all__ = ["L1Coherence", "channel_for", "invalidation_message"]

logger = logging.getLogger("resilient.cache")

Stamp = tuple[int, int]


def channel_for(scope: str) -> str:
    """The pub/sub channel of a namespace/version scope (``"app:v2:"``)."""
    return f"{scope}resilient-cache-invalidate"


def invalidation_message(version: int, keys: list[str]) -> bytes:
    """The message announcing that ``keys`` changed (version 0: deleted)."""
    return json.dumps([version, keys], separators=(",", ":")).encode()


class L1Coherence:
    """The L1 side of one cached function: applies messages, guards fills.

    Args:
        store: the L1 store.
        prefix: Redis keys of this function start with it; other keys are ignored.
    """

    def __init__(self, store: MemoryStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.subscription: Any = None
        self.pid = 0
        self._lock = threading.Lock()
        self._epoch = 0
        self._changes: dict[str, int] = {}
        self.reserve: dict[Hashable, Entry] = {}

    def attach(self, subscription: Any) -> None:
        """Use ``subscription`` (whose handlers are :meth:`on_message`/:meth:`on_reset`)."""
        self.subscription = subscription
        self.pid = os.getpid()

    @property
    def live(self) -> bool:
        """True when messages are being received in this process."""
        subscription = self.subscription
        if subscription is None or self.pid != os.getpid():
            return False
        connected = getattr(subscription, "connected", None)
        if connected is not None:
            return bool(connected)
        ready = getattr(subscription, "ready", None)
        return ready is None or bool(ready.is_set())

    def stamp(self, l2key: str) -> Stamp:
        """Taken before reading ``l2key`` from Redis; see :meth:`may_fill`."""
        return self._epoch, self._changes.get(l2key, 0)

    def may_fill(self, stamp: Stamp, l2key: str) -> bool:
        """Whether a value read after ``stamp`` may go into L1."""
        return self.live and stamp == self.stamp(l2key)

    def on_message(self, data: bytes) -> None:
        """Drop the L1 copies named by one invalidation message."""
        try:
            version, keys = json.loads(data)
        except (ValueError, TypeError):
            logger.debug("ignoring a malformed invalidation message %r", data[:80])
            return
        mine = [key for key in keys if isinstance(key, str) and key.startswith(self.prefix)]
        if not mine:
            return
        with self._lock:
            if len(self._changes) > 4 * self.store.max_entries:
                # Forget per-key counters; the epoch bump makes every open stamp stale.
                self._changes.clear()
                self._epoch += 1
            for key in mine:
                self._changes[key] = self._changes.get(key, 0) + 1
        for key in mine:
            self.store.discard_l2(key, keep_version=int(version))

    def on_reset(self) -> None:
        """The subscription dropped or came back: anything may have changed."""
        with self._lock:
            self._epoch += 1
            self._changes.clear()
        held = self.store.take_all()
        dropped = getattr(self.subscription, "connected", True) is False
        self.reserve = held if dropped else {}
