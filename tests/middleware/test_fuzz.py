"""Generated traffic through both shells: no unhandled exception, no 500 of our own.

Hypothesis makes up request methods, paths, queries, header names and values and bodies,
and the app's answers (status, Cache-Control, Vary, ETag, dates, cookies, streamed or not,
sometimes an exception), and rules with rate limits and circuit breakers. Each example
runs a few requests against one middleware with time moving in between. Whatever comes
out must be an answer the app gave, a stored copy of one, a 304, (only when asked with
only-if-cached) a 504, a 429 where limits apply or a 503 where a breaker does; an
exception may only be the app's own.
"""

from __future__ import annotations

import asyncio
import io
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.middleware import CachePolicy, ResilientASGIMiddleware, ResilientWSGIMiddleware, Rule
from resilient.middleware._types import Message, Receive, Scope, Send
from resilient.sansio.http import format_http_date
from tests.middleware.support import settings as env_settings
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=8)
LATIN = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)
DATES = st.one_of(st.integers(0, 2_000_000_000).map(float).map(format_http_date), LATIN)
DIRECTIVES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "max-age=60",
                "s-maxage=5",
                "no-store",
                "no-cache",
                "private",
                "public",
                "must-revalidate",
                "stale-while-revalidate=30",
                "stale-if-error=30",
                "max-age=abc",
                "max-stale",
                "min-fresh=5",
                "only-if-cached",
                'no-cache="set-cookie"',
                "max-age=0",
            ]
        ),
        LATIN,
    ),
    max_size=4,
).map(", ".join)
REQUEST_FIELDS: st.SearchStrategy[list[tuple[str, str]]] = st.one_of(
    st.just([]),  # most requests carry nothing special, so that responses get stored
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(
                    [
                        "cache-control",
                        "if-none-match",
                        "if-modified-since",
                        "cookie",
                        "authorization",
                        "accept",
                        "range",
                        "upgrade",
                        "accept-language",
                        "content-type",
                        "x-forwarded-for",
                    ]
                ),
                TOKEN.map(str.lower),
            ),
            st.one_of(
                DIRECTIVES,
                DATES,
                LATIN,
                st.sampled_from(['"v1"', "*", "10.0.0.2, 192.0.2.1", "[::1]:80, 10.1.1.1"]),
            ),
        ),
        max_size=4,
    ),
)
STORABLE = st.sampled_from(
    [
        [("Cache-Control", "max-age=60")],
        [("Cache-Control", "max-age=10, stale-while-revalidate=60")],
        [("Cache-Control", "s-maxage=10, stale-if-error=60")],
        [("Cache-Control", "max-age=60"), ("Vary", "Accept")],
        [],
    ]
)
RESPONSE_FIELDS = st.tuples(
    STORABLE,
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "Cache-Control",
                    "Vary",
                    "ETag",
                    "Date",
                    "Expires",
                    "Age",
                    "Last-Modified",
                    "Set-Cookie",
                    "Location",
                    "Content-Location",
                    "Connection",
                    "Content-Length",
                    "X-Other",
                ]
            ),
            st.one_of(
                DIRECTIVES,
                DATES,
                LATIN,
                st.sampled_from(['"v1"', 'W/"v1"', "*", "Accept", "5", "-1", "x"]),
            ),
        ),
        max_size=3,
    ),
).map(lambda parts: parts[0] + parts[1])


@dataclass
class Exchange:
    method: str
    path: str
    query: str
    fields: list[tuple[str, str]]
    body: bytes
    status: int
    response_fields: list[tuple[str, str]]
    response_body: bytes | list[bytes]
    raises: bool
    advance: float


EXCHANGES = st.builds(
    Exchange,
    method=st.one_of(
        st.sampled_from(["GET"] * 6 + ["HEAD", "POST", "PUT", "DELETE"]), TOKEN.map(str.upper)
    ),
    path=st.one_of(st.sampled_from(["/a"] * 5 + ["/", "/a/b"]), LATIN.map(lambda text: "/" + text)),
    query=st.one_of(st.just(""), st.just(""), st.text(string.ascii_letters + "=&%", max_size=8)),
    fields=REQUEST_FIELDS,
    body=st.binary(max_size=64),
    status=st.sampled_from([200, 200, 203, 204, 206, 301, 302, 304, 404, 410, 500, 503]),
    response_fields=RESPONSE_FIELDS,
    response_body=st.one_of(st.binary(max_size=200), st.lists(st.binary(max_size=40), max_size=4)),
    raises=st.sampled_from([False, False, False, True]),
    advance=st.sampled_from([0.0, 1.0, 40.0, 100.0]),
)
ENV = st.fixed_dictionaries(
    {},
    optional={
        "RESILIENT_HTTP_RESPECT_REQUEST_CACHE_CONTROL": st.sampled_from(["0", "1"]),
        "RESILIENT_HTTP_CACHE_MAX_BODY": st.sampled_from(["0", "50", "1000"]),
        "RESILIENT_HTTP_LIMITS": st.sampled_from(["", "2/minute", "1/second;3/minute"]),
        "RESILIENT_HTTP_BREAKER": st.sampled_from(["0", "1"]),
        "RESILIENT_HTTP_BREAKER_STALE": st.sampled_from(["0", "1h"]),
        "RESILIENT_BREAKER_FAIL_MAX": st.sampled_from(["1", "2"]),
        "RESILIENT_BREAKER_RESET_TIMEOUT": st.sampled_from(["1", "60"]),
        "RESILIENT_RATELIMIT_MODE": st.sampled_from(["enforce", "shadow", "off"]),
        "RESILIENT_RATELIMIT_HEADERS": st.sampled_from(["off", "legacy", "draft", "both"]),
        "RESILIENT_RATELIMIT_TRUSTED_PROXIES": st.just("10.0.0.0/8"),
    },
)
RULES = st.lists(
    st.builds(
        Rule,
        path=st.sampled_from(["/a/**", "/**", "/{x}"]),
        cache=st.one_of(
            st.just(False),
            st.builds(
                CachePolicy,
                ttl=st.sampled_from([None, 0, 30]),
                stale_if_error=st.sampled_from([None, 60]),
                stale_while_revalidate=st.sampled_from([None, 60]),
                vary_cookies=st.sampled_from([None, ["lang"]]),
            ),
        ),
        limits=st.sampled_from([None, False, "2/minute", "1/second;3/minute"]),
        limit_key=st.sampled_from([None, "ip", "header:x-forwarded-for"]),
        breaker=st.sampled_from([None, False, True]),
    ),
    max_size=2,
)


