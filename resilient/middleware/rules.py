"""Rules per route: which requests a rule covers, how it caches, limits and breaks.

A :class:`Rule` names a path pattern and, optionally, methods; the first rule that
matches a request applies, and requests no rule matches get the defaults from the
settings. Patterns:

==================  =========================================================
``/about``          exactly that path
``/users/{id}``     one path segment in place of ``{id}`` (``/users/42``)
``/files/*.txt``    ``*`` is any run of characters within one segment
``/static/**``      ``**`` is anything, slashes included; a trailing ``/**``
                    also matches the bare prefix (``/static``)
``/{rest:path}``    the same as ``**``
==================  =========================================================

Every setting a :class:`CachePolicy` leaves as ``None`` comes from ``RESILIENT_HTTP_*``,
and for a named rule from ``RESILIENT_HTTP__<NAME>__<FIELD>`` first, so operators can
tune one route without a code change; so do ``limits``, ``limit_key`` and ``breaker``
(``RESILIENT_HTTP__<NAME>__LIMITS``, ``__LIMIT_KEY``, ``__BREAKER``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from resilient.backends.base import AsyncBackend, Clock, SyncBackend
from resilient.breaker import CircuitBreaker
from resilient.config import HttpSettings, Settings
from resilient.errors import ConfigurationError
from resilient.middleware._limits import LimitKey, RouteLimit
from resilient.middleware._patterns import compile_pattern, excluded_paths, method_set
from resilient.middleware._resolve import BreakerBuilder, LimitBuilder
from resilient.ratelimit import RateLimiter, parse_limits
from resilient.sansio.decisions import CacheRules

__all__ = ["CachePolicy", "Route", "RouteLimit", "Routes", "Rule"]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a route caches; every field left as ``None`` comes from the settings.

    Args:
        ttl: app mode: the lifetime given to storable responses that carry no
            freshness of their own; the middleware then sends ``Cache-Control:
            max-age=<ttl>`` with them. ``0`` turns app mode off for the route.
        stale_while_revalidate: app mode: seconds a stale response may be served while
            one request refreshes it.
        stale_if_error: app mode: seconds a stale response may stand in when the app
            fails (500, 502, 503, 504 or an exception).
        vary_cookies: cookies the route's responses depend on. Requests with cookies are
            then cached, keyed on these cookies' values (and responses get
            ``Vary: Cookie``); by default such requests bypass the cache.
        max_body: the largest body stored, in bytes.
        respect_request_cache_control: honour the client's ``Cache-Control``.
        credential_headers: request headers that carry credentials (``X-Api-Key``):
            requests with any of them bypass the cache, as those with
            ``Authorization`` or ``Proxy-Authorization`` always do. ``()`` for none.
        keep: seconds a stored 200 is kept past its lifetime and stale windows, so that
            once stale it is revalidated with the app (``If-None-Match``,
            ``If-Modified-Since``) and a 304 freshens it, instead of a full fetch.
        cdn_cache_control: act as a CDN (RFC 9213): a response's ``CDN-Cache-Control``,
            when usable, decides instead of its ``Cache-Control`` and ``Expires``.

    .. versionadded:: 0.1
    """

    ttl: float | timedelta | None = None
    stale_while_revalidate: float | timedelta | None = None
    stale_if_error: float | timedelta | None = None
    vary_cookies: Sequence[str] | None = None
    max_body: int | None = None
    respect_request_cache_control: bool | None = None
    credential_headers: Sequence[str] | None = None
    keep: float | timedelta | None = None
    cdn_cache_control: bool | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A route: path pattern and methods, with what the middleware does there.

    Args:
        path: the path pattern (see the module docs).
        methods: the methods it covers (``None``: all). ``GET`` covers ``HEAD`` too.
        cache: a :class:`CachePolicy`; ``True`` for the defaults from the settings;
            ``False`` to never cache here.
        name: names the rule in per-route variables
            (``RESILIENT_HTTP__<NAME>__CACHE_TTL``), and its rate limiter in
            ``RESILIENT_RATELIMIT__<NAME>__*``.
        limits: rate limits per client (``"100/minute;1000/hour"``), or a
            :class:`~resilient.ratelimit.RateLimiter` to count with (share one object
            between rules to share its counts); ``False`` for none; ``None`` for
            ``RESILIENT_HTTP_LIMITS``.
        limit_key: whom requests count against: ``"ip"`` (the client address, behind
            trusted proxies only), ``"header:<name>"`` (that header's value, hashed: it
            is often a secret; else the address), or a function of the request
            returning an identity (``None`` or ``""``: the address); ``None`` for
            ``RESILIENT_HTTP_LIMIT_KEY``.
        limit_scope: the name of the counters: rules with the same scope (and the same
            limits) count together. Default: one scope per rule.
        breaker: a circuit breaker guarding the route: ``True`` for one of its own
            (named ``http:<name or path>``, tuned by ``RESILIENT_BREAKER_*``), a name
            for the process's breaker of that name (shared with ``@circuit_breaker``
            and other routes: one per upstream), a
            :class:`~resilient.breaker.CircuitBreaker`, or ``False`` for none; ``None``
            for ``RESILIENT_HTTP_BREAKER``.

    Raises:
        ConfigurationError: a malformed pattern, method, name, limit or option.

    .. versionadded:: 0.1
    """

    path: str
    methods: Sequence[str] | None = None
    cache: CachePolicy | bool = True
    name: str | None = None
    limits: str | RateLimiter | Literal[False] | None = None
    limit_key: LimitKey | None = None
    limit_scope: str | None = None
    breaker: str | CircuitBreaker | bool | None = None
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _literal: str | None = field(init=False, repr=False, compare=False)
    _methods: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", compile_pattern(self.path))
        # Most patterns are plain paths: comparing strings is several times faster.
        literal = None if "*" in self.path or "{" in self.path else self.path
        object.__setattr__(self, "_literal", literal)
        object.__setattr__(self, "_methods", method_set(self.methods))
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ConfigurationError("Rule.name", self.name, "letters, digits, '_', '.', '-'")
        if not isinstance(self.cache, (bool, CachePolicy)):
            raise ConfigurationError("Rule.cache", self.cache, "a CachePolicy, True or False")
        _check_limits(self.limits)
        if self.limit_key is not None and not (callable(self.limit_key)
                                               or isinstance(self.limit_key, str)):  # fmt: skip
            raise ConfigurationError("Rule.limit_key", self.limit_key, "a string or a function")
        if self.limit_scope is not None and (not isinstance(self.limit_scope, str)
                                             or not self.limit_scope):  # fmt: skip
            raise ConfigurationError("Rule.limit_scope", self.limit_scope, "a non-empty string")
        breaker = self.breaker
        if not (breaker is None or isinstance(breaker, (bool, CircuitBreaker))
                or (isinstance(breaker, str) and breaker)):  # fmt: skip
            raise ConfigurationError(
                "Rule.breaker", breaker, "True, False, a breaker name or a CircuitBreaker"
            )

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule covers ``method`` on ``path``."""
        if self._methods is not None and method not in self._methods:
            return False
        if self._literal is not None:
            return path == self._literal
        return self._regex.fullmatch(path) is not None


