"""Validators and conditional requests: ETags, ``If-None-Match``, ``If-Modified-Since``, 304.

RFC 9110 §8.8 and §13: ETags are quoted; ``If-None-Match`` uses the weak comparison and
may list several tags or ``*``; ``If-Modified-Since`` counts only without
``If-None-Match``, on GET and HEAD; a 304 carries the fields of §15.4.5.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence

from resilient.sansio.http import parse_http_date

__all__ = [
    "NOT_MODIFIED_FIELDS",
    "etag_matches",
    "is_not_modified",
    "not_modified_headers",
    "strong_etag",
]

#: Fields a 304 repeats from the 200 it stands for (RFC 9110 §15.4.5).
NOT_MODIFIED_FIELDS = frozenset({"cache-control", "content-location", "date", "etag",
                                 "expires", "vary"})  # fmt: skip

_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def strong_etag(body: bytes) -> str:
    """A strong, quoted ETag from the body's bytes: stable across processes and restarts.

    BLAKE2b (128 bits), URL-safe base64: never Python's salted ``hash()``.
    """
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def _opaque_tags(value: str) -> list[str] | None:
    """The opaque tags of a list of entity-tags; ``None`` when malformed."""
    tags: list[str] = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG.match(value, position)
        if match is None or match.end() == position:
            return None
        tags.append(match.group(1))
        position = match.end()
    return tags


def etag_matches(if_none_match: str, etag: str | None) -> bool:
    """Whether ``If-None-Match`` names ``etag``, by weak comparison (RFC 9110 §8.8.3.2).

    ``*`` matches any stored response. A malformed field matches nothing, so the client
    gets the full response.
    """
    if if_none_match.strip() == "*":
        return True
    if etag is None:
        return False
    stored = _opaque_tags(etag)
    wanted = _opaque_tags(if_none_match)
    if not stored or wanted is None or len(stored) != 1:
        return False
    return stored[0] in wanted


def _first(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in fields if key.lower() == name), None)


def is_not_modified(
    method: str,
    request: Mapping[str, str],
    stored: Sequence[tuple[str, str]],
    received: float | None = None,
) -> bool:
    """Whether a stored response answers this request with 304 (RFC 9111 §4.3.2).

    Args:
        method: the request method; only GET and HEAD get a 304.
        request: the request's header fields (lower-case names).
        stored: the stored response's header fields.
        received: when the stored response arrived: what ``If-Modified-Since`` is
            compared with when it has neither ``Last-Modified`` nor ``Date``.
    """
    if method not in ("GET", "HEAD"):
        return False
    if_none_match = request.get("if-none-match")
    if if_none_match is not None:
        return etag_matches(if_none_match, _first(stored, "etag"))
    if_modified_since = request.get("if-modified-since")
    if if_modified_since is None:
        return False
    since = parse_http_date(if_modified_since)
    reference = _first(stored, "last-modified") or _first(stored, "date")
    changed = parse_http_date(reference) if reference is not None else received
    return since is not None and changed is not None and changed <= since


def not_modified_headers(stored: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields of a 304 for a stored response, in their stored order.

    ``Last-Modified`` joins them when there is no ETag, as it then guides caches.
    """
    keep = NOT_MODIFIED_FIELDS
    if _first(stored, "etag") is None:
        keep = keep | {"last-modified"}
    return [(name, value) for name, value in stored if name.lower() in keep]
