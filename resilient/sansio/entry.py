"""Stored responses and their byte format: the body as raw bytes, never re-encoded.

A record is a short magic prefix, a length-prefixed JSON block of metadata (status,
fields, timings, the URL and ``Vary`` values it was chosen for) and then the body bytes
exactly as the app sent them. JSON, not pickle: a record read from a shared Redis can
never run code. Anything that does not decode is a miss.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from resilient.sansio.caching import HOP_BY_HOP
from resilient.sansio.conditional import strong_etag
from resilient.sansio.decisions import StoreDecision
from resilient.sansio.http import ResponseHead, parse_http_date, split_list

__all__ = [
    "StoredResponse",
    "VaryMarker",
    "age_value",
    "build_entry",
    "decode_record",
    "initial_age",
]

_ENTRY = b"\x00rhe1"
_MARKER = b"\x00rhv1"
_LENGTH = 4


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response in the cache, with what is needed to judge and replay it.

    Attributes:
        status: the status code.
        headers: the fields to replay, in order (no hop-by-hop fields, no ``Age``;
            ``ETag`` and ``Content-Length`` always present, but no ``Content-Length``
            on a 204; ``Date`` only when the app sent one).
        body: the body bytes as the app produced them.
        url: the absolute URL it answers; checked on every hit.
        vary: the normalised request values it was selected by; checked on every hit.
        response_time: when it was received, by the middleware's clock.
        initial_age: its corrected initial age (RFC 9111 §4.2.3), in seconds.
        lifetime: its freshness lifetime, in seconds.
        stale_while_revalidate: seconds after expiry it may be served while refreshed.
        stale_if_error: seconds after expiry it may stand in for a failure.
        may_serve_stale: ``False`` when it must never be served stale.

    .. versionadded:: 0.1
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    url: str
    vary: tuple[tuple[str, str | None], ...]
    response_time: float
    initial_age: float
    lifetime: float
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    may_serve_stale: bool = True

    def encode(self) -> bytes:
        """The record's bytes."""
        meta = {
            "s": self.status,
            "h": [list(pair) for pair in self.headers],
            "u": self.url,
            "v": [list(pair) for pair in self.vary],
            "rt": self.response_time,
            "ia": self.initial_age,
            "lt": self.lifetime,
            "swr": self.stale_while_revalidate,
            "sie": self.stale_if_error,
            "st": self.may_serve_stale,
        }
        blob = json.dumps(meta, separators=(",", ":")).encode("ascii")
        return b"".join((_ENTRY, len(blob).to_bytes(_LENGTH, "big"), blob, self.body))


@dataclass(frozen=True, slots=True)
class VaryMarker:
    """What a URL whose responses vary stores under its primary key.

    Attributes:
        fields: the lower-case request fields its responses vary on.
        generation: a random token that is part of every variant's key; deleting the
            marker (invalidation) orphans all its variants at once.

    .. versionadded:: 0.1
    """

    fields: tuple[str, ...]
    generation: str

    def encode(self) -> bytes:
        """The record's bytes."""
        return _MARKER + json.dumps([list(self.fields), self.generation]).encode("ascii")


def _pairs(raw: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        raise ValueError
    pairs = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2):
            raise ValueError
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError
        pairs.append((name, value))
    return tuple(pairs)


def _vary(raw: object) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(raw, list):
        raise ValueError
    values: list[tuple[str, str | None]] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError
        if item[1] is not None and not isinstance(item[1], str):
            raise ValueError
        values.append((item[0], item[1]))
    return tuple(values)


