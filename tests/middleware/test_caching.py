"""The shared cache end to end, under WSGI and ASGI alike: store, reuse, Age, Vary, expiry."""

from __future__ import annotations

import pytest

from resilient.middleware import CachePolicy, Rule
from resilient.sansio.conditional import strong_etag
from resilient.sansio.http import format_http_date
from tests.middleware.support import Harness, Origin, Reply, Seen, header_lines
from tests.support.clock import FakeClock

CACHEABLE = [("Cache-Control", "max-age=60")]


def counter(*fields: tuple[str, str], status: int = 200) -> Origin:
    """An origin whose body says how many times it was called."""
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        calls["n"] += 1
        return Reply(f"call {calls['n']}".encode(), status, list(fields))

    return Origin(handler)


def test_hit_is_answered_without_the_app(harness: Harness, clock: FakeClock) -> None:
    """A fresh stored response is replayed byte for byte with an Age; the app rests.

    No Date is added: the server adds its own to every response (a second would be
    malformed), and Age carries how old the copy is."""
    origin = counter(*CACHEABLE)
    client = harness.client(origin)
    miss = client.get("/a")
    clock.advance(7.9)
    hit = client.get("/a")
    assert origin.calls == 1
    assert (miss.status_code, miss.text) == (hit.status_code, hit.text) == (200, "call 1")
    assert header_lines(miss) == [
        ("cache-control", "max-age=60"),
        ("content-type", "text/plain"),
        ("content-length", "6"),
        ("etag", strong_etag(b"call 1")),
    ]
    assert header_lines(hit) == [
        ("cache-control", "max-age=60"),
        ("content-type", "text/plain"),
        ("etag", strong_etag(b"call 1")),
        ("content-length", "6"),
        ("age", "7"),
    ]


def test_expiry_goes_back_to_the_app(harness: Harness, clock: FakeClock) -> None:
    """After max-age the next request reaches the app, and its answer is stored anew."""
    origin = counter(*CACHEABLE)
    client = harness.client(origin)
    client.get("/a")
    clock.advance(60)
    assert client.get("/a").text == "call 2"
    clock.advance(59)
    assert client.get("/a").text == "call 2"
    assert origin.calls == 2


def test_s_maxage_wins_over_max_age(harness: Harness, clock: FakeClock) -> None:
    """A shared cache obeys s-maxage, not max-age."""
    origin = counter(("Cache-Control", "max-age=600, s-maxage=10"))
    client = harness.client(origin)
    client.get("/a")
    clock.advance(9)
    assert client.get("/a").text == "call 1"
    clock.advance(1)
    assert client.get("/a").text == "call 2"


def test_expires_minus_date(harness: Harness, clock: FakeClock) -> None:
    """Without max-age, Expires minus Date is the lifetime."""

    def handler(seen: Seen) -> Reply:
        now = clock()
        return Reply(
            b"x", headers=[("Date", format_http_date(now)), ("Expires", format_http_date(now + 30))]
        )

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/a")
    clock.advance(29)
    client.get("/a")
    clock.advance(1)
    client.get("/a")
    assert origin.calls == 2


def test_app_age_counts(harness: Harness, clock: FakeClock) -> None:
    """An Age from the app adds to the stored response's age (RFC 9111 §4.2.3)."""
    origin = counter(("Cache-Control", "max-age=60"), ("Age", "50"))
    client = harness.client(origin)
    client.get("/a")
    clock.advance(5)
    assert client.get("/a").headers["age"] == "55"
    clock.advance(5)
    assert client.get("/a").text == "call 2"


@pytest.mark.parametrize(
    "fields",
    [
        [("Content-Type", "text/plain")],
        [("Cache-Control", "max-age=60, no-store")],
        [("Cache-Control", "max-age=60, private")],
        [("Cache-Control", "max-age=60, no-cache")],
        [("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=abc")],
        [("Cache-Control", "max-age=60"), ("Vary", "*")],
        [("Expires", "0")],
        [("Cache-Control", "public")],
    ],
)
def test_never_stored(harness: Harness, fields: list[tuple[str, str]]) -> None:
    """No freshness, no-store, private, no-cache, Set-Cookie, Vary: *: every request goes
    to the app, and its response goes out untouched."""
    origin = counter(*fields)
    client = harness.client(origin)
    first = client.get("/a")
    second = client.get("/a")
    assert (first.text, second.text) == ("call 1", "call 2")
    assert "etag" not in first.headers
    assert "age" not in second.headers


