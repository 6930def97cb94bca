"""Rate limits per route and client, under WSGI and ASGI: exact counts, 429s, fields."""

from __future__ import annotations

import importlib
import json

import fakeredis
import httpx
import pytest

from resilient.errors import ConfigurationError
from resilient.middleware import Rule
from resilient.ratelimit import by_api_key
from resilient.sansio.http import RequestView, Response
from resilient.sansio.problems import PROBLEM_JSON, QUOTA_EXCEEDED, Rejection
from tests.middleware.support import Harness, Origin, Reply, header_lines, settings
from tests.support.clock import FakeClock

ALLOWED_FIELDS = ("ratelimit-policy", "ratelimit")


def problem(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = json.loads(response.content)
    return body


def test_exactly_the_limit_is_admitted(harness: Harness, clock: FakeClock) -> None:
    """Limit 5: five requests reach the app, the sixth gets a 429 and never does."""
    origin = Origin()
    client = harness.client(origin, [Rule("/a", cache=False, limits="5/minute")])
    statuses = [client.get("/a").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert origin.calls == 5


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer x"}], ids=["passing-url", "bypassing-request"]
)
def test_a_cached_route_whose_cache_stands_aside_counts_inline(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    """On a route with a cache and limits, a request the cache stands aside for (its URL
    just answered unstorably, or the request bypasses the cache) is counted the way a
    limits-only route's is: no per-request responder, the same counts and fields."""
    origin = Origin(Reply(b"fresh", headers=[("Cache-Control", "no-store")]))
    app = harness.middleware(origin, [Rule("/a", limits="3/minute")])
    client = harness.mount(app)
    shell = "wsgi" if harness.kind == "wsgi" else "asgi"
    responders: list[object] = []
    module = f"resilient.middleware.{shell}"
    real = importlib.import_module(module).Responder

    def counted(*args: object) -> object:
        responders.append(args)
        return real(*args)

    first = client.get("/a", headers=headers)  # found unstorable: the URL now passes
    monkeypatch.setattr(f"{module}.Responder", counted)
    answers = [client.get("/a", headers=headers) for _ in range(3)]
    assert [first.status_code] + [a.status_code for a in answers] == [200, 200, 200, 429]
    assert origin.calls == 3
    remaining = [a.headers["ratelimit"].split(";")[1] for a in [first, *answers[:2]]]
    assert remaining == ["r=2", "r=1", "r=0"]
    assert answers[2].headers["retry-after"] == "61"  # 60 s and a millisecond, rounded up
    assert responders == []


def test_the_429(harness: Harness, clock: FakeClock) -> None:
    """A 429 carries Retry-After (whole seconds, rounded up), the RateLimit fields, no-store
    and an RFC 9457 problem naming the violated policy."""
    client = harness.client(Origin(), [Rule("/a", cache=False, limits="2/minute")])
    client.get("/a")
    clock.advance(0.5)
    client.get("/a")
    refused = client.get("/a")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"  # 59.5 s and a little, rounded up
    assert refused.headers["ratelimit-policy"] == '"2-in-60s";q=2;w=60'
    assert refused.headers["ratelimit"] == '"2-in-60s";r=0;t=60'
    assert refused.headers["cache-control"] == "no-store"
    assert refused.headers["content-length"] == str(len(refused.content))
    assert problem(refused) == {
        "type": QUOTA_EXCEEDED,
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit 2/minute exceeded; retry in 60 s.",
        "violated-policies": ["2-in-60s"],
    }


def test_admitted_responses_carry_the_fields(harness: Harness, clock: FakeClock) -> None:
    """Every admitted response gets the fields after the app's own, counting down."""
    client = harness.client(Origin(), [Rule("/a", cache=False, limits="3/minute;10/hour")])
    first = client.get("/a")
    assert header_lines(first)[-2:] == [
        ("ratelimit-policy", '"3-in-60s";q=3;w=60, "10-in-3600s";q=10;w=3600'),
        ("ratelimit", '"3-in-60s";r=2;t=61'),  # the window's end, rounded up
    ]
    assert "retry-after" not in first.headers
    assert client.get("/a").headers["ratelimit"] == '"3-in-60s";r=1;t=61'


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("off", []),
        ("legacy", ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]),
        ("both", [*ALLOWED_FIELDS, "x-ratelimit-limit", "x-ratelimit-remaining",
                  "x-ratelimit-reset"]),
    ],
)  # fmt: skip
def test_header_styles(harness: Harness, clock: FakeClock, style: str, expected: list[str]) -> None:
    """RESILIENT_RATELIMIT_HEADERS picks the fields; Retry-After goes on the 429 only."""
    env = {"RESILIENT_RATELIMIT_HEADERS": style}
    client = harness.client(Origin(), [Rule("/a", cache=False, limits="1/minute")], env)
    admitted = client.get("/a")
    added = [name for name, _ in header_lines(admitted) if "ratelimit" in name]
    assert added == expected
    refused = client.get("/a")
    assert refused.headers["retry-after"] == "61"  # 60 s and a millisecond, rounded up
    if style != "off":
        reset = int(clock() + 60)
        legacy = {"x-ratelimit-limit": "1", "x-ratelimit-remaining": "0",
                  "x-ratelimit-reset": str(reset + 1)}  # fmt: skip
        assert {name: refused.headers[name] for name in legacy if name in expected} == {
            name: value for name, value in legacy.items() if name in expected
        }


