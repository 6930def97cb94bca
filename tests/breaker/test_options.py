"""Options from arguments and RESILIENT_BREAKER_* settings; the named registry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from resilient.breaker import (
    STATE_OPEN,
    BreakerRegistry,
    CircuitBreaker,
    CountWindow,
    TimeWindow,
    all_breakers,
    circuit_breaker,
    get_breaker,
    remove_breaker,
)
from resilient.config import Settings
from resilient.errors import CircuitOpenError, ConfigurationError


def test_settings_are_read_when_built_with_per_name_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Global env, per-name env and explicit arguments, in rising precedence."""
    monkeypatch.setenv("RESILIENT_BREAKER_FAIL_MAX", "2")
    monkeypatch.setenv("RESILIENT_BREAKER_RESET_TIMEOUT", "45s")
    monkeypatch.setenv("RESILIENT_BREAKER__PAYMENTS_API__FAIL_MAX", "4")
    assert CircuitBreaker("search").fail_max == 2
    payments = CircuitBreaker("payments-api")
    assert (payments.fail_max, payments.reset_timeout) == (4, 45.0)
    assert CircuitBreaker("payments-api", fail_max=9).fail_max == 9


def test_switches_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """RESILIENT_BREAKER_FORCE_OPEN and _DISABLED apply to breakers built afterwards."""
    monkeypatch.setenv("RESILIENT_BREAKER__MAINTENANCE__FORCE_OPEN", "true")
    monkeypatch.setenv("RESILIENT_BREAKER_DISABLED", "1")
    with pytest.raises(CircuitOpenError):
        CircuitBreaker("maintenance").call(lambda: None)
    off = CircuitBreaker("other", fail_max=1)
    for _ in range(3):
        with pytest.raises(ZeroDivisionError):
            off.call(lambda: 1 / 0)
    assert off.forced == "disabled"
    assert CircuitBreaker("explicit", disabled=False).forced is None


def test_rate_policy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """policy, window type and sizes come through as the matching window."""
    monkeypatch.setenv("RESILIENT_BREAKER_POLICY", "rate")
    monkeypatch.setenv("RESILIENT_BREAKER_WINDOW_TYPE", "time")
    monkeypatch.setenv("RESILIENT_BREAKER_WINDOW_SIZE", "30")
    breaker = CircuitBreaker("rated")
    assert isinstance(breaker._machine.policy, TimeWindow)
    assert breaker._machine.policy.seconds == 30
    counted = CircuitBreaker("counted", window_type="count", window_size=20, minimum_calls=5)
    assert isinstance(counted._machine.policy, CountWindow)


def test_durations_accept_timedelta() -> None:
    """reset_timeout=timedelta(minutes=2) is 120 seconds."""
    breaker = CircuitBreaker("td", reset_timeout=timedelta(minutes=2), probe_timeout=1.5)
    assert breaker.reset_timeout == 120.0
    assert breaker.options.probe_timeout == 1.5


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"fail_max": 0}, "fail_max"),
        ({"fail_max": True}, "fail_max"),
        ({"reset_timeout": -1}, "reset_timeout"),
        ({"reset_timeout": float("nan")}, "reset_timeout"),
        ({"probe_timeout": 0}, "probe_timeout"),
        ({"failure_rate": 0}, "failure_rate"),
        ({"slow_call_rate": 101}, "slow_call_rate"),
        ({"policy": "sometimes"}, "policy"),
        ({"shared": "yes"}, "shared"),
        ({"url": "ftp://nowhere"}, "url"),
        ({"policy": "rate", "window_size": 5, "minimum_calls": 10}, "minimum_calls"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], named: str) -> None:
    """Each bad value raises ConfigurationError naming the argument."""
    with pytest.raises(ConfigurationError) as caught:
        CircuitBreaker("bad", **options)
    assert caught.value.name == named


def test_bad_name_and_bad_environment() -> None:
    """An empty name fails; so does an env value, naming the variable."""
    with pytest.raises(ConfigurationError, match="name"):
        CircuitBreaker("")
    with pytest.raises(ConfigurationError, match="RESILIENT_BREAKER_FAIL_MAX"):
        Settings.from_env({"RESILIENT_BREAKER_FAIL_MAX": "many"})


def test_shared_state_needs_redis() -> None:
    """shared=True over the memory backend is refused, naming the URL setting."""
    with pytest.raises(ConfigurationError, match="RESILIENT_BREAKER_URL"):
        CircuitBreaker("shared", shared=True, url="memory://")


def test_registry_returns_one_breaker_per_name() -> None:
    """get_breaker: same name, same object; conflicting options are an error."""
    first = get_breaker("inventory", fail_max=3)
    assert get_breaker("inventory") is first
    assert get_breaker("inventory", fail_max=3) is first
    with pytest.raises(ConfigurationError, match="inventory"):
        get_breaker("inventory", fail_max=4)
    assert all_breakers() == {"inventory": first}
    assert remove_breaker("inventory") is first
    assert remove_breaker("inventory") is None
    assert get_breaker("inventory") is not first


