"""Which requests use the cache and which responses may be stored, for how long."""

from __future__ import annotations

import pytest

from resilient.sansio.cache_control import parse_cache_control
from resilient.sansio.caching import decide_store, explicit_lifetime, parse_vary, plan_request
from resilient.sansio.decisions import CacheRules, RequestPlan
from resilient.sansio.http import Headers, RequestInfo, ResponseHead, format_http_date
from resilient.sansio.keys import (
    ambiguous_cookies,
    cookie_pairs,
    url_digest,
    variant_digest,
    vary_values,
)

NOW = 1_700_000_000.0
RULES = CacheRules()


def request(method: str = "GET", **headers: str) -> RequestInfo:
    fields = [(name.replace("_", "-"), value) for name, value in headers.items()]
    return RequestInfo(method, "/a", "10.0.0.1", Headers(fields), host="example.org")


def decide(
    *fields: tuple[str, str],
    status: int = 200,
    rules: CacheRules = RULES,
    req: RequestInfo | None = None,
) -> tuple[bool, str, float]:
    req = req or request()
    plan = plan_request(req, rules)
    decision = decide_store(req, ResponseHead(status, list(fields)), rules, plan, NOW)
    return decision.store, decision.reason, decision.lifetime


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_plain_get_and_head_use_the_cache(method: str) -> None:
    """GET and HEAD without credentials may read and fill the cache."""
    plan = plan_request(request(method), RULES)
    assert (plan.lookup, plan.store, plan.reason) == (True, True, "")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "M-SEARCH"])
def test_other_methods_do_not(method: str) -> None:
    """Only GET and HEAD are cacheable methods here."""
    plan = plan_request(request(method), RULES)
    assert (plan.lookup, plan.store, plan.reason) == (False, False, "method")


@pytest.mark.parametrize(
    ("field", "reason"),
    [("authorization", "authorization"), ("proxy_authorization", "proxy-authorization"),
     ("x_api_key", "credentials"), ("upgrade", "upgrade"), ("range", "range"),
     ("if_range", "if-range"), ("if_match", "if-match"),
     ("if_unmodified_since", "if-unmodified-since"), ("cookie", "cookie")],
)  # fmt: skip
def test_requests_that_bypass(field: str, reason: str) -> None:
    """Credentials, protocol switches, ranges, preconditions and cookies bypass the cache."""
    plan = plan_request(request(**{field: "x"}), RULES)
    assert (plan.lookup, plan.store, plan.reason) == (False, False, reason)


def test_credential_headers_are_configurable() -> None:
    """The credential headers are the rules' own: none at all, or others."""
    assert plan_request(request(x_api_key="k"), CacheRules(credential_headers=frozenset())).store
    rules = CacheRules(credential_headers=frozenset({"x-token"}))
    assert plan_request(request(x_token="t"), rules).reason == "credentials"
    assert plan_request(request(x_api_key="k"), rules).store
    proxy = plan_request(request(proxy_authorization="Basic x"), rules)
    assert proxy.reason == "proxy-authorization"  # always, whatever the rules say


def test_cookies_are_allowed_when_the_route_names_them() -> None:
    """A route that varies on named cookies caches requests that carry cookies."""
    plan = plan_request(request(cookie="lang=en"), CacheRules(vary_cookies=frozenset({"lang"})))
    assert plan.lookup
    assert plan.store


def test_request_cache_control_is_ignored_by_default() -> None:
    """By default a client cannot bust the cache with no-cache or no-store."""
    plan = plan_request(request(cache_control="no-cache, no-store"), RULES)
    assert plan.lookup
    assert plan.store
    assert dict(plan.directives.directives) == {}


def test_request_cache_control_when_honoured() -> None:
    """Honoured: no-store bypasses, no-cache skips the lookup but stores, others pass on."""
    rules = CacheRules(respect_request_cache_control=True)
    no_store = plan_request(request(cache_control="no-store"), rules)
    assert (no_store.lookup, no_store.store, no_store.reason) == (False, False, "request no-store")
    no_cache = plan_request(request(cache_control="no-cache"), rules)
    assert (no_cache.lookup, no_cache.store) == (False, True)
    other = plan_request(request(cache_control="max-age=5"), rules)
    assert other.lookup
    assert other.store
    assert other.directives.max_age == 5


