"""Key functions: the client IP behind trusted proxies only, fallbacks, safe storage keys."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from resilient.errors import ConfigurationError
from resilient.ratelimit import (
    RequestView,
    by_api_key,
    by_callback,
    by_client_ip,
    by_header,
    client_in,
    client_ip,
    storage_identity,
)

PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


@dataclass
class Request:
    client: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "GET"
    path: str = "/"


def ip(
    request: RequestView, trusted: tuple[str, ...] = PROXIES, header: str = "x-forwarded-for"
) -> str:
    nets = [ipaddress.ip_network(net) for net in trusted]
    address = client_ip(request, nets, header=header)
    return str(address)


def test_the_peer_is_the_client_when_it_is_not_a_trusted_proxy() -> None:
    """A forged X-Forwarded-For from an untrusted peer is ignored."""
    forged = Request("203.0.113.9", {"x-forwarded-for": "1.2.3.4"})
    assert ip(forged) == "203.0.113.9"
    assert ip(forged, trusted=()) == "203.0.113.9"


def test_trusted_proxies_are_walked_right_to_left() -> None:
    """The first address from the right that is not a trusted proxy is the client."""
    request = Request("10.0.0.2", {"x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.0.0.1"})
    assert ip(request) == "198.51.100.7"  # 6.6.6.6 was written by the client: not believed


def test_only_trusted_hops_means_the_leftmost_address() -> None:
    """If every hop is a trusted proxy, the leftmost one is as far as we can see."""
    request = Request("10.0.0.2", {"x-forwarded-for": "10.1.1.1, 10.0.0.1"})
    assert ip(request) == "10.1.1.1"
    assert ip(Request("10.0.0.2")) == "10.0.0.2"


def test_garbage_hops_stop_the_walk_at_the_last_trusted_address() -> None:
    """An unparsable hop (or 'unknown') is not a client: count against the proxy."""
    request = Request("10.0.0.2", {"x-forwarded-for": "1.2.3.4, not-an-ip, 10.0.0.1"})
    assert ip(request) == "10.0.0.1"
    assert ip(Request("10.0.0.2", {"x-forwarded-for": ""})) == "10.0.0.2"


def test_forged_underscore_header_is_not_x_forwarded_for() -> None:
    """slowapi read a header named X_FORWARDED_FOR; a client could set it at will."""
    request = Request("10.0.0.2", {"x_forwarded_for": "6.6.6.6"})
    assert ip(request) == "10.0.0.2"


def test_forwarded_header_rfc7239() -> None:
    """Forwarded: for= values, quoted IPv6 with port, obfuscated names stop the walk."""
    headers = {"forwarded": 'for=198.51.100.7;proto=https, for="[2001:db8::1]:4711", for=10.0.0.1'}
    assert ip(Request("10.0.0.2", headers), header="forwarded") == "2001:db8::1"
    hidden = {"forwarded": "for=198.51.100.7, for=_hidden, for=10.0.0.1"}
    assert ip(Request("10.0.0.2", hidden), header="forwarded") == "10.0.0.1"
    by_only = {"forwarded": "by=10.0.0.9"}
    assert ip(Request("10.0.0.2", by_only), header="forwarded") == "10.0.0.2"
    # The header the proxies do not set is ignored, whatever a client puts in it.
    assert ip(Request("10.0.0.2", {"forwarded": "for=6.6.6.6"})) == "10.0.0.2"


def test_addresses_with_ports_and_mapped_ipv4() -> None:
    """Ports are dropped; ::ffff:a.b.c.d counts as a.b.c.d; a missing peer is None."""
    request = Request("::ffff:10.0.0.2", {"x-forwarded-for": "198.51.100.7:5555"})
    assert ip(request) == "198.51.100.7"
    assert client_ip(Request(None)) is None
    assert client_ip(Request("unix:/run/app.sock")) is None


def test_by_client_ip_groups_ipv6_per_64_and_falls_back_to_unknown() -> None:
    """An IPv6 host owns a /64: rotating addresses in it does not evade the limit."""
    key = by_client_ip(trusted_proxies=PROXIES)
    assert key(Request("2001:db8:1:2::1")) == key(Request("2001:db8:1:2:ffff::9"))
    assert key(Request("2001:db8:1:2::1")) == "ip:2001:db8:1:2::/64"
    assert key(Request("2001:db8:1:3::1")) != key(Request("2001:db8:1:2::1"))
    assert by_client_ip(ipv6_prefix=128)(Request("2001:db8::1")) == "ip:2001:db8::1"
    assert key(Request("192.0.2.1")) == "ip:192.0.2.1"
    assert key(Request(None)) == "ip:unknown"


def test_trusted_proxies_come_from_the_environment_at_the_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """trusted_proxies=None reads RESILIENT_RATELIMIT_TRUSTED_PROXIES when first used."""
    key = by_client_ip()
    monkeypatch.setenv("RESILIENT_RATELIMIT_TRUSTED_PROXIES", "10.0.0.0/8")
    request = Request("10.0.0.2", {"x-forwarded-for": "198.51.100.7"})
    assert key(request) == "ip:198.51.100.7"
    assert by_client_ip(trusted_proxies=())(request) == "ip:10.0.0.2"


def test_header_key_and_its_ip_fallback() -> None:
    """A header's value; an empty or missing header falls back to the IP, never exempt."""
    key = by_header("X-User", trusted_proxies=())
    assert key(Request("192.0.2.1", {"x-user": "alice"})) == "h:x-user:alice"
    assert key(Request("192.0.2.1", {"x-user": "  "})) == "ip:192.0.2.1"
    assert key(Request("192.0.2.1")) == "ip:192.0.2.1"
    hashed = by_header("x-user", hashed=True, trusted_proxies=())(
        Request("1.1.1.1", {"x-user": "bob"})
    )
    assert hashed.startswith("h:x-user:")
    assert "bob" not in hashed