def test_app_mode_stores_and_tells_downstream(harness: Harness, clock: FakeClock) -> None:
    """A route TTL stores responses without freshness and sends the Cache-Control it used."""
    origin = counter(("Cache-Control", "public"))
    rules = [Rule("/news/**", cache=CachePolicy(ttl=30, stale_if_error=120))]
    client = harness.client(origin, rules)
    miss = client.get("/news/1")
    hit = client.get("/news/1")
    assert origin.calls == 1
    expected = "public, max-age=30, stale-if-error=120"
    assert miss.headers["cache-control"] == hit.headers["cache-control"] == expected
    other = client.get("/other")
    assert "cache-control" not in other.headers or other.headers["cache-control"] == "public"
    client.get("/other")
    assert origin.calls == 3  # outside the rule: no TTL, nothing stored


def test_app_mode_from_the_environment(harness: Harness) -> None:
    """RESILIENT_HTTP_CACHE_TTL is the default TTL of every route."""
    origin = counter()
    client = harness.client(origin, env={"RESILIENT_HTTP_CACHE_TTL": "45s"})
    assert client.get("/a").headers["cache-control"] == "max-age=45"
    client.get("/a")
    assert origin.calls == 1


def test_cache_off(harness: Harness) -> None:
    """RESILIENT_HTTP_CACHE=0, RESILIENT_CACHE_ENABLED=0 and cache=False each turn it off."""
    for env, rules in (
        ({"RESILIENT_HTTP_CACHE": "0"}, []),
        ({"RESILIENT_CACHE_ENABLED": "false"}, []),
        ({}, [Rule("/a", cache=False)]),
    ):
        origin = counter(*CACHEABLE)
        client = harness.client(origin, rules, env)
        client.get("/a")
        client.get("/a")
        assert origin.calls == 2


def test_query_and_host_are_part_of_the_key(harness: Harness) -> None:
    """Different query strings and different hosts are different resources."""
    origin = counter(*CACHEABLE)
    client = harness.client(origin)
    assert client.get("/a?x=1").text == "call 1"
    assert client.get("/a?x=2").text == "call 2"
    assert client.get("/a?x=1").text == "call 1"
    assert client.get("/a?x=1", headers={"Host": "other.example"}).text == "call 3"
    assert client.get("/a", params={}).text == "call 4"


def test_vary_keeps_one_variant_per_request_value(harness: Harness) -> None:
    """Vary: Accept-Language stores one response per language, each served to its own."""

    def handler(seen: Seen) -> Reply:
        lang = seen.headers.get("accept-language", "none")
        return Reply(lang.encode(), headers=[*CACHEABLE, ("Vary", "Accept-Language")])

    origin = Origin(handler)
    client = harness.client(origin)
    assert client.get("/a", headers={"Accept-Language": "en"}).text == "en"
    assert client.get("/a", headers={"Accept-Language": "fr"}).text == "fr"
    assert client.get("/a").text == "none"
    assert client.get("/a", headers={"Accept-Language": "en"}).text == "en"
    assert client.get("/a", headers={"Accept-Language": "fr"}).text == "fr"
    assert client.get("/a").text == "none"
    assert origin.calls == 3


def test_vary_values_are_normalised(harness: Harness) -> None:
    """Whitespace around commas does not split a variant."""
    origin = counter(*CACHEABLE, ("Vary", "Accept-Encoding"))
    client = harness.client(origin)
    client.get("/a", headers={"Accept-Encoding": "gzip, br"})
    assert client.get("/a", headers={"Accept-Encoding": "gzip,br"}).text == "call 1"


def test_vary_change_replaces_the_variants(harness: Harness, clock: FakeClock) -> None:
    """When a URL's Vary changes, responses stored under the old fields are not served."""
    vary = {"value": "X-A"}

    def handler(seen: Seen) -> Reply:
        return Reply(
            seen.headers.get("x-a", "-").encode(), headers=[*CACHEABLE, ("Vary", vary["value"])]
        )

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/a", headers={"X-A": "1"})
    clock.advance(61)
    vary["value"] = "X-B"
    assert client.get("/a", headers={"X-A": "2"}).text == "2"
    assert client.get("/a", headers={"X-A": "1"}).text == "2"  # X-A no longer matters
    assert origin.calls == 2


def test_head_is_served_from_the_stored_get(harness: Harness) -> None:
    """HEAD gets the stored GET's fields (Content-Length included) and no body."""
    origin = counter(*CACHEABLE)
    client = harness.client(origin)
    client.get("/a")
    head = client.head("/a")
    assert origin.calls == 1
    assert head.content == b""
    assert head.headers["content-length"] == "6"
    assert head.headers["etag"] == strong_etag(b"call 1")


