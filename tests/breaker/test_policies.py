"""Trip policies: consecutive failures, and failure/slow rates over count and time windows."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.breaker import (
    STATE_CLOSED,
    STATE_OPEN,
    ConsecutiveFailures,
    CountWindow,
    TimeWindow,
)
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import Maker
from tests.support.clock import FakeClock

Outcome = tuple[bool, bool]  # (failed, slow)
outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=300)


def test_consecutive_counts_runs_of_failures() -> None:
    """fail_max failures in a row trip; a success in between resets."""
    policy = ConsecutiveFailures(3)
    assert [policy.record(True, False, 0) for _ in range(2)] == [False, False]
    assert policy.record(False, True, 0) is False
    assert policy.failures == 0
    assert [policy.record(True, False, 0) for _ in range(3)] == [False, False, True]


def test_count_window_waits_for_minimum_calls() -> None:
    """Below minimum_calls no rate is judged, even at 100 % failures."""
    policy = CountWindow(10, 5, failure_rate=50, slow_call_rate=100)
    assert [policy.record(True, False, 0) for _ in range(4)] == [False] * 4
    assert policy.record(True, False, 0) is True


def test_count_window_threshold_is_inclusive() -> None:
    """Exactly 50 % of 10 calls reaches a 50 % threshold (resilience4j: rate >= threshold)."""
    policy = CountWindow(10, 10, failure_rate=50, slow_call_rate=100)
    for index in range(9):
        assert policy.record(index < 4, False, 0) is False
    assert policy.record(True, False, 0) is True


def test_count_window_evicts_the_oldest() -> None:
    """Old failures leave the window: 3 failures then 4 successes in a window of 4."""
    policy = CountWindow(4, 4, failure_rate=75, slow_call_rate=100)
    for _ in range(3):
        policy.record(True, False, 0)
    assert policy.record(False, False, 0) is True  # 3 of 4
    assert policy.record(False, False, 0) is False  # 2 of 4
    assert (policy.calls, policy.failures) == (4, 2)


def test_slow_call_rate_trips_on_its_own() -> None:
    """Slow successes trip the slow-call threshold with no failure at all."""
    policy = CountWindow(4, 4, failure_rate=50, slow_call_rate=50)
    assert [policy.record(False, slow, 0) for slow in (True, False, True)] == [False] * 3
    assert policy.record(False, False, 0) is True


def test_time_window_forgets_old_seconds() -> None:
    """Outcomes older than the window drop out; a long gap empties it."""
    policy = TimeWindow(10, 2, failure_rate=50, slow_call_rate=100)
    policy.record(True, False, 100.0)
    policy.record(False, False, 105.5)
    assert (policy.calls, policy.failures) == (2, 1)
    policy.record(False, False, 110.0)  # second 100 left the window (101..110)
    assert (policy.calls, policy.failures) == (2, 0)
    policy.record(False, False, 500.0)
    assert (policy.calls, policy.failures) == (1, 0)


def test_time_window_counts_a_clock_step_back_in_the_newest_second() -> None:
    """A clock reading older than the newest bucket still counts (never lost, never IndexError)."""
    policy = TimeWindow(5, 1, failure_rate=100, slow_call_rate=100)
    policy.record(False, False, 50.0)
    policy.record(False, False, 49.0)
    assert policy.calls == 2


def test_reset_empties_every_policy() -> None:
    """reset() forgets everything."""
    for policy in (
        ConsecutiveFailures(2),
        CountWindow(5, 1, 50, 100),
        TimeWindow(5, 1, 50, 100),
    ):
        policy.record(True, True, 1.0)
        policy.reset()
        assert policy.failures == 0


def _rate_tripped(window: list[Outcome], minimum: int, failure: float, slow: float) -> bool:
    if len(window) < minimum:
        return False
    failed = sum(1 for item in window if item[0])
    slowed = sum(1 for item in window if item[1])
    return failed * 100 >= failure * len(window) or slowed * 100 >= slow * len(window)


@given(
    outcomes,
    st.integers(1, 20),
    st.integers(1, 20),
    st.floats(1, 100),
    st.floats(1, 100),
)
def test_count_window_matches_a_naive_window(
    history: list[Outcome], size: int, minimum: int, failure: float, slow: float
) -> None:
    """O(1) totals agree with recounting the last N outcomes after every call."""
    minimum = min(minimum, size)
    policy = CountWindow(size, minimum, failure, slow)
    for index, (failed, slowed) in enumerate(history):
        window = history[max(0, index + 1 - size) : index + 1]
        assert policy.record(failed, slowed, 0) == _rate_tripped(window, minimum, failure, slow)
        assert policy.failures == sum(1 for item in window if item[0])


@given(
    st.lists(
        st.tuples(st.floats(0, 30, allow_nan=False), st.booleans(), st.booleans()), max_size=200
    ),
    st.integers(1, 12),
    st.integers(1, 10),
)
def test_time_window_matches_a_naive_window(
    steps: list[tuple[float, bool, bool]], seconds: int, minimum: int
) -> None:
    """Bucketed totals agree with recounting the outcomes of the last N whole seconds."""
    policy = TimeWindow(seconds, minimum, 50, 80)
    now = 1000.0
    seen: list[tuple[int, bool, bool]] = []
    for gap, failed, slowed in steps:
        now += gap
        second = math.floor(now)
        seen.append((second, failed, slowed))
        window = [(f, s) for (at, f, s) in seen if at > second - seconds]
        assert policy.record(failed, slowed, now) == _rate_tripped(window, minimum, 50, 80)
        assert policy.calls == len(window)


async def test_rate_policy_through_a_breaker(make: Maker) -> None:
    """policy="rate": 5 of 10 calls failing opens the circuit, whatever the storage."""
    breaker = make(policy="rate", window_size=10, minimum_calls=10, failure_rate=50)
    for index in range(9):
        permit = breaker.admit()
        if index < 4:
            breaker.record_failure(permit, ValueError())
        else:
            breaker.record_success(permit)
    assert breaker.current_state == STATE_CLOSED
    assert breaker.fail_counter == 4
    breaker.record_failure(breaker.admit(), ValueError())
    assert breaker.current_state == STATE_OPEN


async def test_slow_calls_open_a_rate_breaker(make: Maker, clock: FakeClock) -> None:
    """Calls slower than slow_call_duration count as slow, measured on the injected clock."""
    breaker = make(
        policy="rate", window_size=4, minimum_calls=4, slow_call_rate=50, slow_call_duration=2
    )

    @breaker
    def call(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    assert [call(3), call(0.1), call(2)] == ["done"] * 3
    assert breaker.current_state == STATE_CLOSED
    call(0)  # 2 slow of 4
    assert breaker.current_state == STATE_OPEN
    with pytest.raises(CircuitOpenError):
        call(0)


async def test_a_slow_probe_reopens_a_rate_breaker(make: Maker, clock: FakeClock) -> None:
    """Under the rate policy a probe that succeeds slowly is not a recovery."""
    breaker = make(
        policy="rate", window_size=2, minimum_calls=1, failure_rate=50, slow_call_duration=1,
        reset_timeout=5,
    )  # fmt: skip
    breaker.record_failure(breaker.admit(), ValueError())
    clock.advance(5)
    probe = breaker.admit()
    clock.advance(1.5)
    breaker.record_success(probe)
    assert breaker.current_state == STATE_OPEN


async def test_time_window_through_a_breaker(make: Maker, clock: FakeClock) -> None:
    """A time window forgets failures older than window_size seconds."""
    breaker = make(
        policy="rate", window_type="time", window_size=10, minimum_calls=4, failure_rate=50
    )
    for _ in range(3):
        breaker.record_failure(breaker.admit(), ValueError())
    clock.advance(10)  # those failures leave the window
    breaker.record_failure(breaker.admit(), ValueError())
    for _ in range(2):
        breaker.record_success(breaker.admit())
    assert breaker.current_state == STATE_CLOSED
    breaker.record_failure(breaker.admit(), ValueError())  # 2 of 4 in the window
    assert breaker.current_state == STATE_OPEN
