"""The in-memory store: window rules, figures, all-or-nothing, LRU bound, no timers."""

from __future__ import annotations

import threading

import pytest

from resilient.backends import MemoryBackend
from resilient.config import Settings
from resilient.ratelimit import RateLimiter
from resilient.ratelimit._stores import memory_store_for
from resilient.ratelimit.memory import EPSILON, MemoryStore
from resilient.ratelimit.policy import Limit, parse_limits
from tests.support.clock import FakeClock

SETTINGS = Settings.from_env({})
STRATEGIES = ["fixed-window", "sliding-window-counter", "moving-window"]


def limits(text: str) -> tuple[Limit, ...]:
    return parse_limits(text)


def keys_for(items: tuple[Limit, ...], who: str = "a") -> list[str]:
    return [f"{who}:{limit.window}" for limit in items]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_admits_exactly_the_amount_then_reports_when_to_retry(
    strategy: str, clock: FakeClock
) -> None:
    """amount calls pass, the next is rejected, and waiting retry_after admits again."""
    store = MemoryStore(clock=clock)
    items = limits("5/minute")
    keys = keys_for(items)
    outcomes = [store.decide(strategy, keys, items, 1, True) for _ in range(7)]
    assert [allowed for allowed, _ in outcomes] == [True] * 5 + [False] * 2
    assert [figures[0][0] for _, figures in outcomes] == [4, 3, 2, 1, 0, 0, 0]
    _allowed, figures = outcomes[-1]
    retry = figures[0][2]
    assert 0 < retry <= 60 + EPSILON
    clock.advance(retry - 2 * EPSILON)
    assert store.decide(strategy, keys, items, 1, True)[0] is False
    clock.advance(2 * EPSILON)
    assert store.decide(strategy, keys, items, 1, True)[0] is True


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rejected_calls_consume_nothing_across_all_limits(strategy: str, clock: FakeClock) -> None:
    """All or nothing: when one limit rejects, no limit counts the call."""
    store = MemoryStore(clock=clock)
    items = limits("2/second;10/hour")
    keys = keys_for(items)
    for _ in range(2):
        assert store.decide(strategy, keys, items, 1, True)[0]
    for _ in range(5):  # the per-second limit rejects; the hourly one must not count them
        allowed, figures = store.decide(strategy, keys, items, 1, True)
        assert not allowed
        assert figures[0][2] > 0
        assert figures[1][2] == 0.0
    assert store.decide(strategy, keys, items, 1, False)[1][1][0] == 8


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_peeking_counts_nothing(strategy: str, clock: FakeClock) -> None:
    """consume=False answers and reports without counting or storing anything."""
    store = MemoryStore(clock=clock)
    items = limits("3/minute")
    keys = keys_for(items)
    for _ in range(10):
        allowed, figures = store.decide(strategy, keys, items, 3, False)
        assert allowed
        assert figures == [(3, 0.0, 0.0)]
    assert len(store) == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cost_takes_several_units(strategy: str, clock: FakeClock) -> None:
    """A call of cost n takes n units; one that no longer fits is rejected whole."""
    store = MemoryStore(clock=clock)
    items = limits("10/minute")
    keys = keys_for(items)
    assert store.decide(strategy, keys, items, 4, True)[1][0][0] == 6
    assert store.decide(strategy, keys, items, 4, True)[0]
    allowed, figures = store.decide(strategy, keys, items, 4, True)
    assert not allowed
    assert figures[0][0] == 2
    assert store.decide(strategy, keys, items, 2, True)[0]


def test_fixed_window_resets_whole_at_the_end(clock: FakeClock) -> None:
    """Fixed window: the count resets when the window that began at the first hit ends."""
    store = MemoryStore(clock=clock)
    items = limits("2/minute")
    keys = keys_for(items)
    store.decide("fixed-window", keys, items, 1, True)
    clock.advance(30)
    allowed, figures = store.decide("fixed-window", keys, items, 1, True)
    assert allowed
    assert figures[0] == pytest.approx((0, 30.0, 0.0))
    clock.advance(29.9)
    assert not store.decide("fixed-window", keys, items, 1, True)[0]
    clock.advance(0.1)
    allowed, figures = store.decide("fixed-window", keys, items, 1, True)
    assert allowed
    assert figures[0] == pytest.approx((1, 60.0, 0.0))


