"""@rate_limited on sync and async functions: keys, costs, exemptions, waiting, settings."""

from __future__ import annotations

import pytest

from resilient.backends import MemoryBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError, RateLimitExceeded
from resilient.ratelimit import RateLimiter, rate_limited
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})


class Sleeper:
    """An injected sleep that moves a fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self(seconds)


def test_sync_function_raises_over_the_limit(clock: FakeClock) -> None:
    """The call runs while under the limit; then RateLimitExceeded, and the body is skipped."""
    calls: list[int] = []

    @rate_limited("2/minute", backend=MemoryBackend(clock=clock), settings=SETTINGS)
    def work(number: int) -> int:
        calls.append(number)
        return number * 2

    assert work(1) == 2
    assert work(2) == 4
    with pytest.raises(RateLimitExceeded) as caught:
        work(3)
    assert calls == [1, 2]
    assert caught.value.limit == "2/minute"
    assert caught.value.retry_after == pytest.approx(60.001)
    assert work.__name__ == "work"  # wrapped properly


async def test_async_function_raises_over_the_limit(clock: FakeClock) -> None:
    """Coroutine functions get an async wrapper using the asyncio path."""

    @rate_limited("1/minute", backend=MemoryBackend(clock=clock), settings=SETTINGS)
    async def work() -> str:
        return "done"

    assert await work() == "done"
    with pytest.raises(RateLimitExceeded):
        await work()


def test_key_and_cost_from_the_arguments(clock: FakeClock) -> None:
    """key and cost may be functions of the call's arguments."""
    backend = MemoryBackend(clock=clock)

    @rate_limited(
        "10/minute",
        key=lambda user, size: user,
        cost=lambda user, size: size,
        backend=backend,
        settings=SETTINGS,
    )
    def upload(user: str, size: int) -> None:
        return None

    upload("alice", 6)
    upload("bob", 10)
    with pytest.raises(RateLimitExceeded):
        upload("alice", 5)
    upload("alice", 4)
    with pytest.raises(RateLimitExceeded):
        upload("bob", 1)


def test_an_empty_key_shares_one_bucket_never_exempt(clock: FakeClock) -> None:
    """A key function returning '' or None does not skip the limit."""
    backend = MemoryBackend(clock=clock)

    @rate_limited("2/minute", key=lambda user: user, backend=backend, settings=SETTINGS)
    def call(user: str | None) -> None:
        return None

    call(None)
    call("")
    with pytest.raises(RateLimitExceeded):
        call(None)
    call("carol")


def test_exempt_predicate_skips_the_limit(clock: FakeClock) -> None:
    """exempt(*args) true: not counted, not limited."""

    @rate_limited(
        "1/minute",
        exempt=lambda user: user == "admin",
        backend=MemoryBackend(clock=clock),
        settings=SETTINGS,
    )
    def call(user: str) -> str:
        return user

    for _ in range(5):
        assert call("admin") == "admin"
    call("eve")
    with pytest.raises(RateLimitExceeded):
        call("eve")


def test_scope_shares_a_limit_across_functions(clock: FakeClock) -> None:
    """Functions with one scope draw on one quota; others keep their own."""
    backend = MemoryBackend(clock=clock)

    @rate_limited("3/minute", scope="partner-api", backend=backend, settings=SETTINGS)
    def read() -> None:
        return None

    @rate_limited("3/minute", scope="partner-api", backend=backend, settings=SETTINGS)
    def write() -> None:
        return None

    @rate_limited("3/minute", backend=backend, settings=SETTINGS)
    def other() -> None:
        return None

    read()
    write()
    read()
    with pytest.raises(RateLimitExceeded):
        write()
    other()


def test_wait_sleeps_until_a_slot_frees(clock: FakeClock) -> None:
    """wait=True: over the limit, sleep retry_after and go ahead, instead of raising."""
    sleeper = Sleeper(clock)
    calls: list[float] = []

    @rate_limited(
        "2/second",
        wait=True,
        strategy="moving-window",
        backend=MemoryBackend(clock=clock),
        settings=SETTINGS,
        sleep=sleeper,
    )
    def call_partner() -> None:
        calls.append(clock())

    for _ in range(5):
        call_partner()
    assert len(calls) == 5
    assert sleeper.slept == [pytest.approx(1.001)] * 2
    assert calls[2] - calls[0] == pytest.approx(1.001)
    assert calls[4] - calls[2] == pytest.approx(1.001)


async def test_async_wait_uses_the_async_sleep(clock: FakeClock) -> None:
    """The async wrapper awaits its injected sleep; it never blocks the loop."""
    sleeper = Sleeper(clock)

    @rate_limited(
        "1/minute",
        wait=True,
        strategy="fixed-window",
        backend=MemoryBackend(clock=clock),
        settings=SETTINGS,
        sleep=lambda seconds: pytest.fail("the sync sleep must not be used"),
        async_sleep=sleeper.asleep,
    )
    async def fetch() -> int:
        return 1

    assert [await fetch() for _ in range(3)] == [1, 1, 1]
    assert sleeper.slept == [pytest.approx(60.001)] * 2


