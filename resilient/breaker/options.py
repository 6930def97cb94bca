"""Breaker options: explicit arguments over ``RESILIENT_BREAKER_*`` settings, validated.

Strictly private. Settings are read when a breaker is built (never at import), with the
per-name overrides of its name applied (``RESILIENT_BREAKER__PAYMENTS__FAIL_MAX``); an
explicit argument always wins. Every value is checked here, so a bad one raises
:class:`~resilient.errors.ConfigurationError` at construction, naming it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from resilient import _parsers
from resilient.breaker.policies import ConsecutiveFailures, CountWindow, TimeWindow, TripPolicy
from resilient.config import BreakerSettings, Settings
from resilient.errors import ConfigurationError

_INTS = ("fail_max", "success_threshold", "permitted_calls", "window_size", "minimum_calls")
_DURATIONS = ("reset_timeout", "probe_timeout", "slow_call_duration", "resync_interval")
_RATES = ("failure_rate", "slow_call_rate")
_BOOLS = ("shared", "force_open", "disabled")
_CHOICES = {"policy": ("consecutive", "rate"), "window_type": ("count", "time")}


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

    def build_policy(self) -> TripPolicy:
        """The trip policy these options describe."""
        if self.policy == "consecutive":
            return ConsecutiveFailures(self.fail_max)
        window = CountWindow if self.window_type == "count" else TimeWindow
        return window(self.window_size, self.minimum_calls, self.failure_rate,
                      self.slow_call_rate)  # fmt: skip


def resolve(name: str, explicit: dict[str, Any], settings: Settings) -> BreakerOptions:
    """Merge explicit arguments (``None`` = not given) over the settings of ``name``.

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
        raise ConfigurationError(
            "minimum_calls", options.minimum_calls,
            f"at most window_size ({options.window_size}) for a count window",
        )  # fmt: skip
    if options.probe_timeout <= 0:
        raise ConfigurationError("probe_timeout", options.probe_timeout, "more than 0 seconds")
    return options


def check(name: str, value: Any) -> Any:
    """``value`` validated (and normalised) as the option ``name``."""
    if name in _INTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(name, value, "an integer of at least 1")
        return value
    if name in _DURATIONS:
        seconds = value.total_seconds() if isinstance(value, timedelta) else value
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ConfigurationError(name, value, "a duration in seconds (>= 0) or a timedelta")
        return float(seconds)
    if name in _RATES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
            raise ConfigurationError(name, value, "a percentage above 0 and at most 100")
        return float(value)
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise ConfigurationError(name, value, "True or False")
        return value
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ConfigurationError(name, value, "one of " + ", ".join(_CHOICES[name]))
        return value
    # The only other field is the backend URL.
    try:
        return _parsers.OPTIONAL_BACKEND_URL.parse(str(value))
    except ValueError:
        raise ConfigurationError(name, value, _parsers.OPTIONAL_BACKEND_URL.expected) from None
