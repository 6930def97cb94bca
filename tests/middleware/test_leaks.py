"""The leak matrix: one user's response is never served to another, whatever the app says.

Two users and an anonymous client take turns on the same URL, for each personalised case
a shared cache must handle (credentials in Authorization or Cookie, a Set-Cookie, private,
no-store, Vary: *, Vary on a header), with and without a route TTL (app mode), under both
shells, one after the other and all at once (collapsed misses). Every answer must name
the client that asked.
"""

from __future__ import annotations

import pytest

from resilient.middleware import CachePolicy, Rule
from tests.middleware.concurrency import GatedOrigin, inflight, started, until
from tests.middleware.support import Harness, Origin, Reply, Seen

USERS = ("alice", "bob", None)


def identify(seen: Seen) -> str:
    auth = seen.headers.get("authorization", "")
    cookie = seen.headers.get("cookie", "")
    if auth.startswith("Bearer "):
        return auth[7:]
    if cookie.startswith("sid="):
        return cookie[4:]
    return seen.headers.get("x-user", "anonymous")


def credentials(case: str, user: str | None) -> dict[str, str]:
    if user is None:
        return {}
    if case == "authorization":
        return {"Authorization": f"Bearer {user}"}
    if case == "cookie":
        return {"Cookie": f"sid={user}"}
    return {"X-User": user}


def response_fields(case: str, user: str, app_mode: bool) -> list[tuple[str, str]]:
    lifetime = [] if app_mode else [("Cache-Control", "public, max-age=600")]
    extra = {
        "set-cookie": [*lifetime, ("Set-Cookie", f"sid={user}; HttpOnly")],
        "private": [("Cache-Control", "private, max-age=600")],
        "no-store": [("Cache-Control", "no-store, max-age=600")],
        "vary-star": [*lifetime, ("Vary", "*")],
        "vary-header": [*lifetime, ("Vary", "X-User")],
    }
    return extra.get(case, lifetime)


CASES = ["authorization", "cookie", "set-cookie", "private", "no-store", "vary-star", "vary-header"]


@pytest.mark.parametrize("app_mode", [False, True], ids=["headers", "app-mode"])
@pytest.mark.parametrize("case", CASES)
def test_no_response_reaches_another_user(harness: Harness, case: str, app_mode: bool) -> None:
    """Alice, Bob and an anonymous client, twice each, interleaved: each gets their own."""

    def handler(seen: Seen) -> Reply:
        user = identify(seen)
        return Reply(f"hello {user}".encode(), headers=response_fields(case, user, app_mode))

    origin = Origin(handler)
    rules = [Rule("/**", cache=CachePolicy(ttl=600))] if app_mode else []
    middleware = harness.middleware(origin, rules)
    browsers = {user: harness.mount(middleware) for user in USERS}  # a cookie jar each
    for _ in range(2):
        for user in USERS:
            answer = browsers[user].get("/me", headers=credentials(case, user))
            expected = user or "anonymous"
            assert answer.text == f"hello {expected}"
            for other in {"alice", "bob", "anonymous"} - {expected}:
                assert other not in answer.headers.get("set-cookie", "")
    # A shared copy is made only where it is safe: per X-User value with Vary, and for the
    # anonymous client when the others are told apart by credentials.
    expected_calls = {"vary-header": 3, "authorization": 5, "cookie": 5}
    assert origin.calls == expected_calls.get(case, 6)


def test_named_cookie_routes_do_not_share_across_other_cookies(harness: Harness) -> None:
    """A route varying on lang shares by lang only: different languages never mix, and a
    response setting a cookie is never stored for anyone."""

    def handler(seen: Seen) -> Reply:
        cookie = seen.headers.get("cookie", "")
        lang = "fr" if "lang=fr" in cookie else "en"
        fields = [("Cache-Control", "max-age=600")]
        if "login" in seen.query:
            fields.append(("Set-Cookie", "sid=alice"))
        return Reply(f"{lang} {seen.query}".encode(), headers=fields)

    origin = Origin(handler)
    client = harness.client(origin, [Rule("/**", cache=CachePolicy(vary_cookies=["lang"]))])
    assert client.get("/p", headers={"Cookie": "sid=alice; lang=fr"}).text == "fr "
    assert client.get("/p", headers={"Cookie": "sid=bob; lang=en"}).text == "en "
    assert client.get("/p", headers={"Cookie": "lang=fr"}).text == "fr "
    assert client.get("/p?login", headers={"Cookie": "lang=en"}).text == "en login"
    answer = client.get("/p?login", headers={"Cookie": "lang=en; sid=bob"})
    assert answer.headers["set-cookie"] == "sid=alice"  # the app's own answer, not a copy
    assert origin.calls == 4


@pytest.mark.parametrize("app_mode", [False, True], ids=["headers", "app-mode"])
@pytest.mark.parametrize("case", CASES)
def test_concurrent_requests_never_get_another_users_response(
    harness: Harness, case: str, app_mode: bool
) -> None:
    """The same three clients at once on a cold URL: whoever waits for another's request
    (collapsed misses) is answered only with what the store would give it, else by the app.
    """

    def handler(seen: Seen) -> Reply:
        user = identify(seen)
        return Reply(f"hello {user}".encode(), headers=response_fields(case, user, app_mode))

    origin = GatedOrigin(handler)
    rules = [Rule("/**", cache=CachePolicy(ttl=600))] if app_mode else []
    middleware = harness.middleware(origin, rules)
    table = inflight(middleware)
    calls = [
        lambda user=user: harness.mount(middleware).get("/me", headers=credentials(case, user))
        for user in USERS
    ]
    join_first = started(calls[:1])  # Alice first: she leads, unless she bypasses the cache
    until(lambda: origin.gate.entered == 1)
    join_rest = started(calls[1:])
    until(lambda: origin.gate.entered + table.waiting == len(USERS))
    origin.gate.open()
    answers = join_first() + join_rest()
    assert [answer.text for answer in answers] == ["hello alice", "hello bob", "hello anonymous"]
    assert origin.calls == len(USERS)
    # Bob and the anonymous client waited for Alice, unless credentials kept her out.
    assert table.waits == (0 if case in ("authorization", "cookie") else 2)
