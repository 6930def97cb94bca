"""Hypothesis drives a breaker and a small reference model with the same steps.

Steps: admit, report a held permit (success, failure, ignored, or never), let time pass,
open or close by hand. After every step the breaker and the model must agree on the
state, the counters and every admission decision (including ``retry_after``). It runs
in memory and over fakeredis shared state (scripts, mirror and leases).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fakeredis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient.backends.redis import RedisBackend
from resilient.breaker import CircuitBreaker, Permit
from resilient.errors import CircuitOpenError
from tests.support.clock import FakeClock

FAIL_MAX, RESET, THRESHOLD, PERMITTED, PROBE_TIMEOUT = 2, 3.0, 2, 2, 1.5


@dataclass
class Model:
    """The breaker as a specification: no locks, no mirrors, no optimisations."""

    state: str = "closed"
    generation: int = 0
    until: float = 0.0
    failures: int = 0
    successes: int = 0
    leases: dict[int, float] = field(default_factory=dict)
    issued: int = 0

    def admit(self, now: float) -> tuple[int, int] | float:
        """(generation, lease) when admitted, else the retry_after of the rejection."""
        if self.state == "closed":
            return (self.generation, 0)
        if self.state == "open":
            if now < self.until:
                return self.until - now
            self.move("half-open", now)
        self.leases = {lease: end for lease, end in self.leases.items() if end > now}
        if len(self.leases) >= PERMITTED:
            return min(min(self.leases.values()) - now, RESET)
        self.issued += 1
        self.leases[self.issued] = now + PROBE_TIMEOUT
        return (self.generation, self.issued)

    def report(self, generation: int, lease: int, outcome: str, now: float) -> None:
        if generation != self.generation:
            return
        if lease:
            self.leases.pop(lease, None)
            if outcome == "ignored":
                return
            if outcome == "failure":
                self.move("open", now)
                return
            self.successes += 1
            if self.successes >= THRESHOLD:
                self.move("closed", now)
            return
        if outcome == "ignored":
            return
        if outcome == "success":
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= FAIL_MAX:
            self.move("open", now)

    def move(self, state: str, now: float) -> None:
        self.state = state
        self.generation += 1
        self.until = now + RESET if state == "open" else 0.0
        self.failures = self.successes = 0
        self.leases.clear()


class BreakerVersusModel(RuleBasedStateMachine):
    """Subclassed per storage below."""

    storage = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.model = Model()
        self.held: list[tuple[Permit, tuple[int, int]]] = []
        options: dict[str, object] = {}
        if self.storage == "fakeredis":
            options["backend"] = RedisBackend(fakeredis.FakeRedis())
            options["resync_interval"] = 0
        self.breaker = CircuitBreaker(
            "model", fail_max=FAIL_MAX, reset_timeout=RESET, success_threshold=THRESHOLD,
            permitted_calls=PERMITTED, probe_timeout=PROBE_TIMEOUT, clock=self.clock,
            **options,  # type: ignore[arg-type]
        )  # fmt: skip

    def teardown(self) -> None:
        self.breaker.shutdown()

    @rule()
    def admit(self) -> None:
        expected = self.model.admit(self.clock())
        if isinstance(expected, float):
            with pytest.raises(CircuitOpenError) as caught:
                self.breaker.admit()
            assert caught.value.retry_after == pytest.approx(expected)
            return
        permit = self.breaker.admit()
        assert bool(permit.lease) == bool(expected[1])
        self.held.append((permit, expected))

    @precondition(lambda self: bool(self.held))
    @rule(
        newest=st.booleans(),
        index=st.integers(min_value=0),
        outcome=st.sampled_from(["success", "failure", "failure", "ignored", "never"]),
    )
    def report(self, newest: bool, index: int, outcome: str) -> None:
        # Mostly the newest permit (a probe, right after it was admitted); sometimes an old
        # one, whose generation may have passed.
        held = self.held.pop(-1 if newest else index % len(self.held))
        if outcome == "never":
            return  # a caller that died without reporting
        permit, (generation, lease) = held
        self.model.report(generation, lease, outcome, self.clock())
        if outcome == "success":
            self.breaker.record_success(permit)
        elif outcome == "failure":
            self.breaker.record_failure(permit, RuntimeError())
        else:
            self.breaker.record_failure(permit, KeyboardInterrupt())

    @rule(seconds=st.sampled_from([0.5, 1.0, 1.5, 3.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["open", "close", *["nothing"] * 8]))
    def by_hand(self, action: str) -> None:
        # Rare on purpose: an open circuit rejects, and rejections teach little.
        if action == "open":
            self.model.move("open", self.clock())
            self.breaker.open()
        elif action == "close":
            self.model.move("closed", self.clock())
            self.breaker.close()

    @invariant()
    def agree(self) -> None:
        assert self.breaker.current_state == self.model.state
        if self.model.state == "closed":
            assert self.breaker.fail_counter == self.model.failures
        if self.model.state == "half-open":
            assert self.breaker.success_counter == self.model.successes


class FakeredisBreakerVersusModel(BreakerVersusModel):
    storage = "fakeredis"


TestMemoryBreakerAgainstModel = BreakerVersusModel.TestCase
TestMemoryBreakerAgainstModel.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestFakeredisBreakerAgainstModel = FakeredisBreakerVersusModel.TestCase
TestFakeredisBreakerAgainstModel.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
