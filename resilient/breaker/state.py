"""The breaker's state machine: pure, clock passed in, no I/O, one short lock.

States are pybreaker's (``closed``, ``open``, ``half-open``). Every transition bumps a
generation number and every admitted call carries the generation it was admitted in
(its :class:`Permit`); an outcome reported under an older generation is stale and counts
for nothing. That is what keeps a slow call admitted before a trip from closing the
circuit again, and, with shared state, a stale writer from resetting counters.

With shared state the machine is a *mirror*: while the shared store answers, decisions
that must be taken cluster-wide (counting a consecutive failure, taking a probe lease,
closing after probes) are returned as an :class:`Intent` for the caller to run there, and
the store's answer comes back through :meth:`StateMachine.apply`. When the store fails
the machine becomes authoritative and decides alone (:meth:`StateMachine.fallback`).
"""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass

from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from resilient.breaker.policies import ConsecutiveFailures, TripPolicy
from resilient.errors import CircuitOpenError

__all__ = ["Intent", "Permit", "Snapshot", "StateMachine", "Transition"]

#: The generation of permits handed out while the breaker is disabled: never recorded.
DISABLED = -1
# Probe lease numbers, one counter for every machine of the process: two breakers of one
# name in one process (two apps, a rebuilt breaker) share leases in Redis, and numbers
# counted per machine would collide there. next() on a count is atomic under the GIL.
_lease_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Permit:
    """The right to make one call, returned by admission and handed back with its outcome.

    Attributes:
        generation: the breaker generation the call was admitted in.
        lease: a probe's lease number; 0 for an ordinary call in the closed state.
        started: the clock reading at admission (for slow-call detection).
        pending: a probe that still needs its lease from shared state.

    .. versionadded:: 0.1
    """

    generation: int
    lease: int = 0
    started: float = 0.0
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Shared state as the store last reported it."""

    state: str
    generation: int
    deadline: float  # local clock time an open circuit admits probes, or a probe slot frees
    failures: int
    successes: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, reported to listeners and logs outside the lock."""

    old: str
    new: str


class Intent(enum.IntEnum):
    """What the shared store must do with an outcome (see the module docs)."""

    NOTHING = 0
    COUNT_FAILURE = 1  # consecutive policy: the store counts and may trip
    RESET = 2  # consecutive policy: a success clears the shared count
    TRIP = 3  # rate policy: this process's window crossed the threshold
    PROBE_SUCCESS = 4
    PROBE_FAILURE = 5
    RELEASE = 6  # a probe ended with an ignored outcome: free its lease


