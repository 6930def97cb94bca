"""Settings from the environment: strict parsing, precedence, per-name overrides."""

from __future__ import annotations

import dataclasses
import ipaddress
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
