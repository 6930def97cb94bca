"""What a served app still holds open to Redis as it ends, written down for the test.

:func:`record` appends ``<pid> <count>`` to ``SHUTDOWN_TEST_OPEN``: the count of this
process's sockets connected to the Redis port of ``RESILIENT_BACKEND_URL``. It reads
``/proc`` (Linux). The kernel closes every socket at exit anyway, so only a count taken
inside the process shows whether the app closed them itself. Call it where the app is
done: at exit (registered before the code under test registers its own exit handlers,
since they run last registered first), or, with :class:`AfterLifespan`, once an ASGI
app's lifespan has shut down (uvicorn ends by re-raising SIGTERM: no exit handlers).
"""

from __future__ import annotations

import atexit
import os
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AfterLifespan", "record", "redis_sockets"]


def redis_sockets(port: int) -> int:
    """This process's TCP sockets connected to ``port`` on this host."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                rows = lines.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[9] in inodes:
                count += 1
    return count


def record() -> None:
    """Append ``<pid> <open sockets to Redis>`` to the file the test named."""
    port = urlsplit(os.environ["RESILIENT_BACKEND_URL"]).port
    assert port is not None
    with open(os.environ["SHUTDOWN_TEST_OPEN"], "a") as out:
        out.write(f"{os.getpid()} {redis_sockets(port)}\n")


def at_exit() -> None:
    """Record at interpreter exit (call before the code under test registers its own)."""
    atexit.register(record)


class AfterLifespan:
    """An ASGI app that records once the wrapped app's lifespan has shut down."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_then_record(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                record()
            await send(message)

        await self.app(scope, receive, send_then_record)