def test_explicit_freshness_order() -> None:
    """s-maxage wins over max-age, which wins over Expires minus Date."""
    date = format_http_date(NOW)
    expires = format_http_date(NOW + 300)
    both = parse_cache_control("max-age=60, s-maxage=30")
    assert explicit_lifetime(both, date, expires, NOW) == 30
    assert explicit_lifetime(parse_cache_control("max-age=60"), date, expires, NOW) == 60
    assert explicit_lifetime(parse_cache_control(None), date, expires, NOW) == 300
    assert explicit_lifetime(parse_cache_control(None), None, None, NOW) is None


def test_expires_without_date_counts_from_arrival() -> None:
    """Without Date, Expires is measured from when the response arrived."""
    expires = format_http_date(NOW + 90)
    assert explicit_lifetime(parse_cache_control(None), None, expires, NOW) == 90
    past = format_http_date(NOW - 90)
    assert explicit_lifetime(parse_cache_control(None), None, past, NOW) == 0


@pytest.mark.parametrize("expires", ["0", "-1", "never", ""])
def test_invalid_expires_means_already_expired(expires: str) -> None:
    """An Expires that is not a date (0 included) is in the past (RFC 9111 §5.3)."""
    assert explicit_lifetime(parse_cache_control(None), None, expires, NOW) == 0.0
    assert decide(("Expires", expires)) == (False, "stale on arrival", 0.0)


def test_storable_response() -> None:
    """A 200 with max-age is stored for max-age seconds, may be served stale by windows."""
    req = request()
    head = ResponseHead(200, [("Cache-Control", "max-age=60, stale-if-error=30")])
    decision = decide_store(req, head, RULES, plan_request(req, RULES), NOW)
    assert decision.store
    assert decision.lifetime == 60
    assert decision.stale_if_error == 30
    assert decision.may_serve_stale
    assert decision.cache_control is None
    assert decision.vary == ()
    assert decision.add_vary == ()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ((("Cache-Control", "max-age=60, no-store"),), "no-store"),
        ((("Cache-Control", "max-age=60, private"),), "private"),
        ((("Cache-Control", 'max-age=60, private="X-User"'),), "private"),
        ((("Cache-Control", "max-age=60, no-cache"),), "no-cache"),
        ((("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=1")), "set-cookie"),
        ((("Cache-Control", "max-age=60"), ("Vary", "Accept, *")), "vary *"),
        ((("Content-Type", "text/plain"),), "no freshness"),
        ((("Cache-Control", "public"),), "no freshness"),
        ((("Cache-Control", "max-age=0"),), "stale on arrival"),
    ],
)
def test_responses_never_stored(fields: tuple[tuple[str, str], ...], reason: str) -> None:
    """no-store, private, no-cache, Set-Cookie, Vary: * and no freshness are not stored."""
    stored, why, _ = decide(*fields)
    assert (stored, why) == (False, reason)


def test_head_responses_are_not_stored() -> None:
    """A HEAD response has no body to replay to a GET."""
    assert decide(("Cache-Control", "max-age=60"), req=request("HEAD"))[:2] == (False, "method")


def test_bypassed_requests_store_nothing() -> None:
    """A response to a request with credentials is never stored."""
    req = request(authorization="Bearer x")
    assert decide(("Cache-Control", "public, max-age=60"), req=req)[:2] == (False, "authorization")


@pytest.mark.parametrize(
    ("status", "stored"),
    [(200, True), (203, True), (204, True), (301, True), (302, True), (307, True),
     (308, True), (404, True), (410, True), (501, True), (206, False), (304, False),
     (400, False), (401, False), (403, False), (500, False), (503, False)],
)  # fmt: skip
def test_statuses_with_explicit_freshness(status: int, stored: bool) -> None:
    """Explicit freshness stores the statuses of RFC 9110 §15.1 and told redirects, not
    206, 304 or errors such as 500 and 503."""
    assert decide(("Cache-Control", "max-age=60"), status=status)[0] is stored


def test_app_mode_gives_a_lifetime_and_says_so() -> None:
    """With a route TTL, a response without freshness is stored and told max-age."""
    req = request()
    rules = CacheRules(ttl=30.5, stale_while_revalidate=10, stale_if_error=60)
    head = ResponseHead(200, [("Cache-Control", "public")])
    decision = decide_store(req, head, rules, plan_request(req, rules), NOW)
    assert decision.store
    assert decision.lifetime == 30.5
    assert (
        decision.cache_control == "public, max-age=31, stale-while-revalidate=10, stale-if-error=60"
    )
    assert (decision.stale_while_revalidate, decision.stale_if_error) == (10, 60)


