"""The backend contract: the operations every feature builds on, sync and asyncio.

A backend stores bytes under string keys with an optional time to live, counts, runs
Lua scripts (Redis only) and carries pub/sub messages. Every operation either returns
within the backend's timeout or raises :class:`~resilient.errors.BackendError`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "AsyncBackend",
    "Clock",
    "LuaScript",
    "MessageHandler",
    "ResetHandler",
    "Subscription",
    "SyncBackend",
    "hash_tag",
]

#: A clock returning seconds; monotonic unless a test injects another.
Clock = Callable[[], float]
#: Called with each message published on a subscribed channel.
MessageHandler = Callable[[bytes], None]
#: Called when a subscription lost its connection (messages may have been missed).
ResetHandler = Callable[[], None]

ScriptArg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A Lua script, run by ``EVALSHA`` with a fallback to loading it once.

    .. versionadded:: 0.1
    """

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


def hash_tag(key: str) -> str:
    """Wrap ``key`` in a Redis Cluster hash tag, so keys sharing it share a slot.

    ``hash_tag("user:42") + ":count"`` and ``hash_tag("user:42") + ":reset"`` land on one
    node, so one Lua script may touch both. Braces inside ``key`` are replaced, since
    Cluster hashes only up to the first ``}``.
    """
    return "{" + key.replace("{", "(").replace("}", ")") + "}"


class Subscription(Protocol):
    """A live subscription; ``close()`` stops it and releases its connection."""

    def close(self) -> None: ...


@runtime_checkable
class SyncBackend(Protocol):
    """Blocking backend operations, for threads, WSGI apps and sync decorators.

    .. versionadded:: 0.1
    """

    #: Whether :meth:`eval` runs Lua scripts here.
    scripting: bool
    #: The clock the backend expires keys with.
    clock: Clock

    def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` when missing or expired."""

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """Store ``value``; with ``only_if_new`` only when ``key`` is absent. True if set."""

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; returns how many existed."""

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` and return the new count; ``ttl`` applies when it is created."""

    def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> object:
        """Run ``script`` atomically (raises ``NotImplementedError`` without scripting)."""

    def publish(self, channel: str, message: bytes) -> int:
        """Send ``message`` to the subscribers of ``channel``; returns how many got it."""

    def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> Subscription:
        """Call ``on_message`` for every message on ``channel`` until closed."""

    def close(self) -> None:
        """Release connections and pools."""


@runtime_checkable
class AsyncBackend(Protocol):
    """The same operations as :class:`SyncBackend`, for asyncio.

    .. versionadded:: 0.1
    """

    scripting: bool
    clock: Clock

    async def get(self, key: str) -> bytes | None:
        """See :meth:`SyncBackend.get`."""

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """See :meth:`SyncBackend.set`."""

    async def delete(self, *keys: str) -> int:
        """See :meth:`SyncBackend.delete`."""

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """See :meth:`SyncBackend.incr`."""

    async def eval(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
    ) -> object:
        """See :meth:`SyncBackend.eval`."""

    async def publish(self, channel: str, message: bytes) -> int:
        """See :meth:`SyncBackend.publish`."""

    async def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> Subscription:
        """See :meth:`SyncBackend.subscribe`; handlers run on the event loop."""

    async def aclose(self) -> None:
        """Release connections and pools."""


def monotonic() -> float:
    """The default clock."""
    return time.monotonic()
