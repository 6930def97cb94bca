"""``Depends(Breaker(...))`` and the exception handlers ``install`` adds."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Response

from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.ratelimit import rate_limited
from resilient_fastapi import Breaker, install, registry_for
from tests.integrations.fastapi.support import client, problem
from tests.support.clock import FakeClock


class Upstream:
    """What the guarded endpoint does next: answer, raise 502, raise, set 500, 404."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    def __call__(self, response: Response) -> str:
        self.calls += 1
        if self.mode == "502":
            raise HTTPException(502, "upstream down")
        if self.mode == "raise":
            raise ConnectionError("upstream refused")
        if self.mode == "status":
            response.status_code = 500
        if self.mode == "404":
            raise HTTPException(404)
        return "paid"


def guarded_app(upstream: Upstream, *, installed: bool = True, **options: Any) -> FastAPI:
    app = FastAPI()
    if installed:
        install(app)

    @app.post("/pay", dependencies=[Depends(Breaker("payments", **options))])
    async def pay(response: Response, amount: int = 1) -> str:
        return upstream(response)

    return app


async def test_trips_answers_503_then_recovers_after_the_reset_timeout() -> None:
    clock = FakeClock()
    upstream = Upstream()
    app = guarded_app(upstream, fail_max=2, reset_timeout=30, clock=clock)
    async with client(app) as http:
        assert (await http.post("/pay")).status_code == 200
        upstream.mode = "502"
        assert [(await http.post("/pay")).status_code for _ in range(2)] == [502, 502]
        rejected = await http.post("/pay")
        clock.advance(10)
        later = await http.post("/pay")
        clock.advance(20)
        upstream.mode = "ok"
        probe = await http.post("/pay")
        after = await http.post("/pay")
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "30"
    assert problem(rejected) == {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable. Retry after 30 seconds.",
        "retry_after": 30,
    }
    assert later.headers["retry-after"] == "20"
    assert (probe.status_code, after.status_code) == (200, 200)
    assert registry_for(app).breakers["payments"].current_state == "closed"
    assert upstream.calls == 5  # rejected requests never reached the endpoint


async def test_without_install_the_rejection_is_an_http_exception() -> None:
    upstream = Upstream()
    app = guarded_app(upstream, installed=False, fail_max=1, clock=FakeClock())
    upstream.mode = "502"
    async with client(app) as http:
        await http.post("/pay")
        rejected = await http.post("/pay")
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "60"  # the default reset timeout
    assert rejected.json() == {
        "detail": "The service is temporarily unavailable. Retry after 60 seconds."
    }


@pytest.mark.parametrize("mode", ["raise", "status"])
async def test_exceptions_and_5xx_statuses_count_as_failures(mode: str) -> None:
    upstream = Upstream()
    app = guarded_app(upstream, fail_max=2, clock=FakeClock())
    upstream.mode = mode
    async with client(app, raise_app_exceptions=False) as http:
        statuses = [(await http.post("/pay")).status_code for _ in range(3)]
    assert statuses == [500, 500, 503]
    assert upstream.calls == 2


async def test_client_errors_do_not_trip_it() -> None:
    upstream = Upstream()
    app = guarded_app(upstream, fail_max=1, clock=FakeClock())
    upstream.mode = "404"
    async with client(app) as http:
        not_found = [(await http.post("/pay")).status_code for _ in range(2)]
        invalid = await http.post("/pay", params={"amount": "lots"})
    assert not_found == [404, 404]
    assert invalid.status_code == 422
    breaker = registry_for(app).breakers["payments"]
    assert (breaker.current_state, breaker.fail_counter) == ("closed", 0)


async def test_breaker_settings_come_from_install() -> None:
    app = FastAPI()
    install(app, breaker_fail_max=5, breaker_reset_timeout="9s")
    upstream = Upstream()

    @app.get("/quote", dependencies=[Depends(Breaker("quotes", fail_max=1))])
    async def quote(response: Response) -> str:
        return upstream(response)

    upstream.mode = "502"
    async with client(app) as http:
        statuses = [(await http.get("/quote")).status_code for _ in range(2)]
        retry = (await http.get("/quote")).headers["retry-after"]
    assert statuses == [502, 503]  # the argument wins over the settings
    assert retry == "9"  # the setting fills what the argument leaves open


async def test_routes_sharing_a_breaker_must_agree_on_its_options() -> None:
    app = FastAPI()

    @app.get("/a", dependencies=[Depends(Breaker("search", fail_max=3))])
    async def a() -> str:
        return "a"

    @app.get("/b", dependencies=[Depends(Breaker("search", fail_max=4))])
    async def b() -> str:
        return "b"

    async with client(app) as http:
        assert (await http.get("/a")).status_code == 200
        with pytest.raises(ConfigurationError, match="options of breaker 'search'"):
            await http.get("/b")


@pytest.mark.parametrize(
    ("name", "options", "argument"),
    [("", {}, "name"), ("payments", {"fail_max": 0}, "fail_max")],
)
def test_bad_arguments_fail_at_construction(
    name: str, options: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        Breaker(name, **options)


async def test_core_rejections_raised_anywhere_become_problems() -> None:
    """@rate_limited and @circuit_breaker inside endpoints: 429 and 503 everywhere."""
    app = FastAPI()
    install(app)

    @rate_limited("1/minute", key="partner", strategy="fixed-window")
    async def call_partner() -> str:
        return "partner"

    async def ledger() -> str:
        # What a @circuit_breaker("ledger-db") function raises while its circuit is open.
        raise CircuitOpenError("ledger-db", 4.2)

    @app.get("/partner")
    async def partner() -> str:
        return await call_partner()

    @app.get("/ledger")
    async def read_ledger() -> str:
        return await ledger()

    async with client(app) as http:
        assert (await http.get("/partner")).status_code == 200
        limited = await http.get("/partner")
        circuit = await http.get("/ledger")
    assert limited.status_code == 429
    body = problem(limited)
    assert body["limit"] == "1/minute"
    assert 59 <= body["retry_after"] <= 61  # the window's remainder, on the real clock
    assert limited.headers["retry-after"] == str(body["retry_after"])
    assert circuit.status_code == 503
    assert circuit.headers["retry-after"] == "5"
    assert problem(circuit)["retry_after"] == 5
    assert "ledger-db" not in circuit.text  # no internals leak


async def test_rejections_inside_the_endpoint_are_judged_by_their_status() -> None:
    """A rate limit inside the guarded endpoint is the client's doing; an open inner
    circuit becomes a 503, a failure."""
    app = FastAPI()
    install(app)
    raised: dict[str, Exception] = {}

    @app.get("/inner", dependencies=[Depends(Breaker("outer", fail_max=2, clock=FakeClock()))])
    async def inner() -> str:
        raise raised["error"]

    async with client(app) as http:
        raised["error"] = RateLimitExceeded("1/second", 1.0)
        limited = [(await http.get("/inner")).status_code for _ in range(3)]
        breaker = registry_for(app).breakers["outer"]
        assert breaker.fail_counter == 0
        raised["error"] = CircuitOpenError("inner", 3.0)
        opened = [(await http.get("/inner")).status_code for _ in range(3)]
    assert limited == [429, 429, 429]
    assert opened == [503, 503, 503]
    assert breaker.current_state == "open"  # two inner rejections counted as failures
