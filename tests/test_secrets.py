"""No password shows anywhere: every output path of the configuration, with every URL form.

A recognisable password sits in each form a backend URL can carry one (userinfo, the
query, percent-encoded, unencoded special characters, Sentinel and Cluster URLs); each
test drives one way out (``resilient config``, errors, warnings, reprs) and asserts that
no trace of it is left.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
from collections.abc import Iterator

import pytest

from resilient import cached
from resilient._variables import NAMED_SECTIONS, VARIABLES
from resilient.backends import async_backend_from_url, backend_from_url
from resilient.breaker import BreakerRegistry, CircuitBreaker
from resilient.cache.decorator import engine_of
from resilient.cli import main
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit import RateLimiter

PASSWORD = "Hunter2Secret"
#: In every form below, percent-encoded ones included ("%48unter2Secret").
TRACE = "unter2Secret"
ENCODED = "%48unter2Secret%40%2F%3A"  # "Hunter2Secret@/:" percent-encoded

#: Valid backend URLs, each with the password in another place.
URLS = {
    "userinfo": f"redis://app:{PASSWORD}@127.0.0.1:1/0",
    "password only": f"redis://:{PASSWORD}@127.0.0.1:1/0",
    "query": f"redis://127.0.0.1:1/0?password={PASSWORD}",
    "percent-encoded": f"redis://app:{ENCODED}@127.0.0.1:1/0",
    "encoded query": f"rediss://127.0.0.1:1/0?ssl_cert_reqs=none&password={ENCODED}",
    "unix": f"unix:///run/redis.sock?db=0&password={PASSWORD}",
    "sentinel": (
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:1,127.0.0.1:2/mymaster"
        f"?sentinel_password={PASSWORD}"
    ),
    "cluster": f"redis+cluster://app:{PASSWORD}@127.0.0.1:1,127.0.0.1:2",
}
#: URLs the configuration refuses, so that their error messages are built.
BAD_URLS = {
    "scheme": f"postgres://app:{PASSWORD}@db:5432/0",
    "scheme, query": f"postgres://db:5432/0?password={PASSWORD}",
    "no scheme": f"app:{PASSWORD}@cache:6380",
    "encoded, no scheme": f"localhost?password={ENCODED}",
    "unencoded specials": f"redis://app:{PASSWORD}#?x@127.0.0.1:1/0",
}


def _clean(*texts: object) -> None:
    for text in texts:
        assert TRACE not in str(text), text
        assert TRACE not in repr(text), text


def _error_outputs(error: ConfigurationError) -> Iterator[object]:
    yield str(error)
    yield repr(error)
    yield error.args
    yield error.value
    yield error.expected
    yield pickle.loads(pickle.dumps(error))


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_explain_and_cli_mask_every_url_form(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """resilient config (table and JSON) and explain() mask the password wherever it is."""
    env = {"RESILIENT_BACKEND_URL": url, "RESILIENT_CACHE__USERS__URL": url,
           "RESILIENT_BREAKER_URL": url}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rows = Settings.from_env().explain()
    assert ("RESILIENT_CACHE__USERS__URL", "env per-name") in {(n, s) for n, _, s in rows}
    _clean(rows)
    for argv in (["config"], ["config", "--format", "json"]):
        out = io.StringIO()
        assert main(argv, out) == 0
        _clean(out.getvalue(), capsys.readouterr())
    rows_json = {row["name"]: row["value"] for row in json.loads(out.getvalue())}
    assert rows_json["RESILIENT_BACKEND_URL"].startswith(url.partition(":")[0] + ":")


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_reprs_of_settings_and_sections_mask_urls_and_keys(url: str) -> None:
    """repr() and str() of Settings and of every section hide URLs' passwords and the key."""
    settings = Settings.from_env({
        "RESILIENT_BACKEND_URL": url, "RESILIENT_CACHE_URL": url, "RESILIENT_BREAKER_URL": url,
        "RESILIENT_RATELIMIT_URL": url, "RESILIENT_HTTP_URL": url,
        "RESILIENT_CACHE_HMAC_KEY": PASSWORD, "RESILIENT_BREAKER__PAYMENTS__URL": url,
    })  # fmt: skip
    assert "127.0.0.1" in repr(settings) or "redis.sock" in repr(settings)  # still readable
    _clean(
        settings, settings.cache, settings.breaker, settings.ratelimit, settings.http,
        settings.breaker_for("payments"), settings.cache_for("users"),
    )  # fmt: skip


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_configuration_errors_mask_the_url(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused URL is named, masked, in the message, args, value and a pickled copy."""
    for source in ({"RESILIENT_BACKEND_URL": url}, {"RESILIENT_CACHE__USERS__URL": url}):
        with pytest.raises(ConfigurationError) as caught:
            Settings.from_env(source)
        assert caught.value.name in source
        _clean(*_error_outputs(caught.value))
    with pytest.raises(ConfigurationError) as from_config:
        Settings.from_env({}, config={"RESILIENT_HTTP_URL": url})
    _clean(*_error_outputs(from_config.value))
    monkeypatch.setenv("RESILIENT_RATELIMIT_URL", url)
    assert main(["config"], io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "RESILIENT_RATELIMIT_URL has value" in err
    _clean(err)


@pytest.mark.parametrize("url", [*URLS.values(), *BAD_URLS.values()])
def test_unknown_variables_and_overrides_never_echo_secrets(url: str) -> None:
    """A misspelt URL or key variable warns by name only; a misspelt override is masked."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Settings.from_env({"RESILIENT_BACKEND_URLL": url, "RESILIENT_CACHE_HMAC_KEYY": url})
    assert len(caught) == 2
    _clean(*(str(warning.message) for warning in caught))
    for overrides in ({"backend_urll": url}, {"cache_hmac_keyy": PASSWORD}):
        with pytest.raises(ConfigurationError, match="did you mean") as error:
            Settings.from_env({}, overrides=overrides)
        _clean(*_error_outputs(error.value))


@pytest.mark.parametrize(
    "url", [u for k, u in URLS.items() if k != "cluster"], ids=[k for k in URLS if k != "cluster"]
)
def test_backends_built_from_urls_show_masked_names(url: str) -> None:
    """A backend's name and repr, and its client's, never carry the password.

    Nothing connects: the clients are only built (a cluster client connects when built,
    so the cluster form is covered by the error test below).
    """
    for build in (backend_from_url, async_backend_from_url):
        backend = build(url)
        name: str = getattr(backend, "name", "")
        assert "127.0.0.1:1" in name or "redis.sock" in name  # still says where it is
        _clean(name, backend, getattr(backend, "client", None))


@pytest.mark.parametrize(
    "url",
    [
        f"redis+cluster://app:{PASSWORD}@127.0.0.1",  # a node without a port
        f"redis+sentinel://:{PASSWORD}@127.0.0.1:1",  # no service name
        f"memcached://app:{PASSWORD}@127.0.0.1:1",  # no such scheme
        f"redis://app:{PASSWORD}@127.0.0.1:1/0?timeout=never",  # a bad option
        f"redis://app:{PASSWORD}#?x@127.0.0.1:1/0",  # unencoded "#": the "port" is wrong
        f"redis+cluster://app:{PASSWORD}/x@127.0.0.1:1,127.0.0.1:2",  # unencoded "/"
    ],
)
def test_backend_url_errors_are_masked(url: str) -> None:
    """Errors building a backend from a URL name it, masked."""
    with pytest.raises(ConfigurationError) as caught:
        backend_from_url(url)
    _clean(*_error_outputs(caught.value))


def test_decorators_and_their_options_mask_urls() -> None:
    """@cached and breaker errors and options, and a limiter's error, are masked."""
    settings = Settings.from_env({})
    url = URLS["userinfo"]
    with pytest.raises(ConfigurationError) as bad_backend:
        cached(ttl=1, backend=BAD_URLS["scheme"], settings=settings)(lambda: 1)
    with pytest.raises(ConfigurationError) as unknown:
        cached(ttl=1, backnd=url)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError) as limiter:
        RateLimiter("1/second", url=BAD_URLS["scheme"], settings=settings)
    registry = BreakerRegistry(settings=settings)
    breaker = registry.get("s", {"url": url})
    with pytest.raises(ConfigurationError) as conflict:
        registry.get("s", {"url": URLS["query"]})
    for caught in (bad_backend, unknown, limiter, conflict):
        _clean(*_error_outputs(caught.value))

    @cached(ttl=1, backend=url, name="remote", settings=settings)
    def remote() -> int:
        return 1

    _clean(engine_of(remote).options, breaker.options, CircuitBreaker("t", url=url).options)
    breaker.shutdown()


def test_every_secret_of_the_table_is_masked() -> None:
    """Each variable the table marks secret, set globally and per name, shows masked in
    explain() and in the reprs: a secret added to the table is covered at once."""
    env = {}
    for variable in VARIABLES:
        if not variable.secret:
            continue
        value = URLS["userinfo"] if variable.parser.kind == "url" else PASSWORD
        env[f"RESILIENT_{variable.key}"] = value
        if variable.section:
            env[f"RESILIENT_{variable.section.upper()}__X__{variable.field.upper()}"] = value
    assert len(env) >= 6
    settings = Settings.from_env(env)
    sections = [getattr(settings, section) for section in NAMED_SECTIONS]
    named = [getattr(settings, f"{section}_for")("x") for section in NAMED_SECTIONS]
    _clean(settings.explain(), settings, *sections, *named)
