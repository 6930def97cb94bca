"""Request and response values, header fields, HTTP dates, list splitting."""

from __future__ import annotations

import pytest

from resilient.sansio.http import (
    Headers,
    RequestInfo,
    RequestView,
    Response,
    ResponseHead,
    format_http_date,
    parse_http_date,
    split_list,
)
from resilient.sansio.keys import target_uri

SUNDAY = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example


def test_headers_are_case_insensitive_and_join_repeats() -> None:
    """Names are lower-cased; a repeated field reads as its values joined with ", "."""
    headers = Headers([("Accept", "text/html"), ("X-Tag", "a"), ("x-tag", "b")])
    assert headers["accept"] == headers["ACCEPT"] == "text/html"
    assert headers["x-tag"] == "a, b"
    assert headers.get("X-TAG") == "a, b"
    assert headers.get("missing") is None
    assert headers.get("missing", "fallback") == "fallback"
    assert headers.get_all("X-TAG") == ["a", "b"]
    assert "Accept" in headers
    assert object() not in headers
    assert sorted(headers) == ["accept", "x-tag"]
    assert len(headers) == 2
    assert headers.raw == (("accept", "text/html"), ("x-tag", "a"), ("x-tag", "b"))
    assert "x-tag" in repr(headers)
    with pytest.raises(KeyError):
        headers["missing"]


def test_request_info_satisfies_the_request_view_protocol() -> None:
    """The rate limiter's key functions can take a RequestInfo as it is."""
    request = RequestInfo("GET", "/a", "10.0.0.1", Headers([("Host", "example.org")]))
    view: RequestView = request
    assert (view.method, view.path, view.client, view.headers["host"]) == (
        "GET", "/a", "10.0.0.1", "example.org")  # fmt: skip


def test_request_url_is_the_absolute_target() -> None:
    """The URL joins scheme, host, mount point, path and query."""
    request = RequestInfo(
        "GET", "/items", None, Headers(), scheme="https", host="api.example.org:8443",
        root_path="/v1", query="a=1&b=2",
    )  # fmt: skip
    assert request.url == "https://api.example.org:8443/v1/items?a=1&b=2"
    assert RequestInfo("GET", "/", None, Headers(), host="h").url == "http://h/"


def test_response_head_edits_ignore_case() -> None:
    """get, has, set and remove find fields whatever their case; order is kept."""
    head = ResponseHead(200, [("Content-Type", "text/plain"), ("Vary", "A"), ("vary", "B")])
    assert head.get("VARY") == "A, B"
    assert head.get("etag") is None
    assert head.has("content-type")
    assert not head.has("etag")
    head.set("Vary", "C")
    assert head.headers == [("Content-Type", "text/plain"), ("Vary", "C")]
    head.remove("content-type", "missing")
    assert head.headers == [("Vary", "C")]


def test_response_head_copy_is_independent() -> None:
    """Response.head() gives a head whose edits leave the response alone."""
    response = Response(200, (("A", "1"),), b"body")
    head = response.head()
    head.set("A", "2")
    assert response.headers == (("A", "1"),)
    assert (head.status, head.headers) == (200, [("A", "2")])


@pytest.mark.parametrize(
    "text",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "  sun, 06 nov 1994 08:49:37 gmt  ",
    ],
)
def test_parse_http_date_accepts_the_three_formats(text: str) -> None:
    """IMF-fixdate, RFC 850 and asctime all name the same instant (RFC 9110 §5.6.7)."""
    assert parse_http_date(text) == SUNDAY


def test_rfc850_years_after_69_are_last_century() -> None:
    """Two-digit years: 70-99 are 19xx, the rest 20xx."""
    assert parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT") == 0.0
    assert parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT") == 946684800.0


@pytest.mark.parametrize(
    "text",
    ["0", "", "yesterday", "Mon, 31 Feb 2020 00:00:00 GMT", "Mon, 01 Jan 2020 24:00:00 GMT",
     "Mon, 00 Jan 2020 00:00:00 GMT", "Mon, 01 Foo 2020 00:00:00 GMT",
     "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994 08:60:37 GMT"],
)  # fmt: skip
def test_parse_http_date_rejects_anything_else(text: str) -> None:
    """Dates that are malformed or do not exist give None, never an exception."""
    assert parse_http_date(text) is None


def test_format_http_date_round_trips() -> None:
    """format_http_date writes an IMF-fixdate that parses back to the same second."""
    assert format_http_date(SUNDAY) == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert parse_http_date(format_http_date(1_700_000_000.7)) == 1_700_000_000.0


def test_split_list_respects_quotes() -> None:
    """Commas split members except inside quoted strings; empty members are dropped."""
    assert split_list(" a, b ,,c ") == ["a", "b", "c"]
    assert split_list('no-cache="Set-Cookie, X-Id", max-age=5') == [
        'no-cache="Set-Cookie, X-Id"', "max-age=5"]  # fmt: skip
    assert split_list('a="x\\"y, z", b') == ['a="x\\"y, z"', "b"]
    assert split_list('"open, quote') == ['"open, quote']
    assert split_list("") == []


def test_headers_from_bytes_decode_when_first_read() -> None:
    """Fields handed over in bytes read like any others, decoded as ISO-8859-1; they are
    copied at once, so a later change to the server's list is not seen."""
    lines = [(b"Accept", b"text/html"), (b"x-tag", b"a"), (b"X-Tag", b"\xe9")]
    headers = Headers.from_bytes(lines)
    lines.append((b"x-late", b"1"))
    assert headers.get("x-tag") == "a, \xe9"
    assert headers.raw == (("accept", "text/html"), ("x-tag", "a"), ("x-tag", "\xe9"))
    assert "x-late" not in headers
    assert len(headers) == 2


def test_deferred_headers_are_produced_once() -> None:
    """A deferred source is asked for its fields at the first read, and only then."""
    calls: list[int] = []

    def source() -> list[tuple[str, str]]:
        calls.append(1)
        return [("Host", "example.org")]

    headers = Headers.deferred(source)
    assert calls == []
    assert headers["host"] == "example.org"
    assert headers.get_all("HOST") == ["example.org"]
    assert calls == [1]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("h", "/items?id=2", ""), ("h", "/items", "id=2")),  # an encoded "?" is no query
        (("h", "/a%41", ""), ("h", "/aA", "")),  # an encoded "%" is not an escape
        (("h", "/a#b", ""), ("h", "/a", "")),  # nor is "#" a fragment
        (("h/items", "/x", ""), ("h", "/items/x", "")),  # the Host cannot hold a path
        (("h?a=", "/", ""), ("h", "", "a=/")),  # nor a query
    ],
)
def test_target_uri_keeps_distinct_requests_apart(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    """No separator a client writes into the path or the Host makes two requests alike."""
    assert target_uri("http", *a) != target_uri("http", *b)


def test_target_uri_reads_as_a_uri() -> None:
    """Plain requests keep their readable form; others are percent-encoded."""
    assert target_uri("https", "example.com:8443", "/a/b;c", "x=1&y") == (
        "https://example.com:8443/a/b;c?x=1&y"
    )
    assert target_uri("http", "h", "/é ?", "") == "http://h/%C3%A9%20%3F"
