"""The exception tree: what each error carries, and that each survives pickling."""

from __future__ import annotations

import pickle

import pybreaker
import pytest

from resilient.errors import (
    BackendError,
    BackendUnavailable,
    CircuitOpenError,
    ConfigurationError,
    RateLimitExceeded,
    ResilientError,
)


@pytest.mark.parametrize(
    ("error", "fields"),
    [
        (
            ConfigurationError("RESILIENT_CACHE_TTL", "soon", "a duration"),
            {"name": "RESILIENT_CACHE_TTL", "value": "soon", "expected": "a duration"},
        ),
        (RateLimitExceeded("10/second", 0.25), {"limit": "10/second", "retry_after": 0.25}),
        (CircuitOpenError("payments", 3.5), {"name": "payments", "retry_after": 3.5}),
        (BackendUnavailable("redis is down"), {"args": ("redis is down",)}),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_errors_pickle_with_their_fields_and_message(
    error: ResilientError, fields: dict[str, object]
) -> None:
    """Errors cross process boundaries (pools, queues) intact."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    for name, value in fields.items():
        assert getattr(copy, name) == value


def test_messages_name_what_went_wrong() -> None:
    """The message says the variable, the value and the expectation; or limit and wait."""
    assert str(ConfigurationError("RESILIENT_CACHE_TTL", "soon", "a duration")) == (
        "RESILIENT_CACHE_TTL has value 'soon'; expected a duration"
    )
    assert str(RateLimitExceeded("10/second", 0.25)) == (
        "rate limit 10/second exceeded; retry after 0.250s"
    )


def test_the_tree() -> None:
    """One except clause catches them all; compatibility bases are kept."""
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(BackendUnavailable, BackendError)
    assert issubclass(CircuitOpenError, pybreaker.CircuitBreakerError)
    for kind in (ConfigurationError, BackendError, RateLimitExceeded, CircuitOpenError):
        assert issubclass(kind, ResilientError)
