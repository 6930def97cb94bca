"""Circuit breakers per route (or per upstream), under WSGI and ASGI; time is injected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import httpx
import pytest

from resilient.backends.redis import AsyncRedisBackend, RedisBackend
from resilient.breaker import CircuitBreaker, get_breaker, reset_breakers
from resilient.errors import ConfigurationError
from resilient.middleware import CachePolicy, Rule
from resilient.middleware.rules import Routes
from resilient.sansio.http import Response
from resilient.sansio.problems import PROBLEM_JSON, Rejection
from tests.middleware.support import Harness, Origin, Reply, Seen, settings
from tests.support.clock import FakeClock


@pytest.fixture(autouse=True)
def _forget_named_breakers() -> Iterator[None]:
    yield
    reset_breakers()


class Upstream:
    """An app that answers, fails with a status, or raises, as the test says."""

    def __init__(self, cache_control: str | None = None) -> None:
        self.mode = "ok"
        self.served = 0
        self.cache_control = cache_control
        self.origin = Origin(self.handle)

    def handle(self, seen: Seen) -> Reply:
        if self.mode == "raise":
            raise RuntimeError("the upstream broke")
        if self.mode != "ok":
            return Reply(b"failure", int(self.mode))
        self.served += 1
        fields = [] if self.cache_control is None else [("Cache-Control", self.cache_control)]
        return Reply(f"v{self.served}".encode(), headers=fields)


def fail(client: httpx.Client, path: str, times: int) -> list[int]:
    return [client.get(path).status_code for _ in range(times)]


ENV = {"RESILIENT_BREAKER_FAIL_MAX": "3", "RESILIENT_BREAKER_RESET_TIMEOUT": "30"}


def test_trips_after_fail_max_then_answers_503(harness: Harness, clock: FakeClock) -> None:
    """fail_max 5xx in a row open the circuit; then the app is not called and the
    answer is a 503 with Retry-After and a problem body."""
    upstream = Upstream()
    client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=True)], ENV)
    upstream.mode = "502"
    assert fail(client, "/a", 3) == [502, 502, 502]
    calls = upstream.origin.calls
    clock.advance(10.2)
    refused = client.get("/a")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "20"  # 19.8 s left, rounded up
    assert refused.headers["cache-control"] == "no-store"
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert json.loads(refused.content) == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable; retry in 20 s.",
    }
    assert upstream.origin.calls == calls
    head = client.head("/a")
    assert (head.status_code, head.content) == (503, b"")


def test_successes_and_client_errors_are_not_failures(harness: Harness) -> None:
    """A success resets the count; a 4xx is an answer, not a failure."""
    upstream = Upstream()
    client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=True)], ENV)
    for mode in ("500", "500", "ok", "500", "500", "404", "404", "404", "404", "500", "500"):
        upstream.mode = mode
        client.get("/a")
    upstream.mode = "ok"
    assert client.get("/a").status_code == 200  # never three failures in a row


def test_exceptions_are_failures(harness: Harness) -> None:
    """An exception from the app counts (and still reaches the server)."""
    upstream = Upstream()
    client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=True)], ENV)
    upstream.mode = "raise"
    for _ in range(3):
        with pytest.raises(RuntimeError, match="upstream broke"):
            client.get("/a")
    assert client.get("/a").status_code == 503
    assert upstream.origin.calls == 3


def test_half_open_probe_closes_or_reopens(harness: Harness, clock: FakeClock) -> None:
    """After reset_timeout one probe goes through: a failure opens the circuit again for
    a full timeout; a success closes it."""
    upstream = Upstream()
    client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=True)], ENV)
    upstream.mode = "500"
    fail(client, "/a", 3)
    clock.advance(30)
    assert client.get("/a").status_code == 500  # the probe, failed
    assert client.get("/a").headers["retry-after"] == "30"
    clock.advance(30)
    upstream.mode = "ok"
    assert client.get("/a").text == "v1"  # the probe, succeeded
    assert fail(client, "/a", 3) == [200, 200, 200]


def test_routes_have_their_own_breakers(harness: Harness) -> None:
    """breaker=True: one breaker per route; other routes keep working."""
    upstream = Upstream()
    rules = [Rule("/a", cache=False, breaker=True), Rule("/b", cache=False, breaker=True)]
    client = harness.client(upstream.origin, rules, ENV)
    upstream.mode = "500"
    fail(client, "/a", 3)
    assert client.get("/a").status_code == 503
    assert client.get("/b").status_code == 500


def test_named_breakers_are_shared_per_upstream(harness: Harness, clock: FakeClock) -> None:
    """breaker="<name>" is the process's breaker of that name: routes (and decorated
    functions) calling one upstream open together."""
    breaker = get_breaker("inventory", fail_max=2, clock=clock, settings=settings())
    upstream = Upstream()
    rules = [
        Rule("/stock", cache=False, breaker="inventory"),
        Rule("/items", cache=False, breaker="inventory"),
    ]
    client = harness.client(upstream.origin, rules)
    upstream.mode = "503"
    assert [client.get("/stock").status_code, client.get("/items").status_code] == [503, 503]
    assert breaker.current_state == "open"
    upstream.mode = "ok"
    assert client.get("/stock").headers["retry-after"] == "60"
    assert upstream.origin.calls == 2


def test_a_breaker_object(harness: Harness, clock: FakeClock) -> None:
    """A CircuitBreaker given to a rule guards it as it is."""
    breaker = CircuitBreaker("given", fail_max=1, reset_timeout=5, clock=clock,
                             settings=settings())  # fmt: skip
    upstream = Upstream()
    client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=breaker)])
    upstream.mode = "500"
    client.get("/a")
    assert breaker.current_state == "open"
    assert client.get("/a").headers["retry-after"] == "5"


def test_a_stale_copy_answers_while_open(harness: Harness, clock: FakeClock) -> None:
    """While the circuit is open, the stored copy answers instead of a 503, however old
    (here kept an hour past its lifetime by RESILIENT_HTTP_BREAKER_STALE); a URL with no
    stored copy gets the 503."""
    env = {**ENV, "RESILIENT_HTTP_BREAKER_STALE": "1h"}
    upstream = Upstream("max-age=10")
    client = harness.client(upstream.origin, [Rule("/a/**", breaker=True)], env)
    assert client.get("/a/1").text == "v1"
    clock.advance(600)  # long stale, no stale-if-error: only the breaker may use it
    upstream.mode = "500"
    assert fail(client, "/a/2", 3) == [500, 500, 500]
    stale = client.get("/a/1")
    assert (stale.status_code, stale.text, stale.headers["age"]) == (200, "v1", "600")
    assert client.get("/a/3").status_code == 503
    upstream.mode = "ok"
    clock.advance(30)
    assert client.get("/a/1").text == "v2"  # the probe: the app answers again


def test_without_a_kept_copy_the_503_goes_out(harness: Harness, clock: FakeClock) -> None:
    """A copy past its lifetime is gone unless a window keeps it; must-revalidate copies
    are never served stale, breaker or not."""
    upstream = Upstream("max-age=10, must-revalidate")
    env = {**ENV, "RESILIENT_HTTP_BREAKER_STALE": "1h"}
    client = harness.client(upstream.origin, [Rule("/a", breaker=True)], env)
    client.get("/a")
    clock.advance(20)
    upstream.mode = "500"
    fail(client, "/a", 3)
    assert client.get("/a").status_code == 503


def test_fresh_hits_never_reach_the_breaker(harness: Harness, clock: FakeClock) -> None:
    """A fresh stored copy answers before the breaker is asked, open or not."""
    upstream = Upstream("max-age=60")
    client = harness.client(upstream.origin, [Rule("/**", breaker=True)], ENV)
    client.get("/a")
    upstream.mode = "500"
    fail(client, "/b", 3)
    assert client.get("/b").status_code == 503
    assert (client.get("/a").status_code, client.get("/a").text) == (200, "v1")


def test_custom_rejection(harness: Harness) -> None:
    """on_reject builds the 503 too; Retry-After is added unless it set one."""
    seen: list[Rejection] = []

    def on_reject(rejection: Rejection) -> Response:
        seen.append(rejection)
        return Response(rejection.status, (("Content-Type", "text/plain"),), b"later")

    upstream = Upstream()
    rules = [Rule("/a", cache=False, breaker=True, name="shop")]
    client = harness.client(upstream.origin, rules, ENV, on_reject=on_reject)
    upstream.mode = "500"
    fail(client, "/a", 3)
    refused = client.get("/a")
    assert (refused.status_code, refused.text, refused.headers["retry-after"]) == (
        503, "later", "30",
    )  # fmt: skip
    assert [(r.reason, r.breaker, r.status) for r in seen] == [("circuit-open", "http:shop", 503)]


def test_breakers_from_the_environment(harness: Harness) -> None:
    """RESILIENT_HTTP_BREAKER=1 guards every route that sets nothing; per route, 0 turns
    it off and a name shares a breaker; RESILIENT_BREAKER__HTTP_<NAME>__* tunes one."""
    env = {
        "RESILIENT_HTTP_BREAKER": "1",
        "RESILIENT_HTTP__OFF__BREAKER": "0",
        "RESILIENT_HTTP__SHARED1__BREAKER": "upstream",
        "RESILIENT_HTTP__SHARED2__BREAKER": "upstream",
        "RESILIENT_BREAKER__HTTP_TIGHT__FAIL_MAX": "1",
    }
    rules = [
        Rule("/off", cache=False, name="off"),
        Rule("/tight", cache=False, name="tight"),
        Rule("/s1", cache=False, name="shared1"),
        Rule("/s2", cache=False, name="shared2"),
        Rule("/code", cache=False, name="code", breaker=False),
    ]
    routes = Routes(rules, settings(env))
    assert routes.match("GET", "/off").breaker is None
    assert routes.match("GET", "/code").breaker is None
    tight = routes.match("GET", "/tight").breaker
    assert tight is not None
    assert (tight.name, tight.fail_max) == ("http:tight", 1)
    shared = routes.match("GET", "/s1").breaker
    assert shared is not None
    assert shared is routes.match("GET", "/s2").breaker is get_breaker("upstream")
    default = routes.match("GET", "/elsewhere").breaker
    assert default is not None
    assert (default.name, default.fail_max) == ("http:*", 5)
    upstream = Upstream()
    client = harness.client(upstream.origin, rules, env)
    upstream.mode = "500"
    assert fail(client, "/tight", 2) == [500, 503]
    assert fail(client, "/off", 7) == [500] * 7


@pytest.mark.parametrize("value", [5, "", 1.5])
def test_bad_breaker_options(value: object) -> None:
    """An unusable breaker option fails when the rule is made."""
    with pytest.raises(ConfigurationError) as caught:
        Rule("/a", breaker=value)  # type: ignore[arg-type]
    assert caught.value.name == "Rule.breaker"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESILIENT_HTTP_BREAKER", "on/off"),
        ("RESILIENT_HTTP__API__BREAKER", "no way"),
        ("RESILIENT_HTTP_BREAKER_STALE", "forever"),
    ],
)
def test_bad_variables_name_themselves(variable: str, value: str) -> None:
    """A bad breaker variable raises ConfigurationError naming it and its value."""
    with pytest.raises(ConfigurationError) as caught:
        settings({variable: value})
    assert (caught.value.name, caught.value.value) == (variable, value)


def test_limits_and_breakers_together(harness: Harness, clock: FakeClock) -> None:
    """A route may have both: the limit counts first (a refused request never reaches the
    breaker), the breaker's 503 carries the limit's fields."""
    upstream = Upstream()
    rules = [Rule("/a", cache=CachePolicy(), limits="5/minute", breaker=True)]
    client = harness.client(upstream.origin, rules, ENV)
    upstream.mode = "500"
    assert fail(client, "/a", 4) == [500, 500, 500, 503]
    refused = client.get("/a")
    assert refused.headers["ratelimit"] == '"5-in-60s";r=0;t=61'
    assert client.get("/a").status_code == 429
    assert upstream.origin.calls == 3


def test_a_shared_breaker(harness: Harness, clock: FakeClock) -> None:
    """A breaker shared through Redis (fakeredis here) works the same in both shells: the
    ASGI shell admits and reports through its asyncio methods."""
    server = fakeredis.FakeServer()
    breaker = CircuitBreaker(
        "shared-upstream",
        fail_max=2,
        reset_timeout=5,
        clock=clock,
        resync_interval=0,
        backend=RedisBackend(fakeredis.FakeRedis(server=server)),
        async_backend=AsyncRedisBackend(fakeredis.FakeAsyncRedis(server=server)),
        settings=settings(),
    )
    try:
        upstream = Upstream()
        client = harness.client(upstream.origin, [Rule("/a", cache=False, breaker=breaker)])
        upstream.mode = "500"
        assert fail(client, "/a", 3) == [500, 500, 503]
        assert breaker.current_state == "open"
        clock.advance(5)
        upstream.mode = "ok"
        assert [client.get("/a").status_code for _ in range(2)] == [200, 200]
        assert breaker.current_state == "closed"
    finally:
        breaker.shutdown()
