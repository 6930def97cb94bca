"""WSGI and ASGI middleware: an RFC 9111 shared cache, rate limits and circuit breakers
for any web app, with rules per route.

Both shells run one pipeline of pure decisions (:mod:`resilient.sansio`) and backend
flows; see :class:`ResilientWSGIMiddleware`, :class:`ResilientASGIMiddleware` and
:class:`Rule`.
"""

from __future__ import annotations

from resilient.middleware.asgi import ResilientASGIMiddleware
from resilient.middleware.rules import CachePolicy, Rule
from resilient.middleware.store import ResponseStore
from resilient.middleware.wsgi import ResilientWSGIMiddleware

__all__ = [
    "CachePolicy",
    "ResilientASGIMiddleware",
    "ResilientWSGIMiddleware",
    "ResponseStore",
    "Rule",
]
