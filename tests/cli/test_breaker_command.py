"""``resilient breaker open|close|reset NAME``: live breakers of other processes follow."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resilient.breaker import STATE_CLOSED, STATE_OPEN, CircuitBreaker
from resilient.errors import CircuitOpenError
from tests.breaker.conftest import eventually
from tests.cli.conftest import PASSWORD, run, run_json
from tests.support.redis_servers import RedisServer

Build = Callable[..., CircuitBreaker]


class Boom(Exception):
    """The dependency failed."""


def _boom() -> None:
    raise Boom


def test_open_rejects_the_next_call_of_a_live_breaker(
    redis_server: RedisServer, breakers: Build
) -> None:
    """After ``breaker open`` a live breaker (pub/sub only, no resync) rejects, for its own
    reset_timeout, read from the registry."""
    live = breakers("payments", redis_server.url, reset_timeout=30)
    assert live.call(lambda: "ok") == "ok"
    status, text = run("breaker", "open", "payments", "--backend", redis_server.url)
    assert status == 0
    header, row = text.splitlines()
    assert header.split() == ["BREAKER", "STATE", "FAILURES", "HALF-OPEN", "IN", "GENERATION"]
    name, state, failures, half_open_in, generation = row.split()
    assert (name, state, failures) == ("payments", "open", "0/5")
    assert 29.0 < float(half_open_in.rstrip("s")) <= 30.0
    assert eventually(lambda: live.current_state == STATE_OPEN)
    assert live._machine.generation == int(generation)
    with pytest.raises(CircuitOpenError) as caught:
        live.call(lambda: "never runs")
    assert 29.0 < caught.value.retry_after <= 30.0


def test_close_admits_again_and_reports_json(redis_server: RedisServer, breakers: Build) -> None:
    """A tripped breaker, closed from the command line: the live one admits at once."""
    live = breakers("search", redis_server.url, fail_max=2, reset_timeout=60)
    for _ in range(2):
        with pytest.raises(Boom):
            live.call(_boom)
    assert live.current_state == STATE_OPEN
    before = live._machine.generation
    result = run_json("breaker", "close", "search", "--backend", redis_server.url)
    assert result == {
        "name": "search", "state": "closed", "failures": 0, "fail_max": 2,
        "generation": before + 1, "half_open_in": None, "stored": True,
    }  # fmt: skip
    assert eventually(lambda: live.current_state == STATE_CLOSED)
    assert live.call(lambda: "ok") == "ok"


def test_reset_forgets_counted_failures(redis_server: RedisServer, breakers: Build) -> None:
    """``reset`` on a closed breaker with failures: the count is 0 everywhere, so that
    fail_max more failures (not fewer) are needed to trip it."""
    live = breakers("mail", redis_server.url, fail_max=3)
    for _ in range(2):
        with pytest.raises(Boom):
            live.call(_boom)
    assert run_json("breaker", "reset", "mail", "--backend", redis_server.url)["failures"] == 0
    assert eventually(lambda: live.fail_counter == 0)
    for _ in range(2):
        with pytest.raises(Boom):
            live.call(_boom)
    assert live.current_state == STATE_CLOSED  # 2 of 3: the earlier two were forgotten


def test_an_unregistered_breaker_opens_for_its_configured_timeout(
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    breakers: Build,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No live breaker recorded ``order``: its reset timeout is the per-name setting, and
    a warning names the closest known breaker (a typo must not pass for success)."""
    breakers("orders", redis_server.url)
    monkeypatch.setenv("RESILIENT_BREAKER__ORDER__RESET_TIMEOUT", "7s")
    result = run_json("breaker", "open", "order", "--backend", redis_server.url)
    assert (result["state"], result["generation"], result["stored"]) == ("open", 1, True)
    assert 6.0 < result["half_open_in"] <= 7.0
    assert capsys.readouterr().err == (
        "resilient: warning: no shared breaker named 'order' is known (did you mean "
        "'orders'?); its state is set anyway\n"
    )
    run_json("breaker", "close", "order", "--backend", redis_server.url)
    assert capsys.readouterr().err == ""  # known now: it has state


def test_the_password_is_never_shown(
    secured: tuple[RedisServer, str], breakers: Build, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a server that requires a password: the command works, and no output, table
    or JSON, holds the password."""
    _, url = secured
    breakers("payments", url)
    outputs = [run("breaker", "open", "payments", "--backend", url)[1],
               run("breaker", "close", "payments", "--backend", url, "--json")[1]]  # fmt: skip
    assert "open" in outputs[0]
    assert '"closed"' in outputs[1]
    captured = capsys.readouterr()
    assert all(PASSWORD not in text for text in [*outputs, captured.out, captured.err])
    # A wrong password: one line, exit status 1, masked.
    wrong = url.replace(PASSWORD, "not-it")
    assert run("breaker", "open", "payments", "--backend", wrong)[0] == 1
    err = capsys.readouterr().err
    assert "not-it" not in err
    assert err.startswith("resilient: cannot reach the backend at redis://default:***@")
