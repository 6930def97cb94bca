"""RFC 5861 under WSGI and ASGI: stale-while-revalidate and stale-if-error."""

from __future__ import annotations

import logging

import pytest

from resilient.middleware import CachePolicy, Rule
from tests.middleware.support import Harness, Origin, Reply, Seen
from tests.support.clock import FakeClock


class Flaky:
    """An origin that answers, fails with a status, or raises, as the test says."""

    def __init__(self, cache_control: str) -> None:
        self.cache_control = cache_control
        self.mode = "ok"
        self.served = 0
        self.origin = Origin(self.handle)

    def handle(self, seen: Seen) -> Reply:
        if self.mode == "raise":
            raise RuntimeError("the app broke")
        if self.mode != "ok":
            return Reply(b"failure", int(self.mode))
        self.served += 1
        return Reply(f"v{self.served}".encode(), headers=[("Cache-Control", self.cache_control)])


def test_stale_while_revalidate_serves_then_refreshes(harness: Harness, clock: FakeClock) -> None:
    """Within the window the stale copy is served at once, then one background request
    refreshes it: the next client gets the new version, fresh."""
    app = Flaky("max-age=10, stale-while-revalidate=30")
    client = harness.client(app.origin)
    client.get("/a", headers={"If-None-Match": '"x"'})
    clock.advance(15)
    stale = client.get("/a")
    assert (stale.text, stale.headers["age"]) == ("v1", "15")
    assert app.origin.calls == 2  # the refresh ran after the stale answer went out
    refresh = app.origin.seen[1]
    assert (refresh.method, refresh.path, refresh.body) == ("GET", "/a", b"")
    assert "if-none-match" not in refresh.headers
    clock.advance(1)
    fresh = client.get("/a")
    assert (fresh.text, fresh.headers["age"]) == ("v2", "1")


def test_one_refresh_at_a_time(harness: Harness, clock: FakeClock) -> None:
    """A refresh that fails holds its lease: stale hits meanwhile start no new refresh."""
    app = Flaky("max-age=10, stale-while-revalidate=100")
    client = harness.client(app.origin)
    client.get("/a")
    app.mode = "500"
    clock.advance(15)
    assert client.get("/a").text == "v1"
    assert app.origin.calls == 2
    clock.advance(1)
    assert client.get("/a").text == "v1"
    assert app.origin.calls == 2
    clock.advance(30)  # the lease (30 s at most) has run out
    app.mode = "ok"
    assert client.get("/a").text == "v1"
    assert client.get("/a").text == "v2"
    assert app.origin.calls == 3


def test_past_the_window_the_app_answers(harness: Harness, clock: FakeClock) -> None:
    """After stale-while-revalidate runs out, the request waits for the app."""
    app = Flaky("max-age=10, stale-while-revalidate=5")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(15)
    assert client.get("/a").text == "v2"


@pytest.mark.parametrize("failure", ["500", "502", "503", "504", "raise"])
def test_stale_if_error_stands_in_for_failures(
    harness: Harness, clock: FakeClock, failure: str
) -> None:
    """Within stale-if-error, a 500/502/503/504 or an exception gets the stale copy."""
    app = Flaky("max-age=10, stale-if-error=60")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(20)
    app.mode = failure
    answer = client.get("/a")
    assert (answer.status_code, answer.text, answer.headers["age"]) == (200, "v1", "20")
    head = client.head("/a")
    assert (head.status_code, head.content) == (200, b"")


def test_stale_if_error_only_for_server_errors(harness: Harness, clock: FakeClock) -> None:
    """A 404 is an answer, not a failure: it goes out."""
    app = Flaky("max-age=10, stale-if-error=60")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(20)
    app.mode = "404"
    assert client.get("/a").status_code == 404


def test_stale_if_error_window_ends(harness: Harness, clock: FakeClock) -> None:
    """Past the window the failure reaches the client; an exception propagates."""
    app = Flaky("max-age=10, stale-if-error=60")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(71)
    app.mode = "503"
    assert client.get("/a").status_code == 503
    app.mode = "raise"
    with pytest.raises(RuntimeError, match="the app broke"):
        client.get("/a")


def test_stale_if_error_then_recovery(harness: Harness, clock: FakeClock) -> None:
    """When the app answers again, its new response replaces the stale one."""
    app = Flaky("max-age=10, stale-if-error=60")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(20)
    assert client.get("/a").text == "v2"
    assert client.get("/a").headers["age"] == "0"


def test_must_revalidate_forbids_stale(harness: Harness, clock: FakeClock) -> None:
    """must-revalidate overrides both windows: failures and waits reach the client."""
    app = Flaky("max-age=10, stale-while-revalidate=30, stale-if-error=60, must-revalidate")
    client = harness.client(app.origin)
    client.get("/a")
    clock.advance(15)
    app.mode = "503"
    assert client.get("/a").status_code == 503


def test_app_mode_windows(harness: Harness, clock: FakeClock) -> None:
    """A route's stale_if_error applies to app-mode responses, and is announced."""
    app = Flaky("public")
    rules = [Rule("/**", cache=CachePolicy(ttl=10, stale_if_error=60))]
    client = harness.client(app.origin, rules)
    first = client.get("/a")
    assert first.headers["cache-control"] == "public, max-age=10, stale-if-error=60"
    clock.advance(30)
    app.mode = "raise"
    assert client.get("/a").text == "v1"


def test_stale_copy_answers_validators(harness: Harness, clock: FakeClock) -> None:
    """A stale copy standing in for a failure still answers If-None-Match with 304."""
    app = Flaky("max-age=10, stale-if-error=60")
    client = harness.client(app.origin)
    etag = client.get("/a").headers["etag"]
    clock.advance(20)
    app.mode = "503"
    answer = client.get("/a", headers={"If-None-Match": etag})
    assert (answer.status_code, answer.headers["age"]) == (304, "20")


def test_a_failed_refresh_is_only_logged(
    harness: Harness, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A background refresh whose app raises leaves the client's answer alone."""
    state = {"fail": False}

    def handler(seen: Seen) -> Reply:
        if state["fail"]:
            raise RuntimeError("refresh failed")
        return Reply(b"v1", headers=[("Cache-Control", "max-age=10, stale-while-revalidate=60")])

    origin = Origin(handler)
    client = harness.client(origin)
    client.get("/a")
    clock.advance(20)
    state["fail"] = True
    with caplog.at_level(logging.DEBUG, logger="resilient.middleware"):
        assert client.get("/a").text == "v1"
    assert origin.calls == 2
    assert "refreshing a stale response failed" in caplog.text
