"""What the adapter builds for one app, kept in ``app.state.resilient``, closed at shutdown.

Limiters and breakers are built at a route's first request (or the app's startup reads
the settings), never at import. The lifespan helper closes what is recorded here: the
asyncio Redis pools of the limiters and breakers, and the cache middleware's backend.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from resilient.backends import SyncBackend, backend_from_url
from resilient.breaker import BreakerRegistry, CircuitBreaker
from resilient.config import Settings
from resilient.errors import ConfigurationError
from resilient.ratelimit import RateLimiter, RequestKey, by_client_ip

__all__ = ["Registry", "registry_for"]

# Options that choose where a limiter counts: given any, the limiter is left to them.
_STORAGE_OPTIONS = frozenset({"url", "backend", "async_backend", "clock"})
_LOCK = threading.Lock()


class Registry:
    """The adapter's objects for one app.

    Attributes:
        settings: the app's settings (given to :func:`~resilient_fastapi.install`, else
            read from the environment when the registry is made).
        client_key: the default rate-limit key: the client IP, forwarding headers
            believed only from ``RESILIENT_RATELIMIT_TRUSTED_PROXIES``.

    .. versionadded:: 0.1
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client_key: RequestKey = by_client_ip(
            trusted_proxies=settings.ratelimit.trusted_proxies
        )
        self._lock = threading.Lock()
        self._limiters: dict[object, RateLimiter] = {}
        self._stacked: dict[str, list[object]] = {}
        self._breakers = BreakerRegistry(settings=settings)
        self._memory: SyncBackend | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @property
    def limiters(self) -> tuple[RateLimiter, ...]:
        """The limiters built so far."""
        with self._lock:
            return tuple(self._limiters.values())

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The breakers built so far, by name."""
        return self._breakers.all()

    def route_scope(self, base: str, owner: object) -> str:
        """The counter scope of ``owner``, one of the limits on the route named ``base``.

        The first limit seen on a route counts under the route's name; each further one
        under ``#2``, ``#3``, ... FastAPI resolves a route's dependencies in the order
        they are declared, so the numbering is the same in every process, and stacked
        limits never share (and double-count) one counter.
        """
        with self._lock:
            owners = self._stacked.setdefault(base, [])
            if owner not in owners:
                owners.append(owner)
            position = owners.index(owner)
        return base if position == 0 else f"{base}#{position + 1}"

    def limiter(self, owner: object, **options: Any) -> RateLimiter:
        """The limiter of ``owner`` (a dependency and its route), built at first use."""
        limiter = self._limiters.get(owner)
        if limiter is not None:
            return limiter
        with self._lock:
            limiter = self._limiters.get(owner)
            if limiter is None:
                extra: dict[str, Any] = {}
                section = self.settings.ratelimit_for(options.get("name"))
                url = options.get("url") or section.url or self.settings.backend_url
                if not _STORAGE_OPTIONS.intersection(options) and url.startswith("memory:"):
                    # This app's own store: apps in one process (tests!) whose routes
                    # share names must not share counts. Redis pools are per limiter and
                    # event loop, built by the limiter, closed at shutdown.
                    if self._memory is None:
                        self._memory = backend_from_url("memory://")
                    extra["backend"] = self._memory
                limiter = RateLimiter(settings=self.settings, **extra, **options)
                self._limiters[owner] = limiter
        return limiter

    def breaker(self, name: str, options: dict[str, Any]) -> CircuitBreaker:
        """This app's breaker ``name``, built with ``options`` at its first use.

        Raises:
            ConfigurationError: it exists with other options (two routes disagreeing
                about one breaker is a bug), or an option is unusable.
        """
        return self._breakers.get(name, options)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Have ``closer`` awaited by :meth:`aclose` (e.g. a middleware's backend)."""
        with self._lock:
            self._closers.append(closer)

    async def aclose(self) -> None:
        """Close every pool the adapter opened for the app, on the running event loop.

        Limiters and breakers are forgotten (rebuilt if the app serves again); closers
        stay registered, since what they close (the middleware) stays in the app.
        """
        with self._lock:
            limiters = list(self._limiters.values())
            breakers = self._breakers.clear()
            closers = list(self._closers)
            self._limiters.clear()
            self._memory = None
        for limiter in limiters:
            await limiter.aclose()
            limiter.close()
        for breaker in breakers:
            await breaker.ashutdown()
        for closer in closers:
            await closer()


def registry_for(app: Any, settings: Settings | None = None) -> Registry:
    """The registry of ``app``, made (reading the environment) on first use.

    Args:
        app: the FastAPI / Starlette application.
        settings: settings for a new registry (:func:`~resilient_fastapi.install`).

    Raises:
        ConfigurationError: ``settings`` are given for an app that has a registry, or a
            setting read from the environment is unusable.
    """
    registry: Registry | None = getattr(app.state, "resilient", None)
    if registry is not None:
        if settings is not None:
            raise ConfigurationError("app", app, "an app that resilient has not set up yet")
        return registry
    with _LOCK:
        registry = getattr(app.state, "resilient", None)
        if registry is None:
            registry = Registry(Settings.from_env() if settings is None else settings)
            app.state.resilient = registry
    return registry
