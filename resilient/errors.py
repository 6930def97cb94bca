"""The exceptions resilient raises.

Every exception derives from :class:`ResilientError`, so one ``except`` clause catches
them all::

    ResilientError
    ├── ConfigurationError        (also a ValueError)
    ├── BackendError              (the client's exception is the __cause__)
    │   └── BackendUnavailable    (skipped at once: the backend's guard is open)
    ├── RateLimitExceeded         (limit, retry_after)
    └── CircuitOpenError          (name, retry_after; also a pybreaker.CircuitBreakerError)

The user's own exceptions are never wrapped: they propagate unchanged.
"""

from __future__ import annotations

import pybreaker

from resilient._secrets import mask_text, mask_value

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "CircuitOpenError",
    "ConfigurationError",
    "RateLimitExceeded",
    "ResilientError",
]


class ResilientError(Exception):
    """Base class of every exception raised by resilient.

    .. versionadded:: 0.1
    """


class ConfigurationError(ResilientError, ValueError):
    """A setting has a value that cannot be used; raised at construction, never later.

    The message names the variable (or argument), the value given and what was expected.
    Credentials never show: a password in a URL (``user:pw@``, ``?password=``) is masked
    in the message, in ``args`` and in ``value``, which is then the masked text.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        # Masked here, once, so that no caller can forget: these errors end up in logs.
        self.name = name
        self.value = mask_value(value)
        self.expected = mask_text(expected)
        # A masked non-string value is its masked repr already: shown without quotes.
        masked_repr = not isinstance(value, str) and self.value is not value
        shown = _Shown(str(self.value)) if masked_repr else self.value
        super().__init__(f"{name} has value {shown!r}; expected {self.expected}")

    def __reduce__(self) -> tuple[type[ConfigurationError], tuple[str, object, str]]:
        # The message is not the constructor's signature; rebuild from the fields so the
        # error survives pickling (process pools, multiprocessing queues).
        return (type(self), (self.name, self.value, self.expected))


class _Shown(str):
    """Text shown as it is in a message: the masked repr of a value is already a repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class BackendError(ResilientError):
    """A backend operation failed or timed out; ``__cause__`` holds the client's error.

    .. versionadded:: 0.1
    """


class BackendUnavailable(BackendError):
    """The backend was not even tried: its guard saw it failing and is open.

    .. versionadded:: 0.1
    """


class RateLimitExceeded(ResilientError):
    """A call or request went over a rate limit.

    Attributes:
        limit: the limit that was breached, in ``limits``' syntax (``"10/second"``).
        retry_after: seconds until the limit admits the caller again.

    .. versionadded:: 0.1
    """

    def __init__(self, limit: str, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(f"rate limit {limit} exceeded; retry after {retry_after:.3f}s")

    def __reduce__(self) -> tuple[type[RateLimitExceeded], tuple[str, float]]:
        return (type(self), (self.limit, self.retry_after))


class CircuitOpenError(ResilientError, pybreaker.CircuitBreakerError):
    """A circuit breaker rejected a call because it is open (or its probes are taken).

    It is also a ``pybreaker.CircuitBreakerError``, so code written for pybreaker keeps
    catching it. Built cheaply: no traceback formatting, no logging per rejection.

    Attributes:
        name: the breaker's name.
        retry_after: seconds until the breaker lets a probe through.

    .. versionadded:: 0.1
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        # The fields are the args, so the error pickles (it crosses process pools), and
        # the message is formatted only when shown: rejections are meant to be cheap.
        super().__init__(name, retry_after)

    def __str__(self) -> str:
        return f"circuit {self.name!r} is open; retry after {self.retry_after:.3f}s"
