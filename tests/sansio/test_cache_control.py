"""Cache-Control parsing: directives, arguments, duplicates and malformed values."""

from __future__ import annotations

import pytest

from resilient.sansio.cache_control import MAX_DELTA, parse_cache_control, parse_targeted


def test_response_directives() -> None:
    """Every response directive the cache uses is read, case-insensitively."""
    cc = parse_cache_control(
        "Public, MAX-AGE=60, s-maxage=30, must-revalidate, proxy-revalidate, "
        "stale-while-revalidate=10, stale-if-error=600"
    )
    assert cc.public
    assert cc.must_revalidate
    assert cc.proxy_revalidate
    assert (cc.max_age, cc.s_maxage) == (60, 30)
    assert (cc.stale_while_revalidate, cc.stale_if_error) == (10, 600)
    assert not (cc.no_store)
    assert not (cc.no_cache)
    assert not (cc.private)
    assert cc.has_freshness
    assert "max-age" in cc
    assert "MAX-AGE" in cc
    assert 3 not in cc


def test_request_directives() -> None:
    """Request directives: max-stale with and without a value, min-fresh, only-if-cached."""
    cc = parse_cache_control("max-stale, min-fresh=5, only-if-cached, no-cache")
    assert cc.max_stale == MAX_DELTA
    assert cc.min_fresh == 5
    assert cc.only_if_cached
    assert cc.no_cache
    assert parse_cache_control("max-stale=7").max_stale == 7
    assert parse_cache_control("max-stale=soon").max_stale is None


def test_absent_or_empty() -> None:
    """No field, an empty one, or only commas: no directives at all."""
    for value in (None, "", " , ,"):
        cc = parse_cache_control(value)
        assert dict(cc.directives) == {}
        assert not cc.has_freshness
        assert cc.max_age is None


def test_qualified_forms_count_as_unqualified() -> None:
    """no-cache="Set-Cookie" and private="X" are read as no-cache and private."""
    cc = parse_cache_control('no-cache="Set-Cookie, X-Id", private="X-User"')
    assert cc.no_cache
    assert cc.private
    assert cc.directives["no-cache"] == "Set-Cookie, X-Id"


def test_quoted_arguments_are_accepted() -> None:
    """max-age="60" means 60 (recipients accept both forms); escapes are undone."""
    cc = parse_cache_control('max-age="60", ext="a\\"b"')
    assert cc.max_age == 60
    assert cc.directives["ext"] == 'a"b'


@pytest.mark.parametrize("value", ["max-age=abc", "max-age=", "max-age", "max-age=-5",
                                   "max-age=1.5", "max-age=٣"])  # fmt: skip
def test_unusable_max_age_means_stale(value: str) -> None:
    """A max-age that is not delta-seconds counts as 0: stale, never fresh by accident."""
    assert parse_cache_control(value).max_age == 0
    assert parse_cache_control(value.replace("max-age", "s-maxage")).s_maxage == 0


def test_unusable_windows_are_ignored() -> None:
    """A malformed stale-while-revalidate or min-fresh grants nothing."""
    cc = parse_cache_control("stale-while-revalidate=x, stale-if-error, min-fresh=-1")
    assert cc.stale_while_revalidate is None
    assert cc.stale_if_error is None
    assert cc.min_fresh is None


def test_first_occurrence_wins() -> None:
    """A repeated directive keeps its first value (RFC 9111 §4.2.1)."""
    assert parse_cache_control("max-age=10, max-age=1000").max_age == 10


def test_huge_values_are_clamped() -> None:
    """Values beyond 2^31 are clamped to 2147483648 (RFC 9111 §1.2.2)."""
    assert parse_cache_control("max-age=99999999999999999999").max_age == MAX_DELTA


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (" , ", None),
        ("max-age=60", {"max-age": "60"}),
        ("no-store, max-age=60;x=1", {"no-store": None, "max-age": "60"}),
        ("private=?0, no-cache=?1", {"no-cache": None}),
        ("private=?0", None),
    ],
)
def test_parse_targeted_reads_a_structured_dictionary(
    value: str | None, expected: dict[str, str | None] | None
) -> None:
    """CDN-Cache-Control (RFC 9213): bare names and ?1 are present, ?0 absent, parameters
    ignored; nothing usable gives None, so Cache-Control applies."""
    parsed = parse_targeted(value)
    assert (None if parsed is None else dict(parsed.directives)) == expected
