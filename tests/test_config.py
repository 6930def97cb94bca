"""Settings from the environment: strict parsing, precedence, per-name overrides."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from datetime import timedelta

import pytest

from resilient._variables import VARIABLES
from resilient.config import (
    BreakerSettings,
    CacheSettings,
    RateLimitSettings,
    Settings,
    mask_url,
    normalize_name,
)
from resilient.errors import ConfigurationError


def test_defaults_without_environment() -> None:
    """An empty environment gives the documented defaults."""
    settings = Settings.from_env({})
    assert settings.backend_url == "memory://"
    assert settings.op_timeout == 0.1
    assert settings.cache.ttl == 300.0
    assert settings.breaker.fail_max == 5
    assert settings.ratelimit.strategy == "sliding-window-counter"
    assert settings.ratelimit.trusted_proxies == ()


def test_reads_os_environ_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, os.environ is read when from_env runs."""
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "7")
    assert Settings.from_env().cache.ttl == 7.0
    monkeypatch.setenv("RESILIENT_CACHE_TTL", "8")
    assert Settings.from_env().cache.ttl == 8.0


def test_section_types_match_the_table() -> None:
    """Every variable has a typed field, and every field a variable."""
    for section, kind in (("cache", CacheSettings), ("breaker", BreakerSettings),
                          ("ratelimit", RateLimitSettings)):  # fmt: skip
        table = {v.field for v in VARIABLES if v.section == section}
        assert table == {f.name for f in dataclasses.fields(kind)}
    globals_ = {v.field for v in VARIABLES if not v.section}
    assert globals_ <= {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("0", False),
        ("no", False),
        ("false", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    """Booleans accept exactly 1/0/true/false/yes/no."""
    assert Settings.from_env({"RESILIENT_CACHE_LOCK": raw}).cache.lock is expected


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1.5", 1.5),
        ("0", 0.0),
    ],
)
def test_durations(raw: str, seconds: float) -> None:
    """Durations take plain seconds or ms/s/m/h."""
    assert (
        Settings.from_env({"RESILIENT_BREAKER_RESET_TIMEOUT": raw}).breaker.reset_timeout == seconds
    )


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("RESILIENT_CACHE_LOCK", "maybe", "a boolean: 1, 0, true, false, yes or no"),
        ("RESILIENT_CACHE_TTL", "abc", "a duration"),
        ("RESILIENT_CACHE_TTL", "-5s", "a duration"),
        ("RESILIENT_BREAKER_FAIL_MAX", "0", "a whole number of at least 1"),
        ("RESILIENT_BREAKER_FAIL_MAX", "three", "a whole number of at least 1"),
        ("RESILIENT_BREAKER_FAILURE_RATE", "150", "a percentage"),
        ("RESILIENT_CACHE_XFETCH_BETA", "nan", "a number of at least 0"),
        (
            "RESILIENT_RATELIMIT_DEFAULT",
            "10 per fortnight",
            "rate limits in limits' syntax",
        ),
        (
            "RESILIENT_RATELIMIT_STRATEGY",
            "token-bucket",
            "one of sliding-window-counter",
        ),
        (
            "RESILIENT_RATELIMIT_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "comma-separated IP networks",
        ),
        ("RESILIENT_BACKEND_URL", "postgres://db", "a backend URL with a scheme among"),
        ("RESILIENT_CACHE_URL", "localhost:6379", "a backend URL"),
        ("RESILIENT_BREAKER__PAYMENTS__FAIL_MAX", "-1", "a whole number of at least 1"),
    ],
)
def test_bad_values_name_variable_value_and_expectation(name: str, raw: str, expected: str) -> None:
    """A bad value raises ConfigurationError with the variable, the value and the expectation."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({name: raw})
    message = str(caught.value)
    assert message.startswith(f"{name} has value {raw!r}; expected ")
    assert expected in message
    assert isinstance(caught.value, ValueError)
    assert (caught.value.name, caught.value.value) == (name, raw)


def test_valid_limits_cidrs_and_urls() -> None:
    """Limit strings, CIDR lists and backend URLs parse."""
    settings = Settings.from_env({
        "RESILIENT_RATELIMIT_DEFAULT": "200/day;50/hour",
        "RESILIENT_RATELIMIT_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        "RESILIENT_BACKEND_URL": "redis+cluster://a:7000,b:7001",
        "RESILIENT_CACHE_URL": "",
    })  # fmt: skip
    assert settings.ratelimit.default == "200/day;50/hour"
    assert settings.ratelimit.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))  # fmt: skip
    assert settings.cache.url is None
    assert settings.url_for("cache") == "redis+cluster://a:7000,b:7001"


def test_unknown_variable_warns_with_closest_name() -> None:
    """A misspelt variable is not silently ignored."""
    with pytest.warns(
        UserWarning,
        match="unknown setting RESILIENT_CACHE_TTLL; did you mean RESILIENT_CACHE_TTL",
    ):
        Settings.from_env({"RESILIENT_CACHE_TTLL": "5"})
    with pytest.warns(UserWarning, match="no setting has a similar name"):
        Settings.from_env({"RESILIENT_ZZZZZZZZZZZZZZZZ": "5"})
    with pytest.warns(UserWarning, match="unknown setting RESILIENT_BREAKER__X__FAIL_MAXX"):
        Settings.from_env({"RESILIENT_BREAKER__X__FAIL_MAXX": "5"})


def test_other_prefixes_are_ignored() -> None:
    """Variables outside the prefix are not ours; a custom prefix works."""
    settings = Settings.from_env({"OTHER_CACHE_TTL": "x", "APP_CACHE_TTL": "9"}, prefix="APP_")
    assert settings.cache.ttl == 9.0


def test_precedence_argument_framework_named_env_global_default() -> None:
    """argument > framework config > per-name env > global env > default."""
    env = {"RESILIENT_BREAKER_FAIL_MAX": "2", "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": "3",
           "RESILIENT_BREAKER_RESET_TIMEOUT": "10"}  # fmt: skip
    settings = Settings.from_env(env)
    assert settings.breaker_for(None).fail_max == 2
    assert settings.breaker_for("search").fail_max == 2  # global env
    assert settings.breaker_for("payments").fail_max == 3  # per-name env beats global env
    assert settings.breaker_for("payments").success_threshold == 1  # default

    framework = Settings.from_env(env, config={"RESILIENT_BREAKER_FAIL_MAX": 4})
    assert framework.breaker_for("payments").fail_max == 4  # framework beats per-name env
    framework_named = Settings.from_env(
        env,
        config={
            "RESILIENT_BREAKER_FAIL_MAX": 4,
            "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": 6,
        },
    )
    assert framework_named.breaker_for("payments").fail_max == 6
    assert framework_named.breaker_for("other").fail_max == 4

    argued = Settings.from_env(
        env,
        config={"RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": 6},
        overrides={"breaker_fail_max": 9},
    )
    assert argued.breaker_for("payments").fail_max == 9  # argument beats everything


def test_names_normalize_for_per_name_variables() -> None:
    """payments-api maps to RESILIENT_BREAKER__PAYMENTS_API__FAIL_MAX."""
    assert normalize_name("payments-api") == "PAYMENTS_API"
    settings = Settings.from_env({"RESILIENT_BREAKER__PAYMENTS_API__FAIL_MAX": "2",
                                  "RESILIENT_CACHE__USERS__TTL": "1m",
                                  "RESILIENT_RATELIMIT__LOGIN__DEFAULT": "5/minute"})  # fmt: skip
    assert settings.breaker_for("payments-api").fail_max == 2
    assert settings.cache_for("users").ttl == 60.0
    assert settings.cache_for("other").ttl == 300.0
    assert settings.ratelimit_for("login").default == "5/minute"


def test_typed_framework_and_argument_values_are_validated() -> None:
    """Typed values (timedelta, bool, list) are accepted; wrong ones are rejected."""
    settings = Settings.from_env(
        {},
        config={"RESILIENT_CACHE_TTL": timedelta(minutes=2), "RESILIENT_CACHE_LOCK": True,
                "RESILIENT_RATELIMIT_TRUSTED_PROXIES": ["10.0.0.0/8"], "UNRELATED": 1},
        overrides={"cache_hmac_key": None},
    )  # fmt: skip
    assert settings.cache.ttl == 120.0
    assert settings.cache.lock is True
    assert len(settings.ratelimit.trusted_proxies) == 1
    with pytest.raises(ConfigurationError, match="RESILIENT_CACHE_TTL has value 'soon'"):
        Settings.from_env({}, config={"RESILIENT_CACHE_TTL": "soon"})
    with pytest.raises(
        ConfigurationError,
        match=r"cache_ttll has value 1; expected a known setting name \(did you mean CACHE_TTL\?\)",
    ):
        Settings.from_env({}, overrides={"cache_ttll": 1})


def test_explain_reports_sources_and_masks_secrets() -> None:
    """explain() lists every variable with its source; passwords and keys are masked."""
    settings = Settings.from_env(
        {"RESILIENT_BACKEND_URL": "redis://:hunter2@cache:6379/0",
         "RESILIENT_CACHE_HMAC_KEY": "topsecret",
         "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": "3"},
        config={"RESILIENT_CACHE_TTL": 5},
        overrides={"breaker_fail_max": 4},
    )  # fmt: skip
    rows = {name: (value, source) for name, value, source in settings.explain()}
    assert rows["RESILIENT_BACKEND_URL"] == ("redis://:***@cache:6379/0", "env")
    assert rows["RESILIENT_CACHE_HMAC_KEY"] == ("***", "env")
    assert rows["RESILIENT_CACHE_TTL"] == ("5.0", "framework")
    assert rows["RESILIENT_BREAKER_FAIL_MAX"] == ("4", "argument")
    assert rows["RESILIENT_OP_TIMEOUT"] == ("0.1", "default")
    assert rows["RESILIENT_BREAKER__PAYMENTS__FAIL_MAX"] == ("3", "env per-name")
    assert rows["RESILIENT_CACHE_URL"] == ("", "default")
    assert all("hunter2" not in value and "topsecret" not in value for value, _ in rows.values())


def test_mask_url_keeps_urls_without_password() -> None:
    """Only a password is masked; the rest of the URL stays readable."""
    assert mask_url("redis://cache:6379/0") == "redis://cache:6379/0"
    assert mask_url("redis://user:pw@cache:6379/0") == "redis://user:***@cache:6379/0"


def test_settings_are_frozen() -> None:
    """Settings cannot change after construction."""
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.op_timeout = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    [
        "RESILIENT_OP_TIMEOUT",
        "RESILIENT_CONNECT_TIMEOUT",
        "RESILIENT_CACHE_TTL",
        "RESILIENT_CACHE_L1_TTL",
        "RESILIENT_BREAKER_PROBE_TIMEOUT",
        "RESILIENT_CACHE__USERS__TTL",
    ],
)
@pytest.mark.parametrize("raw", ["0", "0ms", "0.0s"])
def test_zero_is_refused_where_it_would_break_every_call(name: str, raw: str) -> None:
    """A 0 timeout fails every backend operation, a 0 TTL every @cached: refused at once,
    naming the variable."""
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({name: raw})
    assert caught.value.name == name
    assert "a duration above 0" in str(caught.value)


def test_zero_timeouts_in_a_backend_url_are_refused_too() -> None:
    """?timeout=0 in a URL, or timeout=0 given to backend_from_url, is the same mistake as
    RESILIENT_OP_TIMEOUT=0."""
    from resilient.backends import backend_from_url

    for option in ("timeout", "connect_timeout"):
        with pytest.raises(ConfigurationError, match=f"{option} in backend URL has value '0'"):
            backend_from_url(f"memory://?{option}=0")
        keyword: dict[str, object] = {option: 0}
        with pytest.raises(ConfigurationError, match=f"^{option} has value 0; expected a dur"):
            backend_from_url("memory://", **keyword)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RESILIENT_CACHE_TTL", "9" * 400),  # a float: inf
        ("RESILIENT_CACHE_STALE_IF_ERROR", "9" * 400 + "h"),
        ("RESILIENT_BREAKER_RESET_TIMEOUT", "100000000000"),
        ("RESILIENT_CACHE_LOCK_TTL", "87601h"),
    ],
)
def test_durations_longer_than_ten_years_are_refused(name: str, raw: str) -> None:
    """A 400-digit duration is infinite as a float; anything past 10 years is a mistake."""
    with pytest.raises(ConfigurationError, match=f"{name} has value") as caught:
        Settings.from_env({name: raw})
    assert "at most 10 years" in caught.value.expected
    assert Settings.from_env({name: "87600h"}) is not None  # exactly 10 years is fine


def test_typed_values_are_checked_as_numbers_not_as_their_text() -> None:
    """Framework config holds numbers: 1e-05 seconds is fine (its text "1e-05" is no
    duration), 0 for a TTL is not, True is no number."""
    tiny = Settings.from_env({}, config={"RESILIENT_CACHE_TTL": 1e-5})
    assert tiny.cache.ttl == 1e-5
    for value in (0, float("inf"), True, timedelta(days=3651)):
        with pytest.raises(ConfigurationError, match="RESILIENT_CACHE_TTL"):
            Settings.from_env({}, config={"RESILIENT_CACHE_TTL": value})


def test_lock_ttl_zero_is_valid_as_documented() -> None:
    """RESILIENT_CACHE_LOCK_TTL=0 means nobody waits (the HTTP middleware's no-collapsing)."""
    assert Settings.from_env({"RESILIENT_CACHE_LOCK_TTL": "0"}).cache.lock_ttl == 0.0


@pytest.mark.parametrize(
    ("variable", "suggested", "prefix"),
    [
        ("RESILIENT_BREAKER__PAYMENTS__FAIL_MAXX", "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX",
         "RESILIENT_"),
        ("RESILIENT_BRAEKER__PAYMENTS_API__RESET_TIMOUT",
         "RESILIENT_BREAKER__PAYMENTS_API__RESET_TIMEOUT", "RESILIENT_"),
        ("APP_CACHE__USERS__TTLL", "APP_CACHE__USERS__TTL", "APP_"),
    ],
)  # fmt: skip
def test_unknown_per_name_variable_suggestion_keeps_the_name(
    variable: str, suggested: str, prefix: str
) -> None:
    """The suggestion corrects the section and the field, never the breaker's name."""
    expected = f"unknown setting {variable}; did you mean {suggested}?"
    with pytest.warns(UserWarning, match=f"^{re.escape(expected)}$"):
        Settings.from_env({variable: "3"}, prefix=prefix)


def test_origin_of_names_where_a_value_came_from() -> None:
    """origin_of: the per-name or global variable, the override's name, or for a default
    the variable to set."""
    settings = Settings.from_env(
        {"RESILIENT_BREAKER_FAIL_MAX": "2", "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX": "3"},
        config={"RESILIENT_CACHE_TTL": 5},
        overrides={"op_timeout": 1},
    )
    assert settings.origin_of("breaker", "fail_max", "payments") == (
        "RESILIENT_BREAKER__PAYMENTS__FAIL_MAX")  # fmt: skip
    assert settings.origin_of("breaker", "fail_max", "search") == "RESILIENT_BREAKER_FAIL_MAX"
    assert settings.origin_of("breaker", "fail_max") == "RESILIENT_BREAKER_FAIL_MAX"
    assert settings.origin_of("cache", "ttl") == "RESILIENT_CACHE_TTL"
    assert settings.origin_of("", "op_timeout") == "op_timeout"
    assert settings.origin_of("breaker", "reset_timeout", "payments") == (
        "RESILIENT_BREAKER_RESET_TIMEOUT")  # fmt: skip


def test_check_option_takes_typed_values_only() -> None:
    """In code a duration is a number or a timedelta; "30s" is text for the environment."""
    from resilient.config import check_option

    assert check_option("cache", "ttl", timedelta(seconds=30)) == 30.0
    assert check_option("cache", "serializer", "PICKLE") == "pickle"
    with pytest.raises(ConfigurationError, match="in code: a number of seconds or a timedelta"):
        check_option("cache", "ttl", "30s")
    with pytest.raises(ConfigurationError) as caught:
        check_option("breaker", "url", "ftp://app:pw@files", "url")
    assert (caught.value.name, caught.value.value) == ("url", "ftp://app:***@files")
