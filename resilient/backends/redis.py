"""Redis backends (one server, Sentinel or Cluster), sync over ``redis.Redis`` and asyncio
over ``redis.asyncio``.

Every operation is one round trip with the client's short socket timeout and no retries;
a guard skips the server at once after repeated failures. Errors surface as
:class:`~resilient.errors.BackendError` with the client's exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import NoScriptError, RedisError

from resilient.backends._guard import BackendGuard, shared_guard
from resilient.backends._lane import LaneAddress, SyncLane
from resilient.backends._lane_async import ECHO, AsyncLane
from resilient.backends._per_loop import PerLoop
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


# What a guard's probe reads: one GET, routed like any key (a Cluster sends it to one
# master), answered with nil.
_PROBE_KEY = "resilient:probe"


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl * 1000))


class RedisBackend:
    """Sync Redis backend.

    Args:
        client: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` (build one with
            :func:`resilient.backends.backend_from_url`, or inject your own).
        name: shown in errors and logs (passwords masked).
        guard_failures: consecutive failures after which the server is skipped.
        guard_cooldown: seconds it is skipped before a probe checks it, in a thread of
            its own: callers never wait for a probe.
        clock: monotonic seconds; used by the guard.
        lane: where :meth:`eval`, :meth:`get` and :meth:`set` connect on their own
            instead of going through ``client`` (private; set by
            :func:`resilient.backends.backend_from_url`).
        share_guard: use the guard of this process's other backends of ``name`` (set by
            :func:`resilient.backends.backend_from_url`), so that a server found down by
            one feature is skipped by all.

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
        share_guard: bool = False,
    ) -> None:
        self.client: Any = client
        self.name = name
        self.clock = clock
        self.guard = (shared_guard if share_guard else BackendGuard)(
            name, guard_failures, guard_cooldown, clock
        )
        self._lane = None if lane is None else SyncLane(lane)

    def _start_probe(self) -> None:
        threading.Thread(target=self._probe, name="resilient-probe", daemon=True).start()

    def _probe(self) -> None:
        lane = self._lane
        try:
            if lane is not None:
                lane.get(_PROBE_KEY)
            else:
                self.client.get(_PROBE_KEY)
        except Exception:  # whatever it is, the server is not answering as it should
            self.guard.failure()
        else:
            self.guard.success()

    def _run(self, operation: Callable[[], _T]) -> _T:
        self.guard.before(self._start_probe)
        try:
            result = operation()
        except _FAILURES as exc:
            self.guard.failure(exc)
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
        lane: where :meth:`eval`, :meth:`get` and :meth:`set` connect on their own,
            pipelining the commands of each loop turn, instead of going through
            ``client`` (private; set by :func:`resilient.backends.async_backend_from_url`).
        client_factory: builds a client like ``client`` for each further event loop the
            backend is used from (private; set for the clients that
            :func:`resilient.backends.async_backend_from_url` builds). Without it the
            backend uses ``client`` in any loop, as redis-py allows.
        share_guard: as for :class:`RedisBackend`; sync and asyncio backends of one
            server share the guard too.

    One backend serves any number of event loops (threads with loops of their own,
    ``asyncio.run()`` per call): connections are kept per loop and closed when their
    loop shuts down, while the guard, and so its count of failures, is the backend's.

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
        lane: LaneAddress | None = None,
        client_factory: Callable[[], Any] | None = None,
        share_guard: bool = False,
    ) -> None:
        self._client: Any = client
        self.name = name
        self.clock = clock
        self.guard = (shared_guard if share_guard else BackendGuard)(
            name, guard_failures, guard_cooldown, clock
        )
        self._probes: set[asyncio.Task[None]] = set()  # strong references while they run
        self._lanes: PerLoop[AsyncLane] | None = None
        if lane is not None:
            self._lanes = PerLoop(lambda: AsyncLane(lane, asyncio.get_running_loop()),
                                  AsyncLane.close)  # fmt: skip
        self._clients: PerLoop[Any] | None = None
        if client_factory is not None:
            spare = [client]  # the first loop takes the client built with the backend

            def build() -> Any:
                return spare.pop() if spare else client_factory()

            self._clients = PerLoop(build, _aclose_client)

    @property
    def client(self) -> Any:
        """The running event loop's redis-py client (the first one outside a loop)."""
        clients = self._clients
        if clients is not None:
            try:
                return clients.get()
            except RuntimeError:  # no running loop
                pass
        return self._client

    async def _run(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        self.guard.before(self._start_probe)
        try:
            result = await operation()
        except _FAILURES as exc:
            if not getattr(exc, ECHO, False):  # a broken lane connection counts once
                self.guard.failure(exc)
            raise BackendError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        self.guard.success()
        return result

    def _start_probe(self) -> None:
        task = asyncio.get_running_loop().create_task(self._probe())
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self) -> None:
        lane = self._loop_lane()
        try:
            if lane is not None:
                await lane.get(_PROBE_KEY)
            else:
                await self.client.get(_PROBE_KEY)
        except Exception:  # whatever it is, the server is not answering as it should
            self.guard.failure()
        else:
            self.guard.success()

    def _loop_lane(self) -> AsyncLane | None:
        """The running loop's lane (a connection belongs to the loop that opened it), or
        ``None`` when commands go through the client."""
        lanes = self._lanes
        return None if lanes is None else lanes.get()

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

        Over a lane, the evals started in the same event-loop turn share one write.
        """
        lane = self._loop_lane()
        if lane is not None:
            return await self._run(lambda: lane.eval(script, keys, args))
        return await self._run(lambda: self._evalsha(script, keys, args))

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
        """Close the running loop's connections (those of other loops close when their
        loops shut down), or the given client and its pool."""
        lanes = self._lanes
        lane = None if lanes is None else lanes.pop()
        if lane is not None:
            lane.close()
            # asyncio closes the socket on the loop's next turn: take it here, so the
            # connection is gone when aclose() returns (a server may exit right after).
            await asyncio.sleep(0)
        clients = self._clients
        if clients is None:
            await self._client.aclose()
            return
        # Only this loop's: another loop may be using the others right now.
        client = clients.pop()
        if client is not None:
            await client.aclose()


async def _aclose_client(client: Any) -> None:
    await client.aclose()