def test_the_window_moves_with_the_clock(harness: Harness, clock: FakeClock) -> None:
    """Once the window has passed, the client is admitted again (time injected)."""
    client = harness.client(Origin(), [Rule("/a", cache=False, limits="2/second")])
    assert [client.get("/a").status_code for _ in range(3)] == [200, 200, 429]
    clock.advance(2.01)  # two windows: the sliding count has decayed entirely
    assert [client.get("/a").status_code for _ in range(3)] == [200, 200, 429]


def test_head_gets_no_body(harness: Harness) -> None:
    """A refused HEAD has the 429's fields and no body."""
    client = harness.client(Origin(), [Rule("/a", cache=False, limits="1/minute")])
    client.head("/a")
    refused = client.head("/a")
    assert (refused.status_code, refused.content) == (429, b"")
    assert int(refused.headers["content-length"]) > 0


def test_clients_count_apart(harness: Harness) -> None:
    """Each client address has its own counter."""
    middleware = harness.middleware(Origin(), [Rule("/a", cache=False, limits="1/minute")])
    one, two = harness.mount(middleware, "10.0.0.1"), harness.mount(middleware, "10.0.0.2")
    assert [one.get("/a").status_code, two.get("/a").status_code] == [200, 200]
    assert [one.get("/a").status_code, two.get("/a").status_code] == [429, 429]


