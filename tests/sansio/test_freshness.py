"""Age (RFC 9111 §4.2.3) and whether a stored response may serve a request now."""

from __future__ import annotations

import math

import pytest

from resilient.sansio.cache_control import parse_cache_control
from resilient.sansio.decisions import Freshness
from resilient.sansio.entry import StoredResponse, initial_age
from resilient.sansio.freshness import assess, current_age
from resilient.sansio.http import format_http_date

T0 = 1_700_000_000.0
NONE = parse_cache_control(None)


def entry(lifetime: float = 60, swr: float = 0, sie: float = 0, stale: bool = True,
          age: float = 0) -> StoredResponse:  # fmt: skip
    return StoredResponse(200, (), b"", "http://h/", (), T0, age, lifetime, swr, sie, stale)


def test_initial_age_takes_the_larger_estimate() -> None:
    """Corrected initial age: the larger of Date-based and Age+delay estimates."""
    date = format_http_date(T0 - 10)
    assert initial_age(None, date, T0 - 1, T0) == 10  # apparent age from Date
    assert initial_age("30", date, T0 - 2, T0) == 32  # Age plus the response delay
    assert initial_age(None, None, T0 - 0.5, T0) == 0.5  # delay alone
    assert initial_age(None, format_http_date(T0 + 60), T0, T0) == 0  # a Date ahead of us


@pytest.mark.parametrize("age", ["-5", "abc", "1.5", "", "٣"])
def test_unusable_age_fields_make_a_response_stale(age: str) -> None:
    """An Age that is not a non-negative integer is not ignored (that would make a
    response of unknown age look new): the response counts as stale."""
    assert initial_age(age, None, T0, T0) == math.inf


def test_current_age_adds_resident_time() -> None:
    """current_age = corrected initial age + time since the response arrived."""
    stored = entry(age=7)
    assert current_age(stored, T0 + 5) == 12
    assert current_age(stored, T0 - 5) == 7  # a clock that stepped back never lowers it


def test_fresh_then_stale() -> None:
    """Fresh while age < lifetime; stale after, and unusable without a window."""
    stored = entry(lifetime=60)
    assert assess(stored, T0 + 59.9, NONE) is Freshness.FRESH
    assert assess(stored, T0 + 60, NONE) is Freshness.UNUSABLE


def test_stale_windows() -> None:
    """stale-while-revalidate first, then stale-if-error, then nothing."""
    stored = entry(lifetime=60, swr=10, sie=100)
    assert assess(stored, T0 + 65, NONE) is Freshness.STALE_REVALIDATE
    assert assess(stored, T0 + 75, NONE) is Freshness.STALE_IF_ERROR
    assert assess(stored, T0 + 160, NONE) is Freshness.UNUSABLE


def test_must_revalidate_forbids_every_stale_use() -> None:
    """An entry that may not be served stale is unusable once stale, max-stale or not."""
    stored = entry(lifetime=60, swr=10, sie=100, stale=False)
    assert assess(stored, T0 + 61, parse_cache_control("max-stale")) is Freshness.UNUSABLE


def test_request_directives() -> None:
    """max-age, min-fresh and max-stale of an honoured request narrow or widen the use."""
    stored = entry(lifetime=60)
    assert assess(stored, T0 + 30, parse_cache_control("max-age=20")) is Freshness.UNUSABLE
    assert assess(stored, T0 + 30, parse_cache_control("max-age=40")) is Freshness.FRESH
    assert assess(stored, T0 + 30, parse_cache_control("min-fresh=40")) is Freshness.UNUSABLE
    assert assess(stored, T0 + 30, parse_cache_control("min-fresh=20")) is Freshness.FRESH
    assert assess(stored, T0 + 70, parse_cache_control("max-stale=15")) is Freshness.STALE_ACCEPTED
    assert assess(stored, T0 + 80, parse_cache_control("max-stale=15")) is Freshness.UNUSABLE
