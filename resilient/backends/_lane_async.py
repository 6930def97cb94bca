"""The asyncio lane: one pipelined connection per event loop. Strictly private.

Every eval that starts in one event-loop turn is buffered and goes out in one write at
the end of the turn, so concurrent requests share syscalls and server round trips
without waiting for one another (automatic pipelining). Replies come back in order and
settle the callers' futures in order; a caller cancelled meanwhile leaves its slot, so
that its reply is read and dropped, never handed to someone else.

One timer watches the oldest reply awaited: past the operation timeout, the connection
is aborted and every caller on it fails at once (a stalled server stalls them all, and
a late reply cannot be matched any more). A lost connection fails its callers; the next
eval opens a new one. See ``_lane`` for why the lane exists.
"""

from __future__ import annotations

import asyncio
import select
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.exceptions import ConnectionError, InvalidResponse, ResponseError, TimeoutError

from resilient.backends._lane import (
    LaneAddress,
    checked,
    is_noscript,
    new_reader,
    pack,
    set_command,
)
from resilient.backends.base import LuaScript, ScriptArg

__all__ = ["ECHO", "AsyncLane"]

#: Set on the errors of all callers but one when a connection breaks under them.
ECHO = "resilient_lane_echo"


class _Link(asyncio.Protocol):
    """One connection: buffered writes, a queue of awaited replies, one deadline timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._reader = new_reader()
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._out: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._poller: select.poll | None = None
        #: Why the link is unusable, once it is.
        self.broken: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)

    def stale(self) -> bool:
        """Idle, yet readable: the server closed the connection (a restart, its idle
        ``timeout``) and the loop has not run since to notice, e.g. because it was
        blocked. A command sent now would be lost; checked before the first command
        after a pause, as redis-py checks a pooled connection at checkout."""
        poller = self._poller
        return not self._waiting and poller is not None and bool(poller.poll(0))

    def request(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply (error replies as values)."""
        if self.broken is not None:
            raise ConnectionError(f"Connection lost: {self.broken}")
        loop = self._loop
        future = loop.create_future()
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(packed)
        deadline = loop.time() + self._timeout
        self._waiting.append((future, deadline))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.broken is None and self._transport is not None and out:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                future = self._waiting.popleft()[0]
                if not future.done():  # its caller may have been cancelled
                    future.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._break(InvalidResponse(f"Protocol error: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._break(ConnectionError(f"Connection closed: {exc or 'by server'}."))

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        deadline = self._waiting[0][1]
        if self._loop.time() >= deadline:
            self._break(TimeoutError("Timeout reading from socket"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _break(self, error: BaseException) -> None:
        if self.broken is None:
            self.broken = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, deque()
        first = True
        for future, _ in waiting:
            if not future.done():
                # One instance per caller: a shared one would collect every traceback.
                exc = type(error)(*getattr(error, "args", ()))
                if not first:  # one broken connection is one failure to the guard
                    setattr(exc, ECHO, True)
                first = False
                future.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Fail what is still awaited and drop the connection."""
        self._break(ConnectionError("Connection closed by the client."))


class AsyncLane:
    """Evals for one event loop over one pipelined connection, opened when first needed."""

    def __init__(self, address: LaneAddress, loop: asyncio.AbstractEventLoop) -> None:
        self.address = address
        self.loop = loop
        self._link: _Link | None = None
        self._opening: asyncio.Task[_Link] | None = None

    async def call(self, packed: bytes) -> Any:
        """One command's reply; error replies are returned, not raised."""
        link = self._link
        if link is None or link.broken is not None or link.stale():
            if link is not None:
                link.close()  # idle: nobody waits on it
            link = await self._open()
        return await link.request(packed)

    def _request(self, packed: bytes) -> Awaitable[Any]:
        # On a healthy link: the reply's future itself, no coroutine frame in between.
        # Only the first command after a pause pays for the check (one poll()).
        link = self._link
        if link is not None and link.broken is None and (link._waiting or not link.stale()):
            return link.request(packed)
        return self.call(packed)

    async def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """``EVALSHA``, loading the script once when the server does not know it."""
        command = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
        reply = await self._request(command)
        if is_noscript(reply):
            checked(await self.call(pack(("SCRIPT", "LOAD", script.source))))
            reply = await self.call(command)
        return checked(reply)

    async def get(self, key: str) -> bytes | None:
        """``GET key``: a cache hit's one round trip."""
        value: bytes | None = checked(await self._request(pack(("GET", key))))
        return value

    async def set(self, key: str, value: bytes, px: int | None, only_if_new: bool) -> bool:
        """``SET key value [PX ms] [NX]``; false when ``NX`` found the key."""
        reply = await self._request(set_command(key, value, px, only_if_new))
        return checked(reply) is not None

    async def _open(self) -> _Link:
        # The callers that find no link share one attempt; cancelling one of them must
        # not cancel it for the others, hence a task and shield().
        opening = self._opening
        if opening is not None:
            try:
                return await asyncio.shield(opening)
            except Exception as exc:
                # The caller that started the attempt reports its failure to the guard;
                # those that waited on it get errors of their own, marked as echoes.
                try:
                    echo = type(exc)(*exc.args)
                except Exception:  # pragma: no cover - a type that cannot be rebuilt from args
                    echo = ConnectionError(str(exc))
                setattr(echo, ECHO, True)
                raise echo from None
        opening = self._opening = self.loop.create_task(self._connect())
        opening.add_done_callback(self._opened)
        return await asyncio.shield(opening)

    def _opened(self, task: asyncio.Task[_Link]) -> None:
        self._opening = None
        if not task.cancelled() and task.exception() is None:
            self._link = task.result()

    async def _connect(self) -> _Link:
        address, loop = self.address, self.loop

        def protocol() -> _Link:
            return _Link(loop, address.timeout)

        if address.path is not None:
            connecting = loop.create_unix_connection(protocol, address.path)
        else:
            connecting = loop.create_connection(protocol, address.host, address.port)
        try:
            _, link = await asyncio.wait_for(connecting, address.connect_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("Timeout connecting to server") from None
        try:
            futures = [link.request(pack(command)) for command in address.setup]
            for future in futures:
                reply = await future
                if isinstance(reply, ResponseError):
                    raise reply
        except BaseException:
            link.close()
            raise
        return link

    def close(self) -> None:
        """Drop the connection; evals still awaiting replies fail."""
        if self._link is not None:
            self._link.close()
            self._link = None