def test_forged_forwarded_for_is_ignored(harness: Harness) -> None:
    """An untrusted peer's X-Forwarded-For is ignored: it is limited on its own address,
    whatever client it claims to relay."""
    env = {"RESILIENT_RATELIMIT_TRUSTED_PROXIES": "10.0.0.0/8"}
    middleware = harness.middleware(Origin(), [Rule("/a", cache=False, limits="2/minute")], env)
    forger = harness.mount(middleware, "203.0.113.9")
    statuses = [
        forger.get("/a", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_trusted_proxies_are_walked_right_to_left(harness: Harness) -> None:
    """From a trusted proxy, the first untrusted hop from the right is the client; what a
    client wrote to the left of it is ignored."""
    env = {"RESILIENT_RATELIMIT_TRUSTED_PROXIES": "10.0.0.0/8"}
    middleware = harness.middleware(Origin(), [Rule("/a", cache=False, limits="1/minute")], env)
    proxy = harness.mount(middleware, "10.0.0.5")

    def via(chain: str) -> int:
        return proxy.get("/a", headers={"X-Forwarded-For": chain}).status_code

    assert via("198.51.100.1, 10.0.0.7") == 200  # client 198.51.100.1 behind two proxies
    assert via("192.0.2.66, 198.51.100.1") == 429  # the same client, a forged left part
    assert via("198.51.100.2") == 200  # another client
    assert via("198.51.100.1, 10.9.9.9, 10.0.0.7") == 429
    assert proxy.get("/a").status_code == 200  # no header: the proxy itself is the client
    assert proxy.get("/a").status_code == 429


def test_cache_hits_count_and_refusals_are_never_stored(harness: Harness, clock: FakeClock) -> None:
    """Limits sit before the cache: a hit still counts against its client, a refusal never
    reaches the cache (nothing is stored for it) nor the app."""
    origin = Origin(Reply(headers=[("Cache-Control", "max-age=60")]))
    client = harness.client(origin, [Rule("/a", limits="2/minute")])
    assert [client.get("/a").status_code for _ in range(3)] == [200, 200, 429]
    assert origin.calls == 1
    assert len(harness.memory) == 1  # the stored 200, no 429
    hit = client.get("/a", headers={"X-Other": "1"})
    assert hit.status_code == 429


def test_background_refreshes_are_not_counted(harness: Harness, clock: FakeClock) -> None:
    """The refresh after a stale-while-revalidate answer is the middleware's, not the
    client's: it takes no slot of the client's limit."""
    origin = Origin(Reply(headers=[("Cache-Control", "max-age=10, stale-while-revalidate=60")]))
    client = harness.client(origin, [Rule("/a", limits="3/minute")])
    client.get("/a")
    clock.advance(15)
    assert client.get("/a").status_code == 200  # stale, then refreshed in the background
    assert origin.calls == 2
    assert [client.get("/a").status_code for _ in range(2)] == [200, 429]


def test_unsafe_methods_still_invalidate(harness: Harness) -> None:
    """A POST on a limited route whose GET is cached counts against the limit and still
    drops the stored copy."""
    counter = {"n": 0}

    def handler(seen: object) -> Reply:
        counter["n"] += 1
        return Reply(f"v{counter['n']}".encode(), headers=[("Cache-Control", "max-age=60")])

    rules = [Rule("/a", methods=["POST"], cache=False, limits="1/minute"), Rule("/a")]
    client = harness.client(Origin(handler), rules)
    assert client.get("/a").text == client.get("/a").text == "v1"
    assert client.post("/a").status_code == 200
    assert client.get("/a").text == "v3"
    assert client.post("/a").status_code == 429


def test_shared_scope_counts_together(harness: Harness) -> None:
    """Rules with the same limit_scope share one counter; others count apart."""
    rules = [
        Rule("/a", cache=False, limits="3/minute", limit_scope="api"),
        Rule("/b", cache=False, limits="3/minute", limit_scope="api"),
        Rule("/c", cache=False, limits="3/minute"),
    ]
    client = harness.client(Origin(), rules)
    statuses = [client.get(path).status_code for path in ("/a", "/b", "/a", "/b", "/c")]
    assert statuses == [200, 200, 200, 429, 200]


def test_rules_without_a_scope_never_share(harness: Harness) -> None:
    """Without limit_scope each rule counts on its own, even one that looks the same."""
    rules = [
        Rule("/a", methods=["GET"], cache=False, limits="1/minute"),
        Rule("/a", cache=False, limits="2/minute"),
    ]
    client = harness.client(Origin(), rules)
    assert [client.get("/a").status_code for _ in range(2)] == [200, 429]
    assert [client.post("/a").status_code for _ in range(3)] == [200, 200, 429]


def test_a_shared_limiter_object(harness: Harness) -> None:
    """A RateLimiter given to several rules counts for all of them."""
    limiter = harness.limiter("2/minute")
    rules = [Rule("/a", cache=False, limits=limiter), Rule("/b", cache=False, limits=limiter)]
    client = harness.client(Origin(), rules)
    assert [client.get(p).status_code for p in ("/a", "/b", "/a")] == [200, 200, 429]


def test_a_scope_cannot_have_two_limits(harness: Harness) -> None:
    """Two rules naming one scope with different limits are a configuration error."""
    rules = [
        Rule("/a", limits="3/minute", limit_scope="api"),
        Rule("/b", limits="4/minute", limit_scope="api"),
    ]
    with pytest.raises(ConfigurationError, match="limit_scope"):
        harness.middleware(Origin(), rules)


def test_key_from_a_header(harness: Harness) -> None:
    """limit_key="header:<name>" counts per value; without the header, per address."""
    client = harness.client(
        Origin(), [Rule("/a", cache=False, limits="1/minute", limit_key="header:X-Tenant")]
    )
    assert client.get("/a", headers={"X-Tenant": "one"}).status_code == 200
    assert client.get("/a", headers={"X-Tenant": "two"}).status_code == 200
    assert client.get("/a", headers={"X-Tenant": "one"}).status_code == 429
    assert client.get("/a").status_code == 200
    assert client.get("/a").status_code == 429


def test_key_from_a_function(harness: Harness) -> None:
    """A function of the request picks the identity; an empty answer falls back to the
    client address, never to an exemption."""

    def user(request: RequestView) -> str | None:
        return request.headers.get("x-user") or None

    api_key = by_api_key("x-api-key")
    rules = [
        Rule("/u", cache=False, limits="1/minute", limit_key=user),
        Rule("/k", cache=False, limits="1/minute", limit_key=api_key),
    ]
    client = harness.client(Origin(), rules)
    assert client.get("/u", headers={"X-User": "ann"}).status_code == 200
    assert client.get("/u", headers={"X-User": "bob"}).status_code == 200
    assert client.get("/u", headers={"X-User": "ann"}).status_code == 429
    assert [client.get("/u").status_code for _ in range(2)] == [200, 429]
    assert client.get("/k", headers={"X-Api-Key": "s3cret"}).status_code == 200
    assert client.get("/k", headers={"X-Api-Key": "s3cret"}).status_code == 429


def test_custom_rejection(harness: Harness) -> None:
    """on_reject builds the body; Retry-After and the fields are added unless it set them."""
    seen: list[Rejection] = []

    def on_reject(rejection: Rejection) -> Response:
        seen.append(rejection)
        fields = [("Content-Type", "text/plain"), ("Retry-After", "99")]
        return Response(rejection.status, tuple(fields), b"slow down")

    rules = [Rule("/a", cache=False, limits="1/minute")]
    client = harness.client(Origin(), rules, on_reject=on_reject)
    client.get("/a")
    refused = client.get("/a")
    assert (refused.status_code, refused.text) == (429, "slow down")
    assert refused.headers["retry-after"] == "99"
    assert refused.headers["ratelimit"] == '"1-in-60s";r=0;t=61'
    assert [(r.reason, r.limit, r.policies, r.request.path) for r in seen] == [
        ("rate-limited", "1/minute", ("1-in-60s",), "/a")
    ]


def test_shadow_mode_counts_but_admits(harness: Harness) -> None:
    """shadow: every request goes through; the fields report the would-be refusal."""
    env = {"RESILIENT_RATELIMIT_MODE": "shadow"}
    origin = Origin()
    client = harness.client(origin, [Rule("/a", cache=False, limits="1/minute")], env)
    responses = [client.get("/a") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert origin.calls == 3
    assert responses[-1].headers["ratelimit"] == '"1-in-60s";r=0;t=61'
    assert "retry-after" not in responses[-1].headers


def test_mode_off_skips_limits(harness: Harness) -> None:
    """off: no counting, no fields."""
    env = {"RESILIENT_RATELIMIT__LIMITED__MODE": "off"}
    rules = [Rule("/a", cache=False, limits="1/minute", name="limited")]
    client = harness.client(Origin(), rules, env)
    responses = [client.get("/a") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "ratelimit" not in responses[-1].headers


def test_env_limits_and_overrides(harness: Harness) -> None:
    """RESILIENT_HTTP_LIMITS covers every route that sets none, each counting apart;
    RESILIENT_HTTP__<NAME>__LIMITS overrides it for a named rule (empty: none); a
    value in code wins over both."""
    env = {
        "RESILIENT_HTTP_LIMITS": "1/minute",
        "RESILIENT_HTTP__WIDE__LIMITS": "3/minute",
        "RESILIENT_HTTP__FREE__LIMITS": "",
        "RESILIENT_HTTP__CODE__LIMITS": "5/minute",
    }
    rules = [
        Rule("/wide", cache=False, name="wide"),
        Rule("/free", cache=False, name="free"),
        Rule("/code", cache=False, name="code", limits="2/minute"),
        Rule("/none", cache=False, limits=False),
    ]
    client = harness.client(Origin(), rules, env)

    def burst(path: str) -> list[int]:
        return [client.get(path).status_code for _ in range(4)]

    assert burst("/wide") == [200, 200, 200, 429]
    assert burst("/free") == [200] * 4
    assert burst("/code") == [200, 200, 429, 429]
    assert burst("/none") == [200] * 4
    assert burst("/x") == [200, 429, 429, 429]  # the default route
    assert burst("/y") == [429] * 4  # ... is one route


def test_env_limit_key(harness: Harness) -> None:
    """RESILIENT_HTTP_LIMIT_KEY=header:<name> counts per header value."""
    env = {"RESILIENT_HTTP_LIMITS": "1/minute", "RESILIENT_HTTP_LIMIT_KEY": "header:X-Key"}
    client = harness.client(Origin(), [Rule("/a", cache=False)], env)
    assert client.get("/a", headers={"X-Key": "a"}).status_code == 200
    assert client.get("/a", headers={"X-Key": "b"}).status_code == 200
    assert client.get("/a", headers={"X-Key": "a"}).status_code == 429


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"limits": "many per day"}, "Rule.limits"),
        ({"limits": 5}, "Rule.limits"),
        ({"limits": True}, "Rule.limits"),
        ({"limit_key": 5}, "Rule.limit_key"),
        ({"limit_scope": ""}, "Rule.limit_scope"),
    ],
)
def test_bad_limit_options(kwargs: dict[str, object], name: str) -> None:
    """Unusable limit options fail when the rule is made, naming the option."""
    with pytest.raises(ConfigurationError) as caught:
        Rule("/a", **kwargs)  # type: ignore[arg-type]
    assert caught.value.name == name


