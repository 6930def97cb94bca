"""pybreaker code keeps working: listeners, errors, properties, isinstance."""

from __future__ import annotations

import threading
from typing import Any

import pybreaker
import pytest

from resilient.breaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from resilient.errors import CircuitOpenError, ConfigurationError
from tests.support.clock import FakeClock


class Recorder(pybreaker.CircuitBreakerListener):
    """A listener written for pybreaker, untouched."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def before_call(
        self, cb: pybreaker.CircuitBreaker, func: Any, *args: Any, **kwargs: Any
    ) -> None:
        self.events.append(("before", cb.name, func.__name__, args, kwargs))

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        self.events.append(("success", cb.name))

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.events.append(("failure", cb.name, type(exc).__name__, cb.fail_counter))

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        assert old_state is not None
        self.events.append(("state", old_state.name, new_state.name, cb.current_state))


def test_is_a_pybreaker_breaker_and_error(clock: FakeClock) -> None:
    """isinstance checks and `except CircuitBreakerError` written for pybreaker still work."""
    breaker = CircuitBreaker("compat", fail_max=1, clock=clock)
    assert isinstance(breaker, pybreaker.CircuitBreaker)
    breaker.open()
    with pytest.raises(pybreaker.CircuitBreakerError):
        breaker.call(lambda: None)


def test_every_public_pybreaker_member_is_overridden() -> None:
    """No pybreaker method can reach the pybreaker state this class never builds."""
    public = [name for name in vars(pybreaker.CircuitBreaker) if not name.startswith("_")]
    assert public  # pybreaker still has a public API to compare with
    inherited = [
        name
        for name in [*public, "__call__"]
        if getattr(CircuitBreaker, name) is getattr(pybreaker.CircuitBreaker, name)
    ]
    assert inherited == []


def test_pybreaker_listener_sees_the_whole_story(clock: FakeClock) -> None:
    """before_call/success/failure/state_change arrive with pybreaker's arguments."""
    listener = Recorder()
    breaker = CircuitBreaker("compat", fail_max=2, reset_timeout=5, clock=clock,
                             listeners=[listener])  # fmt: skip

    def work(value: int, *, fail: bool = False) -> int:
        if fail:
            raise ValueError("bad")
        return value

    breaker.call(work, 1)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad"):
            breaker.call(work, 2, fail=True)
    clock.advance(5)
    breaker.call(work, 3)
    assert listener.events == [
        ("before", "compat", "work", (1,), {}),
        ("success", "compat"),
        ("before", "compat", "work", (2,), {"fail": True}),
        ("failure", "compat", "ValueError", 0),
        ("before", "compat", "work", (2,), {"fail": True}),
        ("failure", "compat", "ValueError", 1),
        ("state", STATE_CLOSED, STATE_OPEN, STATE_OPEN),
        ("state", STATE_OPEN, STATE_HALF_OPEN, STATE_HALF_OPEN),
        ("before", "compat", "work", (3,), {}),
        ("success", "compat"),
        ("state", STATE_HALF_OPEN, STATE_CLOSED, STATE_CLOSED),
    ]


def test_listeners_run_outside_the_lock(clock: FakeClock) -> None:
    """A listener may call back into the breaker (it would deadlock under the lock)."""
    seen: list[str] = []

    class Reentrant(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            try:
                cb.admit()
            except CircuitOpenError:
                seen.append("rejected inside the listener")

    breaker = CircuitBreaker("compat", fail_max=1, clock=clock, listeners=[Reentrant()])
    worker = threading.Thread(
        target=lambda: breaker.record_failure(breaker.admit(), ValueError()), daemon=True
    )
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert seen == ["rejected inside the listener"]


def test_listener_management_and_exclusions(clock: FakeClock) -> None:
    """add/remove listeners and excluded exceptions, is_system_error, as in pybreaker."""
    breaker = CircuitBreaker("compat", clock=clock)
    first, second = Recorder(), Recorder()
    breaker.add_listener(first)
    breaker.add_listeners(second)
    breaker.remove_listener(first)
    assert breaker.listeners == (second,)
    breaker.add_excluded_exception(KeyError)
    breaker.add_excluded_exceptions(IndexError, lambda exc: "benign" in str(exc))
    assert not breaker.is_system_error(KeyError())
    assert not breaker.is_system_error(RuntimeError("benign"))
    assert breaker.is_system_error(RuntimeError("bad"))
    breaker.remove_excluded_exception(KeyError)
    assert breaker.is_system_error(KeyError())
    assert len(breaker.excluded_exceptions) == 2


def test_settable_properties(clock: FakeClock) -> None:
    """fail_max, reset_timeout and success_threshold can be changed, and are validated."""
    breaker = CircuitBreaker("compat", fail_max=5, clock=clock)
    breaker.fail_max = 1
    breaker.reset_timeout = 2
    breaker.success_threshold = 2
    assert (breaker.fail_max, breaker.reset_timeout, breaker.success_threshold) == (1, 2.0, 2)
    breaker.record_failure(breaker.admit(), ValueError())
    assert breaker.current_state == STATE_OPEN
    assert breaker.retry_after == pytest.approx(2)
    with pytest.raises(ConfigurationError, match="fail_max"):
        breaker.fail_max = 0
    with pytest.raises(AttributeError):
        breaker.name = "other"


def test_state_object_and_setter(clock: FakeClock) -> None:
    """state is a pybreaker state object with a name; assigning a name moves the circuit."""
    breaker = CircuitBreaker("compat", clock=clock)
    assert breaker.state.name == STATE_CLOSED
    breaker.state = STATE_OPEN
    assert breaker.state.name == STATE_OPEN
    breaker.state = STATE_HALF_OPEN
    assert breaker.current_state == STATE_HALF_OPEN
    breaker.half_open()
    breaker.state = STATE_CLOSED
    assert breaker.current_state == STATE_CLOSED
    assert breaker.open() is False  # pybreaker returns throw_new_error_on_trip
    assert repr(breaker) == "<CircuitBreaker 'compat' open>"
