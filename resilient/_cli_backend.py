"""The command line's connection to a backend, and bounded key scans. Strictly private.

The commands read and change state that live processes keep in Redis, so they talk to the
server with redis-py directly (``SCAN``, ``HGETALL``, ``UNLINK``), never with ``KEYS``:
every scan stops after a budget of keys examined, and says when it stopped early.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resilient._secrets import mask_text, mask_url
from resilient.backends import SyncBackend, backend_from_url
from resilient.config import Settings
from resilient.errors import BackendError

__all__ = [
    "Budget",
    "CliError",
    "Target",
    "connect",
    "escape_glob",
    "scan",
    "unlink",
    "unreachable",
]

#: Keys asked for per SCAN step; a hint to the server, which may return more or fewer.
SCAN_COUNT = 500
# A scan or a purge is many commands: the hot-path 100 ms timeout is too short for them.
_TIMEOUT = 2.0


class CliError(Exception):
    """A failure to report in one line, with the exit status to return."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(mask_text(message))
        self.status = status


@dataclass
class Target:
    """A connected Redis backend: the resilient backend, its redis-py client, the URL shown."""

    shown: str
    backend: SyncBackend
    client: Any

    def nodes(self) -> list[Any]:
        """One redis-py client per primary: the scans run on each (Cluster), else one."""
        primaries = getattr(self.client, "get_primaries", None)
        if primaries is None:
            return [self.client]
        return [node.redis_connection for node in primaries()]

    def close(self) -> None:
        """Release the connections."""
        self.backend.close()


def connect(url: str | None, settings: Settings, section: str) -> Target | None:
    """The backend at ``url`` (default: the one ``section``'s settings name), checked with
    a ``PING``; None for the in-memory backend, which holds nothing of other processes.

    Raises:
        CliError: the backend cannot be reached (status 1).
    """
    chosen = url or (settings.url_for(section) if section else settings.backend_url)
    shown = mask_url(chosen)
    if chosen.startswith("memory:"):
        return None
    backend = backend_from_url(
        chosen, timeout=max(settings.op_timeout, _TIMEOUT),
        connect_timeout=max(settings.connect_timeout, _TIMEOUT), guard_failures=1_000_000,
    )  # fmt: skip
    client = getattr(backend, "client", None)
    if client is None:  # a backend registered by someone else: nothing to scan with
        backend.close()
        raise CliError(f"the backend at {shown} is not a Redis server", 2)
    target = Target(shown.partition("?")[0], backend, client)
    try:
        client.ping()
    except Exception as exc:
        target.close()
        raise unreachable(target.shown, exc) from None
    return target


def unreachable(shown: str, exc: BaseException) -> CliError:
    """The one-line error for a backend that failed: the URL (masked) and the reason."""
    reason = str(exc.__cause__ or exc) if isinstance(exc, BackendError) else str(exc)
    return CliError(f"cannot reach the backend at {shown}: {reason or type(exc).__name__}")


def escape_glob(text: str) -> str:
    """``text`` as a literal inside a SCAN ``MATCH`` pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


@dataclass
class Budget:
    """How many keys the scans of one command may still examine."""

    left: int
    exhausted: bool = False


def scan(target: Target, pattern: str, budget: Budget) -> Iterator[list[str]]:
    """Batches of keys matching ``pattern`` on every primary, until ``budget`` is spent.

    The budget counts keys the server examined (``COUNT`` per step), not matches: a scan
    of a large keyspace for few matches stops as surely as one for many.
    """
    for node in target.nodes():
        cursor = 0
        while True:
            if budget.left <= 0:
                budget.exhausted = True
                return
            count = min(SCAN_COUNT, budget.left)
            cursor, keys = node.scan(cursor, match=pattern, count=count)
            budget.left -= count
            if keys:
                yield [key.decode() if isinstance(key, bytes) else key for key in keys]
            if int(cursor) == 0:
                break


def unlink(target: Target, keys: list[str]) -> int:
    """``UNLINK`` each key, one command per key in one pipeline (keys of different Cluster
    slots cannot share a command); returns how many existed."""
    if not keys:
        return 0
    pipe = target.client.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(int(done) for done in pipe.execute())
