"""Admission and recording: what every way of calling through a breaker comes down to.

Strictly private: :class:`~resilient.breaker.CircuitBreaker` inherits these methods.
The lock of the state machine covers admission and bookkeeping only; the user's code,
the Redis round trips and the listener callbacks all run outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from resilient.breaker import cancels
from resilient.breaker.events import ResultFailure
from resilient.breaker.mirror import Flow, SharedMirror, keep_until_done
from resilient.breaker.policies import ConsecutiveFailures
from resilient.breaker.shared import SharedStore
from resilient.breaker.state import Permit, Transition
from resilient.errors import BackendError, CircuitOpenError

#: Outcomes that count as nothing by default: the caller gave up, not the dependency.
#: A cancellation is judged before this list is read (see ``_acancelled``): one by a
#: timeout around the call counts as a failure.
IGNORED: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

Exclusion = type[BaseException] | Callable[[BaseException], bool]


class BreakerEngine(SharedMirror):
    """The mechanics shared by every way of calling through a breaker."""

    _excluded: list[Exclusion]
    _counting: ConsecutiveFailures | None  # the policy when it is the consecutive one
    _timed: bool
    _slow_call_duration: float
    _throw_new_error_on_trip: bool
    _predicate: Callable[[Any], bool] | None

    # -- admission ---------------------------------------------------------------------

    def admit(self) -> Permit:
        """Ask to make one call; hand the permit back with its outcome.

        The low-level API behind the decorator, for middleware and other code that
        cannot wrap a function::

            permit = breaker.admit()          # may raise CircuitOpenError
            try:
                response = send(request)
            except BaseException as exc:
                breaker.record_failure(permit, exc)   # ignored exceptions count as nothing
                raise
            if response.status >= 500:
                breaker.record_failure(permit)
            else:
                breaker.record_success(permit)

        Every permit must be handed back once, whatever happens (a probe that never
        reports holds its slot until its lease runs out).

        Raises:
            CircuitOpenError: the circuit is open, or every probe slot is taken.
        """
        machine = self._machine
        if machine.fast and not self._timed:
            return machine.closed_permit
        return self._admit()

    async def aadmit(self) -> Permit:
        """The asyncio twin of :meth:`admit` (shared probes take their lease with
        ``redis.asyncio``)."""
        machine = self._machine
        if machine.fast and not self._timed:
            return machine.closed_permit
        if self._store is None:
            return self._admit()
        try:
            return await self._adrive(self._admit_flow(self._clock()))  # type: ignore[no-any-return]
        except CircuitOpenError:
            machine.rejected += 1
            raise

    def _admit(self) -> Permit:
        now = self._clock()
        try:
            if self._store is None:
                permit, transition = self._machine.admit(now)
                if transition is not None:
                    self._notify(transition)
                return permit
            return self._drive(self._admit_flow(now))  # type: ignore[no-any-return]
        except CircuitOpenError:
            self._machine.rejected += 1
            raise

    def _admit_flow(self, now: float) -> Flow:
        machine = self._machine
        while True:
            permit, transition = machine.admit(now)
            if transition is not None:
                self._notify(transition)
            if not permit.pending:
                return permit
            try:
                snapshot, granted = yield ("acquire", permit.generation, permit.lease)
            except BackendError:
                machine.cancel(permit, None, now)
                self._degrade()
                continue  # the machine decides alone now: ask it again
            except BaseException:
                # The caller is gone (cancelled, interrupted, the flow closed): free this
                # process's slot; the driver hands back a lease granted meanwhile.
                machine.cancel(permit, None, now)
                raise
            if granted and snapshot.state == STATE_HALF_OPEN:
                permit, transition = machine.confirm(permit, snapshot, now)
                if transition is not None:
                    self._notify(transition)
                return permit
            transition = machine.cancel(permit, snapshot, now)
            if transition is not None:
                self._notify(transition)
            if snapshot.state == STATE_CLOSED:
                return Permit(snapshot.generation, 0, now)
            raise CircuitOpenError(self.name, max(0.0, snapshot.deadline - now))

    # -- outcomes ----------------------------------------------------------------------

    def record_success(self, permit: Permit) -> None:
        """Report that the call admitted with ``permit`` succeeded."""
        counting = self._counting
        if counting is not None and counting.count == 0 and not permit.lease:
            # Nothing to reset and nothing to judge: no lock, no clock.
            if self._listeners:
                self._tell_success()
            meter = self._meter
            if meter is not None:  # metrics on: the one increment a call pays
                meter.successful += 1
            return
        self._finish(permit, None, failed=False)

    def record_failure(self, permit: Permit, exc: BaseException | None = None) -> None:
        """Report that the call admitted with ``permit`` failed.

        Args:
            permit: what :meth:`admit` returned.
            exc: the exception raised, if any. Ignored kinds (cancellation, exits and
                ``exclude``) count as nothing; ``None`` means a bad result (a 5xx).
        """
        self._finish(permit, exc, failed=True)

    def release(self, permit: Permit) -> None:
        """Hand a permit back without an outcome (the call was abandoned)."""
        self._outcome(permit, failed=False, ignored=True)

    async def arecord_success(self, permit: Permit) -> None:
        """The asyncio twin of :meth:`record_success`."""
        counting = self._counting
        if counting is not None and counting.count == 0 and not permit.lease:
            if self._listeners:
                self._tell_success()
            meter = self._meter
            if meter is not None:
                meter.successful += 1
            return
        await self._afinish(permit, None, failed=False)

    async def arecord_failure(self, permit: Permit, exc: BaseException | None = None) -> None:
        """The asyncio twin of :meth:`record_failure`."""
        await self._afinish(permit, exc, failed=True)

    async def arelease(self, permit: Permit) -> None:
        """The asyncio twin of :meth:`release`."""
        await self._aoutcome(permit, failed=False, ignored=True)

    def is_ignored(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as nothing: a default-ignored kind or in ``exclude``."""
        return isinstance(exc, IGNORED) or self._user_excluded(exc)

    def _classify(self, exc: BaseException | None, failed: bool) -> tuple[bool, bool]:
        # A ResultFailure was judged by failure_predicate already; exclude's predicates
        # are written for raised exceptions and are not asked about it.
        if exc is not None and not isinstance(exc, ResultFailure) and self.is_ignored(exc):
            return False, True
        return failed, False

    def _finish(self, permit: Permit, exc: BaseException | None, *, failed: bool) -> bool:
        failed, ignored = self._classify(exc, failed)
        if not ignored:
            self._tell_outcome(failed, exc)
        return self._outcome(permit, failed=failed, ignored=ignored)

    async def _afinish(self, permit: Permit, exc: BaseException | None, *, failed: bool) -> bool:
        if isinstance(exc, asyncio.CancelledError) and not self._user_excluded(exc):
            return await self._acancelled(permit, exc)
        failed, ignored = self._classify(exc, failed)
        if not ignored:
            self._tell_outcome(failed, exc)
        return await self._aoutcome(permit, failed=failed, ignored=ignored)

    def _user_excluded(self, exc: BaseException) -> bool:
        return any(
            isinstance(exc, exclusion) if isinstance(exclusion, type) else exclusion(exc)
            for exclusion in self._excluded
        )

    async def _acancelled(self, permit: Permit, exc: asyncio.CancelledError) -> bool:
        """A cancelled call: slow if it ran past ``slow_call_duration`` under a slow-call
        policy, a failure if a timeout around it gave up, otherwise nothing."""
        if self._timed and self._clock() - permit.started >= self._slow_call_duration:
            # It was slow, whoever gave up on it: counted as a slow call (not a failure).
            return await self._aoutcome(permit, failed=False, ignored=False)
        task = asyncio.current_task()
        timed_out = None
        if task is not None:
            timed_out = cancels.anyio_verdict(exc, task)
            if timed_out is None:
                timed_out = cancels.wait_for_verdict(task)
        if timed_out is None and task is not None and cancels.can_judge_later(task):
            # An in-task timeout takes the cancellation back once it reaches it: look
            # after this turn of the loop, when the CancelledError has travelled up.
            asyncio.get_running_loop().call_soon(self._judge_cancelled, task, permit, exc)
            return False
        return await self._acount_cancelled(permit, exc, timed_out=bool(timed_out))

    def _judge_cancelled(
        self, task: asyncio.Task[Any], permit: Permit, exc: asyncio.CancelledError
    ) -> None:
        timed_out = cancels.absorbed(task)
        if self._store is None:
            if timed_out:
                self._tell_outcome(True, exc)
            self._after(self._record_locally(permit, timed_out, not timed_out))
        else:
            keep_until_done(asyncio.ensure_future(
                self._acount_cancelled(permit, exc, timed_out=timed_out)
            ))  # fmt: skip

    async def _acount_cancelled(
        self, permit: Permit, exc: asyncio.CancelledError, *, timed_out: bool
    ) -> bool:
        if timed_out:
            self._tell_outcome(True, exc)
        return await self._aoutcome(permit, failed=timed_out, ignored=not timed_out)

    def _outcome(self, permit: Permit, *, failed: bool, ignored: bool) -> bool:
        """Record; True when this outcome opened the circuit."""
        if self._store is None:
            transition = self._record_locally(permit, failed, ignored)
        else:
            transition = self._drive(self._outcome_flow(permit, failed, ignored))
        return self._after(transition)

    async def _aoutcome(self, permit: Permit, *, failed: bool, ignored: bool) -> bool:
        if self._store is None:
            transition = self._record_locally(permit, failed, ignored)
        else:
            transition = await self._adrive(self._outcome_flow(permit, failed, ignored))
        return self._after(transition)

    def _record_locally(self, permit: Permit, failed: bool, ignored: bool) -> Transition | None:
        now = self._clock()
        slow = self._timed and now - permit.started >= self._slow_call_duration
        return self._machine.record(permit, failed, slow, ignored, now)[1]

    def _outcome_flow(self, permit: Permit, failed: bool, ignored: bool) -> Flow:
        machine = self._machine
        now = self._clock()
        slow = self._timed and now - permit.started >= self._slow_call_duration
        intent, transition = machine.record(permit, failed, slow, ignored, now)
        if intent:
            op = SharedStore.op_for(intent)
            try:
                snapshot, _ = yield (op, permit.generation, permit.lease)
            except BackendError:
                self._degrade()
                transition = machine.fallback(intent, permit, now)
            else:
                transition = machine.apply(snapshot, now)
        return transition

    def _after(self, transition: Transition | None) -> bool:
        if transition is None:
            return False
        self._notify(transition)
        return transition.new == STATE_OPEN

    # -- the call wrappers' side ---------------------------------------------------------

    def _before_call(
        self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        for listener in self._listeners:
            listener.before_call(self, func, *args, **kwargs)

    def _succeeded(self, permit: Permit, result: object) -> None:
        predicate = self._predicate
        if predicate is not None and predicate(result):
            self._finish(permit, ResultFailure(result), failed=True)
        else:
            self.record_success(permit)

    def _failed(self, permit: Permit, exc: BaseException) -> None:
        if self._finish(permit, exc, failed=True) and self._throw_new_error_on_trip:
            raise CircuitOpenError(self.name, self._machine.reset_timeout) from exc

    async def _asucceeded(self, permit: Permit, result: object) -> None:
        predicate = self._predicate
        if predicate is not None and predicate(result):
            await self._afinish(permit, ResultFailure(result), failed=True)
        else:
            await self.arecord_success(permit)

    async def _afailed(self, permit: Permit, exc: BaseException) -> None:
        tripped = await self._afinish(permit, exc, failed=True)
        # A cancellation propagates as it is, even when it opened the circuit.
        if tripped and self._throw_new_error_on_trip and not isinstance(exc, IGNORED):
            raise CircuitOpenError(self.name, self._machine.reset_timeout) from exc
