"""The in-process store behind the memory cache and the L1 tier.

Values are kept as objects: a hit is one dict probe and one clock read, with no lock,
no copy and no decoding (so callers must not mutate cached values). Expiry is checked
when an entry is read; nothing runs in the background and no event-loop timer is
involved, so entries expire the same way in threads, in any event loop, or with none.

The size bound uses CLOCK, a cheap approximation of LRU: a hit only sets a flag on the
entry; when the store is full, the oldest entries are looked at in insertion order and
those hit since the last look get a second chance. Writes take a lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

from resilient.cache.entries import Entry

__all__ = ["MemoryStore"]


class MemoryStore:
    """Bounded, thread-safe map of keys to :class:`Entry`.

    Args:
        max_entries: the most entries held.

    ``get`` is the raw dict lookup the hit path calls directly.
    """

    __slots__ = ("_by_l2", "_data", "_lock", "_tags", "get", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, Entry] = OrderedDict()
        self.get = self._data.get
        self._lock = threading.Lock()
        self._tags: dict[str, set[Hashable]] = {}
        self._by_l2: dict[str, Hashable] = {}

    def __len__(self) -> int:
        return len(self._data)

    def put(self, key: Hashable, entry: Entry) -> None:
        """Store ``entry`` under ``key``, evicting as needed."""
        entry.key = key
        with self._lock:
            old = self._data.get(key)
            if old is not None:
                self._unindex(old)
            self._data[key] = entry
            self._data.move_to_end(key)
            for tag in entry.tags:
                self._tags.setdefault(tag, set()).add(key)
            if entry.l2key is not None:
                self._by_l2[entry.l2key] = key
            if len(self._data) > self.max_entries:
                self._evict()

    def _evict(self) -> None:
        chances = len(self._data)
        while len(self._data) > self.max_entries:
            key, entry = self._data.popitem(last=False)
            if entry.touched and chances > 0:
                chances -= 1
                entry.touched = False
                self._data[key] = entry
                continue
            self._unindex(entry)

    def _unindex(self, entry: Entry) -> None:
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._tags[tag]
        if entry.l2key is not None and self._by_l2.get(entry.l2key) == entry.key:
            del self._by_l2[entry.l2key]

    def discard(self, key: Hashable, expected: Entry | None = None) -> bool:
        """Remove ``key`` (only if it still holds ``expected``, when given)."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None or (expected is not None and entry is not expected):
                return False
            del self._data[key]
            self._unindex(entry)
            return True

    def discard_l2(self, l2key: str, keep_version: int = 0) -> bool:
        """Remove the entry stored under Redis key ``l2key``, unless it has ``keep_version``.

        ``keep_version`` lets a process ignore the invalidation of its own write.
        """
        with self._lock:
            key = self._by_l2.get(l2key)
            entry = self._data.get(key) if key is not None else None
            if entry is None:
                return False
            if keep_version and entry.version == keep_version:
                return False
            del self._data[entry.key]
            self._unindex(entry)
            return True

    def discard_tags(self, tags: Iterable[str]) -> list[Entry]:
        """Remove every entry carrying one of ``tags``; returns them."""
        removed: list[Entry] = []
        with self._lock:
            for tag in tags:
                for key in list(self._tags.get(tag, ())):
                    entry = self._data.pop(key, None)
                    if entry is not None:
                        self._unindex(entry)
                        removed.append(entry)
        return removed

    def clear(self) -> None:
        """Remove everything."""
        self.take_all()

    def take_all(self) -> dict[Hashable, Entry]:
        """Remove everything and return it (the dict the hit path reads stays the same)."""
        with self._lock:
            entries = dict(self._data)
            self._data.clear()
            self._tags.clear()
            self._by_l2.clear()
        return entries

    def keys(self) -> list[Any]:
        """A snapshot of the keys (for tests and tooling)."""
        with self._lock:
            return list(self._data)
