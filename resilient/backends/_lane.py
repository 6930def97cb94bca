"""The lane: the hot commands over lean RESP2 connections of our own. Strictly private.

Why: a rate-limit decision is one ``EVALSHA``, and it runs on every request. redis-py 8
spent about 60 us of client CPU on one sync call (pool checkout, retry and observability
wrappers, response callbacks), where hiredis packing and parsing plus the two socket
calls took about 12; an HTTP server handling thousands of requests a second is bound
by that CPU. So a backend built from a ``redis://`` or ``unix://`` URL sends its evals
here, and every other command, and every other kind of client (injected ones, Sentinel,
Cluster, TLS, RESP3, ``decode_responses``), keeps going through redis-py.

What a lane speaks: ``AUTH`` and ``SELECT`` once per connection, then ``EVALSHA`` (and
``SCRIPT LOAD`` when the server does not know a script yet), and the cache's ``GET`` and
``SET``, which a cache hit and a miss make once each. Replies are parsed by
``hiredis.Reader`` into what redis-py returns for the same command without
``decode_responses``. Failures raise redis-py's exception classes, so that the backends
map and count them as they do redis-py's own: one deadline per operation, no retries,
a broken connection closed and never reused, an idle one that the server closed dropped
before use.

This module holds the sync lane (a stack of idle sockets shared by threads); the
asyncio lane, which pipelines every eval of an event-loop turn into one write, is in
``_lane_async``.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote

from redis.exceptions import ConnectionError, InvalidResponse, ResponseError, TimeoutError

from resilient.backends.base import LuaScript, ScriptArg

try:
    import hiredis

    HIREDIS = True
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    HIREDIS = False

__all__ = [
    "LaneAddress",
    "SyncLane",
    "checked",
    "eval_with",
    "lane_address",
    "new_reader",
    "set_command",
]

#: Query options that the lane understands (ours are parsed away before; ``db`` is the
#: one redis-py option a lane honours). Any other option means redis-py does it all.
_LANE_QUERY = frozenset({"db"})


@dataclass(frozen=True, slots=True)
class LaneAddress:
    """Where a lane connects, and the commands that set up each connection.

    ``setup`` may hold a password (``AUTH``): it is left out of the repr.
    """

    host: str
    port: int
    path: str | None
    timeout: float
    connect_timeout: float
    setup: tuple[tuple[str | int, ...], ...] = field(repr=False)
    max_connections: int | None = None


def lane_address(
    parts: SplitResult,
    passthrough: Mapping[str, str],
    timeout: float,
    connect_timeout: float,
    max_connections: int | None = None,
) -> LaneAddress | None:
    """The lane for a ``redis://`` or ``unix://`` URL, or ``None`` when redis-py must
    serve it alone (no hiredis, TLS, or options that the lane does not implement)."""
    if not HIREDIS or parts.scheme not in ("redis", "unix"):
        return None
    if set(passthrough) - _LANE_QUERY:
        return None
    db_text = passthrough.get("db")
    path: str | None = None
    if parts.scheme == "unix":
        path, host, port = parts.path, "", 0
    else:
        segment = parts.path.strip("/")
        db_text = db_text or segment or None
        try:
            host, port = parts.hostname or "localhost", parts.port or 6379
        except ValueError:
            return None  # a bad port: let redis-py report it
    try:
        db = int(db_text) if db_text else 0
    except ValueError:
        return None
    setup: list[tuple[str | int, ...]] = []
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    if password is not None:
        setup.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        setup.append(("SELECT", db))
    return LaneAddress(host, port, path, timeout, connect_timeout, tuple(setup), max_connections)


def new_reader() -> Any:
    """A RESP2 parser: error replies come back as ``ResponseError`` values, bad bytes
    raise ``InvalidResponse``."""
    return hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)


def pack(args: Sequence[str | bytes | int | float]) -> bytes:
    """One command in RESP, packed in C."""
    # The stub types the argument as a 1-tuple; any length is packed.
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    return packed


def set_command(key: str, value: bytes, px: int | None, only_if_new: bool) -> bytes:
    """``SET key value [PX ms] [NX]``, packed."""
    args: list[str | bytes | int] = ["SET", key, value]
    if px is not None:
        args += ("PX", px)
    if only_if_new:
        args.append("NX")
    return pack(args)


def checked(reply: Any) -> Any:
    """``reply``, raised when it is an error reply."""
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def is_noscript(reply: object) -> bool:
    """The server does not know the script (restarted, flushed, or a new replica)."""
    return isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")


def eval_with(
    call: Callable[[bytes], Any], script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]
) -> Any:
    """The sync ``EVALSHA`` protocol over ``call``: load the script once if missing."""
    command = pack(("EVALSHA", script.sha, len(keys), *keys, *args))
    reply = call(command)
    if is_noscript(reply):
        checked(call(pack(("SCRIPT", "LOAD", script.source))))
        reply = call(command)
    return checked(reply)


#: How far a socket's timeout may sit from an operation's remaining time before it is
#: set again: sparing a syscall per command costs a deadline at most this much.
_SLACK = 0.001


class _Connection:
    """One blocking socket and its parser; used by one thread at a time."""

    __slots__ = ("base", "deadline", "poller", "reader", "sock", "timeout")

    def __init__(self, address: LaneAddress) -> None:
        if address.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(address.connect_timeout)
                sock.connect(address.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(
                (address.host, address.port), timeout=address.connect_timeout
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The socket's timeout now (``timeout``) and between operations (``base``).
        self.base = self.timeout = address.timeout
        sock.settimeout(self.timeout)
        self.sock = sock
        self.reader = new_reader()
        # poll(), not select(): a busy server process may hold descriptors past 1024.
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        #: When the command under way fails (monotonic); set by the lane at checkout.
        self.deadline = time.monotonic() + address.timeout
        try:
            for command in address.setup:
                reply = self.roundtrip(pack(command))
                if isinstance(reply, ResponseError):
                    raise reply
        except BaseException:
            sock.close()
            raise

    def stale(self) -> bool:
        """Whether an idle connection is unusable. Readable while no reply is awaited
        means the server closed it (a restart, its ``timeout`` setting) or sent what
        nobody asked for; checked at checkout, as redis-py checks its pooled ones."""
        return bool(self.poller.poll(0))

    def roundtrip(self, packed: bytes) -> Any:
        """Send one command and read its reply, failing at ``self.deadline``: the timeout
        bounds the operation, not each ``recv``, so a reply that trickles in cannot
        stretch it."""
        sock = self.sock
        deadline = self.deadline
        sock.sendall(packed)
        reader = self.reader
        while True:
            reply = reader.gets()
            if reply is not False:
                if self.timeout != self.base:  # shortened for a slow reply: restore
                    sock.settimeout(self.base)
                    self.timeout = self.base
                return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Timeout reading from socket")
            if abs(remaining - self.timeout) > _SLACK:
                sock.settimeout(remaining)
                self.timeout = remaining
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("Connection closed by server.")
            reader.feed(data)

    def close(self) -> None:
        self.sock.close()

    def __del__(self) -> None:
        # A lane dropped without close() (a cache or limiter simply forgotten) frees its
        # sockets quietly, as redis-py's connections do. (No socket: __init__ failed.)
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()


class SyncLane:
    """Blocking commands for any number of threads: each takes an idle connection (or
    opens one), makes its round trip, and puts it back unless the round trip failed.

    With ``address.max_connections``, at most that many connections are open; a thread
    that finds them all in use waits for one up to the operation timeout.
    """

    def __init__(self, address: LaneAddress) -> None:
        self.address = address
        # list.pop() and list.append() are atomic: no lock on the hot path.
        self._idle: list[_Connection] = []
        self._slots = self._new_slots()
        self._pid = os.getpid()
        self._closed = False

    def __repr__(self) -> str:
        return f"<SyncLane {self.address}>"

    def _new_slots(self) -> threading.BoundedSemaphore | None:
        limit = self.address.max_connections
        return None if limit is None else threading.BoundedSemaphore(limit)

    def call(self, packed: bytes) -> Any:
        """One command's reply within the timeout; error replies are returned, not raised."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._slots, self._pid = [], self._new_slots(), os.getpid()
        slots = self._slots
        if slots is not None and not slots.acquire(timeout=self.address.timeout):
            raise ConnectionError("Too many connections")
        try:
            connection = self._checkout()
            connection.deadline = time.monotonic() + self.address.timeout
            try:
                reply = connection.roundtrip(packed)
            except BaseException:
                # Half a reply may be in flight: the connection is never used again.
                connection.close()
                raise
            if self._closed:
                connection.close()
            else:
                self._idle.append(connection)
            return reply
        finally:
            if slots is not None:
                slots.release()

    def _checkout(self) -> _Connection:
        """An idle connection that is still usable, or a new one. After a restart every
        idle connection is found closed here and dropped, so the first call succeeds."""
        idle = self._idle
        while True:
            try:
                connection = idle.pop()
            except IndexError:
                return _Connection(self.address)
            if not connection.stale():
                return connection
            connection.close()

    def eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """``EVALSHA``, loading the script once when the server does not know it."""
        return eval_with(self.call, script, keys, args)

    def get(self, key: str) -> bytes | None:
        """``GET key``: a cache hit's one round trip."""
        value: bytes | None = checked(self.call(pack(("GET", key))))
        return value

    def set(self, key: str, value: bytes, px: int | None, only_if_new: bool) -> bool:
        """``SET key value [PX ms] [NX]``; false when ``NX`` found the key."""
        return checked(self.call(set_command(key, value, px, only_if_new))) is not None

    def close(self) -> None:
        """Close the idle connections; those in use close when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
