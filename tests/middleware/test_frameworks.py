"""Real apps behind the middleware: Flask (WSGI) and Starlette (ASGI), and one transcript.

The core never imports a framework; these tests do, to show the middleware wraps what
people actually run: Flask views and ``send_file``, Starlette JSON, streaming and file
responses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from wsgiref.validate import validator

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from flask import Flask, Response, request, send_file, stream_with_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

from resilient.backends.memory import AsyncMemoryBackend, MemoryBackend
from resilient.middleware import (
    CachePolicy,
    ResilientASGIMiddleware,
    ResilientWSGIMiddleware,
    Rule,
)
from tests.middleware.support import BASE_URL, Harness, Origin, PortalTransport, Reply, Seen
from tests.middleware.support import settings as env_settings
from tests.support.clock import FakeClock

RULES = [Rule("/articles/{id}", methods=["GET"], cache=CachePolicy(ttl=60), name="articles")]


def flask_app(tmp_path: Path, counter: list[str]) -> Flask:
    app = Flask(__name__)
    asset = tmp_path / "asset.txt"
    asset.write_bytes(b"file contents\n")

    @app.get("/articles/<int:number>")
    def article(number: int) -> dict[str, object]:
        counter.append(request.path)
        return {"article": number, "served": len(counter)}

    @app.get("/me")
    def me() -> Response:
        counter.append(request.path)
        response = Response(f"hello {request.cookies.get('sid', 'nobody')}")
        response.headers["Cache-Control"] = "max-age=60"
        return response

    @app.get("/stream")
    def stream() -> Response:
        counter.append(request.path)

        def events() -> Iterator[str]:
            yield from (f"data: {number}\n\n" for number in range(3))

        return Response(stream_with_context(events()), mimetype="text/event-stream")

    @app.get("/asset")
    def file() -> Response:
        counter.append(request.path)
        response = send_file(asset, max_age=60)
        return response

    return app


def starlette_app(tmp_path: Path, counter: list[str]) -> Starlette:
    asset = tmp_path / "asset.txt"
    asset.write_bytes(b"file contents\n")

    async def article(request: Request) -> JSONResponse:
        counter.append(request.url.path)
        number = int(request.path_params["number"])
        return JSONResponse({"article": number, "served": len(counter)})

    async def me(request: Request) -> JSONResponse:
        counter.append(request.url.path)
        return JSONResponse(
            f"hello {request.cookies.get('sid', 'nobody')}", headers={"Cache-Control": "max-age=60"}
        )

    async def stream(request: Request) -> StreamingResponse:
        counter.append(request.url.path)

        async def events() -> AsyncIterator[str]:
            for number in range(3):
                yield f"data: {number}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def file(request: Request) -> FileResponse:
        counter.append(request.url.path)
        return FileResponse(asset, headers={"Cache-Control": "max-age=60"})

    return Starlette(
        routes=[
            Route("/articles/{number:int}", article),
            Route("/me", me),
            Route("/stream", stream),
            Route("/asset", file),
        ]
    )


@pytest.fixture(params=["flask", "starlette"])
def framework_client(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, portal: BlockingPortal
) -> tuple[httpx.Client, list[str]]:
    counter: list[str] = []
    if request.param == "flask":
        flask = flask_app(tmp_path, counter)
        middleware = ResilientWSGIMiddleware(
            flask.wsgi_app,
            RULES,
            settings=env_settings(),
            backend=MemoryBackend(clock=clock),
            clock=clock,
        )
        transport: httpx.BaseTransport = httpx.WSGITransport(app=validator(middleware))
    else:
        asgi = ResilientASGIMiddleware(
            starlette_app(tmp_path, counter),
            RULES,
            settings=env_settings(),
            backend=AsyncMemoryBackend(clock=clock),
            clock=clock,
        )
        transport = PortalTransport(asgi, portal)
    return httpx.Client(transport=transport, base_url=BASE_URL), counter


def test_app_mode_route(framework_client: tuple[httpx.Client, list[str]]) -> None:
    """A JSON view without cache headers, cached for the rule's TTL, per article."""
    client, counter = framework_client
    first = client.get("/articles/1")
    assert first.headers["cache-control"] == "max-age=60"
    assert client.get("/articles/1").json() == first.json() == {"article": 1, "served": 1}
    assert client.get("/articles/2").json() == {"article": 2, "served": 2}
    assert client.post("/articles/1").status_code == 405
    assert client.get("/articles/1").json()["served"] == 1  # a 405 invalidates nothing
    assert counter == ["/articles/1", "/articles/2"]


