"""Stale stored responses revalidated with the app (RFC 9111 §4.3), under WSGI and ASGI:
the app is asked with the stored validators, and its 304 freshens the stored copy."""

from __future__ import annotations

from resilient.sansio.conditional import strong_etag
from resilient.sansio.http import format_http_date
from tests.middleware.support import Harness, Origin, Reply, Seen
from tests.support.clock import FakeClock

LAST_MODIFIED = format_http_date(1_000_000_000)
#: Stored copies are kept an hour past expiry, to be revalidated.
KEEP = {"RESILIENT_HTTP_CACHE_KEEP": "1h"}


class Versioned:
    """An origin holding one representation; it answers validators that match with 304."""

    def __init__(self, *extra: tuple[str, str], etag: str | None = '"v1"') -> None:
        self.etag = etag
        self.extra = list(extra)
        self.body = b"representation"
        self.not_modified = 0
        self.origin = Origin(self.handle)

    def handle(self, seen: Seen) -> Reply:
        fields = [("Cache-Control", "max-age=10"), ("Last-Modified", LAST_MODIFIED),
                  *self.extra]  # fmt: skip
        if self.etag is not None:
            fields.append(("ETag", self.etag))
        matches = (
            seen.headers.get("if-none-match") == self.etag
            if self.etag is not None
            else seen.headers.get("if-modified-since") == LAST_MODIFIED
        )
        if matches:
            self.not_modified += 1
            return Reply(b"", 304, fields, content_type=None)
        return Reply(self.body, 200, fields)


def test_a_stale_copy_is_revalidated_and_freshened(harness: Harness, clock: FakeClock) -> None:
    """Past max-age the app gets the stored ETag; its 304 updates the stored fields, the
    client gets the full stored response, and the copy is fresh again for max-age."""
    app = Versioned(("X-Revision", "1"))
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)
    app.extra = [("X-Revision", "2")]
    answer = client.get("/a")
    assert (answer.status_code, answer.content) == (200, b"representation")
    assert answer.headers["x-revision"] == "2"
    assert answer.headers["age"] == "0"
    assert app.origin.seen[-1].headers["if-none-match"] == '"v1"'
    assert app.origin.seen[-1].headers["if-modified-since"] == LAST_MODIFIED
    clock.advance(9)
    hit = client.get("/a")
    assert (hit.content, hit.headers["x-revision"], hit.headers["age"]) == (
        b"representation", "2", "9")  # fmt: skip
    assert (app.origin.calls, app.not_modified) == (2, 1)


def test_the_clients_own_validators_are_answered_after_freshening(
    harness: Harness, clock: FakeClock
) -> None:
    """A client revalidating its own copy gets a 304 from the freshened stored copy."""
    app = Versioned()
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)
    answer = client.get("/a", headers={"If-None-Match": '"v1"'})
    assert answer.status_code == 304
    assert app.not_modified == 1
    other = client.get("/a", headers={"If-None-Match": '"other"'})
    assert (other.status_code, other.content) == (200, b"representation")
    assert app.origin.calls == 2


def test_last_modified_alone_is_enough(harness: Harness, clock: FakeClock) -> None:
    """Without an ETag from the app, If-Modified-Since carries the revalidation (the
    ETag the cache made is sent too, and the app does not know it)."""
    app = Versioned(etag=None)
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)
    assert client.get("/a").content == b"representation"
    sent = app.origin.seen[-1].headers
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert sent["if-none-match"] == strong_etag(b"representation")
    assert app.not_modified == 1


def test_a_changed_representation_replaces_the_copy(harness: Harness, clock: FakeClock) -> None:
    """An app whose representation changed answers 200: stored as any new response."""
    app = Versioned()
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)
    app.etag, app.body = '"v2"', b"changed"
    assert client.get("/a").content == b"changed"
    assert client.get("/a").headers["etag"] == '"v2"'
    assert (app.origin.calls, app.not_modified) == (2, 0)


def test_a_304_that_forbids_storing_is_served_once(harness: Harness, clock: FakeClock) -> None:
    """A 304 saying private now updates what this client gets, and nothing is stored:
    the next request asks the app again."""
    app = Versioned()
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)
    app.extra = [("Cache-Control", "private, max-age=10")]
    answer = client.get("/a")
    assert answer.content == b"representation"
    assert "private" in answer.headers["cache-control"]
    client.get("/a")
    assert (app.origin.calls, app.not_modified) == (3, 2)


def test_a_304_for_another_tag_does_not_update_the_copy(harness: Harness, clock: FakeClock) -> None:
    """A 304 naming an ETag other than the stored one selects nothing (RFC 9111 §4.3.4):
    the stored body is served as the app vouched for it, and not stored again."""
    app = Versioned(("X-Revision", "1"))
    client = harness.client(app.origin, env=KEEP)
    client.get("/a")
    clock.advance(11)

    def odd(seen: Seen) -> Reply:
        return Reply(b"", 304, [("ETag", '"zzz"'), ("X-Revision", "2")], content_type=None)

    app.origin.handler = odd
    answer = client.get("/a")
    assert (answer.status_code, answer.content) == (200, b"representation")
    assert answer.headers["x-revision"] == "1"
