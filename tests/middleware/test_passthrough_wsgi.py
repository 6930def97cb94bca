"""What the WSGI shell leaves alone, and PEP 3333 kept: close(), lazy starts, write()."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from resilient.backends.memory import MemoryBackend
from resilient.middleware import ResilientWSGIMiddleware
from tests.middleware.support import settings
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CACHEABLE = [("Cache-Control", "max-age=60")]


class Body:
    """A WSGI body that records iteration and close()."""

    def __init__(self, parts: list[bytes], fail_at: int | None = None) -> None:
        self.parts = parts
        self.fail_at = fail_at
        self.closed = 0
        self.produced = 0

    def __iter__(self) -> Iterator[bytes]:
        for index, part in enumerate(self.parts):
            if index == self.fail_at:
                raise RuntimeError("broken stream")
            self.produced += 1
            yield part

    def close(self) -> None:
        self.closed += 1


def wsgi_middleware(app: Any, clock: FakeClock) -> ResilientWSGIMiddleware:
    return ResilientWSGIMiddleware(
        validator(app), settings=settings(), backend=MemoryBackend(clock=clock), clock=clock
    )


def make_environ(method: str = "GET", path: str = "/a") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
    }
    setup_testing_defaults(environ)
    return environ


def run_wsgi(app: Any, method: str = "GET", path: str = "/a") -> tuple[str, list[Any], bytes]:
    environ = make_environ(method, path)
    captured: list[Any] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    result = validator(app)(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    return captured[0], captured[1], body


@pytest.mark.parametrize(
    ("headers", "parts"),
    [
        ([("Content-Type", "text/plain")], [b"a", b"b"]),  # not cacheable: untouched
        ([*CACHEABLE, ("Content-Type", "text/plain"), ("Content-Length", "2")], [b"a", b"b"]),
        ([*CACHEABLE, ("Content-Type", "text/plain")], [b"a", b"b"]),  # streamed, copied
    ],
    ids=["pass", "held", "copied"],
)
def test_wsgi_close_reaches_the_app_once(
    clock: FakeClock, headers: list[tuple[str, str]], parts: list[bytes]
) -> None:
    """Whatever the middleware does with the body, the app's close() runs exactly once."""
    bodies: list[Body] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        bodies.append(Body(parts))
        return bodies[-1]

    middleware = wsgi_middleware(app, clock)
    assert run_wsgi(middleware)[2] == b"ab"
    assert run_wsgi(middleware)[2] == b"ab"
    assert [body.closed for body in bodies] == ([1] if len(bodies) == 1 else [1, 1])


def test_wsgi_untouched_iterable_is_the_apps_own(clock: FakeClock) -> None:
    """A response nobody needs goes out as the app's own object (file wrappers included)."""
    body = Body([b"x"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    middleware = ResilientWSGIMiddleware(
        app, settings=settings(), backend=MemoryBackend(clock=clock), clock=clock
    )
    environ = make_environ()
    assert middleware(environ, lambda status, headers, exc_info=None: len) is body


def test_wsgi_stream_is_not_read_ahead(clock: FakeClock) -> None:
    """Each chunk of a streamed body leaves before the app produces the next one."""
    body = Body([b"1", b"2", b"3"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*CACHEABLE, ("Content-Type", "text/event-stream")])
        return body

    middleware = wsgi_middleware(app, clock)
    environ = make_environ()
    result = validator(middleware)(environ, lambda status, headers, exc_info=None: len)
    progress = [(chunk, body.produced) for chunk in result]
    result.close()  # type: ignore[attr-defined]
    assert progress == [(b"1", 1), (b"2", 2), (b"3", 3)]


def test_wsgi_lazy_start_response(clock: FakeClock) -> None:
    """An app calling start_response from inside its generator is cached like any other."""
    calls = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # A generator: nothing, start_response included, runs before the first next().
        calls.append(1)
        start_response("200 OK", [*CACHEABLE, ("Content-Type", "text/plain")])
        yield b"la"
        yield b"zy"

    middleware = wsgi_middleware(app, clock)
    assert run_wsgi(middleware)[2] == b"lazy"
    status, headers, body = run_wsgi(middleware)
    assert (status, body, len(calls)) == ("200 OK", b"lazy", 1)
    assert ("Age", "0") in headers


def test_wsgi_write_callable_streams_past_the_cache(clock: FakeClock) -> None:
    """The legacy write() callable works; what it writes is not stored."""
    written: list[bytes] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [*CACHEABLE, ("Content-Type", "text/plain")])
        write(b"written")
        return [b" then returned"]

    environ = make_environ()
    middleware = wsgi_middleware(app, clock)
    for _ in range(2):

        def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            return written.append

        result = middleware(environ, start_response)
        written.extend(result)
        result.close()  # type: ignore[attr-defined]
    assert written == [b"written", b" then returned"] * 2


def test_wsgi_errors_after_the_head_propagate_and_close(clock: FakeClock) -> None:
    """A stream failing midway raises to the server, closes the app's body, stores nothing."""
    bodies: list[Body] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [*CACHEABLE, ("Content-Type", "text/plain")])
        bodies.append(Body([b"a", b"b"], fail_at=1))
        return bodies[-1]

    middleware = wsgi_middleware(app, clock)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="broken stream"):
            run_wsgi(middleware)
    assert [body.closed for body in bodies] == [1, 1]


def test_wsgi_exc_info_after_the_head_reraises(clock: FakeClock) -> None:
    """start_response with exc_info after the head went out re-raises (PEP 3333)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never"

    environ = make_environ()
    middleware = wsgi_middleware(app, clock)

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        if exc_info is not None:
            raise exc_info[1]
        return len

    result = middleware(environ, start_response)
    with pytest.raises(ValueError, match="late failure"):
        list(result)
    result.close()  # type: ignore[attr-defined]


def test_wsgi_app_without_start_response_is_an_error(clock: FakeClock) -> None:
    """An app that never calls start_response fails loudly, as the server would."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return []

    environ = make_environ()
    middleware = ResilientWSGIMiddleware(
        app, settings=settings(), backend=MemoryBackend(clock=clock), clock=clock
    )
    result = middleware(environ, lambda status, headers, exc_info=None: len)
    with pytest.raises(RuntimeError, match="without calling start_response"):
        list(result)
    result.close()  # type: ignore[attr-defined]