def test_max_wait_bounds_the_total_sleep(clock: FakeClock) -> None:
    """A wait beyond max_wait raises at once instead of sleeping."""
    sleeper = Sleeper(clock)
    backend = MemoryBackend(clock=clock)

    @rate_limited(
        "1/minute", wait=True, max_wait=30, backend=backend, settings=SETTINGS, sleep=sleeper
    )
    def call() -> None:
        return None

    call()
    with pytest.raises(RateLimitExceeded):
        call()
    assert sleeper.slept == []


def test_wait_does_not_loop_on_a_cost_no_window_holds(clock: FakeClock) -> None:
    """A cost above the limit's amount can never pass: raise rather than sleep forever."""
    sleeper = Sleeper(clock)

    @rate_limited(
        "3/minute",
        cost=5,
        wait=True,
        backend=MemoryBackend(clock=clock),
        settings=SETTINGS,
        sleep=sleeper,
    )
    def call() -> None:
        return None

    with pytest.raises(RateLimitExceeded):
        call()
    assert sleeper.slept == []


async def test_an_explicit_limiter_is_used_as_given(clock: FakeClock) -> None:
    """limiter=...: one limiter object behind several functions, sync and async."""
    limiter = RateLimiter("2/minute", backend=MemoryBackend(clock=clock), settings=SETTINGS)

    @rate_limited(limiter=limiter)
    def sync_call() -> None:
        return None

    @rate_limited(limiter=limiter)
    async def async_call() -> None:
        return None

    sync_call()
    await async_call()
    with pytest.raises(RateLimitExceeded):
        sync_call()
    assert limiter.stats.allowed == 2


def test_settings_are_read_at_the_first_call_not_at_decoration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Decorating reads no environment; the first call does, per-name overrides included."""

    @rate_limited(name="reports")
    def report() -> None:
        return None

    monkeypatch.setenv("RESILIENT_RATELIMIT_DEFAULT", "100/hour")
    monkeypatch.setenv("RESILIENT_RATELIMIT__REPORTS__DEFAULT", "1/hour")
    monkeypatch.setenv("RESILIENT_RATELIMIT__REPORTS__URL", "memory://")
    report()
    with pytest.raises(RateLimitExceeded, match="1/hour"):
        report()


def test_missing_limits_fail_at_the_first_call() -> None:
    """No limits given nor configured: a ConfigurationError naming the variable."""

    @rate_limited()
    def call() -> None:
        return None

    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT_DEFAULT"):
        call()


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"limits": "lots/second"}, "limits"),
        ({"limits": "1/second", "strategy": "gcra"}, "strategy"),
        ({"limits": "1/second", "mode": "loud"}, "mode"),
        ({"limits": "1/second", "fail_mode": "panic"}, "fail_mode"),
        ({"limits": "1/second", "cost": 0}, "cost"),
        ({"limits": "1/second", "key": 42}, "key"),
        ({"limits": "1/second", "max_wait": -1}, "max_wait"),
        ({"limiter": RateLimiter("1/second", settings=SETTINGS), "limits": "1/hour"}, "limiter"),
    ],
)
def test_bad_arguments_fail_at_decoration(options: dict[str, object], argument: str) -> None:
    """Errors name the argument before any call."""
    with pytest.raises(ConfigurationError, match=argument):
        rate_limited(**options)  # type: ignore[arg-type]


def test_methods_and_constant_keys(clock: FakeClock) -> None:
    """Decorated methods get self; a string key is one constant identity."""
    backend = MemoryBackend(clock=clock)

    class Client:
        @rate_limited("1/minute", key="partner", backend=backend, settings=SETTINGS)
        def fetch(self) -> str:
            return "ok"

    assert Client().fetch() == "ok"
    with pytest.raises(RateLimitExceeded):
        Client().fetch()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_stacked_limits_count_each_call_once(clock: FakeClock, asynchronous: bool) -> None:
    """5/minute over 100/minute on one function: five calls pass, not two or three.

    Both limits default to the function's name and share a window; without scopes of
    their own they would share one counter and count every call twice.
    """
    backend = MemoryBackend(clock=clock)
    calls: list[int] = []

    def body(number: int) -> int:
        calls.append(number)
        return number

    async def abody(number: int) -> int:
        return body(number)

    inner = rate_limited("100/minute", backend=backend, settings=SETTINGS)
    outer = rate_limited("5/minute", backend=backend, settings=SETTINGS)
    if asynchronous:
        work = outer(inner(abody))
        for number in range(5):
            await work(number)
        with pytest.raises(RateLimitExceeded) as caught:
            await work(5)
    else:
        work_sync = outer(inner(body))
        for number in range(5):
            work_sync(number)
        with pytest.raises(RateLimitExceeded) as caught:
            work_sync(5)
    assert calls == [0, 1, 2, 3, 4]
    assert caught.value.limit == "5/minute"


def test_integer_keys_are_identities(clock: FakeClock) -> None:
    """A key function returning an int (a user id, 0 included) counts per user."""
    backend = MemoryBackend(clock=clock)

    @rate_limited("1/minute", key=lambda user_id: user_id, backend=backend, settings=SETTINGS)
    def work(user_id: int) -> int:
        return user_id

    assert [work(0), work(1), work(2)] == [0, 1, 2]
    with pytest.raises(RateLimitExceeded):
        work(0)  # 0 is a user, not "no key"