class StateMachine:
    """Closed / open / half-open with generations, probe leases and forced modes.

    Args:
        name: the breaker's name, carried by rejections.
        policy: decides when the closed circuit opens.
        reset_timeout: seconds the circuit stays open before probes are admitted.
        success_threshold: successful probes that close the circuit.
        permitted_calls: probes admitted at once while half-open.
        probe_timeout: seconds a probe's lease lasts if the probe never reports.
        authoritative: False for a mirror of shared state.
    """

    def __init__(
        self,
        name: str,
        policy: TripPolicy,
        *,
        reset_timeout: float,
        success_threshold: int,
        permitted_calls: int,
        probe_timeout: float,
        authoritative: bool = True,
    ) -> None:
        self.name = name
        self.policy = policy
        self.reset_timeout = reset_timeout
        self.success_threshold = success_threshold
        self.permitted_calls = permitted_calls
        self.probe_timeout = probe_timeout
        self.authoritative = authoritative
        self.state = STATE_CLOSED
        self.generation = 0
        self.opened_until = 0.0
        self.successes = 0
        self.forced: str | None = None  # None, "open" or "disabled"
        self.busy_until = 0.0  # shared: other processes hold every probe slot until then
        self.probes: dict[int, float] = {}  # lease -> expiry
        self.updates = 0  # bumped by every change of the mirror (see rejoin)
        self.lock = threading.Lock()
        #: Calls rejected (``CircuitOpenError``), for metrics; counted on the rejection
        #: path only, which raises anyway.
        self.rejected = 0
        # Read without the lock on the hot path: a closed, unforced circuit admits at once.
        self.fast = True
        self.closed_permit = Permit(0)

    # -- admission ---------------------------------------------------------------------

    def admit(self, now: float) -> tuple[Permit, Transition | None]:
        """Admit one call or raise :class:`CircuitOpenError` with its ``retry_after``."""
        # Rejections while open skip the lock: reading two fields out of step can only
        # send a call to the locked path below, never admit it wrongly.
        if self.state == STATE_OPEN and self.forced is None:
            until = self.opened_until
            if now < until:
                raise CircuitOpenError(self.name, until - now)
        with self.lock:
            if self.forced is not None:
                if self.forced == "open":
                    raise CircuitOpenError(self.name, self.reset_timeout)
                return Permit(DISABLED), None
            if self.state == STATE_CLOSED:
                return Permit(self.generation, 0, now), None
            transition = None
            if self.state == STATE_OPEN:
                if now < self.opened_until:
                    raise CircuitOpenError(self.name, self.opened_until - now)
                if self.authoritative:
                    transition = self._enter(STATE_HALF_OPEN, now)
            elif now < self.busy_until:
                raise CircuitOpenError(self.name, self.busy_until - now)
            return self._take_probe(now), transition

    def _take_probe(self, now: float) -> Permit:
        probes = self.probes
        for lease in [lease for lease, expiry in probes.items() if expiry <= now]:
            del probes[lease]  # a probe that never reported: its lease ran out
        if len(probes) >= self.permitted_calls:
            retry_after = min(min(probes.values()) - now, self.reset_timeout)
            raise CircuitOpenError(self.name, retry_after)
        lease = next(_lease_numbers)
        probes[lease] = now + self.probe_timeout
        return Permit(self.generation, lease, now, not self.authoritative)

    def confirm(
        self, permit: Permit, snapshot: Snapshot, now: float
    ) -> tuple[Permit, Transition | None]:
        """The store granted a pending probe its lease: adopt its generation."""
        with self.lock:
            transition = self._apply(snapshot, now, force=False)
            # Adopting a new generation cleared the local slots; this probe keeps its own.
            self.probes[permit.lease] = now + self.probe_timeout
            return Permit(snapshot.generation, permit.lease, permit.started), transition

    def cancel(self, permit: Permit, snapshot: Snapshot | None, now: float) -> Transition | None:
        """A pending probe did not get a lease: free the local slot, adopt the store."""
        with self.lock:
            self.probes.pop(permit.lease, None)
            if snapshot is None:
                return None
            transition = self._apply(snapshot, now, force=False)
            if snapshot.state == STATE_HALF_OPEN:
                self.busy_until = snapshot.deadline
            return transition

    # -- outcomes ----------------------------------------------------------------------

    def record(
        self, permit: Permit, failed: bool, slow: bool, ignored: bool, now: float
    ) -> tuple[Intent, Transition | None]:
        """Count one outcome; returns what the shared store must do, and any transition."""
        with self.lock:
            if permit.generation != self.generation or self.forced is not None:
                if permit.lease:
                    self.probes.pop(permit.lease, None)
                return Intent.NOTHING, None  # stale (or disabled): counts for nothing
            if permit.lease:
                self.probes.pop(permit.lease, None)
                if ignored or self.state != STATE_HALF_OPEN:
                    return (Intent.NOTHING if self.authoritative else Intent.RELEASE), None
                bad = failed or (slow and self.policy.timed)
                if not self.authoritative:
                    return (Intent.PROBE_FAILURE if bad else Intent.PROBE_SUCCESS), None
                return Intent.NOTHING, self._probe_result(bad, now)
            if ignored or self.state != STATE_CLOSED:
                return Intent.NOTHING, None
            policy = self.policy
            if self.authoritative:
                if policy.record(failed, slow, now):
                    return Intent.NOTHING, self._enter(STATE_OPEN, now)
                return Intent.NOTHING, None
            if isinstance(policy, ConsecutiveFailures):
                if failed:
                    return Intent.COUNT_FAILURE, None  # counted by the store
                if policy.count:
                    policy.count = 0
                    self.updates += 1
                    return Intent.RESET, None
                return Intent.NOTHING, None
            return (Intent.TRIP if policy.record(failed, slow, now) else Intent.NOTHING), None

    def fallback(self, intent: Intent, permit: Permit, now: float) -> Transition | None:
        """The store failed: become authoritative and carry ``intent`` out locally."""
        with self.lock:
            self.authoritative = True
            self.busy_until = 0.0
            if permit.generation != self.generation:
                return None
            if intent == Intent.COUNT_FAILURE:
                if self.state == STATE_CLOSED and self.policy.record(True, False, now):
                    return self._enter(STATE_OPEN, now)
                return None
            if intent == Intent.TRIP and self.state == STATE_CLOSED:
                return self._enter(STATE_OPEN, now)
            probe = intent in (Intent.PROBE_SUCCESS, Intent.PROBE_FAILURE)
            if probe and self.state == STATE_HALF_OPEN:
                return self._probe_result(intent == Intent.PROBE_FAILURE, now)
            return None

    def _probe_result(self, bad: bool, now: float) -> Transition | None:
        if bad:
            return self._enter(STATE_OPEN, now)
        self.successes += 1
        if self.successes >= self.success_threshold:
            return self._enter(STATE_CLOSED, now)
        return None

    # -- transitions -------------------------------------------------------------------

    def _enter(self, state: str, now: float) -> Transition | None:
        old = self.state
        self.state = state
        self.generation += 1
        self.updates += 1
        self._reset_counts(now)
        return Transition(old, state) if old != state else None

    def _reset_counts(self, now: float) -> None:
        self.opened_until = now + self.reset_timeout if self.state == STATE_OPEN else 0.0
        self.successes = 0
        self.busy_until = 0.0
        self.probes.clear()
        self.policy.reset()
        self._refresh()

    def _refresh(self) -> None:
        self.fast = self.state == STATE_CLOSED and self.forced is None
        if self.closed_permit.generation != self.generation:
            self.closed_permit = Permit(self.generation)

    def enter(self, state: str, now: float) -> Transition | None:
        """Move to ``state`` now (manual ``open()``, ``close()``, ``half_open()``)."""
        with self.lock:
            return self._enter(state, now)

    def set_forced(self, forced: str | None) -> None:
        """Force the circuit open, disable it (``"disabled"``), or neither (``None``)."""
        with self.lock:
            self.forced = forced
            self._refresh()

    def apply(self, snapshot: Snapshot, now: float, *, force: bool = False) -> Transition | None:
        """Adopt the shared store's state unless it is older than ours (or ``force``)."""
        with self.lock:
            return self._apply(snapshot, now, force=force)

    def rejoin(
        self, snapshot: Snapshot, now: float, *, force: bool, updates: int
    ) -> Transition | None:
        """Shared state answered a resync sent when :attr:`updates` was ``updates``.

        After an outage (``force``) the answer is followed whatever happened meanwhile.
        Otherwise another answer (a failure's reply, a message) may have arrived while
        the resync was in flight; the resync's view is then dropped unless it is of a
        later generation (every change of state starts one): a message published before
        the resync read may arrive after it, and must not win over it.
        """
        with self.lock:
            if not force and updates != self.updates and snapshot.generation <= self.generation:
                return None
            self.authoritative = False
            return self._apply(snapshot, now, force=force)

    def _apply(self, snapshot: Snapshot, now: float, *, force: bool) -> Transition | None:
        if snapshot.generation < self.generation and not force:
            return None  # an answer overtaken by a newer message
        self.updates += 1
        old = self.state
        if snapshot.generation != self.generation or snapshot.state != old:
            self.state = snapshot.state
            self.generation = snapshot.generation
            self._reset_counts(now)
        if snapshot.state == STATE_OPEN:
            self.opened_until = snapshot.deadline
        self.successes = snapshot.successes
        if isinstance(self.policy, ConsecutiveFailures):
            self.policy.count = snapshot.failures
        return Transition(old, snapshot.state) if old != snapshot.state else None

    def retry_after(self, now: float) -> float:
        """Seconds until an open circuit admits probes (0 when it admits calls now)."""
        if self.forced == "open":
            return self.reset_timeout
        if self.state == STATE_OPEN:
            return max(0.0, self.opened_until - now)
        return 0.0
