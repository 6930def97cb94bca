"""Keeping the local mirror in step with shared state. Strictly private.

Where shared state needs Redis, the breaker's logic is written once as a generator flow
that yields script operations; :meth:`SharedMirror._drive` runs a flow with the sync
backend and :meth:`SharedMirror._adrive` with the asyncio one (httpx's ``auth_flow``
pattern). When Redis fails the mirror becomes authoritative (degraded) and the breaker
decides alone; a resync that succeeds reconciles the two and ends that.

An asyncio caller may be cancelled while its script runs. The script may run anyway
(the request was written), so the round trip is shielded and finished in the
background: a probe lease granted to a caller that is gone is handed back at once, and
an outcome's answer is still applied to the mirror. Without that, a lease taken for a
cancelled caller blocked every probe for ``probe_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

from pybreaker import STATE_CLOSED

from resilient.breaker.events import Notifier, logger
from resilient.breaker.shared import SharedStore
from resilient.breaker.state import Snapshot, StateMachine
from resilient.errors import BackendError

Op = tuple[str, int, int]  # script operation, generation, lease
Flow = Generator[Op, tuple[Snapshot, bool], Any]
Reply = tuple[Snapshot, bool]

# Round trips finished for cancelled callers: the loop keeps weak references to tasks.
_background: set[asyncio.Future[Any]] = set()


class SharedMirror(Notifier):
    """Flow drivers and shared-state upkeep, mixed into the breaker."""

    _machine: StateMachine
    _store: SharedStore | None
    _clock: Callable[[], float]

    # -- drivers -----------------------------------------------------------------------

    def _drive(self, flow: Flow) -> Any:
        store = self._store
        assert store is not None
        try:
            op = next(flow)
            while True:
                try:
                    reply = store.run(*op)
                except BackendError as exc:
                    op = flow.throw(exc)
                except BaseException:
                    flow.close()  # interrupted: an admission frees its local probe slot
                    raise
                else:
                    op = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    async def _adrive(self, flow: Flow) -> Any:
        store = self._store
        assert store is not None
        try:
            op = next(flow)
            while True:
                request = asyncio.ensure_future(store.arun(*op))
                try:
                    reply = await asyncio.shield(request)
                except BackendError as exc:
                    op = flow.throw(exc)
                except asyncio.CancelledError:
                    flow.close()  # an admission frees its local probe slot
                    self._finish_abandoned(op, request)
                    raise
                else:
                    op = flow.send(reply)
        except StopIteration as stop:
            return stop.value

    def _finish_abandoned(self, op: Op, request: asyncio.Future[Reply]) -> None:
        """Let the round trip of a cancelled caller end, and settle what it did."""
        _background.add(request)
        request.add_done_callback(_background.discard)
        request.add_done_callback(lambda done: self._settle(op, done))

    def _settle(self, op: Op, request: asyncio.Future[Reply]) -> None:
        if request.cancelled() or request.exception() is not None:
            return  # nothing was granted; a failed outcome is left to the next resync
        snapshot, granted = request.result()
        name, _, lease = op
        if name == "acquire":
            if granted and lease:
                # Granted to a caller that is gone: free the slot for the others now.
                store = self._store
                assert store is not None
                keep_until_done(
                    asyncio.ensure_future(store.arun("release", snapshot.generation, lease))
                )
            return
        transition = self._machine.apply(snapshot, self._clock())
        if transition is not None:
            self._notify_quietly(transition)

    # -- shared state upkeep -------------------------------------------------------------

    def _degrade(self) -> None:
        machine = self._machine
        with machine.lock:
            was_shared = not machine.authoritative
            machine.authoritative = True
            machine.busy_until = 0.0
        if was_shared:
            logger.warning(
                "breaker %r: shared state unreachable; deciding on local state", self.name
            )

    def resync(self) -> None:
        """Re-read shared state now (done every ``resync_interval`` and on reconnect).

        After an outage a circuit that opened locally is pushed to the others, then the
        shared state is adopted. Does nothing for a breaker without shared state.
        """
        store = self._store
        if store is None:
            return
        machine = self._machine
        updates = machine.updates
        try:
            snapshot, _ = store.run("sync", machine.generation)
            recovering = machine.authoritative
            if recovering and machine.state != STATE_CLOSED and snapshot.state == STATE_CLOSED:
                # This process opened the circuit while Redis was away: tell the others.
                snapshot, _ = store.run("trip", snapshot.generation)
        except BackendError:
            self._degrade()
            return
        transition = machine.rejoin(snapshot, self._clock(), force=recovering, updates=updates)
        if recovering:
            logger.warning("breaker %r: shared state reachable again", self.name)
        if transition is not None:
            self._notify_quietly(transition)

    def _on_shared_message(self, fields: tuple[int, ...]) -> None:
        machine = self._machine
        store = self._store
        if machine.authoritative or store is None:
            return  # degraded: the next resync reconciles
        now = self._clock()
        transition = machine.apply(store.snapshot_of(fields, now), now)
        if transition is not None:
            self._notify_quietly(transition)

    def _on_shared_reset(self) -> None:
        self.resync()


def keep_until_done(task: asyncio.Future[Any]) -> None:
    """Hold ``task`` (work finished for a cancelled caller) until it ends; its errors are
    retrieved and dropped (what it records is re-read by the next resync anyway)."""
    _background.add(task)
    task.add_done_callback(_ignore_outcome)


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed release leaves the lease to expire
