"""304s, request bypasses, request Cache-Control and invalidation, under WSGI and ASGI."""

from __future__ import annotations

import pytest

from resilient.middleware import CachePolicy, Rule
from resilient.sansio.conditional import strong_etag
from resilient.sansio.http import format_http_date
from tests.middleware.support import Harness, Origin, Reply, Seen, header_lines
from tests.support.clock import FakeClock

BODY = b"representation"
ETAG = strong_etag(BODY)


def origin_with(*fields: tuple[str, str]) -> Origin:
    return Origin(Reply(BODY, headers=[("Cache-Control", "max-age=60"), *fields]))


def test_if_none_match_on_a_hit_gives_304(harness: Harness, clock: FakeClock) -> None:
    """A matching If-None-Match gets a 304 with Cache-Control, Date, ETag, Expires, Vary
    and Age, and no body or Content-Type (RFC 9110 §15.4.5)."""
    date, expires = format_http_date(clock()), format_http_date(clock() + 60)
    origin = origin_with(("Date", date), ("Expires", expires), ("Vary", "Accept"))
    client = harness.client(origin)
    client.get("/a")
    clock.advance(3)
    answer = client.get("/a", headers={"If-None-Match": f'"other", W/{ETAG}'})
    assert answer.status_code == 304
    assert answer.content == b""
    assert header_lines(answer) == [
        ("cache-control", "max-age=60"),
        ("date", date),
        ("expires", expires),
        ("vary", "Accept"),
        ("etag", ETAG),
        ("age", "3"),
    ]
    assert origin.calls == 1


def test_if_modified_since_without_validators_from_the_app(
    harness: Harness, clock: FakeClock
) -> None:
    """With neither Last-Modified nor Date, If-Modified-Since is compared with the time the
    response was stored (RFC 9111 §4.3.2)."""
    client = harness.client(origin_with())
    client.get("/a")
    clock.advance(10)
    stored_at = format_http_date(clock() - 10)
    assert client.get("/a", headers={"If-Modified-Since": stored_at}).status_code == 304
    before = format_http_date(clock() - 3600)
    assert client.get("/a", headers={"If-Modified-Since": before}).status_code == 200


@pytest.mark.parametrize("header", ['"nope"', "garbage", f"{ETAG}x"])
def test_non_matching_validators_get_the_full_response(harness: Harness, header: str) -> None:
    """A different, or malformed, If-None-Match gets the stored 200."""
    client = harness.client(origin_with())
    client.get("/a")
    answer = client.get("/a", headers={"If-None-Match": header})
    assert (answer.status_code, answer.content) == (200, BODY)


def test_star_matches_any_stored_response(harness: Harness) -> None:
    """If-None-Match: * matches whatever is stored."""
    client = harness.client(origin_with())
    client.get("/a")
    assert client.get("/a", headers={"If-None-Match": "*"}).status_code == 304


