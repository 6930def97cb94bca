"""Rules resolved for one middleware: limiters and breakers, built once at construction.

Rate limiters are shared by scope (rules naming one ``limit_scope`` count together; a
rule without one has a scope of its own), key functions by what they key on; a route's
breaker is its own, a named one from the process registry, or the object given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from resilient._variables import LIMIT_KEY
from resilient.backends.base import AsyncBackend, Clock, SyncBackend
from resilient.breaker import CircuitBreaker, get_breaker
from resilient.config import HttpSettings, Settings
from resilient.errors import ConfigurationError
from resilient.middleware._keys import PeerKey, client_key
from resilient.middleware._limits import LimitKey, RouteLimit
from resilient.ratelimit import RateLimiter, by_callback, by_header, parse_limits
from resilient.ratelimit.keys import RequestKey

if TYPE_CHECKING:
    from resilient.middleware.rules import Rule

__all__ = ["BreakerBuilder", "LimitBuilder"]


class LimitBuilder:
    """Resolves the rules' limits for one middleware: one limiter per scope, key
    functions built once and shared.

    Args:
        settings: the settings limiters and defaults come from.
        backend: where limits count (the middleware's injected backend), or ``None``
            for the limiters' own settings (``RESILIENT_RATELIMIT_URL``, ...).
        asynchronous: ``backend`` is an asyncio backend.
        clock: monotonic seconds for the limiters, or ``None`` for their own.
    """

    def __init__(
        self,
        settings: Settings,
        backend: SyncBackend | AsyncBackend | None,
        asynchronous: bool,
        clock: Clock | None,
    ) -> None:
        self.settings = settings
        self.sync_backend = None if asynchronous else cast("SyncBackend | None", backend)
        self.async_backend = cast("AsyncBackend | None", backend) if asynchronous else None
        self.clock = clock
        self.limiters: dict[str, RateLimiter] = {}
        #: The limiters built here (not those the rules gave): the middleware closes them.
        self.built: list[RateLimiter] = []
        self.keys: dict[tuple[object, ...], tuple[RequestKey, PeerKey | None]] = {}

    def build(self, rule: Rule | None, http: HttpSettings) -> RouteLimit | None:
        """The limit of ``rule`` (``None``: the default route), or ``None`` for none."""
        given = None if rule is None else rule.limits
        if given is False:
            return None
        if isinstance(given, RateLimiter):
            limiter = given
        else:
            text = http.limits if given is None else given
            if not text:
                return None
            limiter = self._limiter(text, rule)
        if limiter.mode == "off":
            return None  # as the decorator: nothing counted, nothing reported
        spec = None if rule is None else rule.limit_key
        return RouteLimit(limiter, *self._key(http.limit_key if spec is None else spec, limiter))

    def _limiter(self, text: str, rule: Rule | None) -> RateLimiter:
        if rule is not None and rule.limit_scope:
            scope = rule.limit_scope
        else:
            # A scope of the route's own: never shared, even by a rule that looks alike.
            scope = base = _scope(rule)
            taken = 1
            while scope in self.limiters:
                taken += 1
                scope = f"{base}#{taken}"
        limiter = self.limiters.get(scope)
        if limiter is not None:
            wanted = [limit.text for limit in parse_limits(text, argument="Rule.limits")]
            if wanted != [limit.text for limit in limiter.limits]:
                raise ConfigurationError(
                    "Rule.limit_scope", scope, "the same limits on every rule sharing a scope"
                )
            return limiter
        limiter = RateLimiter(text, name=None if rule is None else rule.name, scope=scope,
                              backend=self.sync_backend, async_backend=self.async_backend,
                              clock=self.clock, settings=self.settings)  # fmt: skip
        self.limiters[scope] = limiter
        self.built.append(limiter)
        return limiter

    def _key(self, spec: LimitKey, limiter: RateLimiter) -> tuple[RequestKey, PeerKey | None]:
        trusted = limiter.trusted_proxies
        # Functions by identity: they need not be hashable (the rules keep them alive).
        cache_key = (id(spec) if callable(spec) else spec, trusted)
        known = self.keys.get(cache_key)
        if known is not None:
            return known
        keys: tuple[RequestKey, PeerKey | None]
        if callable(spec):
            keys = by_callback(spec, trusted_proxies=trusted), None
        else:
            try:
                kind = str(LIMIT_KEY.parse(spec)) if isinstance(spec, str) else ""
            except ValueError:
                kind = ""
            if not kind:
                expected = LIMIT_KEY.expected + ", or a function"
                raise ConfigurationError("Rule.limit_key", spec, expected)
            if kind == "ip":
                keys = client_key(trusted)
            else:
                # Hashed: a header named as a key usually holds a secret (an API key), and
                # counter names reach Redis key names, `resilient inspect` and logs.
                name = kind.partition(":")[2]
                keys = by_header(name, hashed=True, trusted_proxies=trusted), None
        self.keys[cache_key] = keys
        return keys


def _scope(rule: Rule | None) -> str:
    if rule is None:
        return "http:*"
    if rule.name:
        return f"http:{rule.name}"
    methods = "" if rule.methods is None else " " + ",".join(sorted(rule._methods or ()))
    return f"http:{rule.path}{methods}"


class BreakerBuilder:
    """Resolves the rules' breakers for one middleware.

    Args:
        settings: the settings breakers and defaults come from.
        clock: monotonic seconds for the breakers this builds, or ``None`` for theirs.
    """

    def __init__(self, settings: Settings, clock: Clock | None) -> None:
        self.settings = settings
        self.clock = clock
        #: The breakers built here (not named or given ones): the middleware shuts them down.
        self.built: list[CircuitBreaker] = []

    def build(self, rule: Rule | None, http: HttpSettings) -> CircuitBreaker | None:
        """The breaker of ``rule`` (``None``: the default route), or ``None`` for none."""
        given = None if rule is None else rule.breaker
        if given is None:
            given = http.breaker
        if given is False:
            return None
        if isinstance(given, CircuitBreaker):
            return given
        if isinstance(given, str):
            return get_breaker(given)  # the process's breaker of that name, shared
        name = "http:*" if rule is None else f"http:{rule.name or rule.path}"
        breaker = CircuitBreaker(name, clock=self.clock, settings=self.settings)
        self.built.append(breaker)
        return breaker