def test_api_key_is_hashed_and_falls_back_to_the_ip() -> None:
    """Secrets never reach storage keys; a missing key is the client's IP."""
    key = by_api_key(trusted_proxies=())
    first = key(Request("192.0.2.1", {"x-api-key": "s3cret"}))
    assert first.startswith("key:")
    assert "s3cret" not in first
    assert first == key(Request("192.0.2.2", {"x-api-key": "s3cret"}))
    assert first != key(Request("192.0.2.1", {"x-api-key": "other"}))
    assert key(Request("192.0.2.1")) == "ip:192.0.2.1"
    bearer = by_api_key("Authorization", scheme="Bearer", trusted_proxies=())
    token = bearer(Request("192.0.2.1", {"authorization": "Bearer s3cret"}))
    assert token == first
    assert bearer(Request("192.0.2.1", {"authorization": "Basic Zm9v"})) == "ip:192.0.2.1"
    assert bearer(Request("192.0.2.1", {"authorization": "Bearer "})) == "ip:192.0.2.1"


def test_callback_key_and_its_ip_fallback() -> None:
    """A callback's result (a user id); None or empty falls back to the IP."""
    key = by_callback(lambda request: request.headers.get("x-user"), trusted_proxies=())
    assert key(Request("192.0.2.1", {"x-user": "42"})) == "cb:42"
    assert key(Request("192.0.2.1", {"x-user": ""})) == "ip:192.0.2.1"
    assert key(Request("192.0.2.1")) == "ip:192.0.2.1"


def test_client_in_is_an_exempt_predicate_that_resists_forgery() -> None:
    """An allow-list matches the real client, not what a client claims."""
    internal = client_in(["192.0.2.0/24"], trusted_proxies=PROXIES)
    assert internal(Request("192.0.2.5"))
    assert not internal(Request("203.0.113.1", {"x-forwarded-for": "192.0.2.5"}))
    assert internal(Request("10.0.0.1", {"x-forwarded-for": "192.0.2.5"}))
    assert not internal(Request(None))


def test_bad_arguments_are_configuration_errors() -> None:
    """Errors name the argument, at construction."""
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        by_client_ip(trusted_proxies=["10.0.0.0/8", "not-a-network"])
    with pytest.raises(ConfigurationError, match="proxy_header"):
        by_client_ip(proxy_header="x-real-ip")
    with pytest.raises(ConfigurationError, match="ipv6_prefix"):
        by_client_ip(ipv6_prefix=0)
    with pytest.raises(ConfigurationError, match="networks"):
        client_in(["nope"])


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ip:192.0.2.1", "ip:192.0.2.1"),
        ("ip:2001:db8::1", "ip:2001:db8::1"),
        ("a/b", "a%2Fb"),
        ("{tag}", "%7Btag%7D"),
        ("x y", "x%20y"),
        ("100%", "100%25"),
        ("é", "%C3%A9"),
    ],
)
def test_storage_identity_escapes_what_could_break_a_key(raw: str, stored: str) -> None:
    """No '/', braces or spaces reach a storage key; plain values stay readable."""
    assert storage_identity(raw) == stored


def test_storage_identity_is_injective_and_bounded() -> None:
    """Different identities never share a key; long ones are hashed to 33 characters."""
    values = ["a/b", "a%2Fb", "#abc", "%23abc", "x" * 101, "x" * 102, "/" * 60, "~a", ""]
    stored = [storage_identity(value) for value in values]
    assert len(set(stored)) == len(values)
    assert len(storage_identity("x" * 5000)) == 33
    assert storage_identity("/" * 70).startswith("#")  # escaped, it would exceed 200 chars