def test_decorator_builds_its_breaker_on_the_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decorating reads no settings; the first call does, and shares the named breaker."""

    @circuit_breaker("ledger", reset_timeout=5)
    def read() -> str:
        return "row"

    @circuit_breaker("ledger", reset_timeout=5)
    def write() -> str:
        raise OSError("disk full")

    assert "ledger" not in all_breakers()
    monkeypatch.setenv("RESILIENT_BREAKER_FAIL_MAX", "1")  # set after decoration: still used
    assert read() == "row"
    with pytest.raises(OSError, match="disk full"):
        write()
    assert get_breaker("ledger").current_state == STATE_OPEN
    with pytest.raises(CircuitOpenError):
        read()


def test_bare_decorator_is_named_after_the_function() -> None:
    """@circuit_breaker without arguments names the breaker module.qualname."""

    @circuit_breaker
    def lookup() -> int:
        return 1

    assert lookup() == 1
    name = f"{__name__}.test_bare_decorator_is_named_after_the_function.<locals>.lookup"
    assert name in all_breakers()


def test_decorator_fallback_and_early_checks() -> None:
    """fallback= belongs to the decoration; bad option values fail when decorating."""

    @circuit_breaker("fx", force_open=True, fallback=1.0)
    def rate() -> float:
        return 1.1

    assert rate() == 1.0
    with pytest.raises(ConfigurationError, match="fail_max"):
        circuit_breaker("fx2", fail_max=-1)
    with pytest.raises(ConfigurationError, match="name"):
        circuit_breaker(42)  # type: ignore[call-overload]


def test_a_registry_builds_once_with_its_defaults_and_refuses_other_options() -> None:
    """What get_breaker and each Flask or FastAPI app use: strict by default, where asking
    again without options must match too; lenient, where no options means "as built"."""
    settings = Settings.from_env({"RESILIENT_BREAKER_RESET_TIMEOUT": "7s"})
    registry = BreakerRegistry(settings=settings)
    built = registry.get("payments", {"fail_max": 2})
    assert built.reset_timeout == 7.0  # the registry's settings apply
    assert built.fail_max == 2
    assert registry.get("payments", {"fail_max": 2}) is built
    with pytest.raises(ConfigurationError, match="options of breaker 'payments'"):
        registry.get("payments", {"fail_max": 3})
    with pytest.raises(ConfigurationError, match="options of breaker 'payments'"):
        registry.get("payments", {})
    assert registry.get("payments", {}, strict=False) is built
    assert registry.all() == {"payments": built}
    assert registry.pop("payments") is built
    assert registry.pop("payments") is None
    other = registry.get("inventory", {})
    assert registry.clear() == [other]
    assert registry.all() == {}
    built.shutdown()
    other.shutdown()


def test_a_combination_error_names_the_variables_it_came_from() -> None:
    """minimum_calls above window_size from the environment names both variables."""
    settings = Settings.from_env({
        "RESILIENT_BREAKER_POLICY": "rate", "RESILIENT_BREAKER_WINDOW_SIZE": "20",
        "RESILIENT_BREAKER__PAYMENTS__MINIMUM_CALLS": "50",
    })  # fmt: skip
    with pytest.raises(ConfigurationError) as caught:
        CircuitBreaker("payments", settings=settings)
    assert caught.value.name == "RESILIENT_BREAKER__PAYMENTS__MINIMUM_CALLS"
    assert "at most RESILIENT_BREAKER_WINDOW_SIZE (20)" in caught.value.expected
    with pytest.raises(ConfigurationError) as explicit:
        CircuitBreaker("payments", minimum_calls=30, settings=settings)
    assert explicit.value.name == "minimum_calls"


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("reset_timeout", 0, True),
        ("reset_timeout", 1e20, False),  # past 10 years: a mistake
        ("probe_timeout", 0, False),
        ("slow_call_duration", timedelta(days=1), True),
        ("failure_rate", float("nan"), False),
        ("window_size", 3.0, False),
        ("force_open", 1, True),
    ],
)
def test_a_keyword_and_its_variable_accept_the_same_values(
    field: str, value: Any, accepted: bool
) -> None:
    """CircuitBreaker(field=v) works exactly when RESILIENT_BREAKER_FIELD=v does."""
    variable = f"RESILIENT_BREAKER_{field.upper()}"

    def from_code() -> CircuitBreaker:
        options: dict[str, Any] = {field: value}
        return CircuitBreaker("same", **options)

    def from_config() -> CircuitBreaker:
        return CircuitBreaker("same", settings=Settings.from_env({}, config={variable: value}))

    for name, build in ((field, from_code), (variable, from_config)):
        if accepted:
            build().shutdown()
            continue
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert caught.value.name == name
