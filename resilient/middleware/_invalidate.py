"""Invalidation after unsafe methods (RFC 9111 §4.4): the cache step's other stage.

A successful ``POST``, ``PUT``, ``DELETE`` ... on a cached URL makes its stored responses
unreachable, and so those of the ``Location`` and ``Content-Location`` it names, when they
are of the same origin (another origin's could be invalidated by anyone otherwise).
"""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import unquote, urljoin, urlsplit

from resilient.errors import BackendError
from resilient.middleware._drivers import Flow
from resilient.middleware._pipeline import Stage
from resilient.middleware.store import ResponseStore
from resilient.sansio.http import RequestInfo, Response, ResponseHead
from resilient.sansio.keys import target_uri

__all__ = ["InvalidateStage"]


class InvalidateStage(Stage):
    """Forgets the stored responses of an unsafe request's URL once the app succeeded.

    Args:
        store: the response store.
        request: the unsafe request.
    """

    __slots__ = ("request", "store")

    def __init__(self, store: ResponseStore, request: RequestInfo) -> None:
        self.store = store
        self.request = request

    def on_head(self, head: ResponseHead) -> Flow[ResponseHead | Response]:
        if 200 <= head.status < 400:  # RFC 9111 §4.4: after a non-error response
            urls = [self.request.url]
            for name in ("location", "content-location"):
                url = _same_origin(self.request, head.get(name))
                if url is not None:
                    urls.append(url)
            with suppress(BackendError):  # fail open; stored copies expire on their own
                yield from self.store.invalidate(urls)
        return head


def _same_origin(request: RequestInfo, reference: str | None) -> str | None:
    if not reference:
        return None
    base = request.url
    try:
        parts = urlsplit(urljoin(base, reference.strip()))
        origin = urlsplit(base)
    except ValueError:
        return None
    if parts.scheme != origin.scheme or parts.netloc.lower() != origin.netloc:
        return None
    # The form the cache keys on: the path as the app would see it, encoded again.
    return target_uri(parts.scheme, request.host, unquote(parts.path), parts.query)