def test_sliding_window_weighs_the_previous_window(clock: FakeClock) -> None:
    """Sliding counter: floor(previous * (W - elapsed) / W) + current, as limits counts."""
    store = MemoryStore(clock=clock)
    items = limits("10/minute")
    keys = keys_for(items)
    for _ in range(10):
        assert store.decide("sliding-window-counter", keys, items, 1, True)[0]
    clock.advance(60 + 15)  # a quarter into the next window: 10 * 45/60 = 7.5 -> 7 carried
    allowed, figures = store.decide("sliding-window-counter", keys, items, 1, False)
    assert allowed
    assert figures[0][0] == 3
    for _ in range(3):
        assert store.decide("sliding-window-counter", keys, items, 1, True)[0]
    allowed, figures = store.decide("sliding-window-counter", keys, items, 1, True)
    assert not allowed
    # 7 carried must fall to 6: 10 * (60 - e) / 60 < 7 once e > 18, i.e. 3 s from now.
    assert figures[0][2] == pytest.approx(3 + EPSILON)
    clock.advance(figures[0][2])
    assert store.decide("sliding-window-counter", keys, items, 1, True)[0]


def test_sliding_window_retry_when_the_current_window_alone_is_full(clock: FakeClock) -> None:
    """When the current count alone fills the limit, a slot frees only after the roll."""
    store = MemoryStore(clock=clock)
    items = limits("4/minute")
    keys = keys_for(items)
    for _ in range(4):
        store.decide("sliding-window-counter", keys, items, 1, True)
    clock.advance(20)
    allowed, figures = store.decide("sliding-window-counter", keys, items, 1, True)
    # After the roll at 40 s from now, 4 * (60 - x)/60 < 4 for any x > 0.
    assert not allowed
    assert figures[0][2] == pytest.approx(40 + EPSILON)
    allowed, figures = store.decide("sliding-window-counter", keys, items, 4, True)
    # Cost 4 needs the carried count at 0: 4 * (60 - x) / 60 < 1 once x > 45.
    assert not allowed
    assert figures[0][2] == pytest.approx(40 + 45 + EPSILON)
    clock.advance(40 + 45 + EPSILON)
    assert store.decide("sliding-window-counter", keys, items, 4, True)[0]


def test_sliding_window_forgets_after_two_idle_windows(clock: FakeClock) -> None:
    """Two windows without hits: nothing is carried over."""
    store = MemoryStore(clock=clock)
    items = limits("3/minute")
    keys = keys_for(items)
    for _ in range(3):
        store.decide("sliding-window-counter", keys, items, 1, True)
    clock.advance(120)
    assert store.decide("sliding-window-counter", keys, items, 1, True)[1][0][0] == 2


def test_moving_window_frees_each_hit_a_window_after_it(clock: FakeClock) -> None:
    """Moving window: exact count of the last W seconds; reset is when the oldest leaves."""
    store = MemoryStore(clock=clock)
    items = limits("3/minute")
    keys = keys_for(items)
    for step in (0, 10, 10):
        clock.advance(step)
        store.decide("moving-window", keys, items, 1, True)
    allowed, figures = store.decide("moving-window", keys, items, 1, True)
    assert not allowed
    assert figures[0] == pytest.approx((0, 40.0, 40 + EPSILON))
    allowed, figures = store.decide("moving-window", keys, items, 2, True)
    assert figures[0][2] == pytest.approx(50 + EPSILON)  # two must leave: the second at 50 s
    clock.advance(40)
    allowed, figures = store.decide("moving-window", keys, items, 1, True)
    assert allowed
    assert figures[0] == pytest.approx((0, 10.0, 0.0))


