"""Requests carrying credentials neither read nor fill the cache, in app mode above all
(it stores responses the app said nothing about), under WSGI and ASGI alike."""

from __future__ import annotations

import pytest

from resilient.errors import ConfigurationError
from resilient.middleware import CachePolicy, Rule
from tests.middleware.support import Harness, Origin, Reply, Seen

APP_MODE = {"RESILIENT_HTTP_CACHE_TTL": "60"}


def personal() -> Origin:
    """An origin that answers with whom it believes it talks to, and no cache headers."""

    def handler(seen: Seen) -> Reply:
        who = [f"{name}={seen.headers[name]}" for name in sorted(seen.headers)
               if name in ("proxy-authorization", "x-api-key", "x-token")]  # fmt: skip
        return Reply(("; ".join(who) or "anonymous").encode())

    return Origin(handler)


@pytest.mark.parametrize(
    ("name", "value"), [("Proxy-Authorization", "Basic dTpw"), ("X-Api-Key", "secret")]
)
def test_credentials_are_not_stored_for_anonymous_clients(
    harness: Harness, name: str, value: str
) -> None:
    """App mode must not store the answer to a request with credentials: the next
    anonymous client would get it."""
    origin = personal()
    client = harness.client(origin, env=APP_MODE)
    first = client.get("/me", headers={name: value})
    assert first.text == f"{name.lower()}={value}"
    assert client.get("/me").text == "anonymous"
    assert client.get("/me", headers={name: value}).text == f"{name.lower()}={value}"
    assert client.get("/me").text == "anonymous"
    assert origin.calls == 3  # the anonymous answer alone was stored


def test_the_setting_names_the_credential_headers(harness: Harness) -> None:
    """RESILIENT_HTTP_CACHE_CREDENTIAL_HEADERS replaces the default list."""
    origin = personal()
    env = {**APP_MODE, "RESILIENT_HTTP_CACHE_CREDENTIAL_HEADERS": "X-Token"}
    client = harness.client(origin, env=env)
    assert client.get("/me", headers={"X-Token": "t"}).text == "x-token=t"
    assert client.get("/me").text == "anonymous"
    # X-Api-Key is no longer named: it is an ordinary header, and the stored copy answers.
    assert client.get("/me", headers={"X-Api-Key": "k"}).text == "anonymous"
    assert origin.calls == 2


def test_the_policy_names_the_credential_headers(harness: Harness) -> None:
    """A route's CachePolicy(credential_headers=...) wins over the setting."""
    origin = personal()
    rules = [Rule("/me", cache=CachePolicy(credential_headers=["X-Token", "X-Api-Key"]))]
    client = harness.client(origin, rules, env=APP_MODE)
    assert client.get("/me", headers={"X-Token": "t"}).text == "x-token=t"
    assert client.get("/me", headers={"X-Api-Key": "k"}).text == "x-api-key=k"
    assert client.get("/me").text == "anonymous"
    assert client.get("/me").text == "anonymous"
    assert origin.calls == 3


def test_a_bad_credential_header_name_is_refused(harness: Harness) -> None:
    """Header names are checked when the middleware is built."""
    with pytest.raises(ConfigurationError, match="credential_headers"):
        harness.middleware(Origin(), [Rule("/", cache=CachePolicy(credential_headers=["a b"]))])
