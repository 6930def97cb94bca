"""All three decorators on methods, classmethods and staticmethods, stacked either way.

The decorated callables keep their names, signatures and what ``inspect`` reports, and
each call still goes through the feature (a count proves it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from resilient import CircuitBreaker, RateLimiter, cached, circuit_breaker, rate_limited
from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded


def make_class(decorate: Callable[[Any], Any], calls: list[str]) -> Any:
    """A class whose every kind of method goes through ``decorate`` (outside and inside)."""

    class Service:
        @decorate
        @classmethod
        def outer_class(cls, x: int) -> int:
            calls.append("outer_class")
            return x

        @classmethod
        @decorate
        def inner_class(cls, x: int) -> int:
            calls.append("inner_class")
            return x

        @decorate
        @staticmethod
        def outer_static(x: int) -> int:
            calls.append("outer_static")
            return x

        @staticmethod
        @decorate
        def inner_static(x: int) -> int:
            calls.append("inner_static")
            return x

        @decorate
        @classmethod
        async def outer_async(cls, x: int) -> int:
            calls.append("outer_async")
            return x

    return Service


METHODS = ["outer_class", "inner_class", "outer_static", "inner_static"]


def test_breaker_guards_every_kind_of_method() -> None:
    """An open breaker rejects each method, however the descriptors were stacked."""
    calls: list[str] = []
    breaker = CircuitBreaker("methods")
    service = make_class(breaker, calls)
    for method in METHODS:
        assert getattr(service, method)(7) == 7
        assert getattr(service(), method)(8) == 8
    assert calls == [name for name in METHODS for _ in range(2)]
    breaker.open()
    for method in METHODS:
        with pytest.raises(CircuitOpenError):
            getattr(service, method)(7)
    assert len(calls) == 2 * len(METHODS)


async def test_breaker_guards_an_async_classmethod() -> None:
    calls: list[str] = []
    breaker = CircuitBreaker("async-methods")
    service = make_class(breaker, calls)
    assert await service.outer_async(3) == 3
    assert inspect.iscoroutinefunction(service.outer_async)
    breaker.open()
    with pytest.raises(CircuitOpenError):
        await service.outer_async(3)
    assert calls == ["outer_async"]


def test_rate_limit_counts_calls_of_every_kind_of_method() -> None:
    """One shared limiter of 4 calls: the fifth call, whatever the method, is refused."""
    calls: list[str] = []
    limiter = RateLimiter("4/minute", name="methods")
    service = make_class(rate_limited(limiter=limiter), calls)
    for method in METHODS:
        assert getattr(service, method)(1) == 1
    with pytest.raises(RateLimitExceeded):
        service.outer_static(1)
    assert calls == METHODS


def test_cache_answers_every_kind_of_method_from_the_cache() -> None:
    calls: list[str] = []
    service = make_class(cached(ttl=60), calls)
    for method in METHODS:
        assert getattr(service, method)(5) == 5
        assert getattr(service(), method)(5) == 5  # same arguments: a hit
    assert calls == METHODS


@pytest.mark.parametrize(
    "decorate",
    [cached(ttl=60), CircuitBreaker("signatures"), rate_limited("100/second")],
    ids=["cached", "breaker", "rate_limited"],
)
def test_names_signatures_and_inspect_survive(decorate: Callable[[Any], Any]) -> None:
    service = make_class(decorate, [])
    for method in [*METHODS, "outer_async"]:
        bound = getattr(service, method)
        assert bound.__name__ == method
        assert str(inspect.signature(bound)) == "(x: 'int') -> 'int'"  # postponed annotations
    assert inspect.iscoroutinefunction(service.outer_async)
    assert not inspect.iscoroutinefunction(service.outer_class)


@pytest.mark.parametrize(
    ("decorate", "close"),
    [
        # Type checkers catch these too (hence the ignores); the run time must as well.
        (lambda: cached(stale_while_revalidat=3), "stale_while_revalidate"),  # type: ignore[call-overload]
        (lambda: cached(ttl=5, hmac_algoritm="sha256"), "hmac_algorithm"),  # type: ignore[call-overload]
        (lambda: circuit_breaker("payments", fial_max=3), "fail_max"),
        (lambda: circuit_breaker(reset_timout=3), "reset_timeout"),
        (lambda: rate_limited("1/second", fail_mod="open"), "fail_mode"),  # type: ignore[arg-type]
    ],
    ids=["cached", "cached-with-ttl", "breaker", "breaker-unnamed", "rate_limited"],
)
def test_unknown_options_fail_at_decoration_with_the_close_name(
    decorate: Callable[[], Any], close: str
) -> None:
    """A misspelt option fails when the decorator is written, suggesting the real one."""
    with pytest.raises(ConfigurationError, match=f"did you mean {close}\\?"):
        decorate()


def test_when_settings_are_read_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only unknown options fail early: @cached reads the environment at decoration,
    @circuit_breaker and @rate_limited at their first call, as before."""
    monkeypatch.setenv("RESILIENT_BREAKER__LATE__FAIL_MAX", "many")
    monkeypatch.setenv("RESILIENT_RATELIMIT__LATER__MODE", "sometimes")

    @circuit_breaker("late")
    def guarded() -> int:
        return 1

    @rate_limited("5/second", name="later")
    def limited() -> int:
        return 1

    # Settings read all variables: one bad variable at a time, so each error is its own.
    monkeypatch.delenv("RESILIENT_RATELIMIT__LATER__MODE")
    with pytest.raises(ConfigurationError, match="RESILIENT_BREAKER__LATE__FAIL_MAX"):
        guarded()
    monkeypatch.delenv("RESILIENT_BREAKER__LATE__FAIL_MAX")
    monkeypatch.setenv("RESILIENT_RATELIMIT__LATER__MODE", "sometimes")
    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT__LATER__MODE"):
        limited()
    monkeypatch.delenv("RESILIENT_RATELIMIT__LATER__MODE")
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "0")
    with pytest.raises(ConfigurationError, match="RESILIENT_CACHE_TTL has value '0'"):
        cached(lambda: 1)


@pytest.mark.parametrize("option", ["strategy", "mode", "fail_mode"])
def test_rate_limited_choices_are_those_of_the_settings_table(option: str) -> None:
    """@rate_limited(mode=...) accepts exactly the names RESILIENT_RATELIMIT_MODE does."""
    from resilient._variables import BY_KEY
    from resilient.config import Settings

    variable = f"RATELIMIT_{option.upper()}"
    choices = BY_KEY[variable].parser.choices
    assert choices
    for value in (*choices, "bogus"):
        options: dict[str, Any] = {option: value}
        try:
            Settings.from_env({f"RESILIENT_{variable}": value})
        except ConfigurationError:
            with pytest.raises(ConfigurationError, match=option):
                rate_limited("1/second", **options)
        else:
            rate_limited("1/second", **options)
