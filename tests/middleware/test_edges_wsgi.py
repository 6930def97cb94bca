"""Protocol corners of the WSGI shell: lazy apps, lying lengths, odd environs, write()."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from resilient.backends.memory import MemoryBackend
from resilient.middleware import ResilientWSGIMiddleware
from tests.middleware.support import Origin, Reply, settings
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CACHEABLE = [("Cache-Control", "max-age=10, stale-if-error=60"), ("Content-Type", "text/plain")]


def environ(path: str = "/a", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    base.update(extra)
    return base


def call(app: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: list[Any] = ["", []]

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return captured[0], captured[1], body


def wsgi(app: Any, clock: FakeClock, env: dict[str, str] | None = None) -> ResilientWSGIMiddleware:
    return ResilientWSGIMiddleware(
        app, settings=settings(env), backend=MemoryBackend(clock=clock), clock=clock
    )


class Script:
    """A WSGI generator app whose behaviour per call the test sets."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "ok"
        self.closed = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.calls += 1
        return self._body(start_response)

    def _body(self, start_response: StartResponse) -> Iterator[bytes]:
        try:
            if self.mode == "raise":
                raise RuntimeError("lazy failure")
            yield b""  # nothing yet: start_response comes later
            status = "503 Unavailable" if self.mode == "503" else "200 OK"
            start_response(status, CACHEABLE)
            yield f"v{self.calls}".encode()
        finally:
            self.closed += 1


def test_wsgi_lazy_start_response_paths(clock: FakeClock) -> None:
    """An app that starts its response lazily gets the same treatment: stored, replaced by
    the stale copy when it fails with a 503 or raises, closed every time."""
    app = Script()
    middleware = wsgi(app, clock)
    assert call(middleware, environ())[2] == b"v1"
    clock.advance(20)
    app.mode = "503"
    assert call(middleware, environ())[:2] == ("200 OK", call(middleware, environ())[1])
    app.mode = "raise"
    status, headers, body = call(middleware, environ())
    assert (status, body, ("Age", "20")) == ("200 OK", b"v1", headers[-1])
    clock.advance(100)
    with pytest.raises(RuntimeError, match="lazy failure"):
        call(middleware, environ())
    assert app.closed == app.calls


def test_wsgi_close_without_iterating(clock: FakeClock) -> None:
    """A server that closes before iterating (client gone) still closes the app's body."""
    app = Script()
    middleware = wsgi(app, clock)
    result = middleware(environ(), lambda status, headers, exc_info=None: len)
    result.close()  # type: ignore[attr-defined]
    assert app.calls == 1


def test_wsgi_lying_content_length(clock: FakeClock) -> None:
    """A body longer than its Content-Length and than the cap is sent whole, not stored."""
    calls: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(1)
        start_response("200 OK", [*CACHEABLE, ("Content-Length", "10")])
        return [b"x" * 60, b"y" * 60, b"z"]

    middleware = wsgi(app, clock, {"RESILIENT_HTTP_CACHE_MAX_BODY": "100"})
    for _ in range(2):
        assert call(middleware, environ())[2] == b"x" * 60 + b"y" * 60 + b"z"
    assert len(calls) == 2


def test_wsgi_copy_dropped_mid_stream(clock: FakeClock) -> None:
    """A streamed body passing the cap midway is sent whole and not stored."""
    calls: list[int] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        calls.append(1)
        start_response("200 OK", CACHEABLE)
        return iter([b"a" * 60, b"b" * 60, b"c" * 60])

    middleware = wsgi(app, clock, {"RESILIENT_HTTP_CACHE_MAX_BODY": "100"})
    for _ in range(2):
        assert len(call(middleware, environ())[2]) == 180
    assert len(calls) == 2


def test_wsgi_write_twice(clock: FakeClock) -> None:
    """write() may be called any number of times."""
    written: list[bytes] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", CACHEABLE)
        write(b"one ")
        write(b"two")
        return []

    middleware = wsgi(app, clock)
    result = middleware(environ(), lambda status, headers, exc_info=None: written.append)
    list(result)
    getattr(result, "close", lambda: None)()
    assert written == [b"one ", b"two"]


def test_wsgi_environ_corners(clock: FakeClock) -> None:
    """No Host: SERVER_NAME and a non-default port name the resource; a path that is not
    latin-1 (a non-conforming server) is used as it is."""
    origin = Origin(Reply(b"x", headers=[("Cache-Control", "max-age=60")]))
    middleware = wsgi(origin.wsgi, clock)
    for port in ("8080", "8081", "8080"):
        env = environ(SERVER_PORT=port)
        del env["HTTP_HOST"]
        call(middleware, env)
    assert origin.calls == 2
    call(middleware, environ("/caf€"))
    call(middleware, environ("/caf€"))
    assert origin.calls == 3


def test_undecodable_paths_are_not_cached(clock: FakeClock) -> None:
    """Bytes that are not UTF-8 become U+FFFD for the app; such paths bypass the cache, since
    different paths may then read alike."""
    origin = Origin(Reply(b"x", headers=[("Cache-Control", "max-age=60")]))
    middleware = wsgi(origin.wsgi, clock)
    for raw in ("/\xff", "/\xfe", "/\xff"):
        call(middleware, environ(raw))
    assert origin.calls == 3
