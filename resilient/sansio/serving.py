"""Responses the cache sends itself: a stored response replayed, a 304, a 504.

.. versionadded:: 0.1
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from resilient.sansio.conditional import is_not_modified, not_modified_headers
from resilient.sansio.entry import StoredResponse
from resilient.sansio.freshness import current_age
from resilient.sansio.http import Response, ResponseHead

__all__ = ["answer_validators", "gateway_timeout", "serve_stored", "serve_stored_as_sent"]

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


def serve_stored_as_sent(
    entry: StoredResponse, method: str, request: Mapping[str, str], response: Response
) -> Response:
    """``response``, the app's as it goes out now that ``entry`` was made of it: with the
    entry's ``ETag``, or a 304 when the request's validators match the entry.

    Fields that stages added to ``response`` (they are not the representation's) stay on
    the 304.
    """
    head = response.head()
    if not head.has("etag"):
        head.headers.append(("ETag", next(v for n, v in entry.headers if n.lower() == "etag")))
    if not is_not_modified(method, request, entry.headers, entry.response_time):
        return Response(head.status, tuple(head.headers), response.body)
    stored_names = {name.lower() for name, _ in entry.headers}
    extra = [(name, value) for name, value in head.headers if name.lower() not in stored_names]
    return Response(304, (*not_modified_headers(entry.headers), *extra))


def answer_validators(
    method: str, request: Mapping[str, str], head: ResponseHead
) -> ResponseHead | Response:
    """A 304 for a 200 the app sent while the request's validators were held back from
    it, when they match the app's own ``ETag`` or ``Last-Modified``; else ``head``."""
    if head.status != 200 or not (head.has("etag") or head.has("last-modified")):
        return head
    if not is_not_modified(method, request, head.headers):
        return head
    return Response(304, tuple(not_modified_headers(head.headers)))


def gateway_timeout() -> Response:
    """The 504 for ``only-if-cached`` with nothing stored (RFC 9111 §5.2.1.7)."""
    return _GATEWAY_TIMEOUT