class AppFailure(Exception):
    """The only exception allowed to come out of the middleware: the app's own."""


class Scripted:
    """An app that answers the exchanges in turn, as WSGI and as ASGI."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.exchanges = exchanges
        self.index = 0
        self.statuses: list[int] = []
        self.closed = 0

    def next(self) -> Exchange:
        exchange = self.exchanges[min(self.index, len(self.exchanges) - 1)]
        self.index += 1
        if exchange.raises:
            raise AppFailure("the app failed")
        self.statuses.append(exchange.status)
        return exchange

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        exchange = self.next()
        start_response(f"{exchange.status} X", list(exchange.response_fields))
        parts = exchange.response_body
        return _Closing(self, [parts] if isinstance(parts, bytes) else parts)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = self.next()
        fields = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in exchange.response_fields]
        await send({"type": "http.response.start", "status": exchange.status, "headers": fields})
        parts = exchange.response_body
        for part in [parts] if isinstance(parts, bytes) else parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class _Closing:
    def __init__(self, app: Scripted, parts: list[bytes]) -> None:
        self.app = app
        self.parts = parts

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.parts)

    def close(self) -> None:
        self.app.closed += 1


def guarded(env: dict[str, str], rules: list[Rule]) -> set[int]:
    """The answers of the middleware's own that these rules and settings allow."""
    own = set()
    if env.get("RESILIENT_HTTP_LIMITS") or any(rule.limits for rule in rules):
        own.add(429)
    if env.get("RESILIENT_HTTP_BREAKER") == "1" or any(rule.breaker for rule in rules):
        own.add(503)
    return own


def allowed(status: int, app: Scripted, exchange: Exchange, own: set[int]) -> bool:
    if status in own:
        return True
    if status == 500:
        return bool(app.statuses) and app.statuses[-1] == 500 and not exchange.raises
    return status in app.statuses or status in (200, 304, 504)


def environ_for(exchange: Exchange) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": exchange.method,
        "PATH_INFO": exchange.path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": exchange.query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(exchange.body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(exchange.body)),
    }
    for name, value in exchange.fields:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def run_wsgi(middleware: ResilientWSGIMiddleware, exchange: Exchange) -> int:
    """One request; the status the server was given."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result = middleware(environ_for(exchange), start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(seen[-1][:3])


async def run_asgi(middleware: ResilientASGIMiddleware, exchange: Exchange) -> list[Message]:
    """One request; the messages the server was sent."""
    sent: list[Message] = []
    body = [{"type": "http.request", "body": exchange.body, "more_body": False}]

    async def receive() -> Message:
        return body.pop() if body else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope_for(exchange), receive, send)
    return sent


FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(exchanges=st.lists(EXCHANGES, min_size=1, max_size=4), env=ENV, rules=RULES)
def test_wsgi_survives_anything(
    exchanges: list[Exchange], env: dict[str, str], rules: list[Rule]
) -> None:
    """Every generated request gets an allowed answer or the app's own exception."""
    clock = FakeClock(1_700_000_000.0)
    app = Scripted(exchanges)
    middleware = ResilientWSGIMiddleware(
        app.wsgi, rules, settings=env_settings(env), backend=MemoryBackend(clock=clock), clock=clock
    )
    for exchange in exchanges:
        clock.advance(exchange.advance)
        try:
            status = run_wsgi(middleware, exchange)
        except AppFailure:
            continue
        assert allowed(status, app, exchange, guarded(env, rules))
    assert app.closed == len(app.statuses)


def scope_for(exchange: Exchange) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": exchange.method,
        "scheme": "http",
        "path": exchange.path,
        "raw_path": exchange.path.encode(),
        "query_string": exchange.query.encode("latin-1"),
        "root_path": "",
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in exchange.fields],
        "client": ("10.0.0.1", 1234),
        "server": ("testserver", 80),
    }


@FUZZ
@given(exchanges=st.lists(EXCHANGES, min_size=1, max_size=4), env=ENV, rules=RULES)
def test_asgi_survives_anything(
    exchanges: list[Exchange], env: dict[str, str], rules: list[Rule]
) -> None:
    """The same traffic through the ASGI shell."""
    clock = FakeClock(1_700_000_000.0)
    app = Scripted(exchanges)
    middleware = ResilientASGIMiddleware(
        app.asgi,
        rules,
        settings=env_settings(env),
        backend=AsyncMemoryBackend(clock=clock),
        clock=clock,
    )

    async def run() -> None:
        for exchange in exchanges:
            clock.advance(exchange.advance)
            try:
                sent = await run_asgi(middleware, exchange)
            except AppFailure:
                continue
            starts = [m for m in sent if m["type"] == "http.response.start"]
            assert len(starts) == 1
            assert allowed(starts[0]["status"], app, exchange, guarded(env, rules))
            assert not sent[-1].get("more_body", False)

    asyncio.run(run())
