"""The rate limiter: several limits, one identity, one decision, one round trip at most.

A call is admitted only when every limit admits it, and then counted against all of
them (all or nothing, as nginx's ``limit_req`` does): a rejected call consumes nothing.
In memory that is one locked step; on Redis one Lua script per decision, which also
returns the figures headers need. A rejection is remembered locally until the limit can
admit again, so a client over its limit costs no round trip meanwhile (the decision is
still exact: Redis could not have admitted it either).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter

from limits import RateLimitItem

from resilient.backends import AsyncBackend, SyncBackend, hash_tag
from resilient.backends.base import Clock, monotonic
from resilient.config import Settings
from resilient.errors import BackendError, ConfigurationError
from resilient.instrumentation import _hub as _metrics
from resilient.instrumentation._meters import DECISION_SAMPLING, DecisionTimes
from resilient.instrumentation._readers import limiter_name, limiter_policy
from resilient.ratelimit import headers as _headers
from resilient.ratelimit._stores import choose_storage
from resilient.ratelimit.decision import Decision, LimitState, RateLimiterStats
from resilient.ratelimit.keys import storage_identity
from resilient.ratelimit.memory import Figures
from resilient.ratelimit.negative import NegativeCache
from resilient.ratelimit.policy import (
    FAIL_MODES,
    MODES,
    STRATEGIES,
    check_choice,
    parse_limits,
    warn_if_large,
)
from resilient.ratelimit.redis import SCRIPTS, STRATEGY_CODES, limit_args, parse_reply

__all__ = ["ANONYMOUS", "RateLimiter"]

logger = logging.getLogger("resilient.ratelimit")

_SAMPLE_MASK = DECISION_SAMPLING - 1

#: The identity of calls whose key is empty: one shared bucket, never an exemption.
ANONYMOUS = "*"
_KEY_CACHE_SIZE = 4096

Limits = str | RateLimitItem | Sequence[str | RateLimitItem]


class RateLimiter:
    """Counts calls per identity against one or more limits.

    Every setting not given is read from ``Settings.from_env()`` (section ``ratelimit``,
    per-name overrides for ``name``) when the limiter is built.

    Args:
        limits: limit strings (``"10/second;500/hour"``) or ``limits`` items; default
            ``RESILIENT_RATELIMIT_DEFAULT``.
        name: the limiter's name, for per-name settings and as the default scope.
        scope: the namespace of the counters; limiters (and decorated functions) with
            the same scope and windows share counts. Default: ``name``, else the limits.
        strategy: ``sliding-window-counter``, ``fixed-window`` or ``moving-window``.
        mode: ``enforce``, ``shadow`` (count, report, admit) or ``off``.
        fail_mode: with the backend failing: ``open``, ``closed`` or ``local``.
        url: backend URL (``memory://``, ``redis://...``, ``redis+cluster://...``).
        backend: a sync backend to use instead of the URL.
        async_backend: an asyncio backend to use instead of the URL.
        key_prefix: the prefix of every storage key.
        max_keys: most counters held in memory for this limiter's scope (LRU), and most
            remembered rejections. Limiters sharing a scope share its counters, bounded
            by the largest ``max_keys`` among them.
        negative_cache: remember rejections until their retry time (Redis only).
        clock: monotonic seconds, for memory counting and the negative cache.
        settings: settings to read instead of the environment.

    Raises:
        ConfigurationError: any argument or setting is unusable.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        name: str | None = None,
        scope: str | None = None,
        strategy: str | None = None,
        mode: str | None = None,
        fail_mode: str | None = None,
        url: str | None = None,
        backend: SyncBackend | None = None,
        async_backend: AsyncBackend | None = None,
        key_prefix: str | None = None,
        max_keys: int | None = None,
        negative_cache: bool = True,
        clock: Clock | None = None,
        settings: Settings | None = None,
    ) -> None:
        settings = Settings.from_env() if settings is None else settings
        section = settings.ratelimit_for(name)
        if limits is None:
            self.limits = parse_limits(
                section.default, argument=settings.prefix + "RATELIMIT_DEFAULT"
            )
        else:
            self.limits = parse_limits(limits)
        self.name = name
        self.strategy = (
            section.strategy if strategy is None else check_choice("strategy", strategy, STRATEGIES)
        )
        self.mode = section.mode if mode is None else check_choice("mode", mode, MODES)
        self.fail_mode = (
            section.fail_mode
            if fail_mode is None
            else check_choice("fail_mode", fail_mode, FAIL_MODES)
        )
        self.max_keys = section.max_keys if max_keys is None else max_keys
        if not isinstance(self.max_keys, int) or self.max_keys < 1:
            raise ConfigurationError("max_keys", max_keys, "a whole number of at least 1")
        warn_if_large(self.strategy, self.limits, stacklevel=3)
        self.header_style = section.headers
        self.trusted_proxies = section.trusted_proxies
        self.key_prefix = section.key_prefix if key_prefix is None else key_prefix
        self.scope = scope or name or ";".join(limit.text for limit in self.limits)
        self.stats = RateLimiterStats()
        self._clock: Clock = clock or monotonic
        self._min_amount = min(limit.amount for limit in self.limits)
        self._off = self.mode == "off"
        self._code = STRATEGY_CODES[self.strategy]
        self._script = SCRIPTS[self.strategy]
        self._args = limit_args(self.limits)
        self._keys: dict[str, tuple[str, ...]] = {}
        self._negative = NegativeCache(self.max_keys) if negative_cache else None
        self._failing = False
        self._fail_retry_after = settings.guard_cooldown
        self._store, self._source, self._local = choose_storage(
            settings,
            url or section.url or settings.backend_url,
            scope=self.scope,
            backend=backend,
            async_backend=async_backend,
            max_keys=self.max_keys,
            clock=clock,
            local_fallback=self.fail_mode == "local",
        )
        # Exporters read self.stats when they collect; the labels are fixed once.
        self._labels = (limiter_name(self), limiter_policy(self))
        self._times = DecisionTimes()
        _metrics.track("ratelimiter", self)

    # -- public API ------------------------------------------------------------------

    def hit(self, key: str | None = None, *, cost: int = 1) -> Decision:
        """Count a call of ``cost`` units for ``key`` if every limit admits it.

        An empty or ``None`` key counts against one shared anonymous bucket.
        """
        if _metrics.timing:  # an exporter is on: time one decision in a few
            times = self._times
            times.tick += 1
            if not times.tick & _SAMPLE_MASK:
                started = perf_counter()
                decision = self._decide(key, cost, consume=True)
                self._timed(perf_counter() - started)
                return decision
        return self._decide(key, cost, consume=True)

    def test(self, key: str | None = None, *, cost: int = 1) -> Decision:
        """Whether a call of ``cost`` units would be admitted now; counts nothing."""
        return self._decide(key, cost, consume=False)

    def window(self, key: str | None = None) -> tuple[LimitState, ...]:
        """The current figures of every limit for ``key``; counts nothing."""
        return self._decide(key, 1, consume=False, cached=False).states

    async def ahit(self, key: str | None = None, *, cost: int = 1) -> Decision:
        """The asyncio twin of :meth:`hit`."""
        if _metrics.timing:
            times = self._times
            times.tick += 1
            if not times.tick & _SAMPLE_MASK:
                started = perf_counter()
                decision = await self._adecide(key, cost, consume=True)
                self._timed(perf_counter() - started)
                return decision
        return await self._adecide(key, cost, consume=True)

    async def atest(self, key: str | None = None, *, cost: int = 1) -> Decision:
        """The asyncio twin of :meth:`test`."""
        return await self._adecide(key, cost, consume=False)

    async def awindow(self, key: str | None = None) -> tuple[LimitState, ...]:
        """The asyncio twin of :meth:`window`."""
        return (await self._adecide(key, 1, consume=False, cached=False)).states

    def reset(self, key: str | None = None) -> None:
        """Forget every count of ``key`` (and this process's memory of its rejections).

        Raises:
            BackendError: the backend failed; this process's own counts are reset anyway.
        """
        keys = self._forget(key)
        if self._store is None:
            self._source.sync().delete(*keys)

    async def areset(self, key: str | None = None) -> None:
        """The asyncio twin of :meth:`reset`."""
        keys = self._forget(key)
        if self._store is None:
            await self._source.asyncio().delete(*keys)

    @property
    def counts_locally(self) -> bool:
        """Whether decisions are counted in this process's memory: they never wait on
        I/O, so async code may call :meth:`hit` without awaiting :meth:`ahit`."""
        return self._store is not None

    def can_admit(self, cost: int) -> bool:
        """Whether a call of ``cost`` units can ever pass (no limit's amount is smaller)."""
        return 1 <= cost <= self._min_amount

    def headers_for(self, decision: Decision, status: int = 200) -> list[tuple[str, str]]:
        """Response headers for ``decision``, in this limiter's header style."""
        return _headers.rate_limit_headers(decision, style=self.header_style, status=status)

    def close(self) -> None:
        """Close the sync backend this limiter built from its URL, if any."""
        self._source.close()

    async def aclose(self) -> None:
        """Close the asyncio backend this limiter built for the running loop, if any."""
        await self._source.aclose()

    # -- the decision ------------------------------------------------------------------

    def _timed(self, seconds: float) -> None:
        self._times.record(seconds)
        if _metrics.timers:
            _metrics.time_decision(*self._labels, seconds)

    def _decide(
        self, key: str | None, cost: int, *, consume: bool, cached: bool = True
    ) -> Decision:
        identity = key or ANONYMOUS
        if self._off or not 1 <= cost <= self._min_amount:
            return self._early(identity, cost)
        keys = self._keys.get(identity) or self._keys_for(identity)
        store = self._store
        if store is not None:
            allowed, figures = store.decide(self.strategy, keys, self.limits, cost, consume)
            return self._finish(identity, allowed, figures, "memory", consume)
        sent = self._clock()
        if cached and self._negative is not None:
            remembered = self._recall(identity, cost, sent, consume)
            if remembered is not None:
                return remembered
        try:
            reply = self._source.sync().eval(self._script, keys, (cost, int(consume), *self._args))
        except BackendError as exc:
            return self._fail(identity, keys, cost, consume, exc)
        return self._answer(identity, reply, cost, consume, sent)

    async def _adecide(
        self, key: str | None, cost: int, *, consume: bool, cached: bool = True
    ) -> Decision:
        identity = key or ANONYMOUS
        if self._off or not 1 <= cost <= self._min_amount:
            return self._early(identity, cost)
        keys = self._keys.get(identity) or self._keys_for(identity)
        store = self._store
        if store is not None:
            allowed, figures = store.decide(self.strategy, keys, self.limits, cost, consume)
            return self._finish(identity, allowed, figures, "memory", consume)
        sent = self._clock()
        if cached and self._negative is not None:
            remembered = self._recall(identity, cost, sent, consume)
            if remembered is not None:
                return remembered
        try:
            backend = self._source.asyncio()
            reply = await backend.eval(self._script, keys, (cost, int(consume), *self._args))
        except BackendError as exc:
            return self._fail(identity, keys, cost, consume, exc)
        return self._answer(identity, reply, cost, consume, sent)

    def _early(self, identity: str, cost: int) -> Decision:
        """The decisions that need no counting: mode off, and impossible costs."""
        if self._off:
            return Decision(True, False, identity, (), "off")
        if cost < 1:
            raise ValueError(f"cost must be at least 1, not {cost!r}")
        # No window will ever hold this many units: reject without asking the backend.
        smallest = min(self.limits, key=lambda limit: limit.amount)
        shadow = self.mode == "shadow"
        return Decision(shadow, True, identity, (), "oversized", smallest.window, smallest.text)

    def _keys_for(self, identity: str) -> tuple[str, ...]:
        # One hash tag per identity: every key of a decision lands on one Cluster slot.
        tag = hash_tag(f"{storage_identity(self.scope)}/{storage_identity(identity)}")
        keys = tuple(
            f"{self.key_prefix}:rl:{tag}:{self._code}:{limit.window}" for limit in self.limits
        )
        if len(self._keys) >= _KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[identity] = keys
        return keys

    def _finish(
        self, identity: str, allowed: bool, figures: list[Figures], source: str, consume: bool
    ) -> Decision:
        limits = self.limits
        if len(limits) == 1:
            remaining, reset_after, retry_after = figures[0]
            states: tuple[LimitState, ...] = (
                LimitState(limits[0], remaining, reset_after, retry_after),
            )
        else:
            states = tuple(
                LimitState(limit, *figure) for limit, figure in zip(limits, figures, strict=True)
            )
        stats = self.stats
        if allowed:
            if consume:
                stats.allowed += 1
            return Decision(True, False, identity, states, source)
        wait = max(figure[2] for figure in figures)
        if self.mode == "shadow":
            if consume:
                stats.shadow_limited += 1
            return Decision(True, True, identity, states, source, wait)
        if consume:
            stats.limited += 1
        return Decision(False, True, identity, states, source, wait)

    def _answer(
        self, identity: str, reply: object, cost: int, consume: bool, sent: float
    ) -> Decision:
        allowed, figures = parse_reply(reply, len(self.limits))
        if self._failing:
            self._failing = False
            # At the failure's level: whoever saw it fail must see it recover.
            logger.warning("rate limiter %s: backend answering again", self._labels[0])
            if _metrics.listeners:
                _metrics.emit(_metrics.Event("ratelimiter", self._labels[0], "backend_answering"))
        decision = self._finish(identity, allowed, figures, "redis", consume)
        if not allowed and self._negative is not None:
            self._negative.remember(identity, cost, sent, decision)
        return decision

    def _recall(self, identity: str, cost: int, now: float, consume: bool) -> Decision | None:
        assert self._negative is not None
        remembered = self._negative.recall(identity, cost, now)
        if remembered is not None:
            stats = self.stats
            stats.cached_rejections += 1
            if consume and remembered.allowed:
                stats.shadow_limited += 1
            elif consume:
                stats.limited += 1
        return remembered

    def _forget(self, key: str | None) -> tuple[str, ...]:
        identity = key or ANONYMOUS
        if self._negative is not None:
            self._negative.forget(identity)
        keys = self._keys.get(identity) or self._keys_for(identity)
        for store in (self._store, self._local):
            if store is not None:
                store.clear(keys)
        return keys

    # -- failure -------------------------------------------------------------------------

    def _fail(
        self, identity: str, keys: tuple[str, ...], cost: int, consume: bool, error: Exception
    ) -> Decision:
        self.stats.backend_errors += 1
        if not self._failing:
            self._failing = True
            logger.warning(
                "rate limiter %s: backend failing (%s); fail mode %s",
                self._labels[0],  # its name as given (else its scope), as in metrics
                error,
                self.fail_mode,
            )
            if _metrics.listeners:
                detail = {"fail_mode": self.fail_mode}
                event = _metrics.Event("ratelimiter", self._labels[0], "backend_failing", detail)
                _metrics.emit(event)
        if self._local is not None:
            allowed, figures = self._local.decide(self.strategy, keys, self.limits, cost, consume)
            return self._finish(identity, allowed, figures, "local", consume)
        if self.fail_mode == "open":
            return Decision(True, False, identity, (), "open")
        shadow = self.mode == "shadow"
        first = self.limits[0].text
        return Decision(shadow, True, identity, (), "closed", self._fail_retry_after, first)
