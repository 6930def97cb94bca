"""``install(app)``: settings, the cache middleware, the headers layer, exception handlers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp

from resilient.config import Settings
from resilient.errors import CircuitOpenError, ConfigurationError, RateLimitExceeded
from resilient.middleware import ResilientASGIMiddleware, Rule
from resilient_fastapi._headers import RateLimitHeadersMiddleware
from resilient_fastapi._problems import (
    ProblemException,
    handle_circuit_open,
    handle_problem,
    handle_rate_limit_exceeded,
)
from resilient_fastapi._registry import Registry, registry_for

__all__ = ["install"]


def install(
    app: Starlette,
    rules: Sequence[Rule] = (),
    *,
    settings: Settings | None = None,
    middleware: bool = True,
    **overrides: Any,
) -> Registry:
    """Set a FastAPI (or Starlette) app up for resilient.

    - settings: ``settings``, else the environment with ``overrides`` on top
      (lower-case names, ``ratelimit_headers="both"``), read now;
    - the HTTP cache: :class:`~resilient.middleware.ResilientASGIMiddleware` with
      ``rules`` (skip it with ``middleware=False``, e.g. when you add it yourself);
    - outermost, a layer adding rate-limit headers, so cached responses never carry one
      client's figures to another, and endpoints returning a ``Response`` get them too;
    - exception handlers: the dependencies' rejections, and ``RateLimitExceeded`` /
      ``CircuitOpenError`` raised anywhere (``@rate_limited``, ``@circuit_breaker``),
      become 429 / 503 ``application/problem+json`` (RFC 9457) with ``Retry-After``.

    Call it once, before the app starts. Use :data:`~resilient_fastapi.lifespan` too, to
    close the pools at shutdown.

    Returns:
        The app's registry (``app.state.resilient``).

    Raises:
        ConfigurationError: both ``settings`` and ``overrides`` are given, a setting or
            rule is unusable, or the app is already set up.

    .. versionadded:: 0.1
    """
    if settings is not None and overrides:
        raise ConfigurationError("overrides", overrides, "nothing when settings are given")
    if rules and not middleware:
        raise ConfigurationError("rules", rules, "no rules when middleware=False")
    if settings is None:
        settings = Settings.from_env(overrides=overrides)
    registry = registry_for(app, settings)
    if middleware:
        rules = tuple(rules)

        def cache(inner: ASGIApp) -> ASGIApp:
            # Starlette builds its middleware when the app first runs; the backend is
            # recorded then, for the lifespan to close.
            built = ResilientASGIMiddleware(inner, rules, settings=settings)
            registry.on_close(built.aclose)
            return built

        app.add_middleware(cache)
    app.add_middleware(RateLimitHeadersMiddleware, style=settings.ratelimit.headers)
    app.add_exception_handler(ProblemException, handle_problem)
    app.add_exception_handler(RateLimitExceeded, handle_rate_limit_exceeded)
    app.add_exception_handler(CircuitOpenError, handle_circuit_open)
    return registry
