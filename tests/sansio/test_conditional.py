"""ETags, If-None-Match (weak comparison), If-Modified-Since and the fields of a 304."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resilient.sansio.conditional import (
    etag_matches,
    is_not_modified,
    not_modified_headers,
    strong_etag,
)
from resilient.sansio.http import Headers, format_http_date

T0 = 1_700_000_000.0
STORED = (
    ("Content-Type", "text/plain"),
    ("Cache-Control", "max-age=60"),
    ("Date", format_http_date(T0)),
    ("ETag", '"v1"'),
    ("Expires", format_http_date(T0 + 60)),
    ("Vary", "Accept"),
    ("Content-Location", "/a.txt"),
    ("Last-Modified", format_http_date(T0 - 3600)),
    ("Content-Length", "5"),
    ("X-Custom", "1"),
)


def test_strong_etag_is_quoted_and_stable_across_processes() -> None:
    """The ETag is a quoted strong tag from the bytes, the same in another interpreter."""
    etag = strong_etag(b"hello")
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert not etag.startswith("W/")
    assert etag != strong_etag(b"hello!")
    code = "from resilient.sansio.conditional import strong_etag; print(strong_etag(b'hello'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "12345"})  # fmt: skip
    assert other.stdout.strip() == etag


@pytest.mark.parametrize(
    ("header", "etag", "matches"),
    [
        ('"v1"', '"v1"', True),
        ('W/"v1"', '"v1"', True),  # weak comparison ignores W/
        ('"v1"', 'W/"v1"', True),
        ('"v0", "v1"', '"v1"', True),
        ('"v0" ,W/"v1" ', '"v1"', True),
        ("*", '"v1"', True),
        ("*", None, True),
        ('"v2"', '"v1"', False),
        ('"v1"', None, False),
        ("v1", '"v1"', False),  # unquoted: malformed, matches nothing
        ('"v1", garbage', '"v1"', False),
        ('"v1"', "v1", False),  # a stored tag that is not an entity-tag
        ('"v1"', '"v1", "v2"', False),
        ("", '"v1"', False),
    ],
)
def test_if_none_match_weak_comparison(header: str, etag: str | None, matches: bool) -> None:
    """If-None-Match lists tags or *; comparison is weak; malformed input matches nothing."""
    assert etag_matches(header, etag) is matches


def test_if_none_match_decides_a_304() -> None:
    """A matching If-None-Match on GET or HEAD gives 304; on POST never."""
    request = Headers([("If-None-Match", '"v1"')])
    assert is_not_modified("GET", request, STORED)
    assert is_not_modified("HEAD", request, STORED)
    assert not is_not_modified("POST", request, STORED)


def test_if_modified_since_compares_last_modified() -> None:
    """IMS at or after Last-Modified is a 304; before is not; an invalid date is ignored."""

    def check(since: str) -> bool:
        return is_not_modified("GET", Headers([("If-Modified-Since", since)]), STORED)

    assert check(format_http_date(T0 - 3600))
    assert check(format_http_date(T0))
    assert not check(format_http_date(T0 - 3601))
    assert not check("yesterday")
    assert not is_not_modified("GET", Headers(), STORED)


def test_if_modified_since_falls_back_to_date_then_arrival() -> None:
    """Without Last-Modified the stored Date is the reference, without either the time the
    response was received (RFC 9111 §4.3.2); with none of them, no 304."""
    since = Headers([("If-Modified-Since", format_http_date(T0))])
    assert is_not_modified("GET", since, (("Date", format_http_date(T0)),))
    assert not is_not_modified("GET", since, (("Date", format_http_date(T0 + 1)),), T0 - 9)
    assert is_not_modified("GET", since, (), T0)
    assert not is_not_modified("GET", since, (), T0 + 1)
    assert not is_not_modified("GET", since, ())
    assert not is_not_modified("GET", Headers([("If-Modified-Since", "x")]), (), T0)


def test_if_none_match_wins_over_if_modified_since() -> None:
    """With both, only If-None-Match counts (RFC 9110 §13.1.3)."""
    request = Headers([("If-None-Match", '"v2"'), ("If-Modified-Since", format_http_date(T0))])
    assert not is_not_modified("GET", request, STORED)


def test_not_modified_headers_are_those_of_rfc_9110() -> None:
    """A 304 repeats Cache-Control, Content-Location, Date, ETag, Expires and Vary only."""
    names = [name for name, _ in not_modified_headers(STORED)]
    assert names == ["Cache-Control", "Date", "ETag", "Expires", "Vary", "Content-Location"]


def test_last_modified_joins_when_there_is_no_etag() -> None:
    """Without an ETag, Last-Modified is the validator a 304 should carry."""
    stored = tuple(pair for pair in STORED if pair[0] != "ETag")
    names = [name for name, _ in not_modified_headers(stored)]
    assert "Last-Modified" in names
    assert "Content-Type" not in names