def _number(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError
    return float(raw)


def _decode_entry(data: bytes) -> StoredResponse:
    start = len(_ENTRY) + _LENGTH
    size = int.from_bytes(data[len(_ENTRY) : start], "big")
    if len(data) < start + size:
        raise ValueError
    meta = json.loads(data[start : start + size])
    status = meta["s"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError
    url = meta["u"]
    if not isinstance(url, str):
        raise ValueError
    return StoredResponse(
        status=status,
        headers=_pairs(meta["h"]),
        body=data[start + size :],
        url=url,
        vary=_vary(meta["v"]),
        response_time=_number(meta["rt"]),
        initial_age=_number(meta["ia"]),
        lifetime=_number(meta["lt"]),
        stale_while_revalidate=_number(meta["swr"]),
        stale_if_error=_number(meta["sie"]),
        may_serve_stale=meta["st"] is True,
    )


def _decode_marker(data: bytes) -> VaryMarker:
    fields, generation = json.loads(data[len(_MARKER) :])
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise ValueError
    if not isinstance(generation, str) or not generation:
        raise ValueError
    return VaryMarker(tuple(fields), generation)


def decode_record(data: bytes | None) -> StoredResponse | VaryMarker | None:
    """The record in ``data``; ``None`` when absent, foreign or damaged (a miss).

    .. versionadded:: 0.1
    """
    if not data:
        return None
    try:
        if data.startswith(_ENTRY):
            return _decode_entry(data)
        if data.startswith(_MARKER):
            return _decode_marker(data)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return None
    return None


def age_value(age: str | None) -> float:
    """The seconds an ``Age`` value states (RFC 9111 §5.1), never fewer than it means.

    A list (``Age: 7200, 0``, or two ``Age`` lines joined) counts by its first member,
    as §5.1 says. A value that is not a non-negative integer gives infinity, so the
    response counts as stale: §5.1 lets a cache ignore it, but that would make a
    response of unknown age look brand new.
    """
    if age is None:
        return 0.0
    first = age.split(",", 1)[0].strip()
    return float(first) if first.isascii() and first.isdigit() else math.inf


def initial_age(
    age: str | None, date: str | None, request_time: float, response_time: float
) -> float:
    """The corrected initial age of a response (RFC 9111 §4.2.3), in seconds."""
    date_value = parse_http_date(date) if date is not None else None
    apparent_age = 0.0 if date_value is None else max(0.0, response_time - date_value)
    corrected_age_value = age_value(age) + max(0.0, response_time - request_time)
    return max(apparent_age, corrected_age_value)


def _replayable(fields: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    listed = {name.lower() for key, value in fields if key.lower() == "connection"
              for name in split_list(value)}  # fmt: skip
    dropped = HOP_BY_HOP | listed | {"age"}
    return [(name, value) for name, value in fields if name.lower() not in dropped]


def build_entry(
    url: str,
    head: ResponseHead,
    body: bytes,
    decision: StoreDecision,
    vary: tuple[tuple[str, str | None], ...],
    request_time: float,
    response_time: float,
) -> StoredResponse:
    """The record to store for a complete response.

    Connection-specific fields and ``Age`` are dropped; a strong ``ETag`` from the body
    and ``Content-Length`` are added when missing, so every hit and 304 can carry them.

    No ``Date`` is made up: servers (uvicorn, gunicorn) add their own to every response
    and a second one would be a malformed message. Downstream caches still count the
    right age, from ``Age``; ``response_time`` stands in for a missing ``Date`` here.

    .. versionadded:: 0.1
    """
    fields = _replayable(head.headers)
    present = {name.lower() for name, _ in fields}
    if "etag" not in present:
        fields.append(("ETag", strong_etag(body)))
    fields = [(name, value) for name, value in fields if name.lower() != "content-length"]
    if head.status != 204:
        fields.append(("Content-Length", str(len(body))))
    return StoredResponse(
        status=head.status,
        headers=tuple(fields),
        body=body,
        url=url,
        vary=vary,
        response_time=response_time,
        initial_age=initial_age(head.get("age"), head.get("date"), request_time, response_time),
        lifetime=decision.lifetime,
        stale_while_revalidate=decision.stale_while_revalidate,
        stale_if_error=decision.stale_if_error,
        may_serve_stale=decision.may_serve_stale,
    )
