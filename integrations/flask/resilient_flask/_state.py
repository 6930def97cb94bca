"""What the extension keeps per app, in ``app.extensions["resilient"]``.

Nothing lives on the :class:`~resilient_flask.Resilient` object itself, so one extension
serves any number of apps, each with its own settings, limiters and breakers (Flask's
extension guidelines). Limiters and breakers are built at a view's first request, under
a lock, and reused afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from resilient.backends import SyncBackend, backend_from_url
from resilient.breaker import BreakerRegistry, CircuitBreaker
from resilient.config import Settings
from resilient.middleware import ResilientWSGIMiddleware
from resilient.ratelimit import RateLimiter, RequestKey, by_client_ip

__all__ = ["ResilientState"]

# Options that choose where a limiter counts: given any, the limiter is left to them.
_STORAGE_OPTIONS = frozenset({"url", "backend", "async_backend", "clock"})


class ResilientState:
    """The per-app state of the extension: ``app.extensions["resilient"]``.

    Attributes:
        extension: the :class:`~resilient_flask.Resilient` that set the app up.
        settings: this app's settings (arguments > ``app.config`` > environment).
        middleware: the cache middleware wrapping ``app.wsgi_app``.
        client_key: the default rate-limit key: the client IP, forwarding headers
            believed only from ``RESILIENT_RATELIMIT_TRUSTED_PROXIES``.

    .. versionadded:: 0.1
    """

    def __init__(
        self, extension: object, settings: Settings, middleware: ResilientWSGIMiddleware
    ) -> None:
        self.extension = extension
        self.settings = settings
        self.middleware = middleware
        self.client_key: RequestKey = by_client_ip(
            trusted_proxies=settings.ratelimit.trusted_proxies
        )
        self._lock = threading.Lock()
        self._limiters: dict[object, RateLimiter] = {}
        self._breakers = BreakerRegistry(settings=settings)
        self._backends: dict[str, SyncBackend] = {}

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The breakers built for this app's views so far, by name."""
        return self._breakers.all()

    def limiter(self, owner: object, **options: Any) -> RateLimiter:
        """The limiter of the decorator ``owner`` in this app, built at its first use.

        Args:
            owner: the decorator (one limiter per decorator and app).
            **options: :class:`~resilient.ratelimit.RateLimiter` keyword arguments;
                ``settings`` are this app's.
        """
        limiter = self._limiters.get(owner)
        if limiter is not None:
            return limiter
        with self._lock:
            limiter = self._limiters.get(owner)
            if limiter is None:
                extra: dict[str, Any] = {}
                if not _STORAGE_OPTIONS.intersection(options):
                    extra["backend"] = self._backend(options.get("name"))
                limiter = RateLimiter(settings=self.settings, **extra, **options)
                self._limiters[owner] = limiter
        return limiter

    def breaker(self, name: str, options: dict[str, Any]) -> CircuitBreaker:
        """This app's breaker ``name``, built with ``options`` at its first use.

        Raises:
            ConfigurationError: it exists with other options (two views disagreeing
                about one breaker is a bug), or an option is unusable.
        """
        return self._breakers.get(name, options)

    def _backend(self, name: str | None) -> SyncBackend:
        # One backend per URL and app: every limiter of the app counts through one
        # connection pool, and an in-memory one keeps this app's counts apart from other
        # apps' in the same process (their views may share names).
        section = self.settings.ratelimit_for(name)
        url = section.url or self.settings.backend_url
        backend = self._backends.get(url)
        if backend is None:
            settings = self.settings
            backend = backend_from_url(
                url,
                timeout=settings.op_timeout,
                connect_timeout=settings.connect_timeout,
                guard_failures=settings.guard_failures,
                guard_cooldown=settings.guard_cooldown,
            )
            self._backends[url] = backend
        return backend

    def close(self) -> None:
        """Release every connection the extension opened for this app.

        Flask has no shutdown hook: this runs at interpreter exit for every app set up
        (:func:`resilient_flask.close_all`); call it sooner from a server hook or a test
        teardown. Limiters and breakers are rebuilt if the app serves requests again.
        """
        with self._lock:
            limiters = list(self._limiters.values())
            breakers = self._breakers.clear()
            backends = list(self._backends.values())
            self._limiters.clear()
            self._backends.clear()
        for limiter in limiters:
            limiter.close()
        for breaker in breakers:
            breaker.shutdown()
        for backend in backends:
            backend.close()
        self.middleware.close()
