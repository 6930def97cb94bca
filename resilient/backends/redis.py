"""Redis backends (one server, Sentinel or Cluster), sync over ``redis.Redis`` and asyncio
over ``redis.asyncio``.

Every operation is one round trip with the client's short socket timeout and no retries;
a guard skips the server at once after repeated failures. Errors surface as
:class:`~resilient.errors.BackendError` with the client's exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import NoScriptError, RedisError

from resilient.backends._batching import EvalBatcher
from resilient.backends._guard import BackendGuard
from resilient.backends._lane import LaneAddress, SyncLane
from resilient.backends._lane_async import ECHO, AsyncLane
from resilient.backends._pubsub import AsyncSubscription, ThreadSubscription
from resilient.backends.base import (
    Clock,
    LuaScript,
    MessageHandler,
    ResetHandler,
    ScriptArg,
    monotonic,
)
from resilient.errors import BackendError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["AsyncRedisBackend", "RedisBackend"]

_T = TypeVar("_T")
# OSError covers refused and reset sockets that the client lets through unwrapped.
_FAILURES = (RedisError, OSError)

# INCRBY, and a TTL only on a counter that has none: a crash between the two cannot
# leave a counter that never expires.
_INCR = LuaScript(
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return v\n"
)


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl * 1000))


class RedisBackend:
    """Sync Redis backend.

    Args:
        client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` (build one with
            :func:`resilient.backends.backend_from_url`, or inject your own).
        name: shown in errors and logs (passwords masked).
        guard_failures: consecutive failures after which the server is skipped.
        guard_cooldown: seconds it is skipped before one operation probes it.
        clock: monotonic seconds; used by the guard.
        lane: where :meth:`eval`, :meth:`get` and :meth:`set` connect on their own
            instead of going through ``client`` (private; set by
            :func:`resilient.backends.backend_from_url`).

    .. versionadded:: 0.1
    """

    scripting = True

    def __init__(
        self,
        client: redis.Redis | Any,
        *,
        name: str = "redis",
        guard_failures: int = 3,
        guard_cooldown: float = 1.0,
        clock: Clock = monotonic,
        lane: LaneAddress | None = None,
    ) -> None:
        self.client: Any = client
        self.name = name
        self.clock = clock
        self.guard = BackendGuard(name, guard_failures, guard_cooldown, clock)
        self._lane = None if lane is None else SyncLane(lane)

    def _run(self, operation: Callable[[], _T]) -> _T:
        self.guard.before()
        try:
            result = operation()
        except _FAILURES as exc:
            self.guard.failure()
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        self.guard.success()
        return result

    def get(self, key: str) -> bytes | None:
        """``GET key``."""
        lane = self._lane
        if lane is not None:
            return self._run(lambda: lane.get(key))
        value: bytes | None = self._run(lambda: self.client.get(key))
        return value

    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """``SET key value [PX ms] [NX]``."""
        lane = self._lane
        if lane is not None:
            return self._run(lambda: lane.set(key, value, _ms(ttl), only_if_new))
        return bool(self._run(lambda: self.client.set(key, value, px=_ms(ttl), nx=only_if_new)))

    def delete(self, *keys: str) -> int:
        """``DEL keys...``."""
        return int(self._run(lambda: self.client.delete(*keys))) if keys else 0

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomic ``INCRBY`` that sets ``ttl`` on a new counter."""
        px = _ms(ttl)
        count: Any = self.eval(_INCR, [key], [amount, "" if px is None else px])
        return int(count)

    def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> object:
        """``EVALSHA``; loads the script once when the server does not know it yet."""
        lane = self._lane
        if lane is not None:
            return self._run(lambda: lane.eval(script, keys, args))

        def run() -> object:
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                self.client.script_load(script.source)
                return self.client.evalsha(script.sha, len(keys), *keys, *args)

        return self._run(run)

    def publish(self, channel: str, message: bytes) -> int:
        """``PUBLISH channel message``."""
        return int(self._run(lambda: self.client.publish(channel, message)))

    def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> ThreadSubscription:
        """Listen on ``channel`` in a daemon thread that reconnects by itself.

        ``on_reset`` runs when the connection drops and again when it is back, since
        messages published meanwhile are lost.
        """
        return ThreadSubscription(self.client, channel, on_message, on_reset)

    def close(self) -> None:
        """Close the client and its connection pool."""
        if self._lane is not None:
            self._lane.close()
        self.client.close()


class AsyncRedisBackend:
    """Asyncio Redis backend over ``redis.asyncio``; never blocks the event loop.

    Takes the same arguments as :class:`RedisBackend`, with an asyncio client, and:

    Args:
        eval_batch: most concurrent :meth:`eval` calls sent as one pipeline (see
            ``_batching``); ``1`` sends each alone. Redis Cluster clients never batch.
        lane: where :meth:`eval`, :meth:`get` and :meth:`set` connect on their own,
            pipelining by themselves, instead of going through ``client`` (private; set
            by :func:`resilient.backends.async_backend_from_url`).

    .. versionadded:: 0.1
    """

    scripting = True

    def __init__(
        self,
        client: redis.asyncio.Redis | Any,
        *,
        name: str = "redis",
        guard_failures: int = 3,
        guard_cooldown: float = 1.0,
        clock: Clock = monotonic,
        eval_batch: int = 128,
        lane: LaneAddress | None = None,
    ) -> None:
        self.client: Any = client
        self.name = name
        self.clock = clock
        self.guard = BackendGuard(name, guard_failures, guard_cooldown, clock)
        import redis.asyncio  # the asyncio flavour only; sync users need not load it

        # One server only: a Cluster pipeline would split by node and retry on its own.
        # Evals over a lane pipeline by themselves; redis-py ones batch on one server only.
        batching = lane is None and isinstance(client, redis.asyncio.Redis) and eval_batch > 1
        self._eval_batch = eval_batch if batching else 0
        self._batcher: EvalBatcher | None = None
        self._lane_address = lane
        self._lane: AsyncLane | None = None

    async def _run(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        self.guard.before()
        return await self._attempt(operation)

    async def _attempt(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """``operation`` with errors mapped and the guard told; the caller ran ``before``."""
        try:
            result = await operation()
        except _FAILURES as exc:
            if not getattr(exc, ECHO, False):  # a broken lane connection counts once
                self.guard.failure()
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        self.guard.success()
        return result

    def _loop_lane(self) -> AsyncLane | None:
        """The lane of the running loop (a connection belongs to the loop that opened it),
        or ``None`` when commands go through the client."""
        address = self._lane_address
        if address is None:
            return None
        lane = self._lane
        loop = asyncio.get_running_loop()
        if lane is None or lane.loop is not loop:
            lane = self._lane = AsyncLane(address, loop)
        return lane

    async def get(self, key: str) -> bytes | None:
        """``GET key``."""
        lane = self._loop_lane()
        if lane is not None:
            return await self._run(lambda: lane.get(key))
        value: bytes | None = await self._run(lambda: self.client.get(key))
        return value

    async def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        *,
        only_if_new: bool = False,
    ) -> bool:
        """``SET key value [PX ms] [NX]``."""
        lane = self._loop_lane()
        if lane is not None:
            return await self._run(lambda: lane.set(key, value, _ms(ttl), only_if_new))
        done = await self._run(lambda: self.client.set(key, value, px=_ms(ttl), nx=only_if_new))
        return bool(done)

    async def delete(self, *keys: str) -> int:
        """``DEL keys...``."""
        return int(await self._run(lambda: self.client.delete(*keys))) if keys else 0

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomic ``INCRBY`` that sets ``ttl`` on a new counter."""
        px = _ms(ttl)
        count: Any = await self.eval(_INCR, [key], [amount, "" if px is None else px])
        return int(count)

    async def eval(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
    ) -> object:
        """``EVALSHA``; loads the script once when the server does not know it yet.

        Evals started in the same event-loop turn go out as one pipeline.
        """
        lane = self._loop_lane()
        if lane is not None:
            return await self._run(lambda: lane.eval(script, keys, args))
        if not self._eval_batch:
            return await self._run(lambda: self._evalsha(script, keys, args))
        batcher = self._batcher
        loop = asyncio.get_running_loop()
        if batcher is None or batcher.loop is not loop:
            # Per loop: a batch must never mix callers (and futures) of two loops.
            batcher = self._batcher = EvalBatcher(self, loop, self._eval_batch)
        return await batcher.eval(script, keys, args)

    async def _evalsha(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
    ) -> object:
        try:
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.client.script_load(script.source)
            return await self.client.evalsha(script.sha, len(keys), *keys, *args)

    async def publish(self, channel: str, message: bytes) -> int:
        """``PUBLISH channel message``."""
        return int(await self._run(lambda: self.client.publish(channel, message)))

    async def subscribe(
        self,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None = None,
    ) -> AsyncSubscription:
        """Listen on ``channel`` in a task that reconnects by itself (see the sync twin)."""
        return AsyncSubscription(self.client, channel, on_message, on_reset)

    async def aclose(self) -> None:
        """Close the client and its connection pool."""
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        await self.client.aclose()
