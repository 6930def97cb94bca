"""Responses the cache sends itself: a stored response replayed, a 304, a 504.

.. versionadded:: 0.1
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from resilient.sansio.conditional import is_not_modified, not_modified_headers
from resilient.sansio.entry import StoredResponse
from resilient.sansio.freshness import current_age
from resilient.sansio.http import Response

__all__ = ["gateway_timeout", "serve_stored"]

_NOT_CACHED = b"504 Gateway Timeout: not cached"
_GATEWAY_TIMEOUT = Response(
    504,
    (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_NOT_CACHED))),
     ("Cache-Control", "no-store")),
    _NOT_CACHED,
)  # fmt: skip


def serve_stored(
    entry: StoredResponse, method: str, request: Mapping[str, str], now: float
) -> Response:
    """``entry`` as the answer to a GET or HEAD: 200 (or its stored status) or 304.

    The stored fields are replayed with an ``Age`` (whole seconds, RFC 9111 §5.1); a HEAD
    gets no body; a request whose validators match gets a 304 with the fields RFC 9110
    §15.4.5 asks for.
    """
    age = ("Age", str(math.floor(current_age(entry, now))))
    if entry.status == 200 and is_not_modified(method, request, entry.headers, entry.response_time):
        return Response(304, (*not_modified_headers(entry.headers), age))
    return Response(entry.status, (*entry.headers, age), b"" if method == "HEAD" else entry.body)


def gateway_timeout() -> Response:
    """The 504 for ``only-if-cached`` with nothing stored (RFC 9111 §5.2.1.7)."""
    return _GATEWAY_TIMEOUT
