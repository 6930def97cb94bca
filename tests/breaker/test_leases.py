"""Probe leases in shared state: one id per acquisition, and none left behind by a
caller cancelled while taking one."""

from __future__ import annotations

import contextlib

import pytest

from resilient.breaker import CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import Maker
from tests.support.clock import FakeClock


class Boom(Exception):
    """The dependency failed."""


def _probes(breaker: CircuitBreaker, attempts: int) -> int:
    """Admissions of ``attempts`` tried that got a probe lease (held, never reported)."""
    admitted = 0
    for _ in range(attempts):
        with contextlib.suppress(CircuitOpenError):
            admitted += 1 if breaker.admit().lease else 0
    return admitted


def test_two_breakers_of_one_name_in_one_process_never_share_a_lease(
    make_shared: Maker, clock: FakeClock
) -> None:
    """Two apps of one process build the breaker "payments" each; permitted_calls=2 admits
    2 probes between them, not one per breaker whose lease numbers coincide."""
    first = make_shared("payments", fail_max=1, reset_timeout=10, permitted_calls=2)
    second = make_shared("payments", fail_max=1, reset_timeout=10, permitted_calls=2)
    first.record_failure(first.admit(), Boom())
    second.resync()
    clock.advance(10)
    assert _probes(first, 1) == 1
    assert _probes(second, 2) == 1
    assert _probes(first, 1) == 0


@pytest.mark.parametrize("permitted", [1, 3])
def test_leases_taken_one_at_a_time_by_rebuilt_breakers_stop_at_permitted(
    make_shared: Maker, clock: FakeClock, permitted: int
) -> None:
    """Five breakers of one name, each built after the previous took its probe: exactly
    ``permitted`` probes in all."""
    opener = make_shared("search", fail_max=1, reset_timeout=10, permitted_calls=permitted)
    opener.record_failure(opener.admit(), Boom())
    clock.advance(10)
    admitted = 0
    for _ in range(5):
        breaker = make_shared("search", fail_max=1, reset_timeout=10, permitted_calls=permitted)
        admitted += _probes(breaker, 1)
    assert admitted == permitted