def test_app_mode_never_overrides_the_app() -> None:
    """Explicit freshness, no-store, private and Set-Cookie win over a route TTL."""
    rules = CacheRules(ttl=300)
    assert decide(("Cache-Control", "max-age=5"), rules=rules)[2] == 5
    assert decide(("Cache-Control", "no-store"), rules=rules)[:2] == (False, "no-store")
    assert decide(("Cache-Control", "private"), rules=rules)[:2] == (False, "private")
    assert decide(("Set-Cookie", "a=b"), rules=rules)[:2] == (False, "set-cookie")
    assert decide(status=500, rules=rules)[:2] == (False, "status")
    assert decide(status=302, rules=rules)[:2] == (False, "no freshness")
    assert decide(rules=CacheRules(ttl=0))[:2] == (False, "no freshness")


def test_app_mode_without_existing_header() -> None:
    """App mode with no Cache-Control from the app writes only what it used."""
    req = request()
    rules = CacheRules(ttl=60)
    decision = decide_store(req, ResponseHead(200), rules, plan_request(req, rules), NOW)
    assert decision.cache_control == "max-age=60"


def test_revalidation_directives_forbid_stale() -> None:
    """must-revalidate and proxy-revalidate drop the stale windows."""
    req = request()
    for directive in ("must-revalidate", "proxy-revalidate"):
        head = ResponseHead(200, [("Cache-Control", f"max-age=60, stale-if-error=99, {directive}")])
        decision = decide_store(req, head, RULES, plan_request(req, RULES), NOW)
        assert decision.store
        assert not decision.may_serve_stale
        assert decision.stale_if_error == 0
        assert decision.stale_while_revalidate == 0


def test_windows_alone_make_a_response_worth_storing() -> None:
    """max-age=0 with stale-while-revalidate is stored: it can be served while refreshed."""
    stored, _, lifetime = decide(("Cache-Control", "max-age=0, stale-while-revalidate=30"))
    assert stored
    assert lifetime == 0


def test_vary_fields_are_read_sorted_and_lower_cased() -> None:
    """Vary is a sorted tuple of lower-case names; * is None; absence is empty."""
    assert parse_vary("Accept-Language, accept-encoding, Accept-Encoding") == (
        "accept-encoding", "accept-language")  # fmt: skip
    assert parse_vary(None) == ()
    assert parse_vary("") == ()
    assert parse_vary("Accept, *") is None


def test_route_cookies_add_vary_cookie() -> None:
    """A route varying on cookies varies on Cookie, and tells downstream caches."""
    req = request(cookie="lang=en")
    rules = CacheRules(vary_cookies=frozenset({"lang"}))
    head = ResponseHead(200, [("Cache-Control", "max-age=60"), ("Vary", "Accept")])
    decision = decide_store(req, head, rules, plan_request(req, rules), NOW)
    assert decision.vary == ("accept", "cookie")
    assert decision.add_vary == ("Cookie",)
    head = ResponseHead(200, [("Cache-Control", "max-age=60"), ("Vary", "Cookie")])
    decision = decide_store(req, head, rules, plan_request(req, rules), NOW)
    assert decision.vary == ("cookie",)
    assert decision.add_vary == ()


def test_vary_values_normalise_whitespace_and_keep_absence() -> None:
    """Whitespace around commas is ignored; an absent field differs from an empty one."""
    one = vary_values(Headers([("Accept-Encoding", " gzip ,  br ")]), ("accept-encoding",),
                      frozenset())  # fmt: skip
    two = vary_values(Headers([("Accept-Encoding", "gzip,br")]), ("accept-encoding",), frozenset())
    assert one == two == (("accept-encoding", "gzip,br"),)
    absent = vary_values(Headers(), ("accept-encoding",), frozenset())
    empty = vary_values(Headers([("Accept-Encoding", "")]), ("accept-encoding",), frozenset())
    assert absent == (("accept-encoding", None),)
    assert variant_digest(absent) != variant_digest(empty)