def test_if_modified_since(harness: Harness, clock: FakeClock) -> None:
    """IMS at or after Last-Modified gets 304; before it, or unparseable, gets 200."""
    modified = format_http_date(clock() - 3600)
    client = harness.client(origin_with(("Last-Modified", modified)))
    client.get("/a")
    assert client.get("/a", headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_http_date(clock() - 7200)
    assert client.get("/a", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/a", headers={"If-Modified-Since": "soon"}).status_code == 200
    both = {"If-Modified-Since": modified, "If-None-Match": '"nope"'}
    assert client.get("/a", headers=both).status_code == 200  # If-None-Match decides


def test_validators_on_a_miss_are_answered_by_the_cache(harness: Harness) -> None:
    """On a miss the app gets an unconditional request (so the full response can be
    stored) and the cache answers the client's validator with a 304 itself."""
    origin = origin_with()
    client = harness.client(origin)
    answer = client.get("/a", headers={"If-None-Match": ETAG, "If-Modified-Since": "x"})
    assert answer.status_code == 304
    assert dict(header_lines(answer))["etag"] == ETAG
    assert "if-none-match" not in origin.seen[0].headers
    assert "if-modified-since" not in origin.seen[0].headers
    assert client.get("/a").content == BODY
    assert origin.calls == 1


def test_validators_of_responses_that_are_not_stored(harness: Harness) -> None:
    """A response the cache does not store (no-cache here) still honours the client's
    validators against the app's own ETag, as the app would have."""
    origin = Origin(Reply(BODY, headers=[("Cache-Control", "no-cache"), ("ETag", '"app"')]))
    client = harness.client(origin)
    answer = client.get("/a", headers={"If-None-Match": '"app"'})
    assert (answer.status_code, answer.content) == (304, b"")
    assert header_lines(answer) == [("cache-control", "no-cache"), ("etag", '"app"')]
    assert client.get("/a", headers={"If-None-Match": '"old"'}).content == BODY
    assert client.get("/a", headers={"If-None-Match": ETAG}).content == BODY  # not its tag
    assert origin.calls == 3


def test_validators_reach_the_app_on_unsafe_methods(harness: Harness) -> None:
    """Requests the cache does not answer keep their validators: a POST reaches the app
    exactly as the client sent it."""
    origin = origin_with()
    client = harness.client(origin)
    client.post("/a", headers={"If-None-Match": ETAG})
    client.get("/a", headers={"Authorization": "x", "If-None-Match": ETAG})
    assert [seen.headers.get("if-none-match") for seen in origin.seen] == [ETAG, ETAG]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer t"},
        {"Cookie": "sid=1"},
        {"Range": "bytes=0-3"},
        {"If-Match": ETAG},
        {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"Upgrade": "h2c", "Connection": "Upgrade"},
    ],
)
def test_requests_that_bypass_the_cache(harness: Harness, headers: dict[str, str]) -> None:
    """Credentials, cookies, ranges and preconditions neither read nor fill the cache."""
    origin = origin_with()
    client = harness.client(origin)
    client.get("/a", headers=headers)
    client.get("/a")
    client.get("/a", headers=headers)
    assert origin.calls == 3
    assert origin.seen[0].headers.get(next(iter(headers)).lower()) is not None


def test_request_cache_control_is_ignored_by_default(harness: Harness) -> None:
    """Clients cannot bust the cache: their no-cache and max-age=0 change nothing."""
    origin = origin_with()
    client = harness.client(origin)
    client.get("/a")
    client.get("/a", headers={"Cache-Control": "no-cache, max-age=0"})
    client.get("/a", headers={"Cache-Control": "no-store"})
    assert origin.calls == 1


def test_request_cache_control_when_honoured(harness: Harness, clock: FakeClock) -> None:
    """Honoured: no-cache refetches and stores, no-store bypasses, max-age and min-fresh
    narrow, max-stale widens, only-if-cached gives 504 when nothing fits."""
    counter = {"n": 0}

    def handler(seen: Seen) -> Reply:
        counter["n"] += 1
        # stale-if-error keeps the response stored past its lifetime, for max-stale
        fields = [("Cache-Control", "max-age=60, stale-if-error=100")]
        return Reply(str(counter["n"]).encode(), headers=fields)

    client = harness.client(
        Origin(handler), env={"RESILIENT_HTTP_RESPECT_REQUEST_CACHE_CONTROL": "yes"}
    )

    def get(directives: str) -> str:
        answer = client.get("/a", headers={"Cache-Control": directives} if directives else {})
        return f"{answer.status_code} {answer.text}" if answer.status_code != 200 else answer.text

    assert get("only-if-cached").startswith("504 ")
    assert get("") == "1"
    assert get("no-cache") == "2"
    assert get("") == "2"
    assert get("no-store") == "3"
    assert get("") == "2"
    clock.advance(30)
    assert get("max-age=20") == "4"
    clock.advance(30)
    assert get("min-fresh=40") == "5"
    clock.advance(70)
    assert get("max-stale=20") == "5"
    assert get("only-if-cached").startswith("504 ")
    assert get("max-stale") == "5"


