"""The miss path, written once as generators of operations, run by a sync or async driver.

A flow yields tuples such as ``(GET, key)`` or ``(CALL,)`` and receives the result (or
has the exception thrown into it). :func:`run_sync` performs them with a
:class:`~resilient.backends.SyncBackend` and a plain call; :func:`run_async` awaits an
:class:`~resilient.backends.AsyncBackend` and the coroutine function. So the lease, the
stale rules and the failure handling exist in one copy for both worlds.

Failure rule: after the first failed backend operation a flow stops talking to the
backend for the rest of the call, so a dead or hung Redis costs one timeout at most
(and nothing once the backend's guard is open).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import time
from collections.abc import Callable, Generator, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from resilient.backends.base import LuaScript
from resilient.cache.entries import Entry
from resilient.cache.stampede import HIT, MISS, RELEASE, SKIP, STALE, Outcome
from resilient.cache.twotier import invalidation_message
from resilient.errors import BackendError

if TYPE_CHECKING:
    from resilient.cache.core import CacheCore

__all__ = [
    "FORCE",
    "READ",
    "REFRESH",
    "compute",
    "forget",
    "forget_tags",
    "run_async",
    "run_sync",
]

_T = TypeVar("_T")
Op = tuple[Any, ...]
Flow = Generator[Op, Any, _T]

GET, SET, DELETE, EVAL, PUBLISH, SLEEP, CALL = range(7)
#: A read that found nothing usable; a background refresh; an explicit refresh.
READ, REFRESH, FORCE = range(3)

_TAG_ADD = LuaScript(
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 1\n"
)
_TAG_POP = LuaScript(
    "local members = redis.call('SMEMBERS', KEYS[1])\nredis.call('DEL', KEYS[1])\nreturn members\n"
)
_FIRST_POLL, _LONGEST_POLL = 0.002, 0.05


def compute(
    core: CacheCore,
    key: Hashable,
    values: tuple[Any, ...],
    local: Entry | None,
    mode: int,
    *,
    remote: bool,
    stale: Entry | None,
) -> Flow[Outcome]:
    """Compute the value of ``key`` (under the lease, if configured) and store it.

    The driver has already looked in memory and (for a READ) in Redis: ``remote`` says
    whether Redis may still be used in this call, ``stale`` is a value stale-if-error may
    serve, ``local`` what memory held.
    """
    counts = core.counts
    l2key = core.l2key(key) if remote else ""
    lease, token = "", b""
    try:
        if remote and core.options.lock and mode != FORCE:
            token = secrets.token_hex(8).encode()
            try:
                held, acquired = yield from _take_lease(core, key, l2key, token, local, mode)
            except BackendError:
                counts.errors += 1
                remote, held, acquired = False, None, False
            if acquired:
                lease = l2key + ":lease"
            if held is not None:
                return held
        if mode == READ:
            counts.misses += 1
        else:
            counts.refreshes += 1
        start = core.clock()
        try:
            value = yield (CALL,)
        except Exception:
            if mode != FORCE and stale is not None and core.clock() < stale.fresh_until + core.sie:
                counts.stale += 1
                return Outcome(stale.value, STALE)
            raise
        if inspect.isawaitable(value):
            # Checked here, where a value is about to be kept, so the hit path pays nothing.
            raise _awaitable_result(core, value)
        done = core.clock()
        if value is None and not core.options.cache_none:
            return Outcome(value, MISS)
        entry = core.new_entry(key, value, done, done - start, values, l2key or None)
        core.remember(key, entry)
        if remote:
            yield from _store(core, l2key, entry)
        return Outcome(value, MISS)
    except GeneratorExit:
        lease = ""  # abandoned by its driver: no operation may be yielded now
        raise
    finally:
        if lease and token:
            with contextlib.suppress(BackendError):  # else it expires after lock_ttl
                yield (EVAL, RELEASE, [lease], [token])


def _awaitable_result(core: CacheCore, value: Any) -> TypeError:
    """The error for a function whose result is an awaitable (a coroutine, a task...).

    Stored, an awaitable would be handed to every later caller, but it can be awaited only
    once: the second caller would get ``RuntimeError: cannot reuse already awaited
    coroutine``.
    """
    if inspect.iscoroutine(value) or inspect.isgenerator(value):
        value.close()  # never awaited, on purpose: no "never awaited" warning later
    kind = type(value).__name__
    if core.is_async:
        fix = "await it inside the function, so that its result is what gets cached"
    else:
        fix = "make the function `async def` and await inside it; then @cached awaits it"
    return TypeError(
        f"{core.options.name} returned an awaitable ({kind}), which cannot be cached: {fix}"
    )


def _take_lease(
    core: CacheCore, key: Hashable, l2key: str, token: bytes, local: Entry | None, mode: int
) -> Flow[tuple[Outcome | None, bool]]:
    """Take the lease, or wait for its holder's value: returns (outcome, acquired).

    Raises BackendError; the caller then computes without a lease.
    """
    lease, lock_ttl = l2key + ":lease", core.options.lock_ttl
    acquired = yield (SET, lease, token, lock_ttl, True)
    if not acquired and mode == REFRESH:
        return Outcome(None, SKIP), False  # another process is refreshing it
    waited, delay = 0.0, _FIRST_POLL
    while True:
        # Read again even after acquiring: the holder may have stored the value and
        # released the lease between our first read and our SET NX.
        found = core.read_entry(key, l2key, (yield (GET, l2key)))
        if found is not None and core.clock() < found.fresh_until:
            if mode == READ:
                core.counts.hits += 1
                core.counts.remote_hits += 1
                return Outcome(found.value, HIT), acquired
            if local is None or found.version != local.version:
                return Outcome(found.value, SKIP), acquired  # refreshed elsewhere
        if acquired or waited >= lock_ttl:
            # Hold it, or the holder outlived its lease: compute (without one then).
            return None, acquired
        yield (SLEEP, delay)
        waited += delay
        delay = min(delay * 2, _LONGEST_POLL)
        acquired = yield (SET, lease, token, lock_ttl, True)


def _store(core: CacheCore, l2key: str, entry: Entry) -> Flow[None]:
    data = core.encode(l2key, entry)
    if data is None:
        return
    keep = core.ttl + core.stale_for
    try:
        yield (SET, l2key, data, keep, False)
        if core.coherence is None:
            check_at = entry.fresh_until - core.early * entry.delta
            core.remember_decoded(entry.key, l2key, data, entry.value, check_at)
        for tag in entry.tags:
            yield (EVAL, _TAG_ADD, [core.tag_key(tag)], [l2key, max(1, round(keep * 1000))])
        if core.coherence is not None:
            yield (PUBLISH, core.channel, invalidation_message(entry.version, [l2key]))
    except BackendError:
        core.counts.errors += 1


def forget(core: CacheCore, l2keys: list[str]) -> Flow[int]:
    """Delete ``l2keys`` from Redis and tell every L1; raises BackendError."""
    deleted: int = yield (DELETE, l2keys)
    yield (PUBLISH, core.channel, invalidation_message(0, l2keys))
    return deleted


def forget_tags(core: CacheCore, tags: tuple[str, ...]) -> Flow[tuple[list[str], int]]:
    """Delete every Redis entry stored with one of ``tags``.

    Returns the keys the tag sets listed (some may have expired already) and how many
    entries were actually deleted.
    """
    keys: list[str] = []
    for tag in tags:
        members = yield (EVAL, _TAG_POP, [core.tag_key(tag)], [])
        keys.extend(m.decode() if isinstance(m, bytes) else str(m) for m in members or ())
    keys = list(dict.fromkeys(keys))
    deleted = 0
    if keys:
        deleted = yield (DELETE, keys)
        yield (PUBLISH, core.channel, invalidation_message(0, keys))
    return keys, int(deleted)


def _execute(op: Op, backend: Any, call: Callable[[], Any] | None) -> Any:
    kind = op[0]
    if kind == CALL:
        assert call is not None
        return call()
    if kind == GET:
        return backend.get(op[1])
    if kind == SET:
        return backend.set(op[1], op[2], op[3], only_if_new=op[4])
    if kind == EVAL:
        return backend.eval(op[1], op[2], op[3])
    if kind == PUBLISH:
        return backend.publish(op[1], op[2])
    if kind == DELETE:
        return backend.delete(*op[1])
    time.sleep(op[1])
    return None


def run_sync(flow: Flow[_T], backend: Any, call: Callable[[], Any] | None = None) -> _T:
    """Run ``flow`` with blocking operations."""
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(sent) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: _T = stop.value
            return result
        sent, error = None, None
        try:
            sent = _execute(op, backend, call)
        except BaseException as exc:  # handed to the flow, which decides
            error = exc


async def run_async(flow: Flow[_T], backend: Any, call: Callable[[], Any] | None = None) -> _T:
    """Run ``flow`` on the event loop; backend operations and ``call()`` are awaited."""
    sent: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(sent) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: _T = stop.value
            return result
        sent, error = None, None
        try:
            kind = op[0]
            if kind == SLEEP:
                await asyncio.sleep(op[1])
            elif kind == CALL:
                assert call is not None
                sent = await call()
            else:
                sent = await _execute(op, backend, None)
        except BaseException as exc:
            error = exc
