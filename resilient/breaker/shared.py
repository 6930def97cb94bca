"""Breaker state shared through Redis: the store side, one script run per event.

The closed success path never reaches this module: the breaker keeps a local mirror
(:class:`~resilient.breaker.state.StateMachine`) and only failures, probes and manual
changes run the event script (:mod:`resilient.breaker._script`), one round trip each.
Transitions reach the other processes through :mod:`resilient.breaker._hub`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from resilient.backends.base import AsyncBackend, LuaScript, SyncBackend, hash_tag
from resilient.breaker._script import EVENT
from resilient.breaker.policies import ConsecutiveFailures
from resilient.breaker.state import Intent, Snapshot, StateMachine
from resilient.errors import BackendError, ConfigurationError

__all__ = ["CHANNEL", "REGISTRY_KEY", "STATES", "SharedStore", "parse", "state_keys"]

logger = logging.getLogger("resilient.breaker")

#: The pub/sub channel every shared breaker publishes its transitions on.
CHANNEL = "resilient:breaker:events"
STATES = (STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN)
#: A hash of every shared breaker's name and settings (JSON), read by ``resilient inspect``
#: and ``resilient breaker``: state keys expire, and SCAN is no way to list them on a busy
#: server. One key, so it works on Redis Cluster; written once per store, and it expires
#: a day after the last breaker was built, as unused state keys do (SCAN finds the rest).
REGISTRY_KEY = "resilient:breakers"
_REGISTER = LuaScript(
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "return redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
)
_KEY_TTL_MS = 86_400_000  # an unused breaker's keys go after a day (or 2 x reset_timeout)
_OPS = {
    Intent.COUNT_FAILURE: "fail",
    Intent.PROBE_FAILURE: "fail",
    Intent.RESET: "ok",
    Intent.PROBE_SUCCESS: "ok",
    Intent.TRIP: "trip",
    Intent.RELEASE: "release",
}


def _new_token() -> str:
    return f"{os.getpid()}-{os.urandom(8).hex()}"


# This process's part of every probe lease id, so that lease ids of different processes
# never collide in Redis. Made again in a forked child: workers forked from one parent
# (gunicorn --preload) would otherwise inherit one token and one lease counter, write the
# same lease ids, and each take a slot another worker already holds.
_TOKEN = _new_token()


def _renew_token() -> None:
    global _TOKEN
    _TOKEN = _new_token()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(after_in_child=_renew_token)


def parse(reply: object) -> tuple[int, ...]:
    """The script's reply: state, generation, remaining ms, failures, successes, granted,
    server time (ms)."""
    return tuple(int(value) for value in reply)  # type: ignore[attr-defined]


def state_keys(name: str) -> tuple[str, str]:
    """The keys of breaker ``name``: its state hash and its probe leases."""
    tag = hash_tag(f"resilient:breaker:{name}")
    return f"{tag}:state", f"{tag}:probes"


class SharedStore:
    """The Redis side of one shared breaker.

    Args:
        name: the breaker's name; its keys are ``{resilient:breaker:<name>}:state|probes``.
        machine: the local mirror whose settings the script applies.
        backend: a sync backend with scripting (Redis); also serves pub/sub and resync.
        async_backend: an asyncio backend for the async paths, or a factory building
            one for the running event loop (asyncio clients are bound to their loop).
        clock: the breaker's monotonic clock, to map server times onto.
        time_source: a clock whose readings replace Redis ``TIME`` (tests only).
        owns_backends: close the backends when the store closes.
    """

    def __init__(
        self,
        name: str,
        machine: StateMachine,
        backend: SyncBackend,
        *,
        async_backend: AsyncBackend | Callable[[], AsyncBackend] | None = None,
        clock: Callable[[], float] = time.monotonic,
        time_source: Callable[[], float] | None = None,
        owns_backends: bool = False,
    ) -> None:
        if not backend.scripting:
            raise ConfigurationError(
                "RESILIENT_BREAKER_URL", type(backend).__name__,
                "a Redis backend (redis://, rediss://, unix://, redis+cluster://, "
                "redis+sentinel://) when breaker state is shared",
            )  # fmt: skip
        self.name = name
        self.machine = machine
        self.backend = backend
        # A fixed asyncio backend, or one built by the factory at first use; either
        # serves every event loop (it keeps connections per loop, and one guard).
        self._async: AsyncBackend | None = None
        self._async_factory: Callable[[], AsyncBackend] | None = None
        if callable(async_backend):
            self._async_factory = async_backend
        else:
            self._async = async_backend
        self._lock = threading.Lock()
        self._clock = clock
        self._time_source = time_source
        self._owns = owns_backends
        # Server time minus local clock, measured on each reply; None until the first.
        self.offset: float | None = None
        self.keys = state_keys(name)
        self._registered = False

    def lease_id(self, lease: int) -> str:
        """The probe lease as stored in Redis: unique across processes and acquisitions.

        ``lease`` numbers are unique within the process (one counter for every breaker,
        see :mod:`resilient.breaker.state`); the token tells processes apart.
        """
        return f"{_TOKEN}:{lease}"

    def _args(self, op: str, generation: int, lease: int) -> list[str | int]:
        machine = self.machine
        policy = machine.policy
        fail_max = policy.fail_max if isinstance(policy, ConsecutiveFailures) else 0
        now = "" if self._time_source is None else round(self._time_source() * 1000)
        ttl = max(_KEY_TTL_MS, round(2000 * (machine.reset_timeout + machine.probe_timeout)))
        return [
            op, generation, now, CHANNEL, self.name, ttl, fail_max,
            round(machine.reset_timeout * 1000), machine.success_threshold,
            machine.permitted_calls, max(1, round(machine.probe_timeout * 1000)),
            self.lease_id(lease) if lease else "",
        ]  # fmt: skip

    @staticmethod
    def op_for(intent: Intent) -> str:
        """The script operation that carries ``intent``."""
        return _OPS[intent]

    def run(self, op: str, generation: int, lease: int = 0) -> tuple[Snapshot, bool]:
        """Run one event (one round trip). Raises :class:`BackendError`."""
        args = self._args(op, generation, lease)
        sent = self._clock()
        reply = self.backend.eval(EVENT, self.keys, args)
        result = self._read(reply, sent)
        if not self._registered:
            self._register()
        return result

    async def arun(self, op: str, generation: int, lease: int = 0) -> tuple[Snapshot, bool]:
        """The asyncio twin of :meth:`run`, over the loop's async backend."""
        backend = self._async_backend()
        args = self._args(op, generation, lease)
        sent = self._clock()
        reply = await backend.eval(EVENT, self.keys, args)
        result = self._read(reply, sent)
        if not self._registered:
            self._registered = True  # one attempt per store: a lost write costs nothing
            try:
                await backend.eval(_REGISTER, (REGISTRY_KEY,), self._registration())
            except BackendError:
                logger.debug("breaker %r: not recorded in %s", self.name, REGISTRY_KEY)
        return result

    def _registration(self) -> list[str | int]:
        machine = self.machine
        policy = machine.policy
        settings = {
            "reset_timeout": machine.reset_timeout,
            "fail_max": policy.fail_max if isinstance(policy, ConsecutiveFailures) else 0,
            "success_threshold": machine.success_threshold,
            "permitted_calls": machine.permitted_calls,
            "probe_timeout": machine.probe_timeout,
        }
        return [self.name, json.dumps(settings, separators=(",", ":")), _KEY_TTL_MS]

    def _register(self) -> None:
        # After the first reply (the construction's sync, usually): the events that
        # follow still cost one round trip each.
        self._registered = True  # one attempt per store: a lost write costs nothing
        try:
            self.backend.eval(_REGISTER, (REGISTRY_KEY,), self._registration())
        except BackendError:
            logger.debug("breaker %r: not recorded in %s", self.name, REGISTRY_KEY)

    def _read(self, reply: object, sent: float) -> tuple[Snapshot, bool]:
        state, generation, remaining, failures, successes, granted, now = parse(reply)
        if self._time_source is not None:
            self.offset = 0.0  # the scripts ran on our own clock
        else:
            # The server read its clock somewhere between sending and receiving: the middle.
            self.offset = now / 1000 - (sent + self._clock()) / 2
        # An absolute deadline on our clock: however late this is applied, it stays right.
        deadline = (now + remaining) / 1000 - self.offset
        return Snapshot(STATES[state], generation, deadline, failures, successes), bool(granted)

    def snapshot_of(self, fields: tuple[int, ...], now: float) -> Snapshot:
        """A published message as a snapshot, its times mapped onto our clock."""
        state, generation, until, failures, successes, published = fields
        deadline = 0.0
        if state == 1:  # open
            if self.offset is None:  # no reply yet to measure the offset with
                deadline = now + (until - published) / 1000
            else:
                deadline = until / 1000 - self.offset
        return Snapshot(STATES[state], generation, deadline, failures, successes)

    def _async_backend(self) -> AsyncBackend:
        if self._async is None and self._async_factory is not None:
            with self._lock:
                if self._async is None:
                    self._async = self._async_factory()
        if self._async is None:
            raise ConfigurationError(
                "async_backend", None, "an AsyncBackend for async calls to a shared breaker"
            )
        return self._async

    def close(self) -> None:
        """Close the sync backend if this store built it."""
        if self._owns:
            self.backend.close()

    async def aclose(self) -> None:
        """Close the backends this store built (of the async one, the running loop's
        connections)."""
        if self._async is not None and (self._owns or self._async_factory is not None):
            await self._async.aclose()
        self.close()
