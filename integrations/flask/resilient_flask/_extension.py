"""The Flask extension: ``Resilient(app)`` or ``Resilient()`` then ``init_app(app)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask

from resilient.breaker import circuit_breaker
from resilient.config import Settings
from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.middleware import ResilientWSGIMiddleware, Rule
from resilient.ratelimit import RequestView, parse_limits
from resilient_flask import _shutdown, _views
from resilient_flask._headers import RateLimitHeaders
from resilient_flask._problems import circuit_open_response, rate_limited_response
from resilient_flask._state import ResilientState

__all__ = ["Resilient"]

F = TypeVar("F", bound=Callable[..., Any])


class Resilient:
    """resilient for a Flask app: HTTP caching middleware, rate limits, circuit breakers.

    Settings come from, highest first: keyword arguments here (lower-case names,
    ``ratelimit_headers="both"``), ``app.config["RESILIENT_*"]`` (the names of the
    environment variables), then the environment. They are read once, in
    :meth:`init_app`, and kept per app in ``app.extensions["resilient"]`` (a
    :class:`ResilientState`); nothing is kept on this object, so one instance can set
    up several apps.

    Args:
        app: the app to set up now; or call :meth:`init_app` later (factory pattern).
        rules: rules per route for the cache middleware (:class:`resilient.middleware.Rule`).
        **overrides: settings by lower-case name, above ``app.config`` and the env.

    Example::

        app = Flask(__name__)
        resilient = Resilient(app)

        @app.get("/search")
        @resilient.limit("5/minute")
        def search(): ...

    .. versionadded:: 0.1
    """

    def __init__(
        self, app: Flask | None = None, *, rules: Sequence[Rule] = (), **overrides: Any
    ) -> None:
        self.rules = tuple(rules)
        self.overrides = dict(overrides)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set ``app`` up: read its settings, wrap ``app.wsgi_app``, register error handlers.

        ``app.wsgi_app`` becomes the cache middleware (:class:`ResilientWSGIMiddleware`)
        around the app, inside a thin layer adding rate-limit headers. ``RateLimitExceeded``
        is answered with a 429 and ``CircuitOpenError`` with a 503, both
        ``application/problem+json`` (RFC 9457) with ``Retry-After``.

        Raises:
            ConfigurationError: a setting is unusable, or the app is already set up.
        """
        if "resilient" in app.extensions:
            raise ConfigurationError("app", app, "an app that resilient has not set up yet")
        settings = Settings.from_env(config=app.config, overrides=self.overrides)
        middleware = ResilientWSGIMiddleware(app.wsgi_app, self.rules, settings=settings)
        app.wsgi_app = RateLimitHeaders(middleware, settings.ratelimit.headers)  # type: ignore[method-assign]
        state = ResilientState(self, settings, middleware)
        app.extensions["resilient"] = state
        _shutdown.track(state)  # its connections close at exit (Flask has no shutdown hook)
        app.register_error_handler(RateLimitExceeded, rate_limited_response)
        app.register_error_handler(CircuitOpenError, circuit_open_response)

    @staticmethod
    def state(app: Flask | None = None) -> ResilientState:
        """The state kept for ``app`` (default: the current app).

        Raises:
            RuntimeError: the app was not set up by this extension.
        """
        return _views.state(app)

    def limit(
        self,
        limits: str | Sequence[str] | None = None,
        *,
        key: Callable[[RequestView], str] | None = None,
        cost: int | Callable[[RequestView], int] = 1,
        name: str | None = None,
        scope: str | None = None,
        exempt_when: Callable[[RequestView], bool] | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Rate-limit a view: over the limit, it does not run and the client gets a 429.

        Each request is counted (all limits or none) before the view runs. The limiter
        is built at the view's first request in each app, from that app's settings.

        Args:
            limits: limit strings (``"5/minute"``, ``"10/second;500/hour"``); ``None``
                for ``RESILIENT_RATELIMIT_DEFAULT``.
            key: who a request counts against: a function of the request view
                (``resilient.ratelimit.by_api_key()``...). Default: the client IP, with
                forwarding headers believed only from ``RESILIENT_RATELIMIT_TRUSTED_PROXIES``.
            cost: units a request takes, or a function of the request view.
            name: for per-name settings (``RESILIENT_RATELIMIT__<NAME>__*``); views with
                the same name share counts.
            scope: views with the same scope share counts. Default: ``name``, else the
                view's ``module.qualname``.
            exempt_when: a predicate of the request view; true skips the limit.
            **options: more :class:`resilient.ratelimit.RateLimiter` arguments
                (``strategy``, ``mode``, ``fail_mode``, ``url``, ``clock``...).

        Raises:
            ConfigurationError: unusable limits or cost, at once; unusable options, at
                the first request.
        """
        if limits is not None:
            parse_limits(limits)
        if not callable(cost) and (isinstance(cost, bool) or not isinstance(cost, int) or cost < 1):
            raise ConfigurationError("cost", cost, "a whole number >= 1 or a function")
        given = {"name": name, "scope": scope, **options}

        def decorate(view: F) -> F:
            return _views.limited(
                view, limits, key=key, cost=cost, exempt_when=exempt_when, options=given
            )

        return decorate

    def breaker(self, name: str, **options: Any) -> Callable[[F], F]:
        """Guard a view with this app's circuit breaker ``name``.

        An exception from the view and a 5xx response count as failures; client errors
        (``abort(404)``, a rate limit) count as successes. While the circuit is open the
        view does not run and the client gets a 503 with ``Retry-After``.

        Args:
            name: the breaker's name; views naming the same breaker share it.
            **options: :class:`resilient.breaker.CircuitBreaker` arguments
                (``fail_max``, ``reset_timeout``, ``clock``...); unset ones come from the
                app's settings (``RESILIENT_BREAKER__<NAME>__*`` too).

        Raises:
            ConfigurationError: an option value is unusable (checked now where it can
                be, else at the first request).
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError("name", name, "a non-empty string")
        circuit_breaker(name, **options)  # checks the option values; builds nothing
        given = dict(options)

        def decorate(view: F) -> F:
            return _views.guard(view, name, given)

        return decorate

    def cached(
        self,
        ttl: float | timedelta,
        *,
        stale_while_revalidate: float | timedelta = 0,
        stale_if_error: float | timedelta = 0,
    ) -> Callable[[F], F]:
        """Mark a view's responses cacheable for ``ttl`` seconds.

        Sends ``Cache-Control: max-age=<ttl>`` (plus the stale directives given) on
        ``GET``/``HEAD`` responses with status 200, 203, 204, 300, 301 or 308 that set no
        ``Cache-Control`` of their own, unless they are personal: requests carrying
        ``Authorization`` or ``Cookie``, and responses setting a cookie or sending
        ``Vary: *``, are never marked. The cache middleware then stores them by the same
        rules, and so may CDNs and browsers.

        Raises:
            ConfigurationError: a duration is unusable.
        """
        return _views.cache_control(ttl, stale_while_revalidate, stale_if_error)
