"""CDN-Cache-Control (RFC 9213) when the middleware is told to act as a CDN, under WSGI
and ASGI: the targeted field decides instead of Cache-Control and Expires."""

from __future__ import annotations

import pytest

from resilient.middleware import CachePolicy, Rule
from tests.middleware.support import Harness, Origin, Reply, Seen
from tests.support.clock import FakeClock

CDN = {"RESILIENT_HTTP_CACHE_CDN_CACHE_CONTROL": "1"}


def counter(*fields: tuple[str, str]) -> Origin:
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        calls["n"] += 1
        return Reply(f"call {calls['n']}".encode(), 200, list(fields))

    return Origin(handler)


@pytest.mark.parametrize(
    ("fields", "as_cdn", "plain"),
    [
        # Browsers must not keep it; the CDN (this cache) keeps it for a minute.
        ([("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")], 1, 2),
        # Browsers keep it; the CDN must not.
        ([("Cache-Control", "max-age=600"), ("CDN-Cache-Control", "no-store")], 2, 1),
        # Expires is ignored with a usable targeted field.
        ([("Expires", "0"), ("CDN-Cache-Control", "max-age=60")], 1, 2),
        # Structured booleans: ?0 is absent, ?1 present.
        ([("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "private=?0, max-age=60")],
         1, 1),
        # Empty or unusable: Cache-Control applies.
        ([("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "")], 1, 1),
        ([("Cache-Control", "no-store"), ("CDN-Cache-Control", ",")], 2, 2),
    ],
    ids=["cdn-only", "browser-only", "expires", "sf-boolean", "empty", "unusable"],
)  # fmt: skip
def test_the_targeted_field_decides_as_a_cdn(
    harness: Harness, fields: list[tuple[str, str]], as_cdn: int, plain: int
) -> None:
    """Two requests: the app is called once when the response was stored, twice if not."""
    for env, calls, path in ((CDN, as_cdn, "/cdn"), ({}, plain, "/plain")):
        origin = counter(*fields)
        client = harness.client(origin, env=env)
        client.get(path)
        client.get(path)
        assert origin.calls == calls, env


def test_the_targeted_lifetime_counts(harness: Harness, clock: FakeClock) -> None:
    """CDN-Cache-Control's max-age is the lifetime; Cache-Control's is the browsers'. The
    field goes downstream as it came (other CDNs may honour it too)."""
    origin = counter(("Cache-Control", "max-age=5"), ("CDN-Cache-Control", "max-age=60"))
    client = harness.client(origin, [Rule("/a", cache=CachePolicy(cdn_cache_control=True))])
    client.get("/a")
    clock.advance(30)
    hit = client.get("/a")
    assert (hit.text, hit.headers["cdn-cache-control"]) == ("call 1", "max-age=60")
    clock.advance(30)
    assert client.get("/a").text == "call 2"
