"""The in-memory backend: the default, per process, nothing to install.

A dict in LRU order with expiry times checked when a key is read: no timers, no sweeping
thread, bounded by ``max_entries``. One lock makes it thread-safe; every operation is a
few dict steps, so the asyncio flavour calls the same code without blocking the loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from resilient.backends.base import (
    Clock,
    LuaScript,
    MessageHandler,
    ResetHandler,
    ScriptArg,
    monotonic,
)

__all__ = ["AsyncMemoryBackend", "MemoryBackend"]

_NEVER = float("inf")


@dataclass(slots=True)
class _Subscription:
    hub: dict[str, list[MessageHandler]]
    channel: str
    handler: MessageHandler
    closed: bool = field(default=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub[self.channel].remove(self.handler)


class MemoryBackend:
    """Thread-safe, bounded, timer-free key-value store in this process.

    Args:
        max_entries: most keys held; the least recently used are evicted first.
        clock: seconds, monotonic; inject one in tests.

    .. versionadded:: 0.1
    """

    scripting = False

    def __init__(self, *, max_entries: int = 100_000, clock: Clock = monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._data: OrderedDict[str, tuple[bytes | int, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._channels: dict[str, list[MessageHandler]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str, now: float) -> tuple[bytes | int, float] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item

    def _store(self, key: str, value: bytes | int, expires: float) -> None:
        self._data[key] = (value, expires)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def _expiry(self, ttl: float | None) -> float:
        return _NEVER if ttl is None else self.clock() + ttl

    def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None``."""
        with self._lock:
            item = self._live(key, self.clock())
        if item is None:
            return None
        value = item[0]
        return str(value).encode() if isinstance(value, int) else value

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds (forever when ``None``)."""
        expires = self._expiry(ttl)
        with self._lock:
            if only_if_new and self._live(key, self.clock()) is not None:
                return False
            self._store(key, value, expires)
        return True

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; returns how many were live."""
        now = self.clock()
        with self._lock:
            return sum(
                1 for key in keys if self._live(key, now) is not None and self._data.pop(key)
            )

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount``; a new counter lives ``ttl`` seconds."""
        now = self.clock()
        with self._lock:
            item = self._live(key, now)
            if item is None:
                count, expires = amount, self._expiry(ttl)
            else:
                count, expires = int(item[0]) + amount, item[1]
            self._store(key, count, expires)
        return count

    def ttl(self, key: str) -> float | None:
        """Seconds ``key`` has left; ``None`` when missing or without expiry."""
        with self._lock:
            item = self._live(key, self.clock())
        if item is None or item[1] == _NEVER:
            return None
        return item[1] - self.clock()

    def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> object:
        """Not available in memory: features check :attr:`scripting` first."""
        raise NotImplementedError("the memory backend does not run Lua scripts")

    def publish(self, channel: str, message: bytes) -> int:
        """Deliver ``message`` to this process's subscribers of ``channel``, now."""
        handlers = list(self._channels.get(channel, ()))
        for handler in handlers:
            handler(message)
        return len(handlers)

    def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> _Subscription:
        """Call ``on_message`` for each message published on ``channel`` here."""
        self._channels.setdefault(channel, []).append(on_message)
        return _Subscription(self._channels, channel, on_message)

    def clear(self) -> None:
        """Drop every key."""
        with self._lock:
            self._data.clear()

    def close(self) -> None:
        """Nothing to release; kept for the contract."""


class AsyncMemoryBackend:
    """The asyncio flavour of :class:`MemoryBackend`, over the same store.

    .. versionadded:: 0.1
    """

    scripting = False

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        clock: Clock = monotonic,
        sync: MemoryBackend | None = None,
    ) -> None:
        self.sync = (
            sync if sync is not None else MemoryBackend(max_entries=max_entries, clock=clock)
        )
        self.clock = self.sync.clock

    async def get(self, key: str) -> bytes | None:
        """See :meth:`MemoryBackend.get`."""
        return self.sync.get(key)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """See :meth:`MemoryBackend.set`."""
        return self.sync.set(key, value, ttl, only_if_new=only_if_new)

    async def delete(self, *keys: str) -> int:
        """See :meth:`MemoryBackend.delete`."""
        return self.sync.delete(*keys)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """See :meth:`MemoryBackend.incr`."""
        return self.sync.incr(key, amount, ttl)

    async def eval(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
    ) -> object:
        """See :meth:`MemoryBackend.eval`."""
        return self.sync.eval(script, keys, args)

    async def publish(self, channel: str, message: bytes) -> int:
        """See :meth:`MemoryBackend.publish`."""
        return self.sync.publish(channel, message)

    async def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> _Subscription:
        """See :meth:`MemoryBackend.subscribe`."""
        return self.sync.subscribe(channel, on_message, on_reset)

    async def aclose(self) -> None:
        """Nothing to release; kept for the contract."""
