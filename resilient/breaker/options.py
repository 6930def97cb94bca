"""Breaker options: explicit arguments over ``RESILIENT_BREAKER_*`` settings, validated.

Strictly private. Settings are read when a breaker is built (never at import), with the
per-name overrides of its name applied (``RESILIENT_BREAKER__PAYMENTS__FAIL_MAX``); an
explicit argument always wins. Every value is checked here, so a bad one raises
:class:`~resilient.errors.ConfigurationError` at construction, naming it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilient._secrets import mask_url
from resilient.breaker.policies import ConsecutiveFailures, CountWindow, TimeWindow, TripPolicy
from resilient.config import BreakerSettings, Settings, check_option, check_option_names
from resilient.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class BreakerOptions:
    """The effective options of one breaker."""

    name: str
    policy: str
    fail_max: int
    reset_timeout: float
    success_threshold: int
    permitted_calls: int
    probe_timeout: float
    failure_rate: float
    slow_call_rate: float
    slow_call_duration: float
    window_type: str
    window_size: int
    minimum_calls: int
    force_open: bool
    disabled: bool
    shared: bool
    url: str
    resync_interval: float

    def __repr__(self) -> str:
        # The generated repr would show the backend URL's password.
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            shown.append(f"{field.name}={mask_url(value) if field.name == 'url' else value!r}")
        return f"BreakerOptions({', '.join(shown)})"

    def build_policy(self) -> TripPolicy:
        """The trip policy these options describe."""
        if self.policy == "consecutive":
            return ConsecutiveFailures(self.fail_max)
        window = CountWindow if self.window_type == "count" else TimeWindow
        return window(self.window_size, self.minimum_calls, self.failure_rate,
                      self.slow_call_rate)  # fmt: skip


def resolve(name: str, explicit: dict[str, Any], settings: Settings) -> BreakerOptions:
    """Merge explicit arguments (``None`` = not given) over the settings of ``name``.

    Settings were checked when they were read; arguments are checked here by the same
    parsers (:func:`check`). An error about a value names the keyword if it came from
    code, the variable (``RESILIENT_BREAKER__<NAME>__<FIELD>``) if from the environment.

    Raises:
        ConfigurationError: an argument or a combination of values cannot be used.
    """
    base: BreakerSettings = settings.breaker_for(name)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(BreakerSettings):
        given = explicit.get(field.name)
        values[field.name] = (
            getattr(base, field.name) if given is None else check(field.name, given)
        )
    url = values.pop("url") or settings.backend_url
    options = BreakerOptions(name=name, url=url, **values)
    count_window = options.policy == "rate" and options.window_type == "count"
    if count_window and options.minimum_calls > options.window_size:

        def origin(field: str) -> str:
            given = explicit.get(field) is not None
            return field if given else settings.origin_of("breaker", field, name)

        raise ConfigurationError(
            origin("minimum_calls"), options.minimum_calls,
            f"at most {origin('window_size')} ({options.window_size}) for a count window",
        )  # fmt: skip
    return options


def check(name: str, value: Any) -> Any:
    """``value`` validated (and normalised) as the option ``name``.

    The parser is that of the variable ``RESILIENT_BREAKER_<NAME>``: a keyword accepts
    what the environment accepts (a timedelta or seconds for durations, in code).
    """
    return check_option("breaker", name, value)


def check_names(options: Mapping[str, Any]) -> None:
    """Refuse options :class:`CircuitBreaker` does not take, suggesting the closest name.

    ``@circuit_breaker`` builds its breaker at the first call; without this, a misspelt
    option failed only then.
    """
    from resilient.breaker.breaker import CircuitBreaker  # it imports this module

    known = frozenset(inspect.signature(CircuitBreaker).parameters) - {"name"}
    check_option_names(options, known, "circuit_breaker")
