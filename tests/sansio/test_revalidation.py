"""Revalidation of stale stored responses: the validators sent, which 304 selects the
stored response, how its fields are updated, how long records are kept for it."""

from __future__ import annotations

import pytest

from resilient.sansio.decisions import CacheRules
from resilient.sansio.entry import StoredResponse
from resilient.sansio.freshness import storage_ttl
from resilient.sansio.http import ResponseHead
from resilient.sansio.revalidation import freshen_headers, revalidation_fields, selects

LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"


def stored(*headers: tuple[str, str], status: int = 200, **timing: float) -> StoredResponse:
    return StoredResponse(status, headers, b"body", "http://h/a", (), 0.0,
                          timing.get("age", 0.0), timing.get("lifetime", 60.0),
                          timing.get("swr", 0.0), timing.get("sie", 0.0))  # fmt: skip


def test_revalidation_fields_are_the_stored_validators() -> None:
    entry = stored(("ETag", '"v1"'), ("Last-Modified", LAST_MODIFIED))
    assert revalidation_fields(entry) == (
        ("If-None-Match", '"v1"'), ("If-Modified-Since", LAST_MODIFIED))  # fmt: skip
    assert revalidation_fields(stored(("ETag", 'W/"w"'))) == (("If-None-Match", 'W/"w"'),)
    assert revalidation_fields(stored()) == ()
    assert revalidation_fields(stored(("ETag", '"v1"'), status=404)) == ()  # only a 200


@pytest.mark.parametrize(
    ("etag", "selected"),
    [(None, True), ('"v1"', True), ('W/"v1"', True), ('"v2"', False)],
)
def test_a_304_selects_the_response_whose_tag_it_names(etag: str | None, selected: bool) -> None:
    head = ResponseHead(304, [] if etag is None else [("ETag", etag)])
    assert selects(stored(("ETag", '"v1"')), head) is selected


def test_freshen_headers_replaces_what_the_304_carries() -> None:
    """Fields of the 304 replace every stored line of their name, in place; new ones
    follow; the body's own fields and connection fields stay as stored."""
    old = [("Cache-Control", "max-age=10"), ("X-A", "1"), ("X-A", "2"), ("Content-Length", "4"),
           ("ETag", '"v1"')]  # fmt: skip
    fresh = [("X-A", "3"), ("Cache-Control", "max-age=20"), ("Content-Length", "0"),
             ("Connection", "X-Hop"), ("X-Hop", "1"), ("Transfer-Encoding", "chunked"),
             ("X-New", "yes"), ("Age", "5")]  # fmt: skip
    assert freshen_headers(old, fresh) == [
        ("Cache-Control", "max-age=20"), ("X-A", "3"), ("Content-Length", "4"),
        ("ETag", '"v1"'), ("X-New", "yes"), ("Age", "5")]  # fmt: skip


def test_storage_ttl_keeps_a_200_for_revalidation() -> None:
    """keep lengthens a 200's stay past every window, must-revalidate or not; keep_stale
    only while it may be served stale; the age at arrival counts against both."""
    rules = CacheRules(keep=100.0)
    assert storage_ttl(stored(lifetime=60, sie=30), CacheRules()) == 90
    assert storage_ttl(stored(lifetime=60, sie=30), rules) == 160
    assert storage_ttl(stored(lifetime=60, age=10), rules) == 150
    assert storage_ttl(stored(lifetime=60, status=404), rules) == 60
    strict = StoredResponse(200, (), b"", "http://h/a", (), 0.0, 0.0, 60.0,
                            may_serve_stale=False)  # fmt: skip
    assert storage_ttl(strict, rules) == 160
    assert storage_ttl(strict, CacheRules(keep_stale=500.0)) == 60
