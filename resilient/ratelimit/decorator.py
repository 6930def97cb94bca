"""``@rate_limited``: a rate limit on any sync or async function.

For an incoming call, over the limit means :class:`~resilient.errors.RateLimitExceeded`.
For an outgoing call to someone else's API, ``wait=True`` sleeps until a slot frees
instead (at most ``max_wait`` seconds in all), then makes the call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

from resilient._descriptors import through_descriptor
from resilient.backends import AsyncBackend, SyncBackend
from resilient.config import Settings, check_option_names
from resilient.errors import ConfigurationError
from resilient.ratelimit.decision import Decision
from resilient.ratelimit.limiter import ANONYMOUS, Limits, RateLimiter
from resilient.ratelimit.policy import FAIL_MODES, MODES, STRATEGIES, check_choice, parse_limits
from resilient.ratelimit.scopes import default_scope, mark_limited

__all__ = ["rate_limited"]

F = TypeVar("F", bound=Callable[..., Any])
KeyArg = str | Callable[..., "str | None"] | None
CostArg = int | Callable[..., int]
_OPTIONS = frozenset({
    "limits", "key", "cost", "name", "scope", "exempt", "wait", "max_wait", "limiter",
    "strategy", "mode", "fail_mode", "url", "backend", "async_backend", "settings", "sleep",
    "async_sleep",
})  # fmt: skip


class _Lazy:
    """Builds the limiter at the first call: settings are never read at import time."""

    __slots__ = ("_factory", "_limiter", "_lock")

    def __init__(self, factory: Callable[[], RateLimiter], limiter: RateLimiter | None) -> None:
        self._factory = factory
        self._limiter = limiter
        self._lock = threading.Lock()

    def get(self) -> RateLimiter:
        limiter = self._limiter
        if limiter is None:
            with self._lock:
                if self._limiter is None:
                    self._limiter = self._factory()
                limiter = self._limiter
        return limiter


def rate_limited(
    limits: Limits | None = None,
    *,
    key: KeyArg = None,
    cost: CostArg = 1,
    name: str | None = None,
    scope: str | None = None,
    exempt: Callable[..., bool] | None = None,
    wait: bool = False,
    max_wait: float | None = None,
    limiter: RateLimiter | None = None,
    strategy: str | None = None,
    mode: str | None = None,
    fail_mode: str | None = None,
    url: str | None = None,
    backend: SyncBackend | None = None,
    async_backend: AsyncBackend | None = None,
    settings: Settings | None = None,
    sleep: Callable[[float], object] = time.sleep,
    async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    **unknown: NoReturn,
) -> Callable[[F], F]:
    """Rate-limit a function (sync or async).

    Args:
        limits: limit strings (``"10/second;500/hour"``); default
            ``RESILIENT_RATELIMIT_DEFAULT``.
        key: who a call counts against: a string, or a function given the call's
            arguments and returning one; ``None`` (or an empty result) counts every call
            in one shared bucket.
        cost: units a call takes, or a function of the call's arguments returning them.
        name: for per-name settings; default ``module.qualname`` of the function.
        scope: counters are shared by every function with the same scope; default
            ``name``.
        exempt: a predicate of the call's arguments; true skips the limit.
        wait: sleep until the limits admit the call instead of raising.
        max_wait: with ``wait``, the most seconds to sleep in all before raising;
            ``None`` waits as long as needed.
        limiter: a :class:`RateLimiter` to use (then give no other limiter options).
        strategy: see :class:`RateLimiter`.
        mode: see :class:`RateLimiter`.
        fail_mode: see :class:`RateLimiter`.
        url: see :class:`RateLimiter`.
        backend: see :class:`RateLimiter`.
        async_backend: see :class:`RateLimiter`.
        settings: see :class:`RateLimiter`.
        sleep: the sleep of sync waits (inject one in tests).
        async_sleep: the sleep of async waits (inject one in tests).

    Raises:
        ConfigurationError: at decoration, for arguments that cannot work or are unknown
            (naming the closest known one); at the first call, for unusable settings.
        RateLimitExceeded: from the decorated function, when a call is over the limit.

    .. versionadded:: 0.1
    """
    # Typed NoReturn (no value fits), an unknown keyword is an error for type checkers;
    # at run time it lands here, not in a TypeError, so that the error can suggest a name.
    check_option_names(unknown, _OPTIONS, "rate_limited")
    options: dict[str, object] = {
        "strategy": strategy,
        "mode": mode,
        "fail_mode": fail_mode,
        "url": url,
    }
    options.update({"backend": backend, "async_backend": async_backend, "limits": limits})
    if limiter is not None and any(value is not None for value in options.values()):
        given = sorted(option for option, value in options.items() if value is not None)
        raise ConfigurationError("limiter", limiter, f"no other limiter options ({given})")
    if limits is not None:
        parse_limits(limits)
    for argument, value, choices in (
        ("strategy", strategy, STRATEGIES),
        ("mode", mode, MODES),
        ("fail_mode", fail_mode, FAIL_MODES),
    ):
        if value is not None:
            check_choice(argument, value, choices)
    if not callable(cost) and (not isinstance(cost, int) or cost < 1):
        raise ConfigurationError("cost", cost, "a whole number of at least 1, or a function")
    if key is not None and not isinstance(key, str) and not callable(key):
        raise ConfigurationError("key", key, "a string, a function, or None")
    if max_wait is not None and not max_wait >= 0:
        raise ConfigurationError("max_wait", max_wait, "a number of seconds of at least 0")

    def decorate(function: F) -> F:
        if isinstance(function, (classmethod, staticmethod)):
            return cast(F, through_descriptor(decorate, function))
        limiter_name = name or f"{function.__module__}.{function.__qualname__}"
        # Stacked limits must not share counters (see resilient.ratelimit.scopes).
        limiter_scope = scope if scope or name else default_scope(function)

        def build() -> RateLimiter:
            return RateLimiter(
                limits,
                name=limiter_name,
                scope=limiter_scope,
                strategy=strategy,
                mode=mode,
                fail_mode=fail_mode,
                url=url,
                backend=backend,
                async_backend=async_backend,
                settings=settings,
            )

        lazy = _Lazy(build, limiter)

        def identify(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if key is None:
                return ANONYMOUS
            found = key if isinstance(key, str) else key(*args, **kwargs)
            if found is None or found == "":
                return ANONYMOUS  # empty: one shared bucket, never an exemption
            return found if isinstance(found, str) else str(found)  # user.id may be an int

        def units(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
            return cost(*args, **kwargs) if callable(cost) else cost

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if exempt is None or not exempt(*args, **kwargs):
                    current = lazy.get()
                    identity, amount = identify(args, kwargs), units(args, kwargs)
                    decision = await current.ahit(identity, cost=amount)
                    if not decision.allowed:
                        await _await_slot(current, decision, amount, wait, max_wait, async_sleep)
                return await function(*args, **kwargs)

            mark_limited(async_wrapper, function)
            return cast(F, async_wrapper)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if exempt is None or not exempt(*args, **kwargs):
                current = lazy.get()
                identity, amount = identify(args, kwargs), units(args, kwargs)
                decision = current.hit(identity, cost=amount)
                if not decision.allowed:
                    _wait_slot(current, decision, amount, wait, max_wait, sleep)
            return function(*args, **kwargs)

        mark_limited(wrapper, function)
        return cast(F, wrapper)

    return decorate


def _next_delay(
    limiter: RateLimiter, decision: Decision, amount: int, waited: float, max_wait: float | None
) -> float:
    """How long to sleep before trying again; raises when waiting cannot help."""
    delay = decision.retry_after
    if not limiter.can_admit(amount) or (max_wait is not None and waited + delay > max_wait):
        decision.raise_for_limit()
    return delay


def _wait_slot(
    limiter: RateLimiter,
    decision: Decision,
    amount: int,
    wait: bool,
    max_wait: float | None,
    sleep: Callable[[float], object],
) -> None:
    if not wait:
        decision.raise_for_limit()
    waited = 0.0
    while not decision.allowed:
        delay = _next_delay(limiter, decision, amount, waited, max_wait)
        sleep(delay)
        waited += delay
        decision = limiter.hit(decision.key, cost=amount)


async def _await_slot(
    limiter: RateLimiter,
    decision: Decision,
    amount: int,
    wait: bool,
    max_wait: float | None,
    sleep: Callable[[float], Awaitable[object]],
) -> None:
    if not wait:
        decision.raise_for_limit()
    waited = 0.0
    while not decision.allowed:
        delay = _next_delay(limiter, decision, amount, waited, max_wait)
        await sleep(delay)
        waited += delay
        decision = await limiter.ahit(decision.key, cost=amount)