def test_a_bad_key_spec_fails_at_construction(harness: Harness) -> None:
    """A key string that is neither ip nor header:<name> fails when the middleware is built."""
    with pytest.raises(ConfigurationError, match=r"Rule\.limit_key"):
        harness.middleware(Origin(), [Rule("/a", limits="1/minute", limit_key="cookie:x")])


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RESILIENT_HTTP_LIMITS", "lots"),
        ("RESILIENT_HTTP__API__LIMITS", "5 per fortnight"),
        ("RESILIENT_HTTP_LIMIT_KEY", "cookie"),
        ("RESILIENT_HTTP__API__LIMIT_KEY", "header:"),
    ],
)
def test_bad_variables_name_themselves(variable: str, value: str) -> None:
    """A bad limit variable raises ConfigurationError naming it, its value and the form."""
    with pytest.raises(ConfigurationError) as caught:
        settings({variable: value})
    assert (caught.value.name, caught.value.value) == (variable, value)
    assert caught.value.expected


@pytest.mark.parametrize("where", ["env", "rule"])
def test_a_header_key_never_reaches_storage_in_clear(harness: Harness, where: str) -> None:
    """header:X-Api-Key counts per key, but Redis key names (and so ``resilient
    inspect`` and logs) hold a hash of it, never the secret."""
    secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    env = {"RESILIENT_HTTP_LIMITS": "1/minute"}
    rule = Rule("/a", cache=False)
    if where == "env":
        env["RESILIENT_HTTP_LIMIT_KEY"] = "header:X-Api-Key"
    else:
        rule = Rule("/a", cache=False, limits="1/minute", limit_key="header:X-Api-Key")
    server = fakeredis.FakeServer()
    client = harness.client(Origin(), [rule], env, backend=harness.fakeredis(server))
    assert client.get("/a", headers={"X-Api-Key": secret}).status_code == 200
    assert client.get("/a", headers={"X-Api-Key": secret}).status_code == 429
    assert client.get("/a", headers={"X-Api-Key": secret + "x"}).status_code == 200
    names = fakeredis.FakeRedis(server=server, decode_responses=True).scan_iter()
    keys = [str(key) for key in names]
    assert len(keys) == 2  # one counter per API key ...
    assert not [key for key in keys if "sk_live" in key]  # ... named by no part of it
