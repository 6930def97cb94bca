"""Automatic pipelining of concurrent asyncio evals. Strictly private.

Why: redis.asyncio spends about 60 us of client CPU on one ``EVALSHA`` when many run at
once, but about 17 us each when they share a pipeline. A server handling many requests
(one rate-limit decision each) is bound by that CPU, so the evals that start in the same
event-loop turn go out together as one ``pipeline(transaction=False)``.

How: a caller that finds no eval in flight makes the plain call at once, so a lone caller
pays nothing (waiting a loop turn for company would cost it ~5%). A caller that finds
others in flight (the sign of concurrency) leads a batch: it yields to the loop once, so
that the callers already scheduled in that turn queue behind it, then sends what was
queued; if nobody came, it makes the plain call. With company, a task sends the batch, so
that cancelling any caller, the leader included, only drops that caller. Each caller gets
its own reply or its own error.

The server still sees one ``EVALSHA`` per call; only the round trips are shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from resilient.backends.base import LuaScript, ScriptArg
from resilient.errors import BackendError

if TYPE_CHECKING:
    from resilient.backends.redis import AsyncRedisBackend

# OSError covers refused and reset sockets that the client lets through unwrapped.
_FAILURES = (RedisError, OSError)


class _Call:
    __slots__ = ("args", "future", "keys", "script")

    def __init__(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[ScriptArg],
        future: asyncio.Future[object] | None,
    ) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future


def _error(name: str, exc: BaseException) -> BackendError:
    # One instance per caller: a shared exception would collect every caller's traceback.
    error = BackendError(f"{name}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class EvalBatcher:
    """Pipelines the evals of one event loop (redis.asyncio clients belong to one loop).

    Args:
        backend: the backend whose client, guard and name the batches use.
        loop: the loop this batcher serves.
        limit: most calls in one pipeline; a full batch leaves later callers to the next.
    """

    __slots__ = ("_backend", "_busy", "_limit", "_pending", "_tasks", "loop")

    def __init__(
        self, backend: AsyncRedisBackend, loop: asyncio.AbstractEventLoop, limit: int
    ) -> None:
        self._backend = backend
        self.loop = loop
        self._limit = limit
        # The batch being collected this turn (its leader's call first), if any.
        self._pending: list[_Call] | None = None
        # Plain evals in flight; with the batches in flight (_tasks), the sign of company.
        self._busy = 0
        # The loop keeps only weak references to tasks: hold the sending ones here.
        self._tasks: set[asyncio.Task[None]] = set()

    async def eval(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
    ) -> object:
        """One ``EVALSHA``, shared with the other evals started in this loop turn."""
        backend = self._backend
        backend.guard.before()  # open: fail at once, without joining a batch
        pending = self._pending
        if pending is not None:
            future: asyncio.Future[object] = self.loop.create_future()
            pending.append(_Call(script, keys, args, future))
            if len(pending) >= self._limit:
                self._pending = None
            return await future
        if self._busy or self._tasks:
            call = _Call(script, keys, args, None)
            pending = self._pending = [call]
            try:
                await asyncio.sleep(0)  # let the callers of this turn queue up behind us
            except BaseException:
                # Cancelled while collecting: the others must not wait for a leader gone.
                if self._pending is pending:
                    self._pending = None
                if len(pending) > 1:
                    self._spawn(pending[1:])
                raise
            if self._pending is pending:
                self._pending = None
            if len(pending) > 1:
                call.future = self.loop.create_future()
                self._spawn(pending)
                return await call.future
        self._busy += 1
        try:
            return await backend._attempt(lambda: backend._evalsha(script, keys, args))
        finally:
            self._busy -= 1

    def _spawn(self, calls: list[_Call]) -> None:
        task = self.loop.create_task(self._send(calls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, calls: list[_Call]) -> None:
        # Callers cancelled before the batch left are not sent at all.
        live = [call for call in calls if call.future is not None and not call.future.done()]
        if not live:
            return
        backend = self._backend
        try:
            replies = await self._pipeline(live)
            missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:  # restarted or flushed server: load each script once, resend those
                for source in dict.fromkeys(live[n].script.source for n in missing):
                    await backend.client.script_load(source)
                again = await self._pipeline([live[n] for n in missing])
                for n, reply in zip(missing, again, strict=True):
                    replies[n] = reply
        except _FAILURES as exc:
            # The round trip failed: every caller fails, and the guard hears of it once.
            backend.guard.failure()
            for call in live:
                _settle(call, exception=_error(backend.name, exc))
            return
        except BaseException as exc:
            for call in live:
                if isinstance(exc, asyncio.CancelledError):
                    _settle(call, cancel=True)
                else:
                    _settle(call, exception=exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        # An error reply fails its caller only. The guard counts the batch as one
        # operation, failed only if nothing succeeded (e.g. READONLY after a failover).
        if all(isinstance(reply, ResponseError) for reply in replies):
            backend.guard.failure()
        else:
            backend.guard.success()
        for call, reply in zip(live, replies, strict=True):
            if isinstance(reply, ResponseError):
                _settle(call, exception=_error(backend.name, reply))
            else:
                _settle(call, result=reply)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        pipe = self._backend.client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _settle(
    call: _Call,
    *,
    result: object = None,
    exception: BaseException | None = None,
    cancel: bool = False,
) -> None:
    future = call.future
    if future is None or future.done():  # its caller was cancelled meanwhile
        return
    if cancel:
        future.cancel()
    elif exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
