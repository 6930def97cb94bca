"""What a stored response is keyed on, under WSGI and ASGI: no two requests the app tells
apart may share an entry, whatever separators the client writes into the path, the
``Host`` or the cookies."""

from __future__ import annotations

from resilient.middleware import CachePolicy, Rule
from tests.middleware.support import Harness, Origin, Reply, Seen

CACHEABLE = [("Cache-Control", "max-age=60")]


def echo() -> Origin:
    """An origin answering with the path and query it saw, cacheable."""

    def handler(seen: Seen) -> Reply:
        status = 200 if seen.path == "/items" else 404
        return Reply(f"{seen.path}|{seen.query}".encode(), status, list(CACHEABLE))

    return Origin(handler)


def test_an_encoded_question_mark_is_not_a_query(harness: Harness) -> None:
    """``/items%3Fid=2`` is the path ``/items?id=2`` (a 404 here); its stored answer is
    never given to ``/items?id=2`` (the path ``/items`` with a query), nor the reverse."""
    origin = echo()
    client = harness.client(origin)
    poisoned = client.get("/items%3Fid=2")
    assert (poisoned.status_code, poisoned.text) == (404, "/items?id=2|")
    real = client.get("/items?id=2")
    assert (real.status_code, real.text) == (200, "/items|id=2")
    assert client.get("/items%3Fid=2").status_code == 404
    assert client.get("/items?id=2").status_code == 200
    assert origin.calls == 2  # each answer stored once, under its own key


def test_an_encoded_percent_stays_distinct(harness: Harness) -> None:
    """``/a%2541`` (the path ``/a%41``) and ``/aA`` differ to the app, and to the cache."""
    origin = echo()
    client = harness.client(origin)
    assert client.get("/a%2541").text == "/a%41|"
    assert client.get("/aA").text == "/aA|"
    assert client.get("/a%2541").text == "/a%41|"
    assert origin.calls == 2


def test_a_host_holding_a_path_is_not_a_path(harness: Harness) -> None:
    """``Host: testserver/items`` with path ``/x`` is not ``testserver`` with ``/items/x``."""
    origin = Origin(lambda seen: Reply(seen.headers.get("host", "").encode(), 200,
                                       list(CACHEABLE)))  # fmt: skip
    client = harness.client(origin)
    assert client.get("/items/x").text == "testserver"
    forged = client.get("/x", headers={"Host": "testserver/items"})
    assert forged.text == "testserver/items"
    assert client.get("/items/x").text == "testserver"
    assert origin.calls == 2


def test_unsafe_method_invalidates_the_encoded_location(harness: Harness) -> None:
    """A Location naming a path with an encoded ``?`` invalidates that path's entry, not
    the entry of the same text read as a query."""
    calls = {"n": 0}

    def handler(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(b"", 201, [("Location", "/items%3Fid=2")])
        calls["n"] += 1
        return Reply(f"{seen.path}|{seen.query}|{calls['n']}".encode(), 200, list(CACHEABLE))

    origin = Origin(handler)
    client = harness.client(origin, [Rule("/**", cache=CachePolicy())])
    assert client.get("/items%3Fid=2").text == "/items?id=2||1"
    assert client.get("/items?id=2").text == "/items|id=2|2"
    client.post("/other")
    assert client.get("/items%3Fid=2").text == "/items?id=2||3"  # invalidated
    assert client.get("/items?id=2").text == "/items|id=2|2"  # untouched


def test_a_duplicate_cookie_cannot_fill_another_variant(harness: Harness) -> None:
    """``Cookie: lang=en; lang=<script>`` is read as ``<script>`` by Starlette and as
    ``en`` by werkzeug: it bypasses the cache, so the ``lang=en`` variant stays clean."""

    def handler(seen: Seen) -> Reply:
        return Reply(seen.headers.get("cookie", "").encode(), 200, list(CACHEABLE))

    origin = Origin(handler)
    client = harness.client(origin, [Rule("/**", cache=CachePolicy(vary_cookies=["lang"]))])
    client.get("/page", headers={"Cookie": "lang=en; lang=<script>"})
    clean = client.get("/page", headers={"Cookie": "lang=en"})
    assert clean.text == "lang=en"
    assert client.get("/page", headers={"Cookie": "lang=en"}).text == "lang=en"
    assert origin.calls == 2  # the ambiguous request bypassed; lang=en stored once
    client.get("/page", headers={"Cookie": "sid=1, lang=<script>"})
    assert client.get("/page", headers={"Cookie": "sid=2"}).text == "sid=2"
    assert origin.calls == 4
