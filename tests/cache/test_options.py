"""Options: settings read at decoration, per-name overrides, explicit arguments, and
configuration errors raised before any call."""

from __future__ import annotations

from typing import Any

import pytest

from resilient.cache import Cached, cached
from resilient.cache.decorator import engine_of
from resilient.config import Settings
from resilient.errors import ConfigurationError
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})


def test_bare_decorator_uses_the_settings_ttl(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """@cached without arguments reads RESILIENT_CACHE_TTL when it is applied."""
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "5s")
    calls: list[int] = []

    def f(x: int) -> int:
        calls.append(x)
        return x

    bare: Cached[[int], int] = cached(f)
    assert bare(1) == bare(1) == 1
    assert engine_of(bare).ttl == 5.0
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "bad")
    with pytest.raises(ConfigurationError, match="RESILIENT_CACHE_TTL"):
        cached(f)


def test_per_name_settings_and_explicit_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Precedence: explicit argument > per-name variable > global variable > default."""
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "30")
    monkeypatch.setenv("RESILIENT_CACHE__USERS__TTL", "7")
    monkeypatch.setenv("RESILIENT_CACHE__USERS__MAX_ENTRIES", "3")
    monkeypatch.setenv("RESILIENT_CACHE_NAMESPACE", "shop")

    def f(x: int) -> int:
        return x

    assert engine_of(cached(name="users")(f)).ttl == 7.0
    assert engine_of(cached(name="users")(f)).store.max_entries == 3
    assert engine_of(cached(name="orders")(f)).ttl == 30.0
    assert engine_of(cached(12, name="users")(f)).ttl == 12.0
    assert engine_of(cached(name="users")(f)).prefix == "shop:users:"
    assert engine_of(cached(name="users", namespace="", version="v2")(f)).prefix == "v2:users:"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": "10"}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"max_entries": 0}, "max_entries"),
        ({"xfetch_beta": -1}, "xfetch_beta"),
        ({"lock_ttl": 0, "lock": True}, "lock_ttl"),
        ({"stale_if_error": -1}, "stale_if_error"),
        ({"serializer": "yaml"}, "serializer"),
        ({"serializer": object()}, "serializer"),
        ({"serializer": "pickle"}, "hmac_key"),
        ({"hmac_algorithm": "md5"}, "hmac_algorithm"),
        ({"backend": "ftp://x"}, "backend"),
        ({"backend": 42}, "backend"),
        ({"tags": ["user:{missing}"]}, "tags"),
        ({"tags": ["user:{"]}, "tags"),
        ({"tags": [3]}, "tags"),
    ],
)
def test_bad_options_fail_at_decoration(options: dict[str, object], name: str) -> None:
    """Each bad option raises ConfigurationError naming it, before any call."""

    def f(user_id: int) -> int:
        return user_id

    with pytest.raises(ConfigurationError) as caught:
        cached(settings=SETTINGS, **options)(f)  # type: ignore[call-overload]
    assert caught.value.name == name


def test_generators_are_refused() -> None:
    """A generator's result is an iterator: caching it would hand out an exhausted one."""

    def numbers() -> object:
        yield 1

    with pytest.raises(ConfigurationError):
        cached(ttl=1, settings=SETTINGS)(numbers)
    with pytest.raises(ConfigurationError):
        cached(ttl=1, settings=SETTINGS)(42)  # type: ignore[call-overload]


def test_serializer_objects_memory_backends_and_introspection() -> None:
    """A serializer object is used as given; a memory backend object means memory."""
    from resilient.backends import MemoryBackend
    from resilient.cache import JsonSerializer

    serializer = JsonSerializer()

    @cached(ttl=60, serializer=serializer, backend=MemoryBackend(), settings=SETTINGS)
    def f(x: int) -> int:
        return x

    engine = engine_of(f)
    assert engine.codec.serializer is serializer
    assert engine.remote is None
    with pytest.raises(TypeError, match="not a cached function"):
        engine_of(len)


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("lock_ttl", 0, True),  # documented as valid: nobody waits
        ("stale_if_error", 0, True),
        ("ttl", 0, False),
        ("l1_ttl", 0, False),
        ("ttl", 10 * 365 * 24 * 3600 + 1, False),  # past 10 years
        ("stale_while_revalidate", 1e20, False),
        ("xfetch_beta", 0, True),
        ("max_entries", 2.0, False),
        ("enabled", 1, True),
        ("cache_none", 2, False),
    ],
)
def test_a_keyword_and_its_variable_accept_the_same_values(
    field: str, value: Any, accepted: bool
) -> None:
    """One parser per setting: @cached(field=v) works exactly when RESILIENT_CACHE_FIELD=v
    does; each error names the keyword or the variable, where the value came from."""

    def f(x: int) -> int:
        return x

    variable = f"RESILIENT_CACHE_{field.upper()}"

    def from_code() -> None:
        options: dict[str, Any] = {field: value}
        cached(settings=SETTINGS, **options)(f)

    def from_config() -> None:
        cached(settings=Settings.from_env({}, config={variable: value}))(f)

    for name, decorate in ((field, from_code), (variable, from_config)):
        if accepted:
            decorate()
            continue
        with pytest.raises(ConfigurationError) as caught:
            decorate()
        assert caught.value.name == name


def test_a_lease_refuses_lock_ttl_zero_naming_where_it_came_from() -> None:
    """lock_ttl=0 alone is fine; with lock on, the error names the keyword or variable."""

    def f(x: int) -> int:
        return x

    zero = Settings.from_env({"RESILIENT_CACHE__USERS__LOCK_TTL": "0", "RESILIENT_CACHE_LOCK": "1"})
    cached(name="orders", settings=zero)(f)  # lock_ttl 10 for this name
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "users", "settings": zero}, "RESILIENT_CACHE__USERS__LOCK_TTL"),
        ({"lock_ttl": 0, "lock": True, "settings": SETTINGS}, "lock_ttl"),
        ({"lock_ttl": 0, "settings": zero}, "lock_ttl"),
    ]
    for options, named in cases:
        with pytest.raises(ConfigurationError, match="a lease needs an expiry") as caught:
            cached(**options)(f)
        assert caught.value.name == named