def _check_limits(limits: object) -> None:
    if limits is None or limits is False or isinstance(limits, RateLimiter):
        return
    if not isinstance(limits, str):
        raise ConfigurationError("Rule.limits", limits, "limit strings, a RateLimiter or False")
    parse_limits(limits, argument="Rule.limits")  # fails now, not at the first request


@dataclass(frozen=True, slots=True)
class Route:
    """What applies to the requests one rule (or the defaults) covers, resolved.

    Attributes:
        name: the rule's name, if any.
        cache: how responses are cached, or ``None`` when they are not.
        limit: the rate limit of its requests, or ``None``.
        breaker: the circuit breaker guarding the app there, or ``None``.
        lean: ``limit`` when it is all the route does (no cache, no breaker), so that
            requests need no stages; else ``None``.
    """

    name: str | None
    cache: CacheRules | None
    limit: RouteLimit | None = None
    breaker: CircuitBreaker | None = None
    lean: RouteLimit | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = self.cache is None and self.breaker is None
        object.__setattr__(self, "lean", self.limit if plain else None)


def _seconds(name: str, value: float | timedelta | None, fallback: float | None) -> float | None:
    if value is None:
        return fallback
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ConfigurationError(name, value, "seconds (a number or a timedelta)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(name, value, "a finite number of seconds of at least 0")
    return float(seconds)


def _tokens(value: Sequence[str], field: str, expected: str) -> list[str]:
    """``value`` (one name or several), each checked to be an HTTP token."""
    names = [value] if isinstance(value, str) else list(value)
    for name in names:
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ConfigurationError(f"CachePolicy.{field}", name, expected)
    return names


def _cookie_names(value: Sequence[str]) -> frozenset[str]:
    return frozenset(_tokens(value, "vary_cookies", "cookie names"))


def _header_names(value: Sequence[str]) -> frozenset[str]:
    return frozenset(name.lower() for name in _tokens(value, "credential_headers", "header names"))


def _cache_rules(
    settings: Settings, http: HttpSettings, rule: Rule | None, breaker: bool = False
) -> CacheRules | None:
    if not (settings.cache.enabled and http.cache) or (rule is not None and rule.cache is False):
        return None
    policy = rule.cache if rule is not None and isinstance(rule.cache, CachePolicy) else None
    policy = policy or CachePolicy()
    max_body = http.cache_max_body if policy.max_body is None else policy.max_body
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
        raise ConfigurationError("CachePolicy.max_body", max_body, "a number of bytes >= 0")
    respect = policy.respect_request_cache_control
    credentials = policy.credential_headers
    cdn = policy.cdn_cache_control
    return CacheRules(
        ttl=_seconds("CachePolicy.ttl", policy.ttl, http.cache_ttl),
        stale_while_revalidate=_seconds("CachePolicy.stale_while_revalidate",
            policy.stale_while_revalidate, http.cache_stale_while_revalidate) or 0.0,
        stale_if_error=_seconds("CachePolicy.stale_if_error", policy.stale_if_error,
                                http.cache_stale_if_error) or 0.0,
        vary_cookies=_cookie_names(
            http.cache_vary_cookies if policy.vary_cookies is None else policy.vary_cookies
        ),
        max_body=max_body,
        respect_request_cache_control=(
            http.respect_request_cache_control if respect is None else bool(respect)
        ),
        keep_stale=http.breaker_stale if breaker else 0.0,
        keep=_seconds("CachePolicy.keep", policy.keep, http.cache_keep) or 0.0,
        cdn_cache_control=(
            http.cache_cdn_cache_control if cdn is None else bool(cdn)
        ),
        credential_headers=_header_names(
            http.cache_credential_headers if credentials is None else credentials
        ),
    )  # fmt: skip


class Routes:
    """The rules of one middleware, resolved against the settings once, at construction.

    Args:
        rules: the rules, first match wins.
        settings: where unset values come from.
        backend: where rate limits count (an injected backend), else their settings.
        asynchronous: ``backend`` is an asyncio backend.
        clock: monotonic seconds for the limiters and breakers built here, or ``None``.
        exclude: path patterns left alone (the syntax of :attr:`Rule.path`): requests
            on them get :attr:`bypass`, whatever rule matches. ``None``:
            ``RESILIENT_HTTP_EXCLUDE_PATHS``.

    Attributes:
        default: the route of requests no rule matches.
        bypass: the route of excluded paths: no cache, no limit, no breaker.

    Raises:
        ConfigurationError: a rule, policy or excluded pattern is unusable.
    """

    __slots__ = ("_breakers", "_excluded", "_limiters", "_rules", "bypass", "default",
                 "has_breakers", "has_limits")  # fmt: skip

    def __init__(
        self,
        rules: Sequence[Rule],
        settings: Settings,
        *,
        backend: SyncBackend | AsyncBackend | None = None,
        asynchronous: bool = False,
        clock: Clock | None = None,
        exclude: Sequence[str] | None = None,
    ) -> None:
        patterns = settings.http.exclude_paths if exclude is None else exclude
        # Read from the table: name the variable, not the keyword, when one is unusable.
        argument = "RESILIENT_HTTP_EXCLUDE_PATHS" if exclude is None else "exclude"
        self._excluded = excluded_paths(patterns, argument)
        self.bypass = Route(None, None)
        for rule in rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError("rules", rule, "Rule objects")
        limits = LimitBuilder(settings, backend, asynchronous, clock)
        breakers = BreakerBuilder(settings, clock)

        def resolve(rule: Rule | None) -> Route:
            http = settings.http if rule is None else settings.http_for(rule.name)
            breaker = breakers.build(rule, http)
            cache = _cache_rules(settings, http, rule, breaker is not None)
            return Route(None if rule is None else rule.name, cache, limits.build(rule, http),
                         breaker)  # fmt: skip

        self._rules = tuple((rule, resolve(rule)) for rule in rules)
        self.default = resolve(None)
        routes = [route for _, route in self._rules] + [self.default]
        self.has_limits = any(route.limit is not None for route in routes)
        self.has_breakers = any(route.breaker is not None for route in routes)
        self._limiters = tuple(limits.built)
        self._breakers = tuple(breakers.built)

    def close(self) -> None:
        """Close the connections of the limiters and breakers built here.

        Those the rules gave (a :class:`~resilient.ratelimit.RateLimiter`, a breaker or
        a breaker's name) belong to the code that made them and stay open.
        """
        for limiter in self._limiters:
            limiter.close()
        for breaker in self._breakers:
            breaker.shutdown()

    async def aclose(self) -> None:
        """:meth:`close`, also closing the asyncio connections of the running loop."""
        for limiter in self._limiters:
            await limiter.aclose()
            limiter.close()
        for breaker in self._breakers:
            await breaker.ashutdown()

    def match(self, method: str, path: str) -> Route:
        """The route of the first rule covering ``method`` on ``path``, else the default;
        :attr:`bypass` for an excluded path, even where a rule matches (exclusion is how
        operators leave a path alone without code, so it must not lose to one)."""
        if self._excluded is not None and self._excluded(path):
            return self.bypass
        for rule, route in self._rules:
            if rule.matches(method, path):
                return route
        return self.default
