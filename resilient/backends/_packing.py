"""Commands packed in C for the asyncio clients we build. Strictly private.

Why: redis-py's synchronous connections pack commands with ``hiredis`` when it is
installed, but its asyncio connections always pack in Python: about 6 us for one
``EVALSHA`` of a rate-limit decision against 1 us in C. A server making one decision per
request pays that on every request.

How: the connection pool of an asyncio client built from a URL gets a subclass of its
connection class whose ``pack_command`` is redis-py's own hiredis serializer, the one the
synchronous client uses. Clients handed to us are left as they are, and so is any client
whose encoding is not UTF-8 (hiredis encodes ``str`` as UTF-8 whatever it is told).
"""

from __future__ import annotations

from typing import Any

_SUBCLASSES: dict[type[Any], type[Any]] = {}


def _fast_packing(base: type[Any]) -> type[Any]:
    subclass = _SUBCLASSES.get(base)
    if subclass is None:
        from redis.connection import HiredisRespSerializer

        packer = HiredisRespSerializer()

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            return packer.pack(*args)  # type: ignore[no-any-return]

        subclass = type(base.__name__, (base,), {"pack_command": pack_command})
        subclass.__module__ = __name__
        subclass.__doc__ = f"{base.__name__} packing its commands with hiredis."
        _SUBCLASSES[base] = subclass
    return subclass


def pack_in_c(client: Any) -> Any:
    """``client`` (a redis.asyncio ``Redis``) with its pool packing commands in C.

    A no-op without hiredis, or when the client encodes strings other than as UTF-8.
    """
    from redis.utils import HIREDIS_AVAILABLE

    pool = getattr(client, "connection_pool", None)
    if not HIREDIS_AVAILABLE or pool is None:
        return client
    encoding = str(pool.connection_kwargs.get("encoding", "utf-8")).lower().replace("_", "-")
    if encoding not in ("utf-8", "utf8"):
        return client
    pool.connection_class = _fast_packing(pool.connection_class)
    return client
