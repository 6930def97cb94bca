"""RateLimiter on every backend: counting, all-or-nothing limits, modes, scopes, settings."""

from __future__ import annotations

import pytest

from resilient.backends import AsyncBackend, MemoryBackend, SyncBackend
from resilient.config import Settings
from resilient.errors import ConfigurationError, RateLimitExceeded
from resilient.ratelimit import LargeMovingWindowWarning, RateLimiter
from tests.support.clock import FakeClock

STRATEGIES = ["sliding-window-counter", "fixed-window", "moving-window"]
SETTINGS = Settings.from_env({})


def make(limits: str, backend: SyncBackend | AsyncBackend, **options: object) -> RateLimiter:
    if isinstance(backend, SyncBackend):
        return RateLimiter(limits, backend=backend, settings=SETTINGS, **options)  # type: ignore[arg-type]
    return RateLimiter(limits, async_backend=backend, settings=SETTINGS, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_admits_the_amount_then_rejects_with_figures(
    sync_backend: SyncBackend, strategy: str
) -> None:
    """Three of 3/hour pass with 2, 1, 0 left; the rest are rejected with a retry time."""
    limiter = make("3/hour", sync_backend, strategy=strategy, scope=f"t-{strategy}")
    decisions = [limiter.hit("alice") for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.states[0].remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert all(d.source in ("memory", "redis", "cache") for d in decisions)
    rejected = decisions[3]
    assert rejected.limited
    assert rejected.limit == "3/hour"
    assert 3590 < rejected.retry_after <= 3600.01
    assert 3590 < rejected.states[0].reset_after <= 3600.01
    with pytest.raises(RateLimitExceeded) as caught:
        rejected.raise_for_limit()
    assert caught.value.limit == "3/hour"
    assert caught.value.retry_after == rejected.retry_after
    assert limiter.hit("bob").allowed  # identities are counted apart
    assert (limiter.stats.allowed, limiter.stats.limited) == (4, 2)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_several_limits_are_all_or_nothing(sync_backend: SyncBackend, strategy: str) -> None:
    """A call rejected by one limit is counted by none (nginx semantics)."""
    limiter = make("2/minute;5/hour", sync_backend, strategy=strategy)
    assert [limiter.hit("a").allowed for _ in range(6)] == [True, True] + [False] * 4
    minute, hour = limiter.window("a")
    assert (minute.remaining, hour.remaining) == (0, 3)
    assert minute.retry_after > 0
    assert hour.retry_after == 0
    decision = limiter.test("a")
    assert decision.breached is not None
    assert decision.breached.limit.text == "2/minute"


async def test_async_twins(async_backend: AsyncBackend) -> None:
    """ahit / atest / awindow / areset behave as their sync twins."""
    limiter = make("2/hour;10/day", async_backend)
    assert (await limiter.atest("a")).allowed
    assert [(await limiter.ahit("a")).allowed for _ in range(3)] == [True, True, False]
    hour, day = await limiter.awindow("a")
    assert (hour.remaining, day.remaining) == (0, 8)
    assert not (await limiter.atest("a")).allowed
    await limiter.areset("a")
    assert [state.remaining for state in await limiter.awindow("a")] == [2, 10]
    assert (await limiter.ahit("a", cost=2)).allowed


def test_test_and_window_count_nothing(sync_backend: SyncBackend) -> None:
    """Peeking never consumes, however often."""
    limiter = make("2/hour", sync_backend)
    for _ in range(5):
        assert limiter.test("a", cost=2).allowed
        assert limiter.window("a")[0].remaining == 2
    assert limiter.hit("a", cost=2).allowed
    assert not limiter.test("a").allowed


def test_reset_forgets_one_identity(sync_backend: SyncBackend) -> None:
    """reset(key) clears that identity's counters only."""
    limiter = make("1/hour", sync_backend)
    limiter.hit("a")
    limiter.hit("b")
    assert not limiter.hit("a").allowed
    limiter.reset("a")
    assert limiter.hit("a").allowed
    assert not limiter.hit("b").allowed


def test_scopes_share_or_separate_counters(sync_backend: SyncBackend) -> None:
    """Same scope and window: one counter (even with another amount); other scope: apart."""
    first = make("3/hour", sync_backend, scope="search")
    second = make("5/hour", sync_backend, scope="search")
    other = make("3/hour", sync_backend, scope="export")
    for _ in range(3):
        assert first.hit("a").allowed
    assert not first.hit("a").allowed
    assert second.window("a")[0].remaining == 2  # 5 allowed, 3 used in the shared counter
    assert other.hit("a").allowed


def test_awkward_identities_and_scopes_are_safe_keys(sync_backend: SyncBackend) -> None:
    """Slashes, braces and non-ASCII neither collide nor break Cluster slots."""
    limiter = make("1/hour", sync_backend, scope="a/{b}")
    for identity in ["x/y", "x%2Fy", "{x}", "é", "x" * 500]:
        assert limiter.hit(identity).allowed, identity
        assert not limiter.hit(identity).allowed, identity


def test_empty_keys_share_one_bucket_never_exempt(sync_backend: SyncBackend) -> None:
    """None and '' count against the same anonymous bucket."""
    limiter = make("2/hour", sync_backend)
    assert limiter.hit(None).allowed
    assert limiter.hit("").allowed
    assert not limiter.hit().allowed


def test_shadow_mode_counts_and_reports_but_admits(sync_backend: SyncBackend) -> None:
    """shadow: would-be rejections are allowed, marked limited, and counted in stats."""
    limiter = make("1/hour", sync_backend, mode="shadow")
    first, second = limiter.hit("a"), limiter.hit("a")
    assert first.allowed
    assert not first.limited
    assert second.allowed
    assert second.limited
    assert second.retry_after > 0
    second.raise_for_limit()  # allowed: nothing to raise
    assert limiter.stats.shadow_limited == 1


def test_mode_off_counts_nothing(sync_backend: SyncBackend) -> None:
    """off: every call passes, no figures, no storage."""
    limiter = make("1/hour", sync_backend, mode="off")
    decisions = [limiter.hit("a") for _ in range(3)]
    assert all(d.allowed and not d.limited and d.source == "off" for d in decisions)
    assert make("1/hour", sync_backend).hit("a").allowed


def test_a_cost_above_every_window_is_rejected_without_storage(
    sync_backend: SyncBackend,
) -> None:
    """No window can ever hold it; the decision names the limit; nothing is counted."""
    limiter = make("5/minute;100/hour", sync_backend)
    decision = limiter.hit("a", cost=6)
    assert not decision.allowed
    assert decision.source == "oversized"
    assert decision.limit == "5/minute"
    assert decision.retry_after == 60
    assert not limiter.can_admit(6)
    assert limiter.can_admit(5)
    assert limiter.hit("a", cost=5).allowed
    with pytest.raises(ValueError, match="cost"):
        limiter.hit("a", cost=0)


def test_settings_are_defaults_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    """Env at construction (per-name overrides applied); explicit arguments win."""
    monkeypatch.setenv("RESILIENT_RATELIMIT_DEFAULT", "7/minute")
    monkeypatch.setenv("RESILIENT_RATELIMIT_STRATEGY", "fixed-window")
    monkeypatch.setenv("RESILIENT_RATELIMIT__SEARCH__STRATEGY", "moving-window")
    monkeypatch.setenv("RESILIENT_RATELIMIT_MODE", "shadow")
    monkeypatch.setenv("RESILIENT_RATELIMIT_HEADERS", "legacy")
    monkeypatch.setenv("RESILIENT_RATELIMIT_KEY_PREFIX", "app1")
    limiter = RateLimiter(backend=MemoryBackend())
    assert [limit.text for limit in limiter.limits] == ["7/minute"]
    assert (limiter.strategy, limiter.mode, limiter.header_style) == (
        "fixed-window",
        "shadow",
        "legacy",
    )
    assert limiter.key_prefix == "app1"
    assert RateLimiter(name="search", backend=MemoryBackend()).strategy == "moving-window"
    explicit = RateLimiter("1/second", name="search", strategy="fixed-window", mode="enforce")
    assert (explicit.strategy, explicit.mode) == ("fixed-window", "enforce")
    assert {name for name, _ in limiter.headers_for(limiter.hit("a"))} == {
        "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"
    }  # fmt: skip


def test_configuration_errors_name_the_argument_or_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bad values fail at construction and say what was expected."""
    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT_DEFAULT"):
        RateLimiter(settings=SETTINGS)  # no limits anywhere
    with pytest.raises(ConfigurationError, match="limits' syntax"):
        RateLimiter("ten per second", settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="distinct windows"):
        RateLimiter("1/minute;2/minute", settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="strategy"):
        RateLimiter("1/minute", strategy="token-bucket", settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="mode"):
        RateLimiter("1/minute", mode="dry-run", settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="fail_mode"):
        RateLimiter("1/minute", fail_mode="maybe", settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="max_keys"):
        RateLimiter("1/minute", max_keys=0, settings=SETTINGS)
    with pytest.raises(ConfigurationError, match="url"):
        RateLimiter("1/minute", url="mysql://db", settings=SETTINGS)
    monkeypatch.setenv("RESILIENT_RATELIMIT_STRATEGY", "leaky")
    with pytest.raises(ConfigurationError, match="RESILIENT_RATELIMIT_STRATEGY"):
        RateLimiter("1/minute")


def test_large_moving_windows_warn() -> None:
    """A moving window stores an entry per unit: above 1,000 per window we warn."""
    with pytest.warns(LargeMovingWindowWarning, match="10000/day"):
        RateLimiter("10/second;10000/day", strategy="moving-window", settings=SETTINGS)
    RateLimiter("1000/hour", strategy="moving-window", settings=SETTINGS)  # no warning


def test_memory_limiters_share_counts_by_scope_in_one_process() -> None:
    """Two limiters over memory:// with one scope use the process's shared store."""
    first = RateLimiter("2/hour", scope="shared-memory-scope", settings=SETTINGS)
    second = RateLimiter("2/hour", scope="shared-memory-scope", settings=SETTINGS)
    first.reset("a")
    assert first.hit("a").allowed
    assert second.hit("a").allowed
    assert not first.hit("a").allowed
    first.reset("a")


def test_an_injected_clock_gives_a_private_store(clock: FakeClock) -> None:
    """With a clock, memory counting is private and runs on that clock."""
    limiter = RateLimiter("1/minute", clock=clock, settings=SETTINGS)
    assert limiter.hit("a").allowed
    rejected = limiter.hit("a")
    assert not rejected.allowed
    assert rejected.retry_after == pytest.approx(60.001)
    clock.advance(60)  # sliding window: the previous minute still weighs in fully
    assert not limiter.hit("a").allowed
    clock.advance(0.001)
    assert limiter.hit("a").allowed
