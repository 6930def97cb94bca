"""Collapsed misses under WSGI and ASGI: concurrent requests for a URL not cached yet call
the app once; the others wait for its response and are answered from the store.

Concurrency is made deterministic with a gate in the app: the leader is held inside it
until every follower is seen waiting (the middleware counts them), then let go.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import httpx
import pytest

from resilient.backends.memory import AsyncMemoryBackend
from resilient.middleware import CachePolicy, ResilientASGIMiddleware, Rule
from resilient.middleware._collapse import PASS_MEMORY
from resilient.middleware._types import Message, Receive, Scope, Send
from tests.middleware.concurrency import Gate, GatedOrigin, inflight, started, until
from tests.middleware.support import Harness, Origin, Reply, Seen, settings
from tests.support.clock import FakeClock

RULES = [Rule("/**", cache=CachePolicy(ttl=60))]
BURST = 10


def burst(harness: Harness, app: Any, path: str = "/cold", **options: Any) -> Any:
    """Start ``BURST`` concurrent GETs of ``path``; returns the function that joins them."""
    clients = [harness.mount(app) for _ in range(BURST)]
    return started([partial(client.get, path, **options) for client in clients])


def test_concurrent_misses_call_the_app_once(harness: Harness) -> None:
    origin = GatedOrigin(Reply(b"shared"))
    app = harness.middleware(origin, RULES)
    table = inflight(app)
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    answers: list[httpx.Response] = join()
    assert origin.calls == 1
    assert {(answer.status_code, answer.text) for answer in answers} == {(200, "shared")}
    assert sum("age" in answer.headers for answer in answers) == BURST - 1  # from the store
    assert table.waits == BURST - 1
    assert not table._flights  # the leader left the table


@pytest.mark.parametrize(
    "fields",
    [[("Cache-Control", "private")], [("Set-Cookie", "sid=alice")], [("Vary", "*")]],
    ids=["private", "set-cookie", "vary-star"],
)
def test_uncacheable_responses_release_and_are_remembered(
    harness: Harness, clock: FakeClock, fields: list[tuple[str, str]]
) -> None:
    """Followers of an uncacheable response call the app themselves; then, for a while, a
    burst on that URL is not serialized at all: every request is in the app at once."""
    origin = GatedOrigin(Reply(b"mine", headers=fields))
    app = harness.middleware(origin, RULES)
    table = inflight(app)
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    assert all(answer.text == "mine" for answer in join())
    assert (origin.calls, table.waits) == (BURST, BURST - 1)

    origin.gate = Gate()
    join = burst(harness, app)
    until(lambda: origin.gate.entered == BURST)  # nobody waits for a leader
    origin.gate.open()
    assert all(answer.text == "mine" for answer in join())
    assert (origin.calls, table.waits) == (2 * BURST, BURST - 1)

    clock.advance(PASS_MEMORY + 1)  # forgotten: the next burst has a leader again
    origin.gate = Gate()
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    join()
    assert (origin.calls, table.waits) == (3 * BURST, 2 * (BURST - 1))


@pytest.mark.parametrize("failure", ["500", "raise"])
def test_a_failing_leader_releases_its_followers(harness: Harness, failure: str) -> None:
    """The leader fails; followers go to the app at once, and their answer is stored."""

    def handler(seen: Seen) -> Reply:
        if origin.calls == 1:  # the leader
            if failure == "raise":
                raise RuntimeError("the app broke")
            return Reply(b"failure", 500)
        return Reply(b"ok")

    origin = GatedOrigin(handler, Gate(hold=lambda index: index == 0))
    app = harness.middleware(origin, RULES)
    table = inflight(app)
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    answers = join()
    failed = [a for a in answers if isinstance(a, Exception) or a.status_code == 500]
    assert len(failed) == 1
    assert origin.calls == BURST  # the leader, then each follower once
    assert not table._passes  # a failure is not "uncacheable": the next burst collapses
    assert harness.mount(app).get("/cold").text == "ok"
    assert origin.calls == BURST


def test_personalised_requests_never_wait(harness: Harness) -> None:
    """While an anonymous leader is in the app, requests with credentials go straight to
    the app too (they neither read nor fill the cache), each answered for itself."""

    def handler(seen: Seen) -> Reply:
        who = seen.headers.get("authorization") or seen.headers.get("cookie") or "anonymous"
        return Reply(who.encode())

    origin = GatedOrigin(handler)
    app = harness.middleware(origin, RULES)
    table = inflight(app)
    join_leader = started([lambda: harness.mount(app).get("/me")])
    until(lambda: origin.gate.entered == 1)
    personal = [{"Authorization": f"Bearer {user}"} for user in ("alice", "bob")]
    personal += [{"Cookie": f"sid={user}"} for user in ("alice", "bob")]
    client = harness.mount(app)
    join = started([partial(client.get, "/me", headers=fields) for fields in personal])
    until(lambda: origin.gate.entered == 1 + len(personal))
    origin.gate.open()
    answers = join()
    assert [a.text for a in answers] == ["Bearer alice", "Bearer bob", "sid=alice", "sid=bob"]
    assert join_leader()[0].text == "anonymous"
    assert table.waits == 0


def test_followers_give_up_on_a_hung_leader(harness: Harness) -> None:
    """With a short lease, followers stop waiting for a leader stuck in the app and call the
    app themselves, while it is still stuck."""
    # Unstorable, so that no follower can be answered from the store by a sibling.
    reply = Reply(b"ok", headers=[("Cache-Control", "no-store")])
    origin = GatedOrigin(reply, Gate(hold=lambda index: index == 0))
    app = harness.middleware(origin, RULES, env={"RESILIENT_CACHE_LOCK_TTL": "500ms"})
    table = inflight(app)
    join_leader = started([lambda: harness.mount(app).get("/slow")])
    until(lambda: origin.gate.entered == 1)
    clients = [harness.mount(app) for _ in range(BURST - 1)]
    join = started([partial(client.get, "/slow") for client in clients])
    until(lambda: table.waiting == BURST - 1)  # all behind the stuck leader, in its lease
    answers = join()  # the lease ends: each goes to the app itself
    assert all(answer.text == "ok" for answer in answers)
    assert origin.calls == BURST - 1  # the leader's call counts once it is let go
    assert not origin.gate.opened.is_set()  # the leader is still stuck
    assert table.waits == BURST - 1
    origin.gate.open()
    assert join_leader()[0].text == "ok"
    assert origin.calls == BURST


def test_collapsing_can_be_switched_off(harness: Harness) -> None:
    """A lease of 0 turns collapsing off: every concurrent miss is in the app at once."""
    origin = GatedOrigin(Reply(b"ok"))
    app = harness.middleware(origin, RULES, env={"RESILIENT_CACHE_LOCK_TTL": "0"})
    join = burst(harness, app)
    until(lambda: origin.gate.entered == BURST)
    origin.gate.open()
    join()
    assert origin.calls == BURST


def test_followers_wait_for_a_streamed_body(harness: Harness) -> None:
    """A streamed response is stored when its body ends; followers are answered from it."""
    origin = GatedOrigin(Reply([b"a", b"b", b"c"]))
    app = harness.middleware(origin, RULES)
    table = inflight(app)
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    assert {answer.text for answer in join()} == {"abc"}
    assert origin.calls == 1


@pytest.mark.parametrize(
    ("reply", "env"),
    [
        (Reply([b"a" * 60, b"b" * 60]), {"RESILIENT_HTTP_CACHE_MAX_BODY": "100"}),
        (Reply(b"old", headers=[("Cache-Control", "max-age=5"), ("Age", "10")]), {}),
    ],
    ids=["streamed-over-the-cap", "stale-on-arrival"],
)
def test_responses_found_unstorable_at_their_end_are_remembered(
    harness: Harness, reply: Reply, env: dict[str, str]
) -> None:
    """Known unstorable only once the body ended: followers are released then, and the
    next burst does not wait."""
    origin = GatedOrigin(reply)
    app = harness.middleware(origin, RULES, env=env)
    table = inflight(app)
    join = burst(harness, app)
    until(lambda: origin.gate.entered == 1 and table.waiting == BURST - 1)
    origin.gate.open()
    join()
    assert origin.calls == BURST
    origin.gate = Gate()
    join = burst(harness, app)
    until(lambda: origin.gate.entered == BURST)
    origin.gate.open()
    join()
    assert table.waits == BURST - 1


async def _cancelled_leader_releases_followers() -> list[int]:
    held, entered, calls = asyncio.Event(), asyncio.Event(), []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])
        entered.set()
        if len(calls) == 1:
            await held.wait()  # the leader hangs until cancelled
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ResilientASGIMiddleware(app, RULES, settings=settings(),
                                         backend=AsyncMemoryBackend())  # fmt: skip
    statuses: list[int] = []

    async def request() -> None:
        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [(b"host", b"h")],
                 "query_string": b"", "scheme": "http", "root_path": ""}  # fmt: skip
        await middleware(scope, receive, send)

    leader = asyncio.create_task(request())
    await entered.wait()
    followers = [asyncio.create_task(request()) for _ in range(3)]
    table = inflight(middleware)
    while table.waiting < 3:  # noqa: ASYNC110 - the table counts its waiters, it has no event
        await asyncio.sleep(0)
    leader.cancel()  # the client went away
    await asyncio.wait_for(asyncio.gather(*followers), 5)
    assert len(calls) == 4
    return statuses


def test_a_cancelled_leader_releases_its_followers_at_once() -> None:
    """ASGI: a leader whose task is cancelled lets its followers go to the app."""
    assert asyncio.run(_cancelled_leader_releases_followers()) == [200, 200, 200]


def test_an_unstorable_url_skips_the_cache_for_a_while(
    harness: Harness, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hit-for-pass: after a response found unstorable, requests to that URL go straight
    to the app, without a store lookup, for PASS_MEMORY seconds; then the cache is
    consulted again and a response that became storable is stored."""
    replies = [Reply(b"mine", headers=[("Cache-Control", "private")])]
    origin = Origin(lambda seen: replies[-1])
    client = harness.client(origin, RULES)
    lookups: list[str] = []
    get = harness.memory.get

    def counted(key: str) -> bytes | None:
        lookups.append(key)
        return get(key)

    monkeypatch.setattr(harness.memory, "get", counted)
    assert client.get("/page").text == "mine"
    assert lookups  # the first request looked the URL up
    lookups.clear()
    replies.append(Reply(b"shared", headers=[("Cache-Control", "max-age=60")]))
    for _ in range(3):  # storable now, but the URL is remembered as a pass
        answer = client.get("/page")
        assert (answer.text, "age" in answer.headers) == ("shared", False)
    assert origin.calls == 4
    assert lookups == []
    assert client.get("/other").text == "shared"  # other URLs are looked up as ever
    assert lookups
    clock.advance(PASS_MEMORY + 1)
    assert client.get("/page").text == "shared"  # looked up, missed, stored
    calls = origin.calls
    answer = client.get("/page")
    assert (answer.text, "age" in answer.headers) == ("shared", True)
    assert origin.calls == calls