def test_cookies_bypass(framework_client: tuple[httpx.Client, list[str]]) -> None:
    """A view reading a session cookie: requests with cookies never share a copy."""
    client, counter = framework_client
    assert "alice" in client.get("/me", headers={"Cookie": "sid=alice"}).text
    assert "bob" in client.get("/me", headers={"Cookie": "sid=bob"}).text
    assert "nobody" in client.get("/me").text
    assert "nobody" in client.get("/me").text
    assert len(counter) == 3


def test_streams_and_files(framework_client: tuple[httpx.Client, list[str]]) -> None:
    """Server-sent events stream through uncached; a file with max-age is cached whole."""
    client, counter = framework_client
    for _ in range(2):
        assert client.get("/stream").text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert client.get("/asset").content == b"file contents\n"
    assert counter.count("/stream") == 2
    assert counter.count("/asset") == 1


def scenario(client: httpx.Client, clock: FakeClock) -> list[object]:
    """A mix of everything; the transcript of what the client saw."""
    transcript: list[object] = []

    def record(response: httpx.Response) -> None:
        fields = [(name.decode().lower(), value.decode()) for name, value in response.headers.raw]
        transcript.append((response.status_code, fields, response.content))

    record(client.get("/page", headers={"Accept-Language": "en"}))
    record(client.get("/page", headers={"Accept-Language": "fr"}))
    clock.advance(5)
    record(client.get("/page", headers={"Accept-Language": "en"}))
    etag = client.get("/page", headers={"Accept-Language": "en"}).headers["etag"]
    record(client.get("/page", headers={"Accept-Language": "en", "If-None-Match": etag}))
    record(client.head("/page", headers={"Accept-Language": "fr"}))
    record(client.post("/page"))
    record(client.get("/page", headers={"Accept-Language": "en"}))
    clock.advance(15)
    record(client.get("/page", headers={"Accept-Language": "en"}))
    record(client.get("/app-mode"))
    record(client.get("/app-mode", headers={"Authorization": "Bearer x"}))
    record(client.get("/stream"))
    clock.advance(100)
    record(client.get("/app-mode"))
    return transcript


def transcript_origin() -> Origin:
    """Vary, validators, stale-while-revalidate, app mode and a stream, numbered per call."""

    def handler(seen: Seen) -> Reply:
        if seen.path == "/stream":
            return Reply([b"a", b"b"], headers=[("Cache-Control", "max-age=5")])
        if seen.path == "/app-mode":
            return Reply(json.dumps({"n": origin.calls}).encode(), content_type="text/json")
        body = f"{seen.headers.get('accept-language')} {origin.calls}".encode()
        return Reply(
            body,
            headers=[
                ("Cache-Control", "max-age=10, stale-while-revalidate=30"),
                ("Vary", "Accept-Language"),
            ],
        )

    origin = Origin(handler)
    return origin


def test_both_shells_say_the_same(clock: FakeClock, portal: BlockingPortal) -> None:
    """One scenario through WSGI and ASGI: the same statuses, fields and bodies, in order."""
    transcripts = []
    start = clock()
    for kind in ("wsgi", "asgi"):
        clock.now = start  # both shells live the same times
        client = Harness(kind, clock, portal).client(
            transcript_origin(), [Rule("/app-mode", cache=CachePolicy(ttl=30))]
        )
        transcripts.append(scenario(client, clock))
    assert transcripts[0] == transcripts[1]
    assert len(transcripts[0]) == 12