def test_unsafe_methods_invalidate(harness: Harness) -> None:
    """A successful POST, PUT, DELETE or PATCH drops the stored response; OPTIONS does not."""
    origin = Origin(
        lambda seen: Reply(seen.method.encode(), headers=[("Cache-Control", "max-age=600")])
    )
    client = harness.client(origin)
    client.get("/a")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        calls = origin.calls
        client.request(method, "/a")
        client.get("/a")
        client.get("/a")
        assert origin.calls == calls + 2  # the unsafe request, then one GET
    calls = origin.calls
    client.options("/a")
    client.get("/a")
    assert origin.calls == calls + 1  # OPTIONS is safe: the GET is still a hit


def test_failed_unsafe_requests_do_not_invalidate(harness: Harness) -> None:
    """A 4xx or 5xx answer to a POST leaves the stored response alone."""

    def handler(seen: Seen) -> Reply:
        status = int(seen.headers.get("x-status", "200"))
        return Reply(seen.method.encode(), status, [("Cache-Control", "max-age=600")])

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/a")
    client.post("/a", headers={"X-Status": "400"})
    client.post("/a", headers={"X-Status": "503"})
    assert client.get("/a").text == "GET"
    assert origin.calls == 3
    client.post("/a", headers={"X-Status": "201"})
    client.get("/a")
    assert origin.calls == 5
    client.post("/a?other")  # the query is part of the URL: /a stays stored
    client.get("/a")
    assert origin.calls == 6


def test_location_and_content_location_of_the_same_origin(harness: Harness) -> None:
    """Location and Content-Location of an unsafe response are invalidated when they are
    on the same origin; other origins are left alone."""

    def handler(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(
                b"",
                201,
                [("Location", "/items/1"), ("Content-Location", "http://elsewhere.example/list")],
            )
        return Reply(seen.path.encode(), headers=[("Cache-Control", "max-age=600")])

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/items/1")
    client.get("/list")
    client.post("/items")
    client.get("/items/1")
    client.get("/list")
    assert [s.path for s in origin.seen] == ["/items/1", "/list", "/items", "/items/1"]


def test_invalidation_only_where_caching_is_on(harness: Harness) -> None:
    """Unsafe requests on routes that never cache cost no backend round trip."""
    origin = origin_with()
    client = harness.client(origin, [Rule("/nocache/**", cache=False)])
    keys_before = len(harness.memory)
    client.post("/nocache/x")
    client.get("/cached")
    assert len(harness.memory) == keys_before + 1
    client.post("/cached")
    assert len(harness.memory) == keys_before


def test_named_cookies_select_variants(harness: Harness) -> None:
    """A route varying on the lang cookie caches per lang, ignores other cookies, and
    tells downstream caches with Vary: Cookie."""

    def handler(seen: Seen) -> Reply:
        lang = "en" if "lang=fr" not in seen.headers.get("cookie", "") else "fr"
        return Reply(lang.encode(), headers=[("Cache-Control", "max-age=60")])

    origin = Origin(handler)
    client = harness.client(origin, [Rule("/home", cache=CachePolicy(vary_cookies=["lang"]))])
    first = client.get("/home", headers={"Cookie": "lang=fr; sid=alice"})
    assert (first.text, first.headers["vary"]) == ("fr", "Cookie")
    assert client.get("/home", headers={"Cookie": "sid=bob; lang=fr"}).text == "fr"
    assert client.get("/home", headers={"Cookie": "lang=en"}).text == "en"
    assert client.get("/home").text == "en"
    assert origin.calls == 3


def test_a_malformed_location_is_ignored(harness: Harness) -> None:
    """A Location that does not parse invalidates nothing but the request's own URL."""

    def handler(seen: Seen) -> Reply:
        fields = (
            [("Location", "http://[broken")]
            if seen.method == "POST"
            else [("Cache-Control", "max-age=60")]
        )
        return Reply(b"x", headers=fields)

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/a")
    assert client.post("/a").status_code == 200
    client.get("/a")
    assert origin.calls == 3