@pytest.mark.slow
def test_a_million_identities_through_the_limiter_stay_within_max_keys(
    clock: FakeClock,
) -> None:
    """1,000,000 distinct identities: at most max_keys counters, and no sweeping thread."""
    threads_before = threading.active_count()
    backend = MemoryBackend(clock=clock)
    limiter = RateLimiter("5/hour", backend=backend, max_keys=1000, settings=Settings.from_env({}))
    store = memory_store_for(backend, 1000, limiter.scope)
    hit = limiter.hit
    peak = 0
    for number in range(1_000_000):
        hit(f"client-{number}")
        if number % 10_000 == 0:
            peak = max(peak, len(store))
    assert len(store) == 1000
    assert peak <= 1000
    assert threading.active_count() == threads_before
    assert hit("client-999999").states[0].remaining == 3  # recent keys are still counted


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_stays_within_max_keys(strategy: str, clock: FakeClock) -> None:
    """Whatever the strategy, the number of counters never exceeds max_keys."""
    store = MemoryStore(max_keys=500, clock=clock)
    items = limits("5/hour")
    for number in range(20_000):
        store.decide(strategy, (f"client-{number}",), items, 1, True)
        assert len(store) <= 500


def test_least_recently_used_keys_are_evicted_first(clock: FakeClock) -> None:
    """A key touched recently survives eviction; the oldest untouched one goes."""
    store = MemoryStore(max_keys=2, clock=clock)
    items = limits("1/hour")
    store.decide("fixed-window", ["a"], items, 1, True)
    store.decide("fixed-window", ["b"], items, 1, True)
    store.decide("fixed-window", ["a"], items, 1, True)  # rejected, but touches "a"
    store.decide("fixed-window", ["c"], items, 1, True)  # evicts "b"
    assert not store.decide("fixed-window", ["a"], items, 1, False)[0]
    assert store.decide("fixed-window", ["b"], items, 1, False)[0]
    store.clear(["a"])
    assert store.decide("fixed-window", ["a"], items, 1, False)[0]


def test_a_flood_on_one_limiter_never_evicts_another_limiters_counters() -> None:
    """memory://: 5,000 distinct clients on a search limit leave the login limit's
    counters alone; each scope is bounded by its own max_keys."""
    login = RateLimiter("2/hour", scope="flood-login", max_keys=100, settings=SETTINGS)
    search = RateLimiter("100/hour", scope="flood-search", max_keys=100, settings=SETTINGS)
    assert login.hit("alice").allowed
    assert login.hit("alice").allowed
    for number in range(5_000):
        search.hit(f"client-{number}")
    assert not login.hit("alice").allowed
    login.reset("alice")


def test_a_flood_on_one_memory_backend_scope_spares_the_others(clock: FakeClock) -> None:
    """The same over one MemoryBackend object shared by both limiters."""
    backend = MemoryBackend(clock=clock)
    login = RateLimiter("2/hour", scope="login", backend=backend, max_keys=100, settings=SETTINGS)
    search = RateLimiter("9/hour", scope="search", backend=backend, max_keys=100, settings=SETTINGS)
    login.hit("alice")
    login.hit("alice")
    for number in range(5_000):
        search.hit(f"client-{number}")
    assert not login.hit("alice").allowed
    assert len(memory_store_for(backend, 100, "search")) == 100


def test_limiters_sharing_a_scope_share_one_bound_of_the_largest_max_keys() -> None:
    """Two limiters of one scope share one store, bounded by the larger max_keys asked."""
    first = RateLimiter("1/hour", scope="flood-shared", max_keys=10, settings=SETTINGS)
    second = RateLimiter("1/hour", scope="flood-shared", max_keys=50, settings=SETTINGS)
    for number in range(200):
        first.hit(f"client-{number}")
    assert not second.hit("client-199").allowed  # one counter for both
    assert second._store is first._store
    assert first._store is not None
    assert len(first._store) == 50