@pytest.mark.parametrize("status", [400, 401, 403, 406, 407, 429, 451, 206, 304, 503, 505])
def test_one_clients_answer_does_not_start_a_pass_for_everyone(
    harness: Harness, status: int
) -> None:
    """A 429 (or 403, 401, ...) is about the client that got it: the next client's
    storable response is stored, and the one after is a hit."""

    def handler(seen: Seen) -> Reply:
        if seen.headers.get("x-who") == "mallory":
            return Reply(b"", status, content_type=None if status == 304 else "text/plain")
        return Reply(b"shared", headers=[("Cache-Control", "max-age=60")])

    origin = Origin(handler)
    client = harness.client(origin, RULES)
    assert client.get("/page", headers={"X-Who": "mallory"}).status_code == status
    assert client.get("/page").text == "shared"
    hit = client.get("/page")
    assert (hit.text, "age" in hit.headers) == ("shared", True)
    assert origin.calls == 2


@pytest.mark.parametrize("status", [200, 301, 404, 410])
def test_unstorable_answers_about_the_resource_start_a_pass(harness: Harness, status: int) -> None:
    """A private 200 or 404 is the URL's, whoever asks: its next requests skip the store."""
    replies = [Reply(b"mine", status, [("Cache-Control", "private")])]
    origin = Origin(lambda seen: replies[-1])
    client = harness.client(origin, RULES)
    client.get("/page", follow_redirects=False)
    replies.append(Reply(b"shared", headers=[("Cache-Control", "max-age=60")]))
    client.get("/page")
    client.get("/page")
    assert origin.calls == 3  # remembered as a pass: nothing stored meanwhile