def test_vary_on_named_cookies_reads_only_those() -> None:
    """With named cookies, Cookie contributes those cookies alone, sorted; a cookie named
    twice gives a value no unambiguous header gives."""
    names = frozenset({"lang", "theme"})

    def value(cookie: str | None) -> str | None:
        headers = Headers([] if cookie is None else [("Cookie", cookie)])
        return vary_values(headers, ("cookie",), names)[0][1]

    assert value("sid=alice; theme=dark; lang=en") == "lang=en; theme=dark"
    assert value("lang=en; sid=bob; theme=dark; lang=fr") not in (
        "lang=en; theme=dark", "lang=fr; theme=dark")  # fmt: skip
    assert value("sid=alice") is None
    assert value(None) is None
    full = vary_values(Headers([("Cookie", "sid=1")]), ("cookie",), frozenset())
    assert full == (("cookie", "sid=1"),)


def test_digests_are_fixed_length_and_unambiguous() -> None:
    """Digests never contain input; length prefixes keep ("ab","c") apart from ("a","bc")."""
    digest = url_digest("http://h/" + "x" * 10_000)
    assert len(digest) == 32
    assert "x" not in digest
    assert url_digest("http://h/a") != url_digest("http://h/b")
    assert variant_digest((("ab", "c"),)) != variant_digest((("a", "bc"),))
    assert url_digest("http://h/\udcff") != url_digest("http://h/\ufffd")


def test_plan_reason_is_empty_when_allowed() -> None:
    """A plan that allows everything carries no reason."""
    plan = plan_request(request(), RULES)
    assert isinstance(plan, RequestPlan)
    assert plan.reason == ""


@pytest.mark.parametrize(
    "cookie",
    [
        "lang=en; lang=<script>",  # Starlette reads the last, werkzeug's get the first
        "lang=en, lang=fr",  # http.cookies splits on commas, werkzeug and Starlette do not
        "sid=1, lang=fr",  # a comma-splitting parser sees lang; ";"-splitting ones do not
        "lang=en; x=1, y=2",  # any comma: parsers disagree on what follows it
        " lang =en;lang=fr",  # the same name once trimmed
    ],
)
def test_ambiguous_cookies_bypass(cookie: str) -> None:
    """A Cookie header frameworks could read differently neither reads nor fills the cache."""
    rules = CacheRules(vary_cookies=frozenset({"lang"}))
    plan = plan_request(request(cookie=cookie), rules)
    assert (plan.lookup, plan.store, plan.reason) == (False, False, "ambiguous cookie")


def test_several_cookie_lines_bypass() -> None:
    """Two Cookie lines (HTTP/2 sends them so) reach WSGI apps joined: ambiguous too."""
    headers = Headers([("Cookie", "lang=en"), ("Cookie", "theme=dark")])
    req = RequestInfo("GET", "/", None, headers)
    plan = plan_request(req, CacheRules(vary_cookies=frozenset({"lang"})))
    assert plan.reason == "ambiguous cookie"


def test_unambiguous_cookies_are_split_on_semicolons_only() -> None:
    """Other cookies named twice do not matter; values are read as the frameworks read
    them, split on ";" only."""
    names = frozenset({"lang"})
    assert not ambiguous_cookies("sid=1; sid=2; lang=en", names)
    plan = plan_request(request(cookie="sid=1; sid=2; lang=en"), CacheRules(vary_cookies=names))
    assert (plan.lookup, plan.store) == (True, True)
    assert cookie_pairs("a=1;b = 2 ; c; d=x=y") == [("a", "1"), ("b", "2"), ("d", "x=y")]


def test_vary_values_keep_several_lines_apart() -> None:
    """X: a + X: b is not X: a,b (Starlette reads the first line); whitespace is dropped
    around the commas of Accept-style lists only."""
    fields = ("x-tenant",)
    two_lines = vary_values(Headers([("X-Tenant", "a"), ("X-Tenant", "b")]), fields, frozenset())
    one_line = vary_values(Headers([("X-Tenant", "a,b")]), fields, frozenset())
    spaced = vary_values(Headers([("X-Tenant", "a , b")]), fields, frozenset())
    assert len({two_lines, one_line, spaced}) == 3
    assert len({variant_digest(two_lines), variant_digest(one_line)}) == 2
    accept = ("accept-language",)
    assert vary_values(Headers([("Accept-Language", "en , fr")]), accept, frozenset()) == (
        vary_values(Headers([("Accept-Language", "en,fr")]), accept, frozenset())
    )
