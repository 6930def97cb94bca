"""Fixtures of the operations suite: the middleware suite's harness, under WSGI and ASGI."""

from __future__ import annotations

# The same fixtures as the middleware suite's, not copies of them.
from tests.middleware.conftest import harness, portal

__all__ = ["harness", "portal"]