def test_head_miss_is_not_stored(harness: Harness) -> None:
    """A HEAD response has no body to store; the following GET reaches the app."""
    origin = counter(*CACHEABLE)
    client = harness.client(origin)
    client.head("/a")
    assert client.get("/a").text == "call 2"


@pytest.mark.parametrize(
    ("status", "stored"), [(200, True), (404, True), (301, True), (500, False), (503, False)]
)
def test_statuses(harness: Harness, status: int, stored: bool) -> None:
    """Errors are never stored, even when they say max-age; a 404 is."""
    origin = counter(*CACHEABLE, status=status)
    client = harness.client(origin)
    assert client.get("/a").status_code == status
    client.get("/a")
    assert origin.calls == (1 if stored else 2)


def test_large_bodies_are_not_stored(harness: Harness) -> None:
    """A body over the cap goes out whole but is not stored; one at the cap is."""
    origin = Origin(lambda seen: Reply(b"x" * int(seen.query), headers=CACHEABLE))
    client = harness.client(origin, env={"RESILIENT_HTTP_CACHE_MAX_BODY": "100"})
    assert len(client.get("/a?101").content) == 101
    assert len(client.get("/a?101").content) == 101
    assert origin.calls == 2
    client.get("/a?100")
    client.get("/a?100")
    assert origin.calls == 3


def test_streamed_bodies_are_stored_under_the_cap(harness: Harness) -> None:
    """A body without Content-Length is copied while it streams and stored when whole."""
    origin = Origin(lambda seen: Reply([b"ab", b"", b"cd"], headers=CACHEABLE))
    client = harness.client(origin)
    assert client.get("/a").text == "abcd"
    hit = client.get("/a")
    assert (hit.text, hit.headers["content-length"]) == ("abcd", "4")
    assert hit.headers["etag"] == strong_etag(b"abcd")
    assert origin.calls == 1


def test_streamed_bodies_over_the_cap_are_not_stored(harness: Harness) -> None:
    """Past the cap the copy is dropped: the client still gets every byte."""
    origin = Origin(lambda seen: Reply([b"a" * 60, b"b" * 60], headers=CACHEABLE))
    client = harness.client(origin, env={"RESILIENT_HTTP_CACHE_MAX_BODY": "100"})
    assert client.get("/a").content == b"a" * 60 + b"b" * 60
    client.get("/a")
    assert origin.calls == 2


def test_the_apps_etag_is_kept(harness: Harness) -> None:
    """An ETag the app sets is never replaced."""
    origin = counter(*CACHEABLE, ("ETag", 'W/"app-1"'))
    client = harness.client(origin)
    assert client.get("/a").headers["etag"] == 'W/"app-1"'
    assert client.get("/a").headers["etag"] == 'W/"app-1"'


def test_hop_by_hop_fields_are_not_replayed(harness: Harness) -> None:
    """Connection-specific fields of the app's response are not stored."""
    origin = counter(*CACHEABLE, ("X-Conn", "1"), ("Connection", "X-Conn"))
    client = harness.client(origin)
    client.get("/a")
    names = {name for name, _ in header_lines(client.get("/a"))}
    assert "x-conn" not in names
    assert "connection" not in names


def test_responses_older_than_their_lifetime_are_not_stored(harness: Harness) -> None:
    """An Age past max-age: stale on arrival, sent on but not stored."""
    origin = Origin(Reply(b"old", headers=[("Cache-Control", "max-age=60"), ("Age", "90")]))
    client = harness.client(origin)
    client.get("/a")
    client.get("/a")
    assert origin.calls == 2


@pytest.mark.parametrize(
    "ages",
    [[("Age", "7200, 0")], [("Age", "7200"), ("Age", "0")], [("Age", "soon")]],
    ids=["list", "two-lines", "invalid"],
)
def test_an_old_or_unreadable_age_is_never_served_fresh(
    harness: Harness, ages: list[tuple[str, str]]
) -> None:
    """Age counts by its first member (RFC 9111 §5.1): 7200 s is past max-age=3600, so the
    response is stale on arrival and not stored; an Age that is no number is not 0."""
    origin = counter(("Cache-Control", "max-age=3600"), *ages)
    client = harness.client(origin)
    client.get("/a")
    assert client.get("/a").text == "call 2"
    assert origin.calls == 2
