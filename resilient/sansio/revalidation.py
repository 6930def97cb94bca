"""Revalidating a stale stored response with the app (RFC 9111 §4.3).

A stored response past its lifetime need not be fetched again in full: the cache asks
the app with the response's own validators (``If-None-Match`` with its ``ETag``,
``If-Modified-Since`` with its ``Last-Modified``). A ``304 Not Modified`` then freshens
the stored response: the 304's header fields replace the stored ones (RFC 9111 §3.2),
the body stays, and the result is stored and served as a new response would be.
"""

from __future__ import annotations

from collections.abc import Sequence

from resilient.sansio.caching import HOP_BY_HOP
from resilient.sansio.conditional import etag_matches
from resilient.sansio.entry import StoredResponse
from resilient.sansio.http import ResponseHead

__all__ = ["freshen_headers", "revalidation_fields", "selects"]

# Never taken from a 304 (RFC 9111 §3.2): the stored body's own length and encoding,
# and Age, which is counted afresh from the 304's own Age and Date.
_KEPT = frozenset({"content-length", "content-encoding", "content-range", "age"})


def _first(fields: Sequence[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in fields if key.lower() == name), None)


def revalidation_fields(entry: StoredResponse) -> tuple[tuple[str, str], ...]:
    """The request fields that ask the app whether ``entry`` is still current.

    ``If-None-Match`` with its ``ETag`` and, when it has one, ``If-Modified-Since``
    with its ``Last-Modified`` (the app judges by the former when it can, RFC 9110
    §13.1.3). Only a 200 is revalidated: a 304 stands for a 200.
    """
    if entry.status != 200:
        return ()
    fields: list[tuple[str, str]] = []
    etag = _first(entry.headers, "etag")
    if etag is not None:
        fields.append(("If-None-Match", etag))
    modified = _first(entry.headers, "last-modified")
    if modified is not None:
        fields.append(("If-Modified-Since", modified))
    return tuple(fields)


def selects(entry: StoredResponse, head: ResponseHead) -> bool:
    """Whether the 304 in ``head`` is about ``entry`` (RFC 9111 §4.3.4).

    A 304 naming an ``ETag`` selects the stored response only when the tags match
    (weakly); one naming none selects it, since it answered its validators.
    """
    etag = head.get("etag")
    if etag is None:
        return True
    return etag_matches(etag, _first(entry.headers, "etag"))


def freshen_headers(
    stored: Sequence[tuple[str, str]], fresh: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The stored fields updated with a 304's (RFC 9111 §3.2).

    Every field the 304 carries replaces all stored lines of that name, in the stored
    order; new ones follow. Connection-specific fields, ``Content-Length`` and the other
    fields that describe the stored body are never taken from the 304. The 304's
    ``Age`` is kept for the caller to count, and dropped when the record is built.
    """
    listed = {name.lower() for key, value in fresh if key.lower() == "connection"
              for name in value.split(",")}  # fmt: skip
    skipped = HOP_BY_HOP | _KEPT | {name.strip() for name in listed}
    updates: dict[str, list[tuple[str, str]]] = {}
    for name, value in fresh:
        if name.lower() not in skipped:
            updates.setdefault(name.lower(), []).append((name, value))
    merged: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in stored:
        lower = name.lower()
        if lower not in updates:
            merged.append((name, value))
        elif lower not in placed:
            merged.extend(updates[lower])
            placed.add(lower)
    for lower, lines in updates.items():
        if lower not in placed:
            merged.extend(lines)
    age = _first(fresh, "age")
    if age is not None:
        merged.append(("Age", age))
    return merged
