"""Stored records: raw body bytes, round trips, damage is a miss, what is replayed."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from resilient.sansio.conditional import strong_etag
from resilient.sansio.decisions import StoreDecision
from resilient.sansio.entry import (
    StoredResponse,
    VaryMarker,
    age_value,
    build_entry,
    decode_record,
)
from resilient.sansio.http import Response, ResponseHead, format_http_date
from resilient.sansio.serving import gateway_timeout, serve_stored

T0 = 1_700_000_000.0
BODY = bytes(range(256)) * 4  # every byte value: the body must come back untouched
DECISION = StoreDecision(True, lifetime=60, stale_while_revalidate=5, stale_if_error=9)


def stored(**changes: object) -> StoredResponse:
    base = StoredResponse(
        200, (("Content-Type", "application/octet-stream"), ("X-Ünïcode", "välue")), BODY,
        "http://h/a?b=1", (("accept", "text/html"), ("cookie", None)), T0, 3.5, 60.0,
        5.0, 9.0, True)  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_entry_round_trips_with_the_body_untouched() -> None:
    """Encoding then decoding gives the same record; the body bytes follow the metadata."""
    record = stored()
    data = record.encode()
    assert data.endswith(BODY)
    assert decode_record(data) == record


def test_marker_round_trips() -> None:
    """A Vary marker decodes to the same fields and generation."""
    marker = VaryMarker(("accept", "cookie"), "abc123")
    assert decode_record(marker.encode()) == marker


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"plain value from another feature",
        b"\x00rhe1",
        b"\x00rhe1\x00\x00\x00\x09{bad json",
        b"\x00rhe1\xff\xff\xff\xff{}",
        b"\x00rhv1[]",
        b'\x00rhv1[["a"], ""]',
        b'\x00rhv1[[1], "g"]',
        b'\x00rhv1{"a": 1}',
    ],
)
def test_damaged_or_foreign_records_are_misses(data: bytes | None) -> None:
    """Anything that does not decode cleanly is None, never an exception."""
    assert decode_record(data) is None


@pytest.mark.parametrize(
    "meta",
    [
        {"s": "200"}, {"s": True}, {"s": 99}, {"u": 5}, {"h": [["a"]]}, {"h": [[1, "b"]]},
        {"h": "x"}, {"v": [["a", 1]]}, {"v": [[1, "a"]]}, {"v": "x"}, {"rt": "now"},
        {"lt": None}, {"ia": True},
    ],
)  # fmt: skip
def test_wrong_metadata_types_are_misses(meta: dict[str, object]) -> None:
    """A record whose metadata has the wrong types is rejected as a whole."""
    good = json.loads(stored().encode()[9 : 9 + int.from_bytes(stored().encode()[5:9], "big")])
    blob = json.dumps({**good, **meta}).encode()
    data = b"\x00rhe1" + len(blob).to_bytes(4, "big") + blob + b"body"
    assert decode_record(data) is None


def test_build_entry_makes_a_replayable_record() -> None:
    """Connection fields and Age go; ETag and an exact Content-Length are added; no Date
    is made up (the server adds its own)."""
    head = ResponseHead(200, [
        ("Content-Type", "text/plain"), ("Connection", "close, X-Hop"), ("X-Hop", "1"),
        ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Age", "4"),
        ("Content-Length", "999"), ("X-Kept", "yes")])  # fmt: skip
    entry = build_entry("http://h/a", head, b"hello", DECISION, (), T0 - 1, T0)
    assert entry.headers == (
        ("Content-Type", "text/plain"), ("X-Kept", "yes"), ("ETag", strong_etag(b"hello")),
        ("Content-Length", "5"))  # fmt: skip
    assert entry.initial_age == 5  # Age 4 + 1 s of response delay
    assert (entry.lifetime, entry.stale_while_revalidate, entry.stale_if_error) == (60, 5, 9)


def test_build_entry_keeps_the_apps_validators_and_date() -> None:
    """An ETag and Date from the app are kept as they are; a 204 gets no Content-Length."""
    date = format_http_date(T0 - 2)
    head = ResponseHead(204, [("ETag", 'W/"app"'), ("Date", date)])
    entry = build_entry("http://h/a", head, b"", DECISION, (), T0, T0)
    assert entry.headers == (("ETag", 'W/"app"'), ("Date", date))
    assert entry.initial_age == 2


def test_serve_stored_adds_age_and_drops_the_body_for_head() -> None:
    """A hit replays the fields plus Age in whole seconds; HEAD gets no body."""
    record = stored(headers=(("Content-Length", str(len(BODY))),), initial_age=3.5)
    hit = serve_stored(record, "GET", {}, T0 + 10.9)
    assert hit == Response(200, (("Content-Length", "1024"), ("Age", "14")), BODY)
    head = serve_stored(record, "HEAD", {}, T0 + 10.9)
    assert head.body == b""
    assert head.headers == hit.headers


def test_serve_stored_answers_validators_with_304() -> None:
    """A matching If-None-Match gets a 304 with the fields of RFC 9110 §15.4.5 and Age."""
    record = stored(headers=(("Content-Type", "text/plain"), ("ETag", '"x"'),
                             ("Cache-Control", "max-age=60")), initial_age=0.0)  # fmt: skip
    answer = serve_stored(record, "GET", {"if-none-match": 'W/"x"'}, T0 + 2)
    assert answer == Response(304, (("ETag", '"x"'), ("Cache-Control", "max-age=60"),
                                    ("Age", "2")))  # fmt: skip


def test_only_200_becomes_304() -> None:
    """A stored 404 is replayed as it is, validators or not."""
    record = stored(status=404, headers=(("ETag", '"x"'),))
    assert serve_stored(record, "GET", {"if-none-match": '"x"'}, T0).status == 404


def test_gateway_timeout_is_a_complete_response() -> None:
    """The 504 for only-if-cached has a type, a length that matches, and no-store."""
    answer = gateway_timeout()
    fields = dict(answer.headers)
    assert answer.status == 504
    assert int(fields["Content-Length"]) == len(answer.body)
    assert fields["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("age", "seconds"),
    [
        (None, 0.0),
        ("0", 0.0),
        (" 42 ", 42.0),
        ("7200, 0", 7200.0),  # a list: its first member (RFC 9111 §5.1)
        ("7200,0", 7200.0),
        ("10, 99999", 10.0),
        ("-5", math.inf),  # invalid: stale, never fresher than it is
        ("1.5", math.inf),
        ("abc, 0", math.inf),
        (", 7200", math.inf),  # an empty first line, then another
        ("", math.inf),
        ("٣", math.inf),  # a digit, but not an ASCII one
    ],
)
def test_age_value_reads_the_first_member_and_never_less(age: str | None, seconds: float) -> None:
    """A list-valued Age counts by its first member; an invalid one makes a response stale."""
    assert age_value(age) == seconds


def test_build_entry_with_a_list_valued_age_is_old() -> None:
    """Age: 7200, 0 (or two Age lines) is 7200 s old, not fresh."""
    head = ResponseHead(200, [("Age", "7200"), ("Age", "0")])
    entry = build_entry("http://h/a", head, b"x", DECISION, (), T0, T0)
    assert entry.initial_age == 7200
